//! JSON API for passkeys: registering and managing them, passwordless sign-in for API tokens,
//! and step-up with a passkey. The WebAuthn options and credentials travel in the browser's
//! JSON form (`PublicKeyCredential.toJSON()`): binary fields in base64url without padding.

use super::passkey::{self, Assertion, PasskeyView};
use super::service;
use super::step_up::StepUpProof;
use crate::platform::clock::rfc3339;
use crate::platform::http::AppResult;
use crate::platform::http::auth::ApiPrincipal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::ApiJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_registration))
        .routes(routes!(list_passkeys, finish_registration))
        .routes(routes!(rename_passkey, delete_passkey))
        .routes(routes!(start_sign_in))
        .routes(routes!(passkey_token))
        .routes(routes!(start_step_up))
        .routes(routes!(finish_step_up))
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyChallenge {
    /// Send back with the answer. Single use, valid for five minutes.
    pub ceremony_id: String,
    /// The `publicKey` options for `navigator.credentials.create()` (registration) or
    /// `.get()` (sign-in, step-up), binary fields in base64url.
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

impl From<passkey::Challenge> for PasskeyChallenge {
    fn from(c: passkey::Challenge) -> Self {
        PasskeyChallenge {
            ceremony_id: c.ceremony_id,
            public_key: c.public_key,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Passkey {
    pub id: String,
    pub name: String,
    pub created_at: String,
    /// When it last signed in or confirmed something; absent if never.
    pub last_used_at: Option<String>,
    /// Whether the authenticator reports the passkey as backed up (synced between devices).
    pub synced: bool,
}

impl From<PasskeyView> for Passkey {
    fn from(v: PasskeyView) -> Self {
        Passkey {
            id: v.id,
            name: v.name,
            created_at: rfc3339(v.created_at),
            last_used_at: (v.last_used_at > 0).then(|| rfc3339(v.last_used_at)),
            synced: v.synced,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    pub items: Vec<Passkey>,
}

/// Step-up proof for a change to the account's passkeys. Not needed within five minutes of a
/// sign-in or another step-up on this token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpFields {
    /// With a second factor on: a current code from the authenticator app (or a recovery code).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// Without a second factor: the account's password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

impl From<StepUpFields> for StepUpProof {
    fn from(f: StepUpFields) -> Self {
        StepUpProof::new(f.otp, f.current_password)
    }
}

/// Starts registering a passkey for the signed-in account: pass `public_key` to
/// `navigator.credentials.create()`, then send the result to `POST /me/passkeys`. Needs
/// step-up. 409 when the account already has 20 passkeys.
#[utoipa::path(post, path = "/me/passkeys/registrations", tag = "identity", request_body = StepUpFields,
    responses((status = 201, body = PasskeyChallenge), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn start_registration(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<StepUpFields>,
) -> AppResult<(StatusCode, Json<PasskeyChallenge>)> {
    let c = passkey::start_registration(&state, &p, req.into(), &client).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRegistrationRequest {
    pub ceremony_id: String,
    /// A name to tell it apart, e.g. "Work laptop"; 1 to 60 characters. Default: the device
    /// it was added from, from the user agent.
    #[serde(default)]
    pub name: Option<String>,
    /// What `navigator.credentials.create()` returned, as JSON.
    #[schema(value_type = Object)]
    pub credential: Box<RegisterPublicKeyCredential>,
}

/// Finishes registering a passkey. From now on signing in with the password also needs a
/// second factor (this passkey, or a TOTP code when that is on too).
#[utoipa::path(post, path = "/me/passkeys", tag = "identity", request_body = FinishRegistrationRequest,
    responses((status = 201, body = Passkey), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn finish_registration(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<FinishRegistrationRequest>,
) -> AppResult<(StatusCode, Json<Passkey>)> {
    let view = passkey::finish_registration(
        &state,
        &p,
        &req.ceremony_id,
        req.name.as_deref(),
        &req.credential,
        &client,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// The signed-in account's passkeys, oldest first.
#[utoipa::path(get, path = "/me/passkeys", tag = "identity",
    responses((status = 200, body = PasskeyList), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn list_passkeys(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<Json<PasskeyList>> {
    let items = passkey::list(&state, &p).await?;
    Ok(Json(PasskeyList {
        items: items.into_iter().map(Passkey::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// 1 to 60 characters.
    pub name: String,
}

/// Renames one of the account's passkeys. Another account's passkey answers 404.
#[utoipa::path(patch, path = "/me/passkeys/{passkey_id}", tag = "identity", request_body = RenameRequest,
    params(("passkey_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn rename_passkey(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(passkey_id): Path<String>,
    ApiJson(req): ApiJson<RenameRequest>,
) -> AppResult<StatusCode> {
    passkey::rename(&state, &p, &passkey_id, &req.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one of the account's passkeys (it can no longer sign in). Needs step-up. A platform
/// admin cannot remove their last passkey (409). Another account's passkey answers 404.
#[utoipa::path(delete, path = "/me/passkeys/{passkey_id}", tag = "identity", request_body = StepUpFields,
    params(("passkey_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn delete_passkey(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    Path(passkey_id): Path<String>,
    ApiJson(req): ApiJson<StepUpFields>,
) -> AppResult<StatusCode> {
    passkey::delete(&state, &p, &passkey_id, req.into(), &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a passkey sign-in without naming the account: pass `public_key` to
/// `navigator.credentials.get()`, then send the result to `POST /auth/passkey/tokens`, or, as
/// the second factor after a password, as `passkey` to `POST /auth/tokens`.
#[utoipa::path(post, path = "/auth/passkey/challenges", tag = "identity",
    responses((status = 201, body = PasskeyChallenge), (status = 409, body = Problem), (status = 429, body = Problem)))]
async fn start_sign_in(
    State(state): State<AppState>,
) -> AppResult<(StatusCode, Json<PasskeyChallenge>)> {
    let c = passkey::start_sign_in(&state).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// An answer to a passkey challenge.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyAssertion {
    pub ceremony_id: String,
    /// What `navigator.credentials.get()` returned, as JSON.
    #[schema(value_type = Object)]
    pub credential: Box<PublicKeyCredential>,
}

impl From<PasskeyAssertion> for Assertion {
    fn from(a: PasskeyAssertion) -> Self {
        Assertion {
            ceremony_id: a.ceremony_id,
            credential: a.credential,
        }
    }
}

/// Exchanges a passkey assertion for an API bearer token: a sign-in without a password. Any
/// failure (expired or used challenge, unknown passkey, bad signature) answers the same 422.
#[utoipa::path(post, path = "/auth/passkey/tokens", tag = "identity", request_body = PasskeyAssertion,
    responses((status = 201, body = super::api::TokenResponse), (status = 422, body = Problem)))]
async fn passkey_token(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasskeyAssertion>,
) -> AppResult<(StatusCode, Json<super::api::TokenResponse>)> {
    let user = passkey::finish_sign_in(&state, req.into(), &client).await?;
    let issued = service::issue_token(&state, &user.id).await?;
    super::alerts::api_signed_in(&state, &user.id, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(super::api::TokenResponse {
            token: issued.token,
            expires_at: rfc3339(issued.expires_at),
            user_id: user.id,
        }),
    ))
}

/// Starts a step-up with one of the account's passkeys (the only way to step up for an account
/// whose only second factor is a passkey).
#[utoipa::path(post, path = "/me/step-up/passkey/challenges", tag = "identity",
    responses((status = 201, body = PasskeyChallenge), (status = 401, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn start_step_up(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<(StatusCode, Json<PasskeyChallenge>)> {
    let c = passkey::start_step_up(&state, &p).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Finishes a step-up with a passkey: sensitive changes on this token need no other proof for
/// the next five minutes.
#[utoipa::path(post, path = "/me/step-up/passkey", tag = "identity", request_body = PasskeyAssertion,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn finish_step_up(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiJson(req): ApiJson<PasskeyAssertion>,
) -> AppResult<StatusCode> {
    passkey::finish_step_up(&state, &p, req.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}
