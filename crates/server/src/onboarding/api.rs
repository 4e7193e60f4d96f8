//! JSON API: seller application (sellers), application review (admins).

use super::service::{self, mask_last4};
use super::store::ShopRow;
use crate::platform::clock::rfc3339;
use crate::platform::http::AppResult;
use crate::platform::http::auth::ApiPrincipal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clipcart_domain::DomainError;
use clipcart_domain::identity::Role;
use clipcart_domain::onboarding::{AddressInput, ApplicationInput};
use clipcart_domain::page::PageRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apply))
        .routes(routes!(my_shop))
        .routes(routes!(list_shops))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    pub business_name: String,
    /// `individual`, `sole_proprietor` or `company`.
    pub seller_type: String,
    pub address: Address,
    pub tax_id: String,
    /// The currency the shop sells in (ISO 4217).
    pub currency: String,
}

#[derive(Serialize, ToSchema)]
pub struct Shop {
    pub id: String,
    pub name: String,
    pub seller_type: String,
    /// `submitted`, `active`, `rejected`, `suspended` or `closed`.
    pub status: String,
    pub currency: String,
    /// Masked to the last four characters except for platform admins.
    pub tax_id: String,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
}

impl Shop {
    pub fn from_row(s: ShopRow, viewer: Role) -> Self {
        Shop {
            tax_id: if viewer == Role::Admin {
                s.tax_id
            } else {
                mask_last4(&s.tax_id)
            },
            id: s.id,
            name: s.name,
            seller_type: s.seller_type,
            status: s.status,
            currency: s.currency,
            created_at: rfc3339(s.created_at),
            decided_at: s.decided_at.map(rfc3339),
            decision_reason: s.decision_reason.filter(|r| !r.is_empty()),
        }
    }
}

/// Applies to sell: creates the seller's shop in `submitted` state for review.
#[utoipa::path(post, path = "/seller/application", tag = "onboarding", request_body = ApplicationRequest,
    responses((status = 201, body = Shop), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn apply(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiJson(r): ApiJson<ApplicationRequest>,
) -> AppResult<(StatusCode, Json<Shop>)> {
    let input = ApplicationInput {
        business_name: r.business_name,
        seller_type: r.seller_type,
        address: AddressInput {
            line1: r.address.line1,
            line2: r.address.line2,
            city: r.address.city,
            postal_code: r.address.postal_code,
            country: r.address.country,
        },
        tax_id: r.tax_id,
        currency: r.currency,
    };
    let shop = service::apply(&state, &p, &input).await?;
    Ok((StatusCode::CREATED, Json(Shop::from_row(shop, p.role))))
}

/// The caller's shop and its application status.
#[utoipa::path(get, path = "/seller/shop", tag = "onboarding",
    responses((status = 200, body = Shop), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn my_shop(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<Json<Shop>> {
    let shop = service::my_shop(&state, &p)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok(Json(Shop::from_row(shop, p.role)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ShopListQuery {
    /// Defaults to `submitted`: the review queue.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct ShopList {
    pub items: Vec<Shop>,
    pub next_cursor: Option<String>,
}

/// Lists shops by status, oldest first (admins).
#[utoipa::path(get, path = "/admin/shops", tag = "onboarding", params(ShopListQuery),
    responses((status = 200, body = ShopList), (status = 403, body = Problem)), security(("bearer" = [])))]
async fn list_shops(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiQuery(q): ApiQuery<ShopListQuery>,
) -> AppResult<Json<ShopList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let result = service::list_applications(
        &state,
        &p,
        q.status.as_deref().unwrap_or("submitted"),
        &page,
    )
    .await?;
    Ok(Json(ShopList {
        items: result
            .items
            .into_iter()
            .map(|s| Shop::from_row(s, p.role))
            .collect(),
        next_cursor: result.next_cursor,
    }))
}

/// Approves a submitted application; the shop becomes active. Needs step-up (403
/// `step-up-required`: `POST /me/step-up/passkey` first when the token is older than 5 minutes).
#[utoipa::path(post, path = "/admin/shops/{shop_id}/approve", tag = "onboarding",
    params(("shop_id" = String, Path)),
    responses((status = 200, body = Shop), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn approve(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(shop_id): Path<String>,
) -> AppResult<Json<Shop>> {
    let shop = service::decide(&state, &p, &client, &shop_id, true, "").await?;
    Ok(Json(Shop::from_row(shop, p.role)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Shown to the seller.
    pub reason: String,
}

/// Rejects a submitted application with a reason the seller reads. Needs step-up, as approving.
#[utoipa::path(post, path = "/admin/shops/{shop_id}/reject", tag = "onboarding",
    params(("shop_id" = String, Path)), request_body = RejectRequest,
    responses((status = 200, body = Shop), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn reject(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(shop_id): Path<String>,
    ApiJson(r): ApiJson<RejectRequest>,
) -> AppResult<Json<Shop>> {
    let shop = service::decide(&state, &p, &client, &shop_id, false, &r.reason).await?;
    Ok(Json(Shop::from_row(shop, p.role)))
}
