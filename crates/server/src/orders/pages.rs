//! Buyer pages (cart, checkout, orders) and seller order pages.

use super::checkout;
use super::service::{self, OrderView};
use super::store::OrderRow;
use crate::catalog::pages::{price, render_product};
use crate::platform::clock::human;
use crate::platform::http::auth::{PagePrincipal, Principal};
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, NoFields, PageCtx, PageResult, apply_first, render, render_with_status, see_other,
};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use clipcart_domain::onboarding::AddressInput;
use clipcart_domain::orders::OrderStatus;
use clipcart_domain::page::PageRequest;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cart", get(cart_page))
        .route("/cart/items", post(add_to_cart))
        .route("/cart/items/{variant_id}/remove", post(remove_from_cart))
        .route("/checkout", get(start_checkout))
        .route("/checkout/review", get(review))
        .route("/checkout/place", post(place))
        .route("/orders", get(buyer_orders))
        .route("/orders/{id}", get(buyer_order))
        .route("/orders/{id}/confirm-receipt", post(confirm_receipt))
        .route("/seller/orders", get(seller_orders))
        .route("/seller/orders/rows", get(seller_order_rows))
        .route("/seller/orders/{id}", get(seller_order))
        .route("/seller/orders/{id}/ship", post(ship))
}

struct Line {
    product_id: String,
    variant_id: String,
    title: String,
    label: String,
    shop_name: String,
    quantity: i64,
    price: String,
    available: bool,
}

fn lines(cart: &checkout::Cart) -> Vec<Line> {
    cart.lines
        .iter()
        .map(|l| Line {
            product_id: l.row.product_id.clone(),
            variant_id: l.row.variant_id.clone(),
            title: l.row.title.clone(),
            label: l.label.clone(),
            shop_name: l.row.shop_name.clone(),
            quantity: l.row.quantity,
            price: price(l.row.price_minor, &l.row.currency),
            available: l.row.buyable == 1,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "orders/cart.html")]
struct CartPage {
    ctx: PageCtx,
    lines: Vec<Line>,
    total: Option<String>,
}

async fn cart_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
) -> PageResult {
    let cart = checkout::cart(&state, &p).await?;
    Ok(render(&CartPage {
        ctx: PageCtx::new("Cart", Some(&p), &csrf),
        lines: lines(&cart),
        total: cart.total.map(|t| t.to_string()),
    }))
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    variant_id: String,
    #[serde(default)]
    quantity: String,
}

async fn add_to_cart(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<AddForm>,
) -> PageResult {
    let quantity = f.quantity.trim().parse::<i64>().unwrap_or(0);
    match checkout::add_to_cart(&state, &p, &f.variant_id, quantity).await {
        Ok(()) => Ok(see_other("/cart")),
        Err(e) => {
            let mut errors = FormErrors::from_error(&e).ok_or(e)?;
            if let Some(m) = errors.get("quantity").map(str::to_string) {
                errors.general = Some(m);
            }
            render_product(&state, Some(&p), &csrf, &f.product_id, errors).await
        }
    }
}

async fn remove_from_cart(
    State(state): State<AppState>,
    PagePrincipal(p): PagePrincipal,
    Path(variant_id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    checkout::remove_from_cart(&state, &p, &variant_id).await?;
    Ok(see_other("/cart"))
}

/// Sends the buyer to the payment provider's card form, which comes back with a token.
async fn start_checkout(
    State(state): State<AppState>,
    PagePrincipal(p): PagePrincipal,
) -> PageResult {
    let cart = checkout::cart(&state, &p).await?;
    let Some(total) = cart.total else {
        return Ok(see_other("/cart"));
    };
    let amount: String = total
        .to_string()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(see_other(&format!(
        "/testpay/pay?return_to=/checkout/review&amount={amount}"
    )))
}

#[derive(Default)]
struct AddressForm {
    name: String,
    line1: String,
    line2: String,
    city: String,
    postal_code: String,
    country: String,
}

#[derive(Template)]
#[template(path = "orders/review.html")]
struct ReviewPage {
    ctx: PageCtx,
    lines: Vec<Line>,
    total: String,
    card: Option<String>,
    payment_token: String,
    form: AddressForm,
    errors: FormErrors,
}

#[derive(Deserialize)]
struct ReviewQuery {
    payment_token: Option<String>,
}

async fn review_page(
    state: &AppState,
    p: &Principal,
    csrf: &CsrfToken,
    token: String,
    form: AddressForm,
    errors: FormErrors,
) -> PageResult {
    let cart = checkout::cart(state, p).await?;
    let Some(total) = cart.total else {
        return Ok(see_other("/cart"));
    };
    let card = state.payments.describe(&token).await?.map(|c| {
        format!(
            "{} •••• {} (expires {:02}/{})",
            c.brand, c.last4, c.exp_month, c.exp_year
        )
    });
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &ReviewPage {
            ctx: PageCtx::new("Review order", Some(p), csrf),
            lines: lines(&cart),
            total: total.to_string(),
            card,
            payment_token: token,
            form,
            errors,
        },
    ))
}

async fn review(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<ReviewQuery>,
) -> PageResult {
    let form = AddressForm {
        name: p.display_name.clone(),
        ..Default::default()
    };
    review_page(
        &state,
        &p,
        &csrf,
        q.payment_token.unwrap_or_default(),
        form,
        FormErrors::default(),
    )
    .await
}

#[derive(Deserialize)]
struct PlaceForm {
    #[serde(default)]
    payment_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
}

async fn place(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<PlaceForm>,
) -> PageResult {
    let address = AddressInput {
        line1: f.line1.clone(),
        line2: f.line2.clone(),
        city: f.city.clone(),
        postal_code: f.postal_code.clone(),
        country: f.country.clone(),
    };
    let result = match checkout::parse_shipping(&f.name, &address) {
        Ok(ship) => checkout::place(&state, &p, &f.payment_token, &ship).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(placed) => Ok(see_other(&format!("/orders?placed={}", placed.checkout_id))),
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            let form = AddressForm {
                name: f.name,
                line1: f.line1,
                line2: f.line2,
                city: f.city,
                postal_code: f.postal_code,
                country: f.country,
            };
            review_page(&state, &p, &csrf, f.payment_token, form, errors).await
        }
    }
}

struct OrderSummary {
    id: String,
    shop_name: String,
    buyer: String,
    created: String,
    total: String,
    status_label: &'static str,
    status_class: String,
    address: String,
    tracking: Option<String>,
    can_ship: bool,
    can_confirm: bool,
}

fn summary(o: &OrderRow) -> OrderSummary {
    let status = OrderStatus::parse(&o.status).unwrap_or(OrderStatus::Unpaid);
    let mut address = format!("{}, {}", o.ship_name, o.ship_line1);
    if !o.ship_line2.is_empty() {
        address.push_str(&format!(", {}", o.ship_line2));
    }
    address.push_str(&format!(
        ", {} {}, {}",
        o.ship_postal_code, o.ship_city, o.ship_country
    ));
    OrderSummary {
        id: o.id.clone(),
        shop_name: o.shop_name.clone(),
        buyer: o.ship_name.clone(),
        created: human(o.created_at),
        total: price(o.total_minor, &o.currency),
        status_label: status.label(),
        status_class: o.status.to_lowercase(),
        address,
        tracking: match (&o.carrier, &o.tracking_number) {
            (Some(c), Some(t)) => Some(format!("{c} {t}")),
            _ => None,
        },
        can_ship: clipcart_domain::orders::ship(status).is_ok(),
        can_confirm: clipcart_domain::orders::confirm_receipt(status).is_ok(),
    }
}

struct LineView {
    title: String,
    label: String,
    quantity: i64,
    price: String,
}

#[derive(Template)]
#[template(path = "orders/order_detail.html")]
struct OrderDetail {
    ctx: PageCtx,
    o: OrderSummary,
    lines: Vec<LineView>,
    seller_view: bool,
    ship_form: (String, String),
    errors: FormErrors,
}

fn detail(
    ctx: PageCtx,
    v: &OrderView,
    seller_view: bool,
    ship_form: (String, String),
    errors: FormErrors,
) -> OrderDetail {
    OrderDetail {
        ctx,
        o: summary(&v.order),
        lines: v
            .lines
            .iter()
            .map(|l| LineView {
                title: l.title.clone(),
                label: l.variant_label.clone(),
                quantity: l.quantity,
                price: price(l.unit_price_minor, &l.currency),
            })
            .collect(),
        seller_view,
        ship_form,
        errors,
    }
}

#[derive(Template)]
#[template(path = "orders/buyer_orders.html")]
struct BuyerOrders {
    ctx: PageCtx,
    orders: Vec<OrderSummary>,
    next_cursor: Option<String>,
    placed: bool,
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    status: Option<String>,
    placed: Option<String>,
}

async fn buyer_orders(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let page = PageRequest::parse(q.cursor.as_deref(), None)?;
    let result = service::buyer_orders(&state, &p, &page).await?;
    Ok(render(&BuyerOrders {
        ctx: PageCtx::new("Your orders", Some(&p), &csrf),
        orders: result.items.iter().map(summary).collect(),
        next_cursor: result.next_cursor,
        placed: q.placed.is_some(),
    }))
}

async fn buyer_order(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
) -> PageResult {
    let v = service::buyer_order(&state, &p, &id).await?;
    Ok(render(&detail(
        PageCtx::new("Order", Some(&p), &csrf),
        &v,
        false,
        Default::default(),
        FormErrors::default(),
    )))
}

async fn confirm_receipt(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    match service::confirm_receipt(&state, &p, &id).await {
        Ok(_) => Ok(see_other(&format!("/orders/{id}"))),
        Err(e) if e.status() == StatusCode::CONFLICT => {
            let v = service::buyer_order(&state, &p, &id).await?;
            let errors = FormErrors {
                fields: vec![],
                general: Some(e.detail()),
            };
            Ok(render_with_status(
                StatusCode::CONFLICT,
                &detail(
                    PageCtx::new("Order", Some(&p), &csrf),
                    &v,
                    false,
                    Default::default(),
                    errors,
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "orders/seller_orders.html")]
struct SellerOrders {
    ctx: PageCtx,
    rows: Vec<OrderSummary>,
    next_cursor: Option<String>,
    status: String,
}

#[derive(Template)]
#[template(path = "orders/seller_rows.html")]
struct SellerRows {
    rows: Vec<OrderSummary>,
    next_cursor: Option<String>,
    status: String,
}

async fn seller_page(
    state: &AppState,
    p: &Principal,
    q: &ListQuery,
) -> Result<(Vec<OrderSummary>, Option<String>, String), crate::platform::http::AppError> {
    let page = PageRequest::parse(q.cursor.as_deref(), None)?;
    let status = q.status.clone().unwrap_or_default();
    let result = service::seller_orders(state, p, Some(&status), &page).await?;
    Ok((
        result.items.iter().map(summary).collect(),
        result.next_cursor,
        status,
    ))
}

async fn seller_orders(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<ListQuery>,
) -> PageResult {
    if let Some(r) = apply_first(&p) {
        return Ok(r);
    }
    let (rows, next_cursor, status) = seller_page(&state, &p, &q).await?;
    Ok(render(&SellerOrders {
        ctx: PageCtx::new("Orders", Some(&p), &csrf),
        rows,
        next_cursor,
        status,
    }))
}

/// The next page of rows, for htmx's "Load more".
async fn seller_order_rows(
    State(state): State<AppState>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let (rows, next_cursor, status) = seller_page(&state, &p, &q).await?;
    Ok(render(&SellerRows {
        rows,
        next_cursor,
        status,
    }))
}

async fn seller_order(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
) -> PageResult {
    let v = service::seller_order(&state, &p, &id).await?;
    Ok(render(&detail(
        PageCtx::new("Order", Some(&p), &csrf),
        &v,
        true,
        Default::default(),
        FormErrors::default(),
    )))
}

#[derive(Deserialize)]
struct ShipForm {
    #[serde(default)]
    carrier: String,
    #[serde(default)]
    tracking_number: String,
}

async fn ship(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<ShipForm>,
) -> PageResult {
    match service::ship(&state, &p, &id, &f.carrier, &f.tracking_number).await {
        Ok(_) => Ok(see_other(&format!("/seller/orders/{id}"))),
        Err(e) => {
            let status = e.status();
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            let v = service::seller_order(&state, &p, &id).await?;
            let page = detail(
                PageCtx::new("Order", Some(&p), &csrf),
                &v,
                true,
                (f.carrier, f.tracking_number),
                errors,
            );
            Ok(render_with_status(status, &page))
        }
    }
}
