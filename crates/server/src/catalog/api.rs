//! JSON API for the catalogue: sellers manage their products, anyone browses live ones.

use super::service::{self, ProductPage, ProductView};
use crate::platform::clock::rfc3339;
use crate::platform::http::AppResult;
use crate::platform::http::auth::ApiPrincipal;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clipcart_domain::catalog::{ProductInput, VariantInput};
use clipcart_domain::page::PageRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_product, list_seller_products))
        .routes(routes!(get_seller_product))
        .routes(routes!(publish_product))
        .routes(routes!(set_stock))
        .routes(routes!(browse))
        .routes(routes!(get_product))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    /// One value per option name, in the order of the product's `options`.
    #[serde(default)]
    pub option_values: Vec<String>,
    /// Price in minor units of the shop's currency (e.g. cents).
    pub price: i64,
    pub stock: i64,
    #[serde(default)]
    pub sku: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Up to three option names, e.g. `["Colour", "Size"]`.
    #[serde(default)]
    pub options: Vec<String>,
    pub variants: Vec<NewVariant>,
}

#[derive(Serialize, ToSchema)]
pub struct Variant {
    pub id: String,
    pub option_values: Vec<String>,
    pub price: i64,
    pub currency: String,
    pub stock: i64,
    pub sku: String,
}

#[derive(Serialize, ToSchema)]
pub struct Product {
    pub id: String,
    pub shop_id: String,
    pub title: String,
    pub description: String,
    /// `draft`, `live` or `deactivated`.
    pub status: String,
    pub options: Vec<String>,
    pub variants: Vec<Variant>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ProductView> for Product {
    fn from(v: ProductView) -> Self {
        Product {
            id: v.product.id,
            shop_id: v.product.shop_id,
            title: v.product.title,
            description: v.product.description,
            status: v.product.status,
            options: v.options,
            variants: v
                .variants
                .into_iter()
                .map(|x| Variant {
                    id: x.row.id,
                    option_values: x.option_values,
                    price: x.row.price_minor,
                    currency: x.row.currency,
                    stock: x.row.stock,
                    sku: x.row.sku,
                })
                .collect(),
            created_at: rfc3339(v.product.created_at),
            updated_at: rfc3339(v.product.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductSummary {
    pub id: String,
    pub shop_id: String,
    pub title: String,
    pub status: String,
    /// The lowest variant price, in minor units.
    pub from_price: i64,
    pub currency: String,
    /// Units in stock over all variants.
    pub stock: i64,
    pub variant_count: i64,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<ProductSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<ProductPage> for ProductList {
    fn from(p: ProductPage) -> Self {
        ProductList {
            items: p
                .items
                .into_iter()
                .map(|c| ProductSummary {
                    id: c.id,
                    shop_id: c.shop_id,
                    title: c.title,
                    status: c.status,
                    from_price: c.min_price,
                    currency: c.currency,
                    stock: c.stock,
                    variant_count: c.variant_count,
                    created_at: rfc3339(c.created_at),
                })
                .collect(),
            next_cursor: p.next_cursor,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
}

/// Creates a draft product with its variants.
#[utoipa::path(post, path = "/seller/products", tag = "catalog", request_body = NewProduct,
    responses((status = 201, body = Product), (status = 403, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn create_product(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiJson(r): ApiJson<NewProduct>,
) -> AppResult<(StatusCode, Json<Product>)> {
    let input = ProductInput {
        title: r.title,
        description: r.description,
        options: r.options,
        variants: r
            .variants
            .into_iter()
            .map(|v| VariantInput {
                option_values: v.option_values,
                price: v.price,
                stock: v.stock,
                sku: v.sku,
            })
            .collect(),
    };
    let view = service::create(&state, &p, &input).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// The seller's products, newest first.
#[utoipa::path(get, path = "/seller/products", tag = "catalog", params(PageQuery),
    responses((status = 200, body = ProductList), (status = 403, body = Problem)), security(("bearer" = [])))]
async fn list_seller_products(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> AppResult<Json<ProductList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(
        service::seller_products(&state, &p, &page).await?.into(),
    ))
}

/// One of the seller's products (404 for another shop's).
#[utoipa::path(get, path = "/seller/products/{product_id}", tag = "catalog", params(("product_id" = String, Path)),
    responses((status = 200, body = Product), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn get_seller_product(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<String>,
) -> AppResult<Json<Product>> {
    Ok(Json(service::seller_product(&state, &p, &id).await?.into()))
}

/// Puts a product on sale. The shop must be active.
#[utoipa::path(post, path = "/seller/products/{product_id}/publish", tag = "catalog", params(("product_id" = String, Path)),
    responses((status = 200, body = Product), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn publish_product(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<String>,
) -> AppResult<Json<Product>> {
    Ok(Json(service::publish(&state, &p, &id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockUpdate {
    pub stock: i64,
}

/// Sets the stock of one variant.
#[utoipa::path(put, path = "/seller/products/{product_id}/variants/{variant_id}/stock", tag = "catalog",
    params(("product_id" = String, Path), ("variant_id" = String, Path)), request_body = StockUpdate,
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn set_stock(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path((product_id, variant_id)): Path<(String, String)>,
    ApiJson(r): ApiJson<StockUpdate>,
) -> AppResult<Json<Product>> {
    Ok(Json(
        service::set_stock(&state, &p, &product_id, &variant_id, r.stock)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// Words in the title.
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Live products of active shops, newest first. No sign-in needed.
#[utoipa::path(get, path = "/products", tag = "catalog", params(BrowseQuery),
    responses((status = 200, body = ProductList), (status = 422, body = Problem)))]
async fn browse(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BrowseQuery>,
) -> AppResult<Json<ProductList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(
        service::browse(&state, q.q.as_deref().unwrap_or(""), &page)
            .await?
            .into(),
    ))
}

/// A live product with its variants and stock.
#[utoipa::path(get, path = "/products/{product_id}", tag = "catalog", params(("product_id" = String, Path)),
    responses((status = 200, body = Product), (status = 404, body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Product>> {
    Ok(Json(service::live_product(&state, &id).await?.into()))
}
