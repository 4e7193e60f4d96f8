//! Passkeys on the pages: "Sign in with a passkey" on the sign-in page, "Use a passkey" as the
//! second step after the password, the Passkeys section of the account security page (add,
//! rename, remove, confirm it is you with a passkey), "Confirm with a passkey" on the confirm
//! page (`/account/confirm`, back to its `next`), and the passkey of a password reset.
//!
//! WebAuthn runs in the browser (`static/passkey.js`, no inline script: the CSP forbids it):
//! the script fetches the options from a `…/options` form post (CSRF token included) that
//! answers JSON, calls `navigator.credentials.create()` / `.get()`, and submits an ordinary
//! form with the ceremony id and the credential as JSON, so the answer, the session cookie and
//! the redirect work as for any form. Without JavaScript or WebAuthn the buttons stay hidden.

use super::pages::{Outcome, render_security};
use super::passkey::{self, Assertion, Challenge};
use super::service;
use super::step_up::{self, StepUpProof};
use crate::platform::clock::human;
use crate::platform::http::auth::{PagePrincipal, Principal, cookie};
use crate::platform::http::client::ClientInfo;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{FormErrors, NoFields, PageResult, local_path, see_other};
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use clipcart_domain::DomainError;
use clipcart_domain::identity::Role;
use secrecy::SecretString;
use serde::Deserialize;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin/passkey/options", post(sign_in_options))
        .route("/signin/passkey", post(sign_in))
        .route(
            "/signin/passkey/second-factor/options",
            post(second_factor_options),
        )
        .route("/signin/passkey/second-factor", post(second_factor))
        .route(
            "/account/security/passkeys/options",
            post(registration_options),
        )
        .route("/account/security/passkeys", post(register))
        .route("/account/security/passkeys/{id}/rename", post(rename))
        .route("/account/security/passkeys/{id}/remove", post(remove))
        .route(
            "/account/security/step-up/passkey/options",
            post(step_up_options),
        )
        .route("/account/security/step-up/passkey", post(step_up))
        .route("/reset-password/passkey/options", post(reset_options))
}

/// What the second step of a page sign-in offers.
pub struct Choices {
    /// A code from the authenticator app (or a recovery code).
    pub code: bool,
    pub passkey: bool,
}

pub async fn choices(state: &AppState, user_id: &str) -> AppResult<Choices> {
    let code = super::second_factor::is_active(state, user_id).await?;
    let passkey = passkey::has_passkey(state, user_id).await?;
    // Never an empty page: without either, the code form is the way back to the start.
    Ok(Choices {
        code: code || !passkey,
        passkey,
    })
}

/// `choices` for the user of a pending sign-in (both offered when it is unknown: the form
/// then tells them to start again).
pub async fn pending_choices(state: &AppState, pending_id: &str) -> AppResult<Choices> {
    let user = super::second_factor_store::pending_user(
        &state.db.write,
        &service::digest(pending_id),
        state.now_ms(),
    )
    .await?;
    match user {
        Some(u) => choices(state, &u).await,
        None => Ok(Choices {
            code: true,
            passkey: false,
        }),
    }
}

// ---- answering the script with JSON ----

/// What the script reads: `{ceremony_id, public_key}`, or `{error}` with the status.
fn options_json(result: AppResult<Challenge>) -> Response {
    match result {
        Ok(c) => Json(serde_json::json!({
            "ceremony_id": c.ceremony_id,
            "public_key": c.public_key,
        }))
        .into_response(),
        Err(e) => {
            if let AppError::Internal(inner) = &e {
                tracing::error!(error = ?inner, "internal error answering passkey options");
            }
            let mut res = (
                e.status(),
                Json(serde_json::json!({ "error": message_of(&e) })),
            )
                .into_response();
            if let AppError::TooManyRequests { retry_after_secs } = e
                && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
            {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
    }
}

/// A sentence for the person: the first field error, else the problem's detail.
fn message_of(e: &AppError) -> String {
    match e.field_errors().first() {
        Some(f) => f.message.clone(),
        None => e.detail(),
    }
}

/// An assertion from the form fields (the credential as the JSON the script made).
pub(super) fn assertion(ceremony: &str, credential: &str) -> Option<Assertion> {
    let credential: PublicKeyCredential = serde_json::from_str(credential).ok()?;
    Some(Assertion {
        ceremony_id: ceremony.to_string(),
        credential: Box::new(credential),
    })
}

fn not_accepted() -> AppError {
    DomainError::invalid(
        "credential",
        "the passkey was not accepted: the request expired or was already used, or this passkey is not registered here; start again",
    )
    .into()
}

fn with_retry_after(mut res: Response, secs: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

// ---- signing in ----

async fn sign_in_options(
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    options_json(passkey::start_sign_in(&state).await)
}

#[derive(Deserialize)]
struct AssertionForm {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    pending: String,
}

/// Passwordless sign-in: a session with a proved second factor.
async fn sign_in(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<AssertionForm>,
) -> PageResult {
    let result = match assertion(&f.ceremony, &f.credential) {
        Some(a) => passkey::finish_sign_in(&state, a, &client).await,
        None => Err(not_accepted()),
    };
    match result {
        Ok(user) => {
            let previous = cookie(&headers, state.session_cookie);
            let res = super::pages::signed_in(&state, &user, &client, previous, &f.next).await?;
            Ok(super::alerts::page_signed_in(&state, &user.id, &client, &headers, res).await?)
        }
        Err(AppError::TooManyRequests { retry_after_secs }) => Ok(with_retry_after(
            super::pages::sign_in_page_with(
                &csrf,
                f.next,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many passkey sign-ins are in progress. Try again in a minute.".into(),
            ),
            retry_after_secs,
        )),
        Err(e) => {
            if !e.status().is_client_error() {
                return Err(e.into());
            }
            Ok(super::pages::sign_in_page_with(
                &csrf,
                f.next,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Passkey sign-in failed: {}.", message_of(&e)),
            ))
        }
    }
}

#[derive(Deserialize)]
struct PendingForm {
    #[serde(default)]
    pending: String,
}

async fn second_factor_options(
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<PendingForm>,
) -> Response {
    let result = match passkey::start_second_factor(&state, &f.pending).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(DomainError::invalid(
            "pending",
            "that sign-in took too long or was already finished; please sign in again",
        )
        .into()),
        Err(e) => Err(e),
    };
    options_json(result)
}

/// The second step with a passkey, inside the same throttled attempt as a code.
async fn second_factor(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<AssertionForm>,
) -> PageResult {
    let Some(a) = assertion(&f.ceremony, &f.credential) else {
        return super::pages::code_page_with(
            &state,
            &csrf,
            f.pending,
            f.next,
            StatusCode::UNPROCESSABLE_ENTITY,
            "That passkey was not accepted. Try again.".into(),
        )
        .await;
    };
    match service::check_pending_passkey(&state, &f.pending, a, &client).await {
        Ok(Some(user)) => {
            let previous = cookie(&headers, state.session_cookie);
            let res = super::pages::signed_in(&state, &user, &client, previous, &f.next).await?;
            Ok(super::alerts::page_signed_in(&state, &user.id, &client, &headers, res).await?)
        }
        Ok(None) => Ok(super::pages::sign_in_page_with(
            &csrf,
            f.next,
            StatusCode::UNPROCESSABLE_ENTITY,
            "That sign-in took too long or was already finished. Please sign in again.".into(),
        )),
        Err(AppError::TooManyRequests { retry_after_secs }) => Ok(with_retry_after(
            super::pages::code_page_with(
                &state,
                &csrf,
                f.pending,
                f.next,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts for this account or from your network. Try again later.".into(),
            )
            .await?,
            retry_after_secs,
        )),
        Err(e) if e.status().is_client_error() => {
            super::pages::code_page_with(
                &state,
                &csrf,
                f.pending,
                f.next,
                StatusCode::UNPROCESSABLE_ENTITY,
                "That passkey was not accepted. Try again.".into(),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

// ---- the security page ----

pub struct PasskeyItem {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
    pub synced: bool,
}

/// The Passkeys section of the security page (`security_passkeys.html`).
pub struct PasskeySection {
    pub items: Vec<PasskeyItem>,
    /// What went wrong with the last passkey form, if anything.
    pub error: Option<String>,
    /// A platform admin without a passkey: the admin console waits for one.
    pub admin_must_register: bool,
    /// Step-up: which proof a change needs now (none while the window is open).
    pub ask_password: bool,
    pub ask_otp: bool,
    /// The account can (and, with only passkeys, must) step up with a passkey.
    pub offer_passkey_step_up: bool,
    /// A platform admin's last passkey cannot be removed.
    pub removable: bool,
    pub max_reached: bool,
}

impl PasskeySection {
    pub fn has_errors(&self) -> bool {
        self.error.is_some()
    }
}

pub async fn section(
    state: &AppState,
    p: &Principal,
    error: Option<String>,
) -> AppResult<PasskeySection> {
    let views = passkey::list(state, p).await?;
    let totp = super::second_factor::is_active(state, &p.user_id).await?;
    let fresh = step_up::is_fresh(state, p);
    let has = !views.is_empty();
    let count = views.len() as i64;
    Ok(PasskeySection {
        admin_must_register: p.role == Role::Admin && !has,
        ask_password: !fresh && !totp && !has,
        ask_otp: !fresh && totp,
        offer_passkey_step_up: !fresh && has,
        removable: !(p.role == Role::Admin && count <= 1),
        max_reached: count >= passkey::MAX_PASSKEYS,
        error,
        items: views
            .into_iter()
            .map(|v| PasskeyItem {
                created: human(v.created_at),
                last_used: if v.last_used_at > 0 {
                    human(v.last_used_at)
                } else {
                    "never".into()
                },
                id: v.id,
                name: v.name,
                synced: v.synced,
            })
            .collect(),
    })
}

/// The security page with a passkey error in its section (422), or back to the section.
async fn after_action(
    state: &AppState,
    csrf: &CsrfToken,
    headers: &HeaderMap,
    p: &Principal,
    result: AppResult<()>,
) -> PageResult {
    match result {
        Ok(()) => Ok(see_other("/account/security#passkeys")),
        Err(AppError::TooManyRequests { retry_after_secs }) => {
            let res = render_security(
                state,
                csrf,
                headers,
                p,
                None,
                Outcome::passkey_error(
                    "Too many attempts for this account or from your network. Try again later."
                        .into(),
                ),
            )
            .await?;
            let mut res = with_retry_after(res, retry_after_secs);
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            Ok(res)
        }
        Err(AppError::StepUpRequired) => {
            render_security(
                state,
                csrf,
                headers,
                p,
                None,
                Outcome::passkey_error(
                    "Confirm it is you first: enter your password or a code, or use a passkey."
                        .into(),
                ),
            )
            .await
        }
        Err(e) if e.status().is_client_error() && !matches!(e, AppError::CsrfRejected) => {
            render_security(
                state,
                csrf,
                headers,
                p,
                None,
                Outcome::passkey_error(message_of(&e)),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ProofForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    otp: String,
}

fn proof(f: &ProofForm) -> StepUpProof {
    StepUpProof::new(
        Some(SecretString::from(f.otp.clone())),
        Some(SecretString::from(f.current_password.clone())),
    )
}

async fn registration_options(
    State(state): State<AppState>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<ProofForm>,
) -> Response {
    options_json(passkey::start_registration(&state, &p, proof(&f), &client).await)
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
}

async fn register(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<RegisterForm>,
) -> PageResult {
    let result = match serde_json::from_str::<RegisterPublicKeyCredential>(&f.credential) {
        Ok(credential) => passkey::finish_registration(
            &state,
            &p,
            &f.ceremony,
            Some(&f.name),
            &credential,
            &client,
        )
        .await
        .map(|_| ()),
        Err(_) => Err(DomainError::invalid(
            "credential",
            "the browser's answer could not be read; try again",
        )
        .into()),
    };
    after_action(&state, &csrf, &headers, &p, result).await
}

#[derive(Deserialize)]
struct RenameForm {
    #[serde(default)]
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<RenameForm>,
) -> PageResult {
    let result = passkey::rename(&state, &p, &id, &f.name).await;
    after_action(&state, &csrf, &headers, &p, result).await
}

async fn remove(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<ProofForm>,
) -> PageResult {
    let result = passkey::delete(&state, &p, &id, proof(&f), &client).await;
    after_action(&state, &csrf, &headers, &p, result).await
}

async fn step_up_options(
    State(state): State<AppState>,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    options_json(passkey::start_step_up(&state, &p).await)
}

/// A passkey step-up: from the security page's Passkeys section (back there), or from the
/// confirm page, whose form carries `next` (back to that local path; a refusal shows the
/// confirm page again). Like any step-up on a page, a success gives the session a new id.
async fn step_up(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<AssertionForm>,
) -> PageResult {
    let result = match assertion(&f.ceremony, &f.credential) {
        Some(a) => passkey::finish_step_up(&state, &p, a).await,
        None => Err(not_accepted()),
    };
    if f.next.is_empty() {
        let stepped_up = result.is_ok();
        let res = after_action(&state, &csrf, &headers, &p, result).await?;
        if !stepped_up {
            return Ok(res);
        }
        return Ok(super::pages::with_rotated_session(&state, &headers, res).await?);
    }
    let next = local_path(Some(&f.next));
    match result {
        Ok(()) => Ok(super::pages::with_rotated_session(&state, &headers, see_other(&next)).await?),
        Err(e) if e.status().is_client_error() && !matches!(e, AppError::CsrfRejected) => {
            let message = match &e {
                AppError::Domain(DomainError::Invalid(_)) => {
                    "That passkey was not accepted. Try again.".to_string()
                }
                e => message_of(e),
            };
            let errors = FormErrors {
                fields: vec![],
                general: Some(message),
            };
            super::staff_pages::render_confirm(&state, &csrf, &p, next, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ResetOptionsForm {
    #[serde(default)]
    token: String,
}

/// The options for the passkey of a password reset (`/reset-password`): for the account of
/// the link in the form, bound to that link.
async fn reset_options(
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<ResetOptionsForm>,
) -> Response {
    options_json(super::email::start_reset_passkey(&state, &f.token).await)
}
