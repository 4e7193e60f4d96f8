//! The order life cycle after checkout: the seller ships, the buyer confirms receipt.

use super::store::{self, OrderLineRow, OrderRow, OwnerColumn};
use crate::finance::ledger;
use crate::platform::http::AppResult;
use crate::platform::http::auth::Principal;
use crate::state::AppState;
use clipcart_domain::DomainError;
use clipcart_domain::identity::Role;
use clipcart_domain::identity::staff::{Access, Area};
use clipcart_domain::money::Currency;
use clipcart_domain::orders::{self as rules, OrderStatus};
use clipcart_domain::page::{Cursor, PageRequest};

pub struct OrderView {
    pub order: OrderRow,
    pub lines: Vec<OrderLineRow>,
}

pub struct OrderPage {
    pub items: Vec<OrderRow>,
    pub next_cursor: Option<String>,
}

fn paged(mut items: Vec<OrderRow>, page: &PageRequest) -> OrderPage {
    let next_cursor = if items.len() > page.limit as usize {
        items.truncate(page.limit as usize);
        items.last().map(|o| {
            Cursor {
                key: o.created_at,
                id: o.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    OrderPage { items, next_cursor }
}

fn status_filter(status: Option<&str>) -> AppResult<Option<&'static str>> {
    Ok(match status.filter(|s| !s.is_empty()) {
        Some(s) => Some(OrderStatus::parse(s)?.as_str()),
        None => None,
    })
}

pub async fn seller_orders(
    state: &AppState,
    p: &Principal,
    status: Option<&str>,
    page: &PageRequest,
) -> AppResult<OrderPage> {
    let shop_id = p.shop(Area::Fulfilment, Access::View)?;
    let status = status_filter(status)?;
    Ok(paged(
        store::list(
            &state.db.read,
            &state.vault,
            OwnerColumn::Shop,
            shop_id,
            status,
            page,
        )
        .await?,
        page,
    ))
}

pub async fn seller_order(state: &AppState, p: &Principal, id: &str) -> AppResult<OrderView> {
    let shop_id = p.shop(Area::Fulfilment, Access::View)?;
    let order = store::shop_order(&state.db.read, &state.vault, shop_id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let lines = store::lines(&state.db.read, &order.id).await?;
    Ok(OrderView { order, lines })
}

pub async fn ship(
    state: &AppState,
    p: &Principal,
    id: &str,
    carrier: &str,
    tracking: &str,
) -> AppResult<OrderView> {
    let shop_id = p.shop(Area::Fulfilment, Access::Edit)?;
    let (carrier, tracking) = rules::parse_tracking(carrier, tracking)?;
    let order = store::shop_order(&state.db.read, &state.vault, shop_id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let current = OrderStatus::parse(&order.status)?;
    let next = rules::ship(current)?;
    if !store::mark_shipped(
        &state.db.write,
        shop_id,
        id,
        current.as_str(),
        next.as_str(),
        &carrier,
        &tracking,
        state.now_ms(),
    )
    .await?
    {
        return Err(DomainError::Conflict("the order changed meanwhile; reload it".into()).into());
    }
    tracing::info!(order_id = id, shop_id, "order shipped");
    seller_order(state, p, id).await
}

pub async fn buyer_orders(
    state: &AppState,
    p: &Principal,
    page: &PageRequest,
) -> AppResult<OrderPage> {
    p.require(Role::Buyer)?;
    Ok(paged(
        store::list(
            &state.db.read,
            &state.vault,
            OwnerColumn::Buyer,
            &p.user_id,
            None,
            page,
        )
        .await?,
        page,
    ))
}

pub async fn buyer_order(state: &AppState, p: &Principal, id: &str) -> AppResult<OrderView> {
    p.require(Role::Buyer)?;
    let order = store::buyer_order(&state.db.read, &state.vault, &p.user_id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let lines = store::lines(&state.db.read, &order.id).await?;
    Ok(OrderView { order, lines })
}

/// The buyer has the parcel: the order completes and the seller's funds become available.
pub async fn confirm_receipt(state: &AppState, p: &Principal, id: &str) -> AppResult<OrderView> {
    p.require(Role::Buyer)?;
    let order = store::buyer_order(&state.db.read, &state.vault, &p.user_id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let current = OrderStatus::parse(&order.status)?;
    let next = rules::confirm_receipt(current)?;
    // Funds become available to the seller only for a payment that was actually captured.
    if store::payment_status(&state.db.read, &order.checkout_id)
        .await?
        .as_deref()
        != Some(super::checkout::PAYMENT_CAPTURED)
    {
        return Err(DomainError::Conflict(
            "the payment for this order is not settled yet; try again later".into(),
        )
        .into());
    }
    let now = state.now_ms();
    let currency = Currency::parse(&order.currency)?;
    let posting = clipcart_domain::ledger::order_completed(
        &order.id,
        &order.shop_id,
        order.total_minor,
        currency,
    )?;
    let mut tx = state.db.write.begin().await?;
    if !store::mark_completed(
        &mut tx,
        &p.user_id,
        id,
        current.as_str(),
        next.as_str(),
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Err(DomainError::Conflict("the order changed meanwhile; reload it".into()).into());
    }
    ledger::record(&mut tx, &posting, &p.user_id, now).await?;
    tx.commit().await?;
    tracing::info!(order_id = id, "order completed by buyer");
    buyer_order(state, p, id).await
}
