//! Seller center home (apply, status) and the admin review queue.

use super::service::{self, mask_last4};
use super::store::ShopRow;
use crate::platform::clock::human;
use crate::platform::http::AppError;
use crate::platform::http::auth::PagePrincipal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, PageCtx, PageResult, render, render_with_status, see_other,
};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use clipcart_domain::onboarding::{AddressInput, ApplicationInput};
use clipcart_domain::page::PageRequest;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/seller", get(seller_home))
        .route("/seller/apply", post(apply))
        .route("/admin", get(admin_queue))
        .route("/admin/shops/{id}/approve", post(approve))
        .route("/admin/shops/{id}/reject", post(reject))
}

#[derive(Deserialize, Default)]
struct ApplyForm {
    #[serde(default)]
    business_name: String,
    #[serde(default)]
    seller_type: String,
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
    #[serde(default)]
    tax_id: String,
    #[serde(default)]
    currency: String,
}

#[derive(Template)]
#[template(path = "onboarding/seller_home.html")]
struct SellerHome {
    ctx: PageCtx,
    shop: Option<ShopRow>,
    masked_tax_id: String,
    form: ApplyForm,
    errors: FormErrors,
}

async fn seller_home(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
) -> PageResult {
    let shop = service::my_shop(&state, &p).await?;
    let masked_tax_id = shop
        .as_ref()
        .map(|s| mask_last4(&s.tax_id))
        .unwrap_or_default();
    let form = ApplyForm {
        seller_type: "company".into(),
        currency: "EUR".into(),
        ..Default::default()
    };
    Ok(render(&SellerHome {
        ctx: PageCtx::new("Seller center", Some(&p), &csrf),
        shop,
        masked_tax_id,
        form,
        errors: FormErrors::default(),
    }))
}

async fn apply(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<ApplyForm>,
) -> PageResult {
    let input = ApplicationInput {
        business_name: f.business_name.clone(),
        seller_type: f.seller_type.clone(),
        address: AddressInput {
            line1: f.line1.clone(),
            line2: f.line2.clone(),
            city: f.city.clone(),
            postal_code: f.postal_code.clone(),
            country: f.country.clone(),
        },
        tax_id: f.tax_id.clone(),
        currency: f.currency.clone(),
    };
    match service::apply(&state, &p, &input).await {
        Ok(_) => Ok(see_other("/seller")),
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            let page = SellerHome {
                ctx: PageCtx::new("Seller center", Some(&p), &csrf),
                shop: None,
                masked_tax_id: String::new(),
                form: f,
                errors,
            };
            Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

struct QueueRow {
    id: String,
    name: String,
    seller_type: String,
    tax_id: String,
    country: String,
    applied: String,
}

#[derive(Template)]
#[template(path = "onboarding/admin_queue.html")]
struct AdminQueue {
    ctx: PageCtx,
    shops: Vec<QueueRow>,
    next_cursor: Option<String>,
    errors: FormErrors,
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

async fn admin_queue(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<CursorQuery>,
) -> PageResult {
    queue_page(
        &state,
        &p,
        &csrf,
        q.cursor.as_deref(),
        FormErrors::default(),
    )
    .await
}

async fn queue_page(
    state: &AppState,
    p: &crate::platform::http::auth::Principal,
    csrf: &CsrfToken,
    cursor: Option<&str>,
    errors: FormErrors,
) -> PageResult {
    let page = PageRequest::parse(cursor, None)?;
    let result = service::list_applications(state, p, "submitted", &page).await?;
    let shops = result
        .items
        .into_iter()
        .map(|s| {
            let country = serde_json::from_str::<AddressInput>(&s.address_json)
                .map(|a| a.country)
                .unwrap_or_default();
            QueueRow {
                id: s.id,
                name: s.name,
                seller_type: s.seller_type,
                tax_id: s.tax_id,
                country,
                applied: human(s.created_at),
            }
        })
        .collect();
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &AdminQueue {
            ctx: PageCtx::new("Admin console", Some(p), csrf),
            shops,
            next_cursor: result.next_cursor,
            errors,
        },
    ))
}

/// Decisions need a fresh passkey or code: confirm, then back to the queue.
const CONFIRM_FIRST: &str = "/account/confirm?next=/admin";

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    reason: String,
}

async fn approve(
    State(state): State<AppState>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(_f): CsrfForm<DecisionForm>,
) -> PageResult {
    match service::decide(&state, &p, &client, &id, true, "").await {
        Ok(_) => Ok(see_other("/admin")),
        Err(AppError::StepUpRequired) => Ok(see_other(CONFIRM_FIRST)),
        Err(e) => Err(e.into()),
    }
}

async fn reject(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<DecisionForm>,
) -> PageResult {
    match service::decide(&state, &p, &client, &id, false, &f.reason).await {
        Ok(_) => Ok(see_other("/admin")),
        Err(AppError::StepUpRequired) => Ok(see_other(CONFIRM_FIRST)),
        Err(e) => {
            let mut errors = FormErrors::from_error(&e).ok_or(e)?;
            if errors.general.is_none() {
                errors.general = errors.get("reason").map(|m| format!("Reason: {m}"));
            }
            queue_page(&state, &p, &csrf, None, errors).await
        }
    }
}
