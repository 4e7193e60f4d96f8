//! The cart and checkout. Checkout authorises the payment, then takes stock and writes the
//! orders, the payment record and the ledger in one transaction, then captures; if stock ran out
//! meanwhile the authorisation is voided. Statements per checkout: a fixed few per line.

use super::store::{self, CartLineRow, OrderLineRow, OrderRow};
use crate::finance::ledger;
use crate::platform::http::auth::Principal;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use clipcart_domain::checkout::{self as rules, PricedLine};
use clipcart_domain::error::Errors;
use clipcart_domain::identity::Role;
use clipcart_domain::money::{Currency, Money};
use clipcart_domain::onboarding::{Address, AddressInput};
use clipcart_domain::orders::OrderStatus;
use clipcart_domain::{DomainError, ids};

pub struct CartLine {
    pub row: CartLineRow,
    pub label: String,
}

pub struct Cart {
    pub lines: Vec<CartLine>,
    /// Totals per currency in minor units (normally one).
    pub total: Option<Money>,
}

pub async fn cart(state: &AppState, p: &Principal) -> AppResult<Cart> {
    p.require(Role::Buyer)?;
    let rows = store::cart_lines(&state.db.read, &p.user_id).await?;
    let mut total: Option<Money> = None;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let currency = Currency::parse(&row.currency)?;
        let amount = Money {
            minor: row.price_minor,
            currency,
        }
        .checked_mul(row.quantity)?;
        total = Some(match total {
            Some(t) if t.currency == currency => t.checked_add(amount)?,
            Some(t) => t,
            None => amount,
        });
        let label = variant_label(&row.option_values_json);
        lines.push(CartLine { row, label });
    }
    Ok(Cart { lines, total })
}

/// Adds to the quantity already in the cart (capped by the per-line maximum and the stock).
pub async fn add_to_cart(
    state: &AppState,
    p: &Principal,
    variant_id: &str,
    quantity: i64,
) -> AppResult<()> {
    p.require(Role::Buyer)?;
    rules::check_quantity(quantity)?;
    let stock = store::variant_buyable(&state.db.read, variant_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let wanted = store::cart_quantity(&state.db.read, &p.user_id, variant_id).await? + quantity;
    rules::check_quantity(wanted).map_err(|_| {
        DomainError::invalid(
            "quantity",
            format!("at most {} of one item per order", rules::MAX_QUANTITY),
        )
    })?;
    if wanted > stock {
        return Err(DomainError::invalid("quantity", format!("only {stock} left in stock")).into());
    }
    // The cap is re-checked in the statement itself, so two adds at once cannot exceed it.
    let cap = stock.min(rules::MAX_QUANTITY);
    if !store::add_cart_quantity(
        &state.db.write,
        &p.user_id,
        variant_id,
        quantity,
        cap,
        state.now_ms(),
    )
    .await?
    {
        return Err(DomainError::invalid(
            "quantity",
            format!("at most {cap} of this item fit in one order"),
        )
        .into());
    }
    Ok(())
}

pub async fn set_cart_quantity(
    state: &AppState,
    p: &Principal,
    variant_id: &str,
    quantity: i64,
) -> AppResult<()> {
    p.require(Role::Buyer)?;
    rules::check_quantity(quantity)?;
    if store::cart_quantity(&state.db.read, &p.user_id, variant_id).await? == 0 {
        return Err(DomainError::NotFound.into());
    }
    store::set_cart_quantity(
        &state.db.write,
        &p.user_id,
        variant_id,
        quantity,
        state.now_ms(),
    )
    .await?;
    Ok(())
}

pub async fn remove_from_cart(state: &AppState, p: &Principal, variant_id: &str) -> AppResult<()> {
    p.require(Role::Buyer)?;
    if !store::remove_cart_item(&state.db.write, &p.user_id, variant_id).await? {
        return Err(DomainError::NotFound.into());
    }
    Ok(())
}

/// "White / M" from a variant's stored option values; "Default" for a product without options.
pub fn variant_label(option_values_json: &str) -> String {
    let values: Vec<String> = serde_json::from_str(option_values_json).unwrap_or_default();
    if values.is_empty() {
        "Default".into()
    } else {
        values.join(" / ")
    }
}

/// Where the parcel goes.
#[derive(Clone)]
pub struct ShippingAddress {
    pub name: String,
    pub address: Address,
}

pub fn parse_shipping(name: &str, address: &AddressInput) -> Result<ShippingAddress, DomainError> {
    let mut e = Errors::new();
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        e.add("shipping_address.name", "enter the recipient's name");
    }
    let address = address.validate("shipping_address", &mut e);
    e.finish()?;
    Ok(ShippingAddress {
        name: name.into(),
        address,
    })
}

pub struct Placed {
    pub checkout_id: String,
    pub total: Money,
    pub orders: Vec<OrderRow>,
}

pub async fn place(
    state: &AppState,
    p: &Principal,
    payment_token: &str,
    ship: &ShippingAddress,
) -> AppResult<Placed> {
    p.require(Role::Buyer)?;
    // Order and payment mail must reach the buyer: a proved address first.
    crate::identity::email::require_verified(state, &p.user_id).await?;
    if payment_token.is_empty() || payment_token.len() > 100 {
        return Err(DomainError::invalid(
            "payment_token",
            "pay with a card first: the payment form returns a token",
        )
        .into());
    }
    let cart = store::cart_lines(&state.db.read, &p.user_id).await?;
    let mut priced = Vec::with_capacity(cart.len());
    for l in &cart {
        if l.buyable != 1 {
            return Err(DomainError::Conflict(format!(
                "{} is no longer on sale; remove it from the cart",
                l.title
            ))
            .into());
        }
        if l.stock < l.quantity {
            return Err(DomainError::OutOfStock {
                variant_id: l.variant_id.clone(),
            }
            .into());
        }
        priced.push(PricedLine {
            shop_id: l.shop_id.clone(),
            variant_id: l.variant_id.clone(),
            quantity: l.quantity,
            unit_price: Money::new(l.price_minor, Currency::parse(&l.currency)?)?,
        });
    }
    let split = rules::split_by_shop(priced)?;
    let checkout_id = ids::new_id(ids::CHECKOUT);
    let auth = state
        .payments
        .authorize(payment_token, split.total, &checkout_id)
        .await?;
    // From here on the work runs in a task of its own: if the client disconnects, the request's
    // future is dropped, but the orders are still written and the payment captured, or voided.
    let task = tokio::spawn(finish(
        state.clone(),
        p.clone(),
        checkout_id,
        split,
        cart,
        ship.clone(),
        auth,
    ));
    task.await.map_err(|e| AppError::Internal(e.into()))?
}

async fn finish(
    state: AppState,
    p: Principal,
    checkout_id: String,
    split: rules::Split,
    cart: Vec<CartLineRow>,
    ship: ShippingAddress,
    auth: crate::payments::Authorization,
) -> AppResult<Placed> {
    match write_orders(&state, &p, &checkout_id, &split, &cart, &ship, &auth).await {
        Ok(orders) => {
            let status = match state.payments.capture(&auth.id).await {
                Ok(()) => PAYMENT_CAPTURED,
                Err(e) => {
                    // The orders stand, flagged: completion waits for a settled payment.
                    tracing::error!(error = %e, checkout_id, "capture failed after orders were written");
                    PAYMENT_CAPTURE_FAILED
                }
            };
            store::set_payment_status(&state.db.write, &checkout_id, status).await?;
            tracing::info!(
                checkout_id,
                orders = orders.len(),
                total = split.total.minor,
                "checkout placed"
            );
            Ok(Placed {
                checkout_id,
                total: split.total,
                orders,
            })
        }
        Err(e) => {
            if let Err(void_err) = state.payments.void(&auth.id).await {
                tracing::error!(error = %void_err, checkout_id, "void failed after a failed checkout");
            }
            Err(e)
        }
    }
}

/// Payment states of a checkout.
pub const PAYMENT_AUTHORIZED: &str = "authorized";
pub const PAYMENT_CAPTURED: &str = "captured";
pub const PAYMENT_CAPTURE_FAILED: &str = "capture_failed";

async fn write_orders(
    state: &AppState,
    p: &Principal,
    checkout_id: &str,
    split: &rules::Split,
    cart: &[CartLineRow],
    ship: &ShippingAddress,
    auth: &crate::payments::Authorization,
) -> AppResult<Vec<OrderRow>> {
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    // Rows are locked in variant order, so two checkouts never wait on each other in a cycle.
    let mut lines: Vec<&PricedLine> = split.orders.iter().flat_map(|o| &o.lines).collect();
    lines.sort_by(|a, b| a.variant_id.cmp(&b.variant_id));
    for line in &lines {
        // Consuming exactly the cart line that was priced makes a second, concurrent checkout of
        // the same cart (another tab, a retry without a key) fail instead of charging twice.
        if !store::consume_cart_line(&mut tx, &p.user_id, &line.variant_id, line.quantity).await? {
            tx.rollback().await?;
            return Err(DomainError::Conflict(
                "your cart changed while you were paying; review it and try again".into(),
            )
            .into());
        }
    }
    for line in &lines {
        if !store::take_stock(
            &mut tx,
            &line.variant_id,
            line.quantity,
            line.unit_price.minor,
        )
        .await?
        {
            let why =
                store::why_not_sellable(&mut tx, &line.variant_id, line.unit_price.minor).await?;
            tx.rollback().await?;
            return Err(why.into());
        }
    }
    store::insert_checkout(
        &mut tx,
        checkout_id,
        &p.user_id,
        split.total.minor,
        split.currency.code(),
        &auth.id,
        &auth.card,
        now,
    )
    .await?;
    let mut orders = Vec::with_capacity(split.orders.len());
    let mut shop_totals = Vec::with_capacity(split.orders.len());
    for order in &split.orders {
        let shop_name = cart
            .iter()
            .find(|c| c.shop_id == order.shop_id)
            .map(|c| c.shop_name.clone())
            .unwrap_or_default();
        let row = OrderRow {
            id: ids::new_id(ids::ORDER),
            shop_id: order.shop_id.clone(),
            shop_name,
            buyer_id: p.user_id.clone(),
            checkout_id: checkout_id.into(),
            status: OrderStatus::AwaitingShipment.as_str().into(),
            total_minor: order.total.minor,
            currency: split.currency.code().into(),
            ship_name: ship.name.clone(),
            ship_line1: ship.address.line1.clone(),
            ship_line2: ship.address.line2.clone(),
            ship_city: ship.address.city.clone(),
            ship_postal_code: ship.address.postal_code.clone(),
            ship_country: ship.address.country.clone(),
            carrier: None,
            tracking_number: None,
            created_at: now,
            paid_at: Some(now),
            shipped_at: None,
            completed_at: None,
        };
        store::insert_order(&mut tx, &state.vault, &row).await?;
        for line in &order.lines {
            let c = cart
                .iter()
                .find(|c| c.variant_id == line.variant_id)
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("cart line vanished")))?;
            let l = OrderLineRow {
                order_id: row.id.clone(),
                product_id: c.product_id.clone(),
                variant_id: line.variant_id.clone(),
                title: c.title.clone(),
                variant_label: variant_label(&c.option_values_json),
                quantity: line.quantity,
                unit_price_minor: line.unit_price.minor,
                currency: split.currency.code().into(),
            };
            store::insert_line(&mut tx, &order.shop_id, &l).await?;
        }
        shop_totals.push((order.shop_id.clone(), order.total.minor));
        orders.push(row);
    }
    let posting =
        clipcart_domain::ledger::checkout_paid(checkout_id, split.currency, &shop_totals)?;
    ledger::record(&mut tx, &posting, &p.user_id, now).await?;
    tx.commit().await?;
    Ok(orders)
}
