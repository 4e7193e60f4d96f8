//! JSON API: cart and checkout (buyers), orders (buyers and sellers).

use super::checkout::{self, Cart as CartModel};
use super::service::{self, OrderPage, OrderView};
use super::store::OrderRow;
use crate::platform::clock::rfc3339;
use crate::platform::http::AppResult;
use crate::platform::http::auth::ApiPrincipal;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clipcart_domain::onboarding::AddressInput;
use clipcart_domain::page::PageRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_cart))
        .routes(routes!(add_cart_item))
        .routes(routes!(set_cart_item, remove_cart_item))
        .routes(routes!(place_checkout))
        .routes(routes!(list_buyer_orders))
        .routes(routes!(get_buyer_order))
        .routes(routes!(confirm_receipt))
        .routes(routes!(list_seller_orders))
        .routes(routes!(get_seller_order))
        .routes(routes!(ship_order))
}

#[derive(Serialize, ToSchema)]
pub struct CartLine {
    pub variant_id: String,
    pub product_id: String,
    pub title: String,
    pub variant: String,
    pub shop_id: String,
    pub shop_name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub currency: String,
    pub in_stock: i64,
    /// False when the product was withdrawn or the shop closed since it was added.
    pub available: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Cart {
    pub lines: Vec<CartLine>,
    /// Sum of the lines in minor units.
    pub total: i64,
    pub currency: Option<String>,
}

impl From<CartModel> for Cart {
    fn from(c: CartModel) -> Self {
        Cart {
            total: c.total.map(|t| t.minor).unwrap_or(0),
            currency: c.total.map(|t| t.currency.code().to_string()),
            lines: c
                .lines
                .into_iter()
                .map(|l| CartLine {
                    variant_id: l.row.variant_id,
                    product_id: l.row.product_id,
                    title: l.row.title,
                    variant: l.label,
                    shop_id: l.row.shop_id,
                    shop_name: l.row.shop_name,
                    quantity: l.row.quantity,
                    unit_price: l.row.price_minor,
                    currency: l.row.currency,
                    in_stock: l.row.stock,
                    available: l.row.buyable == 1,
                })
                .collect(),
        }
    }
}

/// The buyer's cart.
#[utoipa::path(get, path = "/cart", tag = "checkout", responses((status = 200, body = Cart), (status = 403, body = Problem)), security(("bearer" = [])))]
async fn get_cart(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<Json<Cart>> {
    Ok(Json(checkout::cart(&state, &p).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub variant_id: String,
    /// 1 to 99; added to what is already in the cart.
    pub quantity: i64,
}

/// Adds a variant to the cart.
#[utoipa::path(post, path = "/cart/items", tag = "checkout", request_body = AddItem,
    responses((status = 201, body = Cart), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn add_cart_item(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiJson(r): ApiJson<AddItem>,
) -> AppResult<(StatusCode, Json<Cart>)> {
    checkout::add_to_cart(&state, &p, &r.variant_id, r.quantity).await?;
    Ok((
        StatusCode::CREATED,
        Json(checkout::cart(&state, &p).await?.into()),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    pub quantity: i64,
}

/// Sets the quantity of a cart line.
#[utoipa::path(put, path = "/cart/items/{variant_id}", tag = "checkout", params(("variant_id" = String, Path)), request_body = SetQuantity,
    responses((status = 200, body = Cart), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn set_cart_item(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(variant_id): Path<String>,
    ApiJson(r): ApiJson<SetQuantity>,
) -> AppResult<Json<Cart>> {
    checkout::set_cart_quantity(&state, &p, &variant_id, r.quantity).await?;
    Ok(Json(checkout::cart(&state, &p).await?.into()))
}

/// Removes a cart line.
#[utoipa::path(delete, path = "/cart/items/{variant_id}", tag = "checkout", params(("variant_id" = String, Path)),
    responses((status = 200, body = Cart), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn remove_cart_item(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(variant_id): Path<String>,
) -> AppResult<Json<Cart>> {
    checkout::remove_from_cart(&state, &p, &variant_id).await?;
    Ok(Json(checkout::cart(&state, &p).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    /// The recipient.
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// From the payment provider's card form (`tok_…`); card numbers never come here.
    pub payment_token: String,
    pub shipping_address: ShippingAddress,
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutResult {
    pub checkout_id: String,
    /// What was charged, in minor units: the sum of the orders.
    pub total: i64,
    pub currency: String,
    /// One order per shop.
    pub orders: Vec<Order>,
}

/// Buys the whole cart with one payment, split into one order per shop. Send an
/// `Idempotency-Key` so a retry never charges twice.
#[utoipa::path(post, path = "/checkout", tag = "checkout", request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body replay the first response")),
    responses((status = 201, body = CheckoutResult), (status = 402, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn place_checkout(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiJson(r): ApiJson<CheckoutRequest>,
) -> AppResult<(StatusCode, Json<CheckoutResult>)> {
    let a = r.shipping_address;
    let ship = checkout::parse_shipping(
        &a.name,
        &AddressInput {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        },
    )?;
    let placed = checkout::place(&state, &p, &r.payment_token, &ship).await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutResult {
            checkout_id: placed.checkout_id,
            total: placed.total.minor,
            currency: placed.total.currency.code().into(),
            orders: placed
                .orders
                .into_iter()
                .map(|o| Order::from_row(o, Vec::new()))
                .collect(),
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct OrderLine {
    pub product_id: String,
    pub variant_id: String,
    pub title: String,
    pub variant: String,
    pub quantity: i64,
    pub unit_price: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Serialize, ToSchema)]
pub struct Order {
    pub id: String,
    pub shop_id: String,
    pub shop_name: String,
    pub checkout_id: String,
    /// TikTok Shop status names: `AWAITING_SHIPMENT`, `IN_TRANSIT`, `COMPLETED`, ...
    pub status: String,
    pub total: i64,
    pub currency: String,
    pub shipping_address: Address,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub created_at: String,
    pub paid_at: Option<String>,
    pub shipped_at: Option<String>,
    pub completed_at: Option<String>,
    /// Filled on single-order reads.
    pub lines: Vec<OrderLine>,
}

impl Order {
    fn from_row(o: OrderRow, lines: Vec<super::store::OrderLineRow>) -> Self {
        Order {
            id: o.id,
            shop_id: o.shop_id,
            shop_name: o.shop_name,
            checkout_id: o.checkout_id,
            status: o.status,
            total: o.total_minor,
            currency: o.currency,
            shipping_address: Address {
                name: o.ship_name,
                line1: o.ship_line1,
                line2: o.ship_line2,
                city: o.ship_city,
                postal_code: o.ship_postal_code,
                country: o.ship_country,
            },
            carrier: o.carrier,
            tracking_number: o.tracking_number,
            created_at: rfc3339(o.created_at),
            paid_at: o.paid_at.map(rfc3339),
            shipped_at: o.shipped_at.map(rfc3339),
            completed_at: o.completed_at.map(rfc3339),
            lines: lines
                .into_iter()
                .map(|l| OrderLine {
                    product_id: l.product_id,
                    variant_id: l.variant_id,
                    title: l.title,
                    variant: l.variant_label,
                    quantity: l.quantity,
                    unit_price: l.unit_price_minor,
                })
                .collect(),
        }
    }
}

impl From<OrderView> for Order {
    fn from(v: OrderView) -> Self {
        Order::from_row(v.order, v.lines)
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<Order>,
    pub next_cursor: Option<String>,
}

impl From<OrderPage> for OrderList {
    fn from(p: OrderPage) -> Self {
        OrderList {
            items: p
                .items
                .into_iter()
                .map(|o| Order::from_row(o, Vec::new()))
                .collect(),
            next_cursor: p.next_cursor,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Only orders in this status (sellers).
    pub status: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
}

/// The buyer's orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = OrderList), (status = 403, body = Problem)), security(("bearer" = [])))]
async fn list_buyer_orders(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> AppResult<Json<OrderList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(service::buyer_orders(&state, &p, &page).await?.into()))
}

/// One of the buyer's orders.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn get_buyer_order(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<String>,
) -> AppResult<Json<Order>> {
    Ok(Json(service::buyer_order(&state, &p, &id).await?.into()))
}

/// The buyer confirms the parcel arrived; the order completes.
#[utoipa::path(post, path = "/orders/{order_id}/confirm-receipt", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn confirm_receipt(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<String>,
) -> AppResult<Json<Order>> {
    Ok(Json(
        service::confirm_receipt(&state, &p, &id).await?.into(),
    ))
}

/// The shop's orders, newest first, keyset paginated.
#[utoipa::path(get, path = "/seller/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = OrderList), (status = 403, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn list_seller_orders(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> AppResult<Json<OrderList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(
        service::seller_orders(&state, &p, q.status.as_deref(), &page)
            .await?
            .into(),
    ))
}

/// One of the shop's orders (404 for another shop's).
#[utoipa::path(get, path = "/seller/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn get_seller_order(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<String>,
) -> AppResult<Json<Order>> {
    Ok(Json(service::seller_order(&state, &p, &id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    pub carrier: String,
    pub tracking_number: String,
}

/// Marks an order shipped with its carrier and tracking number.
#[utoipa::path(post, path = "/seller/orders/{order_id}/ship", tag = "orders", params(("order_id" = String, Path)), request_body = ShipRequest,
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn ship_order(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<ShipRequest>,
) -> AppResult<Json<Order>> {
    Ok(Json(
        service::ship(&state, &p, &id, &r.carrier, &r.tracking_number)
            .await?
            .into(),
    ))
}
