//! Onboarding use cases: apply (seller), review (admin).

use super::store::{self, ShopRow};
use crate::identity::step_up::{self, StepUpProof};
use crate::platform::audit;
use crate::platform::http::auth::Principal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use clipcart_domain::identity::Role;
use clipcart_domain::identity::staff::{Access, Area};
use clipcart_domain::onboarding::{self as rules, AddressInput, ApplicationInput, ShopStatus};
use clipcart_domain::page::{Cursor, PageRequest};
use clipcart_domain::{DomainError, ids};

pub async fn apply(
    state: &AppState,
    p: &Principal,
    input: &ApplicationInput,
) -> AppResult<ShopRow> {
    p.require(Role::Seller)?;
    if p.is_staff() {
        return Err(DomainError::Conflict(
            "this account works for another shop; apply with an account of your own".into(),
        )
        .into());
    }
    // A shop's owner must be reachable: the address is proved before the application.
    crate::identity::email::require_verified(state, &p.user_id).await?;
    let app = input.parse()?;
    let address_json = serde_json::to_string(&AddressInput {
        line1: app.address.line1,
        line2: app.address.line2,
        city: app.address.city,
        postal_code: app.address.postal_code,
        country: app.address.country,
    })
    .map_err(|e| AppError::Internal(e.into()))?;
    let shop = ShopRow {
        id: ids::new_id(ids::SHOP),
        owner_user_id: p.user_id.clone(),
        name: app.business_name,
        seller_type: app.seller_type.as_str().into(),
        status: ShopStatus::Submitted.as_str().into(),
        currency: app.currency.code().into(),
        tax_id: app.tax_id,
        address_json,
        created_at: state.now_ms(),
        decided_at: None,
        decision_reason: None,
    };
    if !store::insert(&state.db.write, &state.vault, &shop).await? {
        return Err(DomainError::Conflict(
            "you have already applied; one shop per seller account".into(),
        )
        .into());
    }
    tracing::info!(shop_id = %shop.id, user_id = %p.user_id, "seller application submitted");
    Ok(shop)
}

/// The shop the seller owns or works for (any staff role may see which shop it is).
pub async fn my_shop(state: &AppState, p: &Principal) -> AppResult<Option<ShopRow>> {
    p.require(Role::Seller)?;
    match (&p.shop_id, p.is_staff()) {
        (Some(shop_id), true) => store::by_id(&state.db.read, &state.vault, shop_id).await,
        _ => store::by_owner(&state.db.read, &state.vault, &p.user_id).await,
    }
}

pub struct ShopPage {
    pub items: Vec<ShopRow>,
    pub next_cursor: Option<String>,
}

pub async fn list_applications(
    state: &AppState,
    p: &Principal,
    status: &str,
    page: &PageRequest,
) -> AppResult<ShopPage> {
    crate::identity::passkey::require_admin(state, p).await?;
    let status = ShopStatus::parse(status)
        .map_err(|_| DomainError::invalid("status", "unknown shop status"))?;
    let mut items =
        store::list_by_status(&state.db.read, &state.vault, status.as_str(), page).await?;
    let next_cursor = if items.len() > page.limit as usize {
        items.truncate(page.limit as usize);
        items.last().map(|s| {
            Cursor {
                key: s.created_at,
                id: s.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(ShopPage { items, next_cursor })
}

/// An admin's decision on an application; needs step-up (a passkey or code within minutes).
pub async fn decide(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    shop_id: &str,
    approve: bool,
    reason: &str,
) -> AppResult<ShopRow> {
    crate::identity::passkey::require_admin(state, p).await?;
    step_up::require(state, p, StepUpProof::default(), client).await?;
    let reason = reason.trim();
    if !approve && (reason.is_empty() || reason.chars().count() > 1000) {
        return Err(
            DomainError::invalid("reason", "tell the seller why (1 to 1000 characters)").into(),
        );
    }
    let shop = store::by_id(&state.db.read, &state.vault, shop_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let current = ShopStatus::parse(&shop.status)?;
    let next = rules::decide(current, approve)?;
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    if !store::decide(
        &mut tx,
        shop_id,
        current.as_str(),
        next.as_str(),
        &p.user_id,
        reason,
        now,
    )
    .await?
    {
        tx.rollback().await?;
        return Err(DomainError::Conflict("the application was decided meanwhile".into()).into());
    }
    // The reason is the admin's free text to the seller: not copied into the log.
    audit::record(
        &mut tx,
        audit::Entry::new(now, &p.user_id, audit::action::SHOP_DECISION, shop_id)
            .with("from", current.as_str())
            .with("to", next.as_str()),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(shop_id, admin = %p.user_id, decision = next.as_str(), "seller application decided");
    store::by_id(&state.db.read, &state.vault, shop_id)
        .await?
        .ok_or_else(|| DomainError::NotFound.into())
}

/// The caller's shop, whatever its status (callers check what the status allows), when
/// their place in it grants `needed` on `area`.
pub async fn selling_shop(
    state: &AppState,
    p: &Principal,
    area: Area,
    needed: Access,
) -> AppResult<ShopRow> {
    let shop_id = p.shop(area, needed)?;
    let shop = store::by_id(&state.db.read, &state.vault, shop_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok(shop)
}

/// Shows only the last four characters of an identifier (tax ids, account numbers).
pub fn mask_last4(s: &str) -> String {
    let n = s.chars().count();
    let tail: String = s.chars().skip(n.saturating_sub(4)).collect();
    format!("••••{tail}")
}
