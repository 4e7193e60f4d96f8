//! JSON API for email: verification, password reset, changing the address, and the
//! anti-phishing code. Sign-up itself is `POST /auth/signup` in `api.rs`.

use super::email::{self, PasswordReset};
use super::step_up::StepUpProof;
use crate::platform::clock::rfc3339;
use crate::platform::http::AppResult;
use crate::platform::http::auth::ApiPrincipal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::ApiJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(email_status, change_email))
        .routes(routes!(confirm_email_change))
        .routes(routes!(set_anti_phishing_code))
        .routes(routes!(request_password_reset))
        .routes(routes!(complete_password_reset))
        .routes(routes!(start_reset_passkey))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The `token` parameter of the link in the mail.
    #[schema(value_type = String, format = Password)]
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct EmailVerified {
    pub email: String,
    pub verified: bool,
}

/// Uses the link from the verification mail: the account's address counts as verified from now
/// on. Each link works once, for 24 hours, and only the newest one sent works.
#[utoipa::path(post, path = "/auth/verify-email", tag = "identity", request_body = TokenBody,
    responses((status = 200, body = EmailVerified), (status = 422, body = Problem)))]
async fn verify_email(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenBody>,
) -> AppResult<Json<EmailVerified>> {
    let email = email::verify_email(&state, &req.token).await?;
    Ok(Json(EmailVerified {
        email,
        verified: true,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct MailSent {
    /// `sent`: the mail is on its way.
    pub status: String,
    pub detail: String,
}

/// Mails a new verification link to the account's address (the previous link stops working).
/// 409 when the address is already verified; 429 when the last link is less than a minute old.
#[utoipa::path(post, path = "/me/verification-email", tag = "identity",
    responses((status = 202, body = MailSent), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("bearer" = [])))]
async fn resend_verification(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<(StatusCode, Json<MailSent>)> {
    email::resend_verification(&state, &p).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MailSent {
            status: "sent".into(),
            detail: format!("a new verification link was sent to {}", p.email),
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct EmailStatus {
    pub email: String,
    pub verified: bool,
    /// When the address was verified; absent while it is not.
    pub verified_at: Option<String>,
    /// The code every genuine Clipcart mail to this account shows; absent until chosen.
    pub anti_phishing_code: Option<String>,
    /// The new address a change waits to be confirmed for, if any.
    pub pending_email: Option<String>,
}

/// The account's email address: whether it is verified, the anti-phishing code, and a pending
/// change.
#[utoipa::path(get, path = "/me/email", tag = "identity",
    responses((status = 200, body = EmailStatus), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn email_status(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<Json<EmailStatus>> {
    let s = email::status(&state, &p).await?;
    Ok(Json(EmailStatus {
        email: s.email,
        verified: s.verified_at.is_some(),
        verified_at: s.verified_at.map(rfc3339),
        anti_phishing_code: (!s.anti_phishing_code.is_empty()).then_some(s.anti_phishing_code),
        pending_email: s.pending_email,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    pub new_email: String,
    /// Step-up, with two-factor authentication on: a current code or an unused recovery code.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// Step-up, without two-factor authentication: the password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct EmailChangeRequested {
    /// `confirmation_sent`.
    pub status: String,
    pub new_email: String,
    pub detail: String,
}

/// Asks to change the account's address. Needs step-up (`step-up-required` without a recent
/// one: send `otp`, or without two-factor authentication `current_password`). A link valid 24
/// hours goes to the new address, and a notice to the current one; the address changes only
/// once the link is used. The answer is the same when the new address already has an account
/// (its owner is told nothing about this one).
#[utoipa::path(post, path = "/me/email", tag = "identity", request_body = ChangeEmailRequest,
    responses((status = 202, body = EmailChangeRequested), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn change_email(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> AppResult<(StatusCode, Json<EmailChangeRequested>)> {
    let proof = StepUpProof::new(req.otp, req.current_password);
    let new_email = email::request_email_change(&state, &p, &req.new_email, proof, &client).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EmailChangeRequested {
            status: "confirmation_sent".into(),
            detail: format!(
                "open the link sent to {new_email} to confirm the change; until then the account keeps its address"
            ),
            new_email,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct EmailChanged {
    /// The account's address from now on (verified).
    pub email: String,
}

/// Uses the link from the confirmation mail of an email change: the account moves to the new
/// address, and the old address is told. 409 when another account took the address meanwhile.
#[utoipa::path(post, path = "/auth/email-change/confirm", tag = "identity", request_body = TokenBody,
    responses((status = 200, body = EmailChanged), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn confirm_email_change(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<TokenBody>,
) -> AppResult<Json<EmailChanged>> {
    let email = email::confirm_email_change(&state, &req.token, &client).await?;
    Ok(Json(EmailChanged { email }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AntiPhishingCodeRequest {
    /// 4 to 32 visible characters (trimmed).
    pub anti_phishing_code: String,
    /// Step-up, with two-factor authentication on.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// Step-up, without two-factor authentication.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct AntiPhishingCode {
    pub anti_phishing_code: String,
}

/// Sets the anti-phishing code: every genuine Clipcart mail to the account shows it at the top,
/// so a mail without it is not from Clipcart. Needs step-up; a confirmation mail (showing the
/// new code) goes out.
#[utoipa::path(put, path = "/me/anti-phishing-code", tag = "identity", request_body = AntiPhishingCodeRequest,
    responses((status = 200, body = AntiPhishingCode), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn set_anti_phishing_code(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<AntiPhishingCodeRequest>,
) -> AppResult<Json<AntiPhishingCode>> {
    let proof = StepUpProof::new(req.otp, req.current_password);
    let code =
        email::set_anti_phishing_code(&state, &p, &req.anti_phishing_code, proof, &client).await?;
    Ok(Json(AntiPhishingCode {
        anti_phishing_code: code,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordResetAccepted {
    /// Always `accepted`.
    pub status: String,
    pub detail: String,
}

pub(super) const RESET_ACCEPTED: &str = "if an account uses this address, a link to choose a new password is on its way; it works once, for one hour";

/// Asks for a password-reset link. Always 202 with the same body, at once, whether or not the
/// address has an account. An account gets at most one link a minute; a new link retires the
/// previous one.
#[utoipa::path(post, path = "/auth/password-reset", tag = "identity", request_body = PasswordResetRequest,
    responses((status = 202, body = PasswordResetAccepted)))]
async fn request_password_reset(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> (StatusCode, Json<PasswordResetAccepted>) {
    email::request_password_reset(&state, &req.email, &client);
    (
        StatusCode::ACCEPTED,
        Json(PasswordResetAccepted {
            status: "accepted".into(),
            detail: RESET_ACCEPTED.into(),
        }),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletePasswordResetRequest {
    /// The `token` parameter of the link in the reset mail.
    #[schema(value_type = String, format = Password)]
    pub token: String,
    /// 15 to 256 characters, or at least 8 with a second factor (an authenticator app or a
    /// passkey); refused when common, breached or made from the email or name.
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
    /// For an account with an authenticator app: a current code or an unused recovery code.
    /// A reset never skips the second factor.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// For an account with a passkey (instead of `otp`): an assertion answering
    /// `POST /auth/password-reset/passkey/challenges` for this same `token`.
    #[serde(default)]
    pub passkey: Option<super::passkey_api::PasskeyAssertion>,
}

/// Chooses a new password with the link from the reset mail. An account with a second factor
/// also proves it: `otp` (authenticator app) or `passkey` (an assertion answering
/// `POST /auth/password-reset/passkey/challenges` for this link) — 401
/// `second-factor-required` without either; a wrong one is 422 (field `otp` or `credential`)
/// and counts as a failed sign-in. The link stays usable until a reset succeeds. Every session
/// and API token of the account ends, and a "password changed" mail goes out. Sign in with the
/// new password afterwards.
#[utoipa::path(post, path = "/auth/password-reset/complete", tag = "identity", request_body = CompletePasswordResetRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds to wait")))))]
async fn complete_password_reset(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<CompletePasswordResetRequest>,
) -> AppResult<StatusCode> {
    email::complete_password_reset(
        &state,
        PasswordReset {
            token: req.token,
            new_password: req.new_password,
            otp: req.otp,
            passkey: req.passkey.map(Into::into),
        },
        &client,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts the passkey check of a password reset, for an account whose second factor is a
/// passkey: pass `public_key` to `navigator.credentials.get()`, then send the result as
/// `passkey` with `POST /auth/password-reset/complete` and the same `token`. The challenge is
/// bound to this link, single use and valid five minutes; a newer one replaces it. 422 (field
/// `token`) for a link that is used, replaced or expired; 409 when the account has no passkey.
#[utoipa::path(post, path = "/auth/password-reset/passkey/challenges", tag = "identity", request_body = TokenBody,
    responses((status = 201, body = super::passkey_api::PasskeyChallenge), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn start_reset_passkey(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenBody>,
) -> AppResult<(StatusCode, Json<super::passkey_api::PasskeyChallenge>)> {
    let c = email::start_reset_passkey(&state, &req.token).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}
