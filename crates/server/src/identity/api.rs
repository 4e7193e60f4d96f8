//! JSON API for accounts and API tokens.

use super::service::{self, SignUp};
use crate::platform::clock::rfc3339;
use crate::platform::http::auth::{ApiPrincipal, bearer};
use crate::platform::http::error::Problem;
use crate::platform::http::extract::ApiJson;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clipcart_domain::DomainError;
use clipcart_domain::identity::Role;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(create_token))
        .routes(routes!(revoke_current_token))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    pub email: String,
    /// At least 15 characters; no composition rules.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    pub display_name: String,
    /// `buyer` or `seller`.
    pub account_type: String,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// `admin`, `seller` or `buyer`.
    pub role: String,
    pub shop_id: Option<String>,
}

/// Creates a buyer or seller account.
#[utoipa::path(post, path = "/auth/signup", tag = "identity", request_body = SignUpRequest,
    responses((status = 201, body = User), (status = 422, body = Problem)))]
async fn sign_up(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignUpRequest>,
) -> AppResult<(StatusCode, Json<User>)> {
    let role = Role::parse(&req.account_type)?;
    if role == Role::Admin {
        return Err(DomainError::invalid("account_type", "choose either buyer or seller").into());
    }
    let u = service::sign_up(
        &state,
        SignUp {
            email: req.email,
            password: req.password,
            display_name: req.display_name,
            role,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(User {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: role.as_str().into(),
            shop_id: None,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once; Clipcart keeps only a digest.
    pub token: String,
    pub expires_at: String,
    pub user_id: String,
}

/// Exchanges an email and password for an API bearer token.
#[utoipa::path(post, path = "/auth/tokens", tag = "identity", request_body = TokenRequest,
    responses((status = 201, body = TokenResponse), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn create_token(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> AppResult<(StatusCode, Json<TokenResponse>)> {
    let user = service::check_password(&state, &req.email, req.password).await?;
    let issued = service::issue_token(&state, &user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token: issued.token,
            expires_at: rfc3339(issued.expires_at),
            user_id: user.id,
        }),
    ))
}

/// Revokes the token this request is made with.
#[utoipa::path(delete, path = "/auth/tokens/current", tag = "identity",
    responses((status = 204), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn revoke_current_token(
    State(state): State<AppState>,
    _p: ApiPrincipal,
    headers: HeaderMap,
) -> AppResult<StatusCode> {
    let token = bearer(&headers).ok_or(AppError::Domain(DomainError::Unauthenticated))?;
    service::revoke_token(&state, token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/me", tag = "identity",
    responses((status = 200, body = User), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn me(ApiPrincipal(p): ApiPrincipal) -> Json<User> {
    Json(User {
        id: p.user_id,
        email: p.email,
        display_name: p.display_name,
        role: p.role.as_str().into(),
        shop_id: p.shop_id,
    })
}
