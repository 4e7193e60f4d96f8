//! Catalogue use cases. Sellers work on their own shop's products only; buyers see live
//! products of active shops.

use super::store::{self, CardRow, ProductRow, VariantRow};
use crate::onboarding;
use crate::platform::http::auth::Principal;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use clipcart_domain::catalog::{self as rules, ProductInput, ProductStatus};
use clipcart_domain::identity::staff::{Access, Area};
use clipcart_domain::money::Currency;
use clipcart_domain::onboarding::ShopStatus;
use clipcart_domain::page::{Cursor, PageRequest};
use clipcart_domain::{DomainError, ids};

/// A product with its variants, options decoded.
pub struct ProductView {
    pub product: ProductRow,
    pub options: Vec<String>,
    pub variants: Vec<VariantView>,
}

pub struct VariantView {
    pub row: VariantRow,
    pub option_values: Vec<String>,
}

impl VariantView {
    /// "White / M", or "Default" for a product without options.
    pub fn label(&self) -> String {
        if self.option_values.is_empty() {
            "Default".into()
        } else {
            self.option_values.join(" / ")
        }
    }
}

fn decode_list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

async fn view(state: &AppState, product: ProductRow) -> AppResult<ProductView> {
    let variants = store::variants(&state.db.read, &product.id)
        .await?
        .into_iter()
        .map(|row| VariantView {
            option_values: decode_list(&row.option_values_json),
            row,
        })
        .collect();
    Ok(ProductView {
        options: decode_list(&product.options_json),
        product,
        variants,
    })
}

pub async fn create(
    state: &AppState,
    p: &Principal,
    input: &ProductInput,
) -> AppResult<ProductView> {
    let shop = onboarding::service::selling_shop(state, p, Area::Catalogue, Access::Edit).await?;
    let currency = Currency::parse(&shop.currency)?;
    let parsed = input.parse(currency)?;
    let now = state.now_ms();
    let product = ProductRow {
        id: ids::new_id(ids::PRODUCT),
        shop_id: shop.id.clone(),
        title: parsed.title,
        description: parsed.description,
        options_json: json(&parsed.options)?,
        status: ProductStatus::Draft.as_str().into(),
        currency: currency.code().into(),
        created_at: now,
        updated_at: now,
    };
    let mut variants = Vec::with_capacity(parsed.variants.len());
    for (i, v) in parsed.variants.iter().enumerate() {
        variants.push(VariantRow {
            id: ids::new_id(ids::VARIANT),
            product_id: product.id.clone(),
            shop_id: shop.id.clone(),
            option_values_json: json(&v.option_values)?,
            price_minor: v.price.minor,
            currency: currency.code().into(),
            stock: v.stock,
            sku: v.sku.clone(),
            position: i64::try_from(i).unwrap_or(i64::MAX),
        });
    }
    let mut tx = state.db.write.begin().await?;
    store::insert(&mut tx, &product, &variants).await?;
    tx.commit().await?;
    tracing::info!(product_id = %product.id, shop_id = %shop.id, "product created");
    view(state, product).await
}

fn json<T: serde::Serialize>(v: &T) -> AppResult<String> {
    serde_json::to_string(v).map_err(|e| AppError::Internal(e.into()))
}

pub async fn seller_product(state: &AppState, p: &Principal, id: &str) -> AppResult<ProductView> {
    let shop_id = p.shop(Area::Catalogue, Access::View)?;
    let product = store::shop_product(&state.db.read, shop_id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    view(state, product).await
}

pub struct ProductPage {
    pub items: Vec<CardRow>,
    pub next_cursor: Option<String>,
}

fn paged(mut items: Vec<CardRow>, page: &PageRequest) -> ProductPage {
    let next_cursor = if items.len() > page.limit as usize {
        items.truncate(page.limit as usize);
        items.last().map(|p| {
            Cursor {
                key: p.created_at,
                id: p.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    ProductPage { items, next_cursor }
}

pub async fn seller_products(
    state: &AppState,
    p: &Principal,
    page: &PageRequest,
) -> AppResult<ProductPage> {
    let shop_id = p.shop(Area::Catalogue, Access::View)?;
    Ok(paged(
        store::list_shop_products(&state.db.read, shop_id, page).await?,
        page,
    ))
}

pub async fn publish(state: &AppState, p: &Principal, id: &str) -> AppResult<ProductView> {
    let shop = onboarding::service::selling_shop(state, p, Area::Catalogue, Access::Edit).await?;
    let product = store::shop_product(&state.db.read, &shop.id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let current = ProductStatus::parse(&product.status)?;
    let can_sell = ShopStatus::parse(&shop.status)?.can_sell();
    let next = rules::publish(current, can_sell)?;
    if !store::set_status(
        &state.db.write,
        &shop.id,
        id,
        current.as_str(),
        next.as_str(),
        state.now_ms(),
    )
    .await?
    {
        return Err(DomainError::Conflict(
            "the product changed meanwhile; reload and try again".into(),
        )
        .into());
    }
    tracing::info!(product_id = id, "product published");
    seller_product(state, p, id).await
}

pub async fn set_stock(
    state: &AppState,
    p: &Principal,
    product_id: &str,
    variant_id: &str,
    stock: i64,
) -> AppResult<ProductView> {
    let shop_id = p.shop(Area::Catalogue, Access::Edit)?;
    if !(0..=rules::MAX_STOCK).contains(&stock) {
        return Err(DomainError::invalid(
            "stock",
            format!("stock must be between 0 and {}", rules::MAX_STOCK),
        )
        .into());
    }
    let product = store::shop_product(&state.db.read, shop_id, product_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let belongs = store::variants(&state.db.read, &product.id)
        .await?
        .iter()
        .any(|v| v.id == variant_id);
    if !belongs || !store::set_stock(&state.db.write, shop_id, variant_id, stock).await? {
        return Err(DomainError::NotFound.into());
    }
    seller_product(state, p, product_id).await
}

pub async fn live_product(state: &AppState, id: &str) -> AppResult<ProductView> {
    let product = store::live_product(&state.db.read, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    view(state, product).await
}

pub async fn browse(state: &AppState, query: &str, page: &PageRequest) -> AppResult<ProductPage> {
    if query.chars().count() > 100 {
        return Err(DomainError::invalid("q", "search for at most 100 characters").into());
    }
    Ok(paged(
        store::list_live(&state.db.read, query.trim(), page).await?,
        page,
    ))
}
