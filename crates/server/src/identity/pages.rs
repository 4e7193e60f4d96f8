//! Sign-up, sign-in and sign-out pages.

use super::second_factor;
use super::service::{self, SignUp};
use crate::platform::clock::human;
use crate::platform::http::AppError;
use crate::platform::http::auth::{PagePrincipal, cookie};
use crate::platform::http::client::ClientInfo;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, NoFields, PageCtx, PageResult, is_local_path, render, render_with_status, see_other,
};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::Path;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clipcart_domain::identity::throttle::SignInOutcome;
use clipcart_domain::identity::{PasswordContext, Role};
use clipcart_domain::page::PageRequest;
use secrecy::SecretString;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(sign_up_form).post(sign_up))
        .route("/signup/password-strength", post(password_strength))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signin/code", post(sign_in_code))
        .route("/account/security/totp/start", post(totp_start))
        .route("/account/security/totp/confirm", post(totp_confirm))
        .route("/account/security/totp/disable", post(totp_disable))
        .route("/account/security/recovery-codes", post(recovery_codes))
        .route("/signout", post(sign_out))
        .route("/account/security", get(security_page))
        .route("/account/security/password", post(change_password))
        .route(
            "/account/security/sessions/{session_id}/revoke",
            post(revoke_session),
        )
        .route(
            "/account/security/sessions/revoke-others",
            post(revoke_other_sessions),
        )
        .merge(super::passkey_pages::router())
}

#[derive(Template)]
#[template(path = "identity/signup.html")]
struct SignUpPage {
    ctx: PageCtx,
    errors: FormErrors,
    email: String,
    display_name: String,
    account_type: String,
}

async fn sign_up_form(
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<AccountTypeQuery>,
) -> Response {
    render(&SignUpPage {
        ctx: PageCtx::new("Create account", None, &csrf),
        errors: FormErrors::default(),
        email: String::new(),
        display_name: String::new(),
        account_type: q.account_type.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct AccountTypeQuery {
    account_type: Option<String>,
}

#[derive(Deserialize)]
struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    account_type: String,
}

async fn sign_up(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    CsrfForm(f): CsrfForm<SignUpForm>,
) -> PageResult {
    let role = match f.account_type.as_str() {
        "seller" => Role::Seller,
        _ => Role::Buyer,
    };
    // No session: the answer must not depend on whether the address already had an account.
    let result = super::email::sign_up(
        &state,
        SignUp {
            email: f.email.clone(),
            password: SecretString::from(f.password),
            display_name: f.display_name.clone(),
            role,
        },
    )
    .await;
    match result {
        Ok(()) => Ok(super::email_pages::sign_up_sent(&state, &csrf, &f.email)),
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            Ok(render_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SignUpPage {
                    ctx: PageCtx::new("Create account", None, &csrf),
                    errors,
                    email: f.email,
                    display_name: f.display_name,
                    account_type: f.account_type,
                },
            ))
        }
    }
}

/// The live strength meter under the sign-up password field: an HTML fragment that htmx swaps
/// in as the person types. Without JavaScript the field simply has no meter; the same rules
/// run on submit.
#[derive(Template)]
#[template(path = "identity/password_strength.html")]
struct PasswordStrengthFragment {
    empty: bool,
    accepted: bool,
    score: u8,
    label: &'static str,
    refusals: Vec<String>,
    warning: Option<String>,
    suggestions: Vec<String>,
}

/// The sign-up form's fields as htmx posts them (the whole form, CSRF token included).
#[derive(Deserialize)]
struct PasswordStrengthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
}

async fn password_strength(
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<PasswordStrengthForm>,
) -> PageResult {
    let empty = f.password.is_empty();
    let context = PasswordContext::new().email(&f.email).name(&f.display_name);
    let a = service::assess_new_password(&state, SecretString::from(f.password), context).await?;
    Ok(render(&PasswordStrengthFragment {
        empty,
        accepted: a.accepted(),
        score: a.strength.score,
        label: a.strength.label(),
        refusals: a.refusal_messages(),
        warning: a.strength.warning,
        suggestions: a.strength.suggestions,
    }))
}

#[derive(Template)]
#[template(path = "identity/signin.html")]
struct SignInPage {
    ctx: PageCtx,
    errors: FormErrors,
    email: String,
    next: String,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn sign_in_form(
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<NextQuery>,
) -> Response {
    render(&SignInPage {
        ctx: PageCtx::new("Sign in", None, &csrf),
        errors: FormErrors::default(),
        email: String::new(),
        next: q.next.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<SignInForm>,
) -> PageResult {
    let checked = service::check_password(
        &state,
        &f.email,
        SecretString::from(f.password),
        None,
        &client,
    )
    .await;
    match checked {
        Ok(service::SignIn::Complete {
            user,
            second_factor,
        }) => {
            service::audit_sign_in(&state, &user.id, "password", Some(second_factor)).await?;
            let previous = cookie(&headers, state.session_cookie);
            let res = signed_in(&state, &user, &client, previous, &f.next).await?;
            Ok(super::alerts::page_signed_in(&state, &user.id, &client, &headers, res).await?)
        }
        Ok(service::SignIn::SecondFactorRequired(user)) => {
            // The password was right: remember that on the server (not in the form) for a
            // few minutes, and ask for the code.
            let pending = service::start_pending_second_factor(&state, &user.id).await?;
            Ok(render(&SignInCodePage {
                ctx: PageCtx::new("Two-factor authentication", None, &csrf),
                errors: FormErrors::default(),
                pending,
                next: f.next,
                choices: super::passkey_pages::choices(&state, &user.id).await?,
            }))
        }
        Err(AppError::TooManyRequests { retry_after_secs }) => {
            // The form again, with the wait and a Retry-After header: the same for every email.
            let minutes = retry_after_secs.div_ceil(60);
            let wait = if retry_after_secs < 60 {
                "a moment".to_string()
            } else if minutes == 1 {
                "a minute".to_string()
            } else {
                format!("{minutes} minutes")
            };
            let mut res = render_with_status(
                StatusCode::TOO_MANY_REQUESTS,
                &SignInPage {
                    ctx: PageCtx::new("Sign in", None, &csrf),
                    errors: FormErrors {
                        fields: vec![],
                        general: Some(format!(
                            "Too many sign-in attempts for this account or from your network. Try again in {wait}."
                        )),
                    },
                    email: f.email,
                    next: f.next,
                },
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            Ok(render_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SignInPage {
                    ctx: PageCtx::new("Sign in", None, &csrf),
                    errors,
                    email: f.email,
                    next: f.next,
                },
            ))
        }
    }
}

pub(super) async fn signed_in(
    state: &AppState,
    user: &super::store::UserRow,
    client: &ClientInfo,
    previous: Option<&str>,
    next: &str,
) -> PageResult {
    let token = service::start_session_for(state, &user.id, client, previous).await?;
    let role = Role::parse(&user.role)?;
    let target = if is_local_path(next) {
        next
    } else {
        home_for(role)
    };
    Ok(with_session(state, &token, see_other(target)))
}

/// The second step of signing in to an account with two-factor authentication.
#[derive(Template)]
#[template(path = "identity/signin_code.html")]
struct SignInCodePage {
    ctx: PageCtx,
    errors: FormErrors,
    /// The opaque id of the pending sign-in (its digest is what the server keeps).
    pending: String,
    next: String,
    /// A code form, a passkey button, or both.
    choices: super::passkey_pages::Choices,
}

/// The sign-in page with a message about the whole form (`passkey_pages`).
pub(super) fn sign_in_page_with(
    csrf: &CsrfToken,
    next: String,
    status: StatusCode,
    message: String,
) -> Response {
    render_with_status(
        status,
        &SignInPage {
            ctx: PageCtx::new("Sign in", None, csrf),
            errors: FormErrors {
                fields: vec![],
                general: Some(message),
            },
            email: String::new(),
            next,
        },
    )
}

/// The second step again with a message (`passkey_pages`).
pub(super) async fn code_page_with(
    state: &AppState,
    csrf: &CsrfToken,
    pending: String,
    next: String,
    status: StatusCode,
    message: String,
) -> PageResult {
    let choices = super::passkey_pages::pending_choices(state, &pending).await?;
    Ok(render_with_status(
        status,
        &SignInCodePage {
            ctx: PageCtx::new("Two-factor authentication", None, csrf),
            errors: FormErrors {
                fields: vec![],
                general: Some(message),
            },
            pending,
            next,
            choices,
        },
    ))
}

#[derive(Deserialize)]
struct SignInCodeForm {
    #[serde(default)]
    pending: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

async fn sign_in_code(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<SignInCodeForm>,
) -> PageResult {
    let checked =
        service::check_pending_code(&state, &f.pending, SecretString::from(f.code), &client).await;
    match checked {
        Ok(Some(user)) => {
            let previous = cookie(&headers, state.session_cookie);
            let res = signed_in(&state, &user, &client, previous, &f.next).await?;
            Ok(super::alerts::page_signed_in(&state, &user.id, &client, &headers, res).await?)
        }
        Ok(None) => Ok(render_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage {
                ctx: PageCtx::new("Sign in", None, &csrf),
                errors: FormErrors {
                    fields: vec![],
                    general: Some(
                        "That sign-in took too long or was already finished. Please sign in again."
                            .into(),
                    ),
                },
                email: String::new(),
                next: f.next,
            },
        )),
        Err(AppError::TooManyRequests { retry_after_secs }) => {
            let mut res = render_with_status(
                StatusCode::TOO_MANY_REQUESTS,
                &SignInCodePage {
                    ctx: PageCtx::new("Two-factor authentication", None, &csrf),
                    errors: FormErrors {
                        fields: vec![],
                        general: Some(
                            "Too many attempts for this account or from your network. Try again later."
                                .into(),
                        ),
                    },
                    choices: super::passkey_pages::pending_choices(&state, &f.pending).await?,
                    pending: f.pending,
                    next: f.next,
                },
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(e) => {
            FormErrors::from_error(&e).ok_or(e)?;
            Ok(render_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SignInCodePage {
                    ctx: PageCtx::new("Two-factor authentication", None, &csrf),
                    errors: FormErrors {
                        fields: vec![],
                        general: Some("That code is wrong, expired or was already used.".into()),
                    },
                    choices: super::passkey_pages::pending_choices(&state, &f.pending).await?,
                    pending: f.pending,
                    next: f.next,
                },
            ))
        }
    }
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    _p: Option<PagePrincipal>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    if let Some(token) = cookie(&headers, state.session_cookie) {
        service::end_session(&state, token).await?;
    }
    let mut res = see_other("/");
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let value = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        state.session_cookie
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

fn with_session(state: &AppState, token: &str, response: Response) -> Response {
    let mut res = response.into_response();
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let max_age = service::SESSION_ABSOLUTE_MS / 1000;
    let value = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        state.session_cookie
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// After a step-up on a page: the session gets a new id (`service::rotate_session`) and
/// `response` carries its cookie. Without a session cookie `response` goes out as it is.
pub(crate) async fn with_rotated_session(
    state: &AppState,
    headers: &HeaderMap,
    response: Response,
) -> crate::platform::http::AppResult<Response> {
    let Some(old) = cookie(headers, state.session_cookie) else {
        return Ok(response);
    };
    Ok(match service::rotate_session(state, old).await? {
        Some(new) => with_session(state, &new, response),
        None => response,
    })
}

fn home_for(role: Role) -> &'static str {
    match role {
        Role::Admin => "/admin",
        Role::Seller => "/seller",
        Role::Buyer => "/",
    }
}

// ---- The account security page: sessions and sign-in history ----

struct SessionItem {
    id: String,
    device: String,
    address: String,
    first_seen: String,
    last_seen: String,
    current: bool,
}

struct SignInItem {
    at: String,
    outcome: &'static str,
    outcome_class: &'static str,
    device: String,
    address: String,
}

/// Which step-up proof a form of the security page asks for now: nothing within the step-up
/// window; otherwise a code for an account with TOTP, a "Confirm with a passkey first" link
/// (to `/account/confirm`) for one with a passkey — both when it has both — and the password
/// only for an account without any second factor.
#[derive(Default, Clone, Copy)]
pub struct ProofAsk {
    pub password: bool,
    pub code: bool,
    pub passkey: bool,
}

impl ProofAsk {
    pub(super) async fn now(
        state: &AppState,
        p: &crate::platform::http::auth::Principal,
    ) -> crate::platform::http::AppResult<ProofAsk> {
        if super::step_up::is_fresh(state, p) {
            return Ok(ProofAsk::default());
        }
        Self::outside_window(state, &p.user_id).await
    }

    /// What the account would be asked for once the window is closed.
    pub(super) async fn outside_window(
        state: &AppState,
        user_id: &str,
    ) -> crate::platform::http::AppResult<ProofAsk> {
        let code = second_factor::is_active(state, user_id).await?;
        let passkey = super::passkey::has_passkey(state, user_id).await?;
        Ok(ProofAsk {
            password: !code && !passkey,
            code,
            passkey,
        })
    }

    /// The message for a form sent without the proof it needed.
    pub(super) fn missing(self) -> &'static str {
        match (self.code, self.passkey) {
            (true, true) => {
                "Confirm it is you: enter a code from your authenticator app, or confirm with a passkey first."
            }
            (true, false) => "Confirm it is you: enter a code from your authenticator app.",
            (false, true) => "Confirm it is you with a passkey first, then send the form again.",
            (false, false) => "Confirm it is you: enter your password.",
        }
    }
}

#[derive(Template)]
#[template(path = "identity/security.html")]
struct SecurityPage {
    ctx: PageCtx,
    sessions: Vec<SessionItem>,
    sessions_truncated: bool,
    sign_ins: Vec<SignInItem>,
    next_cursor: Option<String>,
    two_factor: TwoFactorView,
    password: PasswordFormView,
    /// The password form's step-up: a code or a passkey link (the current password is always
    /// asked for).
    password_ask: ProofAsk,
    /// A second factor (TOTP or a passkey) is on: 8 characters suffice for a new password.
    second_factor_on: bool,
    /// The "Email" and "Anti-phishing code" sections (`security_email.html`).
    email: super::email_pages::EmailSection,
    /// The "Passkeys" section (`security_passkeys.html`).
    passkeys: super::passkey_pages::PasskeySection,
}

/// What the last form on the page did, shown in its section.
#[derive(Default)]
pub(super) struct Outcome {
    /// Recovery codes just made: shown this once.
    new_recovery_codes: Vec<String>,
    /// What was wrong with the last second-factor code typed, if anything.
    code_error: Option<String>,
    password: PasswordFormView,
    /// The email sections' forms (`email_pages`).
    email: super::email_pages::EmailOutcome,
    /// What went wrong with the last passkey form (`passkey_pages`).
    passkey_error: Option<String>,
}

impl Outcome {
    /// A passkey form's error, shown in the Passkeys section (`passkey_pages`).
    pub(super) fn passkey_error(message: String) -> Self {
        Self {
            passkey_error: Some(message),
            ..Self::default()
        }
    }

    /// What one of the email forms did (`email_pages`).
    pub(super) fn email(email: super::email_pages::EmailOutcome) -> Self {
        Self {
            email,
            ..Self::default()
        }
    }
}

/// The "Password" section: field errors and what was typed (never the passwords).
#[derive(Default)]
struct PasswordFormView {
    errors: FormErrors,
    /// The code typed for step-up, kept when the form comes back with errors.
    otp: String,
    /// The password was just changed.
    changed: bool,
}

/// The "Two-factor authentication" section.
#[derive(Default)]
struct TwoFactorView {
    active: bool,
    recovery_codes_left: i64,
    /// While an enrolment waits for its code: the seed (base32) and the QR code (inline SVG).
    enrol_secret: Option<String>,
    enrol_qr_svg: String,
    /// Recovery codes just made: shown this once.
    new_recovery_codes: Vec<String>,
    /// What was wrong with the last code typed, if anything.
    error: Option<String>,
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

async fn security_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    PagePrincipal(p): PagePrincipal,
    Query(q): Query<CursorQuery>,
) -> PageResult {
    render_security(
        &state,
        &csrf,
        &headers,
        &p,
        q.cursor.as_deref(),
        Outcome::default(),
    )
    .await
}

pub(super) async fn render_security(
    state: &AppState,
    csrf: &CsrfToken,
    headers: &HeaderMap,
    p: &crate::platform::http::auth::Principal,
    cursor: Option<&str>,
    outcome: Outcome,
) -> PageResult {
    let Outcome {
        new_recovery_codes,
        code_error,
        password,
        email,
        passkey_error,
    } = outcome;
    use secrecy::ExposeSecret;
    let state = state.clone();
    let status = second_factor::status(&state, &p.user_id).await?;
    let mut two_factor = TwoFactorView {
        active: status.active,
        recovery_codes_left: status.recovery_codes_left,
        new_recovery_codes,
        ..TwoFactorView::default()
    };
    if let Some(e) = second_factor::pending_enrolment(&state, p).await? {
        two_factor.enrol_qr_svg = e.qr_svg()?;
        two_factor.enrol_secret = Some(e.secret.expose_secret().to_string());
    }
    two_factor.error = code_error;
    let q = CursorQuery {
        cursor: cursor.map(str::to_string),
    };
    let p = p.clone();
    let current = cookie(headers, state.session_cookie);
    let sessions = service::list_sessions(
        &state,
        &p,
        current,
        &PageRequest::parse(None, Some(clipcart_domain::page::MAX_LIMIT))?,
    )
    .await?;
    let history =
        service::sign_in_history(&state, &p, &PageRequest::parse(q.cursor.as_deref(), None)?)
            .await?;
    let address = |a: String| if a.is_empty() { "unknown".into() } else { a };
    let email = super::email_pages::section(&state, &p, email).await?;
    let passkeys = super::passkey_pages::section(&state, &p, passkey_error).await?;
    let password_ask = ProofAsk::now(&state, &p).await?;
    let second_factor_on = super::passkey::second_factor_on(&state, &p.user_id).await?;
    let status = if two_factor.error.is_some()
        || password.errors.any()
        || email.has_errors()
        || passkeys.has_errors()
    {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(render_with_status(
        status,
        &SecurityPage {
            two_factor,
            password,
            password_ask,
            second_factor_on,
            email,
            passkeys,
            ctx: PageCtx::new("Account security", Some(&p), csrf),
            sessions_truncated: sessions.next_cursor.is_some(),
            sessions: sessions
                .items
                .into_iter()
                .map(|s| SessionItem {
                    first_seen: human(s.created_at),
                    last_seen: human(s.last_seen_at),
                    address: address(s.address),
                    id: s.id,
                    device: s.device,
                    current: s.current,
                })
                .collect(),
            sign_ins: history
                .items
                .into_iter()
                .map(|e| SignInItem {
                    at: human(e.at),
                    outcome: e.outcome.label(),
                    outcome_class: match e.outcome {
                        SignInOutcome::Success => "active",
                        SignInOutcome::WrongPassword => "submitted",
                        SignInOutcome::Throttled | SignInOutcome::Locked => "rejected",
                    },
                    device: e.device,
                    address: address(e.address),
                })
                .collect(),
            next_cursor: history.next_cursor,
        },
    ))
}

// ---- Two-factor authentication on the security page ----

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

/// A second-factor action's outcome on the page: field errors are shown in the 2FA section.
async fn after_code_action(
    state: &AppState,
    csrf: &CsrfToken,
    headers: &HeaderMap,
    p: &crate::platform::http::auth::Principal,
    result: Result<Vec<String>, AppError>,
) -> PageResult {
    match result {
        Ok(codes) if codes.is_empty() => Ok(see_other("/account/security#two-factor")),
        Ok(codes) => {
            render_security(
                state,
                csrf,
                headers,
                p,
                None,
                Outcome {
                    new_recovery_codes: codes,
                    ..Outcome::default()
                },
            )
            .await
        }
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            let message = errors
                .fields
                .first()
                .map(|f| f.message.clone())
                .unwrap_or_else(|| "that code did not work".into());
            render_security(
                state,
                csrf,
                headers,
                p,
                None,
                Outcome {
                    code_error: Some(message),
                    ..Outcome::default()
                },
            )
            .await
        }
    }
}

async fn totp_start(
    State(state): State<AppState>,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    match second_factor::start_enrolment(&state, &p, &client).await {
        Ok(_) => Ok(see_other("/account/security#two-factor")),
        Err(AppError::StepUpRequired) => Ok(see_other(
            "/account/confirm?next=/account/security%23two-factor",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn totp_confirm(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let result = second_factor::confirm_enrolment(
        &state,
        &p,
        &client,
        cookie(&headers, state.session_cookie),
        &f.code,
    )
    .await;
    after_code_action(&state, &csrf, &headers, &p, result).await
}

async fn totp_disable(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let result = second_factor::disable(
        &state,
        &p,
        &client,
        cookie(&headers, state.session_cookie),
        &f.code,
    )
    .await
    .map(|()| Vec::new());
    after_code_action(&state, &csrf, &headers, &p, result).await
}

async fn recovery_codes(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let result = second_factor::regenerate_recovery_codes(&state, &p, &client, &f.code).await;
    after_code_action(&state, &csrf, &headers, &p, result).await
}

/// Ends one of the signed-in person's sessions; ending the one in use signs them out.
async fn revoke_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePrincipal(p): PagePrincipal,
    Path(session_id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let current = match cookie(&headers, state.session_cookie) {
        Some(token) => service::session_id_of(&state, token).await?,
        None => None,
    };
    service::revoke_session(&state, &p, &session_id).await?;
    if current.as_deref() == Some(session_id.as_str()) {
        return Ok(see_other("/signin"));
    }
    Ok(see_other("/account/security"))
}

async fn revoke_other_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    match cookie(&headers, state.session_cookie) {
        Some(current) => {
            service::revoke_other_sessions(&state, &p, Some(current)).await?;
        }
        None => return Err(AppError::Domain(clipcart_domain::DomainError::Unauthenticated).into()),
    }
    Ok(see_other("/account/security"))
}

// ---- Changing the password on the security page ----

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    otp: String,
}

/// Changes the password (with a code when TOTP is on, or a passkey step-up first, unless
/// within the step-up window). This session stays; every other session and every API token of the account ends. Errors are shown beside
/// their fields; the passwords are never typed back into the form.
async fn change_password(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> PageResult {
    let current = cookie(&headers, state.session_cookie);
    let otp = (!f.otp.trim().is_empty()).then(|| SecretString::from(f.otp.clone()));
    let result = service::change_password(
        &state,
        &p,
        &client,
        service::PasswordChange {
            current_password: SecretString::from(f.current_password),
            new_password: SecretString::from(f.new_password),
            otp,
        },
        service::KeepSignedIn {
            session: current,
            token: None,
        },
    )
    .await;
    let mut retry_after = None;
    let form = match result {
        Ok(_) => PasswordFormView {
            changed: true,
            ..PasswordFormView::default()
        },
        Err(AppError::SecondFactorRequired) => {
            let ask = ProofAsk::outside_window(&state, &p.user_id).await?;
            let errors = if ask.code {
                FormErrors {
                    fields: vec![clipcart_domain::error::FieldError::new(
                        "otp",
                        "enter a code from your authenticator app, or a recovery code",
                    )],
                    general: None,
                }
            } else {
                // Only a passkey: it cannot come as a code, so confirm on the confirm page.
                FormErrors {
                    fields: vec![],
                    general: Some(ask.missing().into()),
                }
            };
            PasswordFormView {
                errors,
                otp: f.otp,
                changed: false,
            }
        }
        Err(AppError::TooManyRequests { retry_after_secs }) => {
            retry_after = Some(retry_after_secs);
            PasswordFormView {
                errors: FormErrors {
                    fields: vec![],
                    general: Some(
                        "Too many attempts for this account or from your network. Try again later."
                            .into(),
                    ),
                },
                otp: f.otp,
                changed: false,
            }
        }
        Err(e) => PasswordFormView {
            errors: FormErrors::from_error(&e).ok_or(e)?,
            otp: f.otp,
            changed: false,
        },
    };
    let mut res = render_security(
        &state,
        &csrf,
        &headers,
        &p,
        None,
        Outcome {
            password: form,
            ..Outcome::default()
        },
    )
    .await?;
    if let Some(secs) = retry_after {
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    Ok(res)
}
