//! JSON API for accounts and API tokens.

use super::service::{self, SignUp};
use crate::platform::clock::rfc3339;
use crate::platform::http::auth::{ApiPrincipal, bearer};
use crate::platform::http::client::ClientInfo;
use crate::platform::http::error::Problem;
use crate::platform::http::extract::{ApiJson, ApiQuery};
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use clipcart_domain::DomainError;
use clipcart_domain::identity::{PasswordContext, Role};
use clipcart_domain::page::PageRequest;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(password_check))
        .routes(routes!(create_token))
        .routes(routes!(revoke_current_token))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(step_up))
        .routes(routes!(list_sessions, revoke_all_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(sign_in_history))
        .routes(routes!(unlock_sign_in))
        .routes(routes!(start_totp, disable_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(regenerate_recovery_codes))
        .merge(super::passkey_api::router())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    pub email: String,
    /// 15 to 256 characters; no composition rules. Refused when it is a common or breached
    /// password or made from the email or name; `POST /auth/password-check` explains why.
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

#[derive(Serialize, ToSchema)]
pub struct SignUpAccepted {
    /// Always `verification_sent`.
    pub status: String,
    /// The address, as Clipcart writes it (trimmed, lower case).
    pub email: String,
    pub detail: String,
}

/// Creates a buyer or seller account and mails a link to verify its address (valid 24 hours).
/// The answer is the same whether or not the address already has an account — then its owner
/// gets a mail instead, and nothing is created — so it cannot be used to find out who has an
/// account. The account can sign in at once; applying to sell and checking out wait for the
/// verified address (`email-not-verified`). Invalid input still answers 422.
#[utoipa::path(post, path = "/auth/signup", tag = "identity", request_body = SignUpRequest,
    responses((status = 202, body = SignUpAccepted), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn sign_up(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignUpRequest>,
) -> AppResult<(StatusCode, Json<SignUpAccepted>)> {
    let role = Role::parse(&req.account_type)?;
    if role == Role::Admin {
        return Err(DomainError::invalid("account_type", "choose either buyer or seller").into());
    }
    let email = clipcart_domain::identity::Email::parse(&req.email)
        .map(|e| e.as_str().to_string())
        .unwrap_or_default();
    super::email::sign_up(
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
        StatusCode::ACCEPTED,
        Json(SignUpAccepted {
            status: "verification_sent".into(),
            detail: format!(
                "We sent a mail to {email}: open the link in it to verify the address. You can sign in now; applying to sell and checking out need the verified address."
            ),
            email,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordCheckRequest {
    /// The password being chosen. It is checked and forgotten: never stored or logged.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// The email it is for; parts of it must not make up the password.
    #[serde(default)]
    pub email: Option<String>,
    /// The name it is for; it must not make up the password either.
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordCheckResponse {
    /// Whether sign-up would accept this password (for an account without a second factor).
    pub accepted: bool,
    /// zxcvbn's strength estimate on the first 100 characters: 0 (guessable) to 4 (very hard).
    pub score: u8,
    /// zxcvbn's warning, when it has one (only for scores up to 2). Advice, not a refusal.
    pub warnings: Vec<String>,
    /// zxcvbn's suggestions for a stronger password. Advice, not a refusal.
    pub suggestions: Vec<String>,
    /// Why sign-up would refuse this password, most pressing first; empty when accepted. The
    /// first one is the field error sign-up answers with.
    pub refusals: Vec<String>,
}

/// Checks a password against the password policy and estimates its strength, without creating
/// anything: the same rules sign-up applies (length, the list of common and breached passwords,
/// words from the email and name) plus zxcvbn's feedback.
#[utoipa::path(post, path = "/auth/password-check", tag = "identity", request_body = PasswordCheckRequest,
    responses((status = 200, body = PasswordCheckResponse), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn password_check(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PasswordCheckRequest>,
) -> AppResult<Json<PasswordCheckResponse>> {
    let mut context = PasswordContext::new();
    if let Some(email) = &req.email {
        context = context.email(email);
    }
    if let Some(name) = &req.display_name {
        context = context.name(name);
    }
    let assessment = service::assess_new_password(&state, req.password, context).await?;
    Ok(Json(PasswordCheckResponse {
        accepted: assessment.accepted(),
        score: assessment.strength.score,
        refusals: assessment.refusal_messages(),
        warnings: assessment.strength.warning.into_iter().collect(),
        suggestions: assessment.strength.suggestions,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// For accounts with two-factor authentication: a current code from the authenticator
    /// app (6 digits, each usable once) or an unused recovery code.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// Instead of `otp`: a passkey assertion answering `POST /auth/passkey/challenges`.
    #[serde(default)]
    pub passkey: Option<super::passkey_api::PasskeyAssertion>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once; Clipcart keeps only a digest.
    pub token: String,
    pub expires_at: String,
    pub user_id: String,
}

/// Exchanges an email and password for an API bearer token. Throttled per account and per
/// client address: too many failures answer 429 with `Retry-After` (the same for an email
/// without an account), and 100 consecutive failures lock password sign-in until an admin
/// unlocks it. An account with two-factor authentication also needs `otp`: without it the
/// answer is 401 `second-factor-required`; a wrong one answers like a wrong password.
#[utoipa::path(post, path = "/auth/tokens", tag = "identity", request_body = TokenRequest,
    responses((status = 201, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds to wait")))))]
async fn create_token(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<TokenRequest>,
) -> AppResult<(StatusCode, Json<TokenResponse>)> {
    let checked = match req.passkey {
        Some(a) if req.otp.is_none() => {
            service::check_password_with_passkey(
                &state,
                &req.email,
                req.password,
                a.into(),
                &client,
            )
            .await?
        }
        _ => service::check_password(&state, &req.email, req.password, req.otp, &client).await?,
    };
    let (user, second_factor) = match checked {
        service::SignIn::Complete {
            user,
            second_factor,
        } => (user, second_factor),
        service::SignIn::SecondFactorRequired(_) => return Err(AppError::SecondFactorRequired),
    };
    service::audit_sign_in(&state, &user.id, "password", Some(second_factor)).await?;
    let issued = service::issue_token(&state, &user.id).await?;
    super::alerts::api_signed_in(&state, &user.id, &client).await?;
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password in use now. A wrong one counts as a failed sign-in (429 with Retry-After
    /// once throttled).
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    /// The new password: 15 to 256 characters, or at least 8 when two-factor authentication is
    /// on; refused when common, breached or made from the email or name.
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
    /// With two-factor authentication on: a current code from the authenticator app or an
    /// unused recovery code (step-up).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// How many browser sessions of the account were ended (all of them).
    pub ended_sessions: u64,
    /// How many other API tokens of the account were revoked (the one making this request
    /// stays valid).
    pub revoked_tokens: u64,
}

/// Changes the account's password. Needs the current password (a wrong one counts as a failed
/// sign-in) and, when two-factor authentication is on, `otp` as well: without it the answer is
/// 401 `second-factor-required`. Afterwards every browser session of the account ends and every
/// other API token is revoked; the token making this request keeps working.
#[utoipa::path(post, path = "/me/password", tag = "identity", request_body = ChangePasswordRequest,
    responses((status = 200, body = PasswordChanged), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> AppResult<Json<PasswordChanged>> {
    let keep = service::KeepSignedIn {
        session: None,
        token: bearer(&headers),
    };
    let changed = service::change_password(
        &state,
        &p,
        &client,
        service::PasswordChange {
            current_password: req.current_password,
            new_password: req.new_password,
            otp: req.otp,
        },
        keep,
    )
    .await?;
    Ok(Json(PasswordChanged {
        ended_sessions: changed.ended_sessions,
        revoked_tokens: changed.revoked_tokens,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// A current authenticator code or an unused recovery code...
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
    /// ...or, for an account without a second factor, its password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

/// Proves it is you for the next five minutes on this token, before sensitive changes that
/// carry no body (`DELETE`s) or several in a row. Wrong codes and passwords count as failed
/// sign-ins.
#[utoipa::path(post, path = "/me/step-up", tag = "identity", request_body = StepUpRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("bearer" = [])))]
async fn step_up(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<StepUpRequest>,
) -> AppResult<StatusCode> {
    let mut p = p;
    // Always prove anew: this call exists to open the window, not to ask whether it is open.
    p.stepped_up_at = 0;
    super::step_up::require(
        &state,
        &p,
        super::step_up::StepUpProof::new(req.otp, req.current_password),
        &client,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Sessions, sign-in history, sign-in locks ----

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    /// The session's public id (`ses_…`); not the cookie value, which is never shown.
    pub id: String,
    /// A short name of the device from its user agent, e.g. "Firefox on Linux".
    pub device: String,
    pub user_agent: String,
    /// The client address the session was started from; empty when not known.
    pub address: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    /// Whether this request was made with this session (never for bearer-token calls).
    pub current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<Session>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The signed-in account's active browser sessions, newest first.
#[utoipa::path(get, path = "/me/sessions", tag = "identity", params(ListQuery),
    responses((status = 200, body = SessionList), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_sessions(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<SessionList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let listed = service::list_sessions(&state, &p, None, &page).await?;
    Ok(Json(SessionList {
        items: listed
            .items
            .into_iter()
            .map(|s| Session {
                id: s.id,
                device: s.device,
                user_agent: s.user_agent,
                address: s.address,
                created_at: rfc3339(s.created_at),
                last_seen_at: rfc3339(s.last_seen_at),
                expires_at: rfc3339(s.expires_at),
                current: s.current,
            })
            .collect(),
        next_cursor: listed.next_cursor,
    }))
}

/// Ends one of the account's sessions at once (its cookie stops working). Another account's
/// session answers 404.
#[utoipa::path(delete, path = "/me/sessions/{session_id}", tag = "identity",
    params(("session_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn revoke_session(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(session_id): Path<String>,
) -> AppResult<StatusCode> {
    service::revoke_session(&state, &p, &session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every browser session of the account ("sign out everywhere"); API tokens stay valid.
#[utoipa::path(delete, path = "/me/sessions", tag = "identity",
    responses((status = 204), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn revoke_all_sessions(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
) -> AppResult<StatusCode> {
    service::revoke_other_sessions(&state, &p, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SignIn {
    pub id: String,
    pub at: String,
    /// `success`, `wrong_password`, `throttled` (refused: too many attempts) or `locked`
    /// (refused: password sign-in locked).
    pub outcome: String,
    /// The client address of the attempt.
    pub address: String,
    pub device: String,
    pub user_agent: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignInList {
    pub items: Vec<SignIn>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Password sign-in attempts on the signed-in account, newest first.
#[utoipa::path(get, path = "/me/sign-ins", tag = "identity", params(ListQuery),
    responses((status = 200, body = SignInList), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn sign_in_history(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<SignInList>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let listed = service::sign_in_history(&state, &p, &page).await?;
    Ok(Json(SignInList {
        items: listed
            .items
            .into_iter()
            .map(|e| SignIn {
                id: e.id,
                at: rfc3339(e.at),
                outcome: e.outcome.as_str().into(),
                address: e.address,
                device: e.device,
                user_agent: e.user_agent,
            })
            .collect(),
        next_cursor: listed.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// The email whose password sign-in to unlock (whether or not it has an account).
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct UnlockResponse {
    /// Whether password sign-in was locked (100 consecutive failures) before this call.
    pub was_locked: bool,
}

/// Clears the sign-in lock, back-off and failure count of an email. Platform admins only.
#[utoipa::path(post, path = "/admin/sign-in-locks/unlock", tag = "identity", request_body = UnlockRequest,
    responses((status = 200, body = UnlockResponse), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn unlock_sign_in(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<UnlockRequest>,
) -> AppResult<Json<UnlockResponse>> {
    let was_locked = service::unlock_sign_in(&state, &p, &client, &req.email).await?;
    Ok(Json(UnlockResponse { was_locked }))
}

// ---- Two-factor authentication: TOTP and recovery codes ----

#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The seed in base32, for typing into an authenticator app by hand.
    pub secret: String,
    /// The `otpauth://totp/...` URI (what the QR code on the security page holds).
    pub otpauth_uri: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A current 6-digit code from the authenticator app (or, to turn off or regenerate, an
    /// unused recovery code).
    #[schema(value_type = String, format = Password)]
    pub code: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, shown only now: Clipcart keeps only their digests.
    pub recovery_codes: Vec<String>,
}

/// Starts TOTP enrolment: a new seed and its otpauth URI. The factor is not active until
/// confirmed with a code; starting again replaces an unconfirmed seed. 409 when already on.
/// Needs step-up (403 `step-up-required`; `POST /me/step-up` first outside the window).
#[utoipa::path(post, path = "/me/totp", tag = "identity",
    responses((status = 201, body = TotpEnrolment), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn start_totp(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
) -> AppResult<(StatusCode, Json<TotpEnrolment>)> {
    use secrecy::ExposeSecret;
    let e = super::second_factor::start_enrolment(&state, &p, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            secret: e.secret.expose_secret().to_string(),
            otpauth_uri: e.uri.expose_secret().to_string(),
        }),
    ))
}

/// Confirms TOTP enrolment with a current code: two-factor authentication is on from now, and
/// the answer carries the recovery codes (shown once). Every browser session of the account
/// ends. A wrong code counts as a failed sign-in (429 with Retry-After once throttled).
#[utoipa::path(post, path = "/me/totp/confirm", tag = "identity", request_body = CodeRequest,
    responses((status = 200, body = RecoveryCodes), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn confirm_totp(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<CodeRequest>,
) -> AppResult<Json<RecoveryCodes>> {
    use secrecy::ExposeSecret;
    let codes = super::second_factor::confirm_enrolment(
        &state,
        &p,
        &client,
        None,
        req.code.expose_secret(),
    )
    .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turns two-factor authentication off (the TOTP seed and every recovery code are deleted).
/// Needs a current code or an unused recovery code; a wrong one counts as a failed sign-in
/// (429 with Retry-After once throttled). Every browser session of the account ends.
#[utoipa::path(delete, path = "/me/totp", tag = "identity", request_body = CodeRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn disable_totp(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<CodeRequest>,
) -> AppResult<StatusCode> {
    use secrecy::ExposeSecret;
    super::second_factor::disable(&state, &p, &client, None, req.code.expose_secret()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes with a new set (the old ones stop working). Needs a current
/// code or an unused recovery code; a wrong one counts as a failed sign-in (429 with
/// Retry-After once throttled).
#[utoipa::path(post, path = "/me/recovery-codes", tag = "identity", request_body = CodeRequest,
    responses((status = 201, body = RecoveryCodes), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    client: ClientInfo,
    ApiJson(req): ApiJson<CodeRequest>,
) -> AppResult<(StatusCode, Json<RecoveryCodes>)> {
    use secrecy::ExposeSecret;
    let codes = super::second_factor::regenerate_recovery_codes(
        &state,
        &p,
        &client,
        req.code.expose_secret(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(RecoveryCodes {
            recovery_codes: codes,
        }),
    ))
}
