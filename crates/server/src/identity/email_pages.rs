//! Email pages: "check your inbox" after sign-up, the links from mails (verify the address,
//! choose a new password, confirm a new address), forgotten password, and the email and
//! anti-phishing sections of the account security page.

use super::email::{self, PasswordReset};
use super::pages::{Outcome, render_security};
use super::step_up::StepUpProof;
use crate::platform::clock::human;
use crate::platform::http::AppError;
use crate::platform::http::AppResult;
use crate::platform::http::auth::{PagePrincipal, Principal};
use crate::platform::http::client::ClientInfo;
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, NoFields, PageCtx, PageResult, render, render_with_status,
};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use clipcart_domain::DomainError;
use clipcart_domain::error::FieldError;
use secrecy::SecretString;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/verify-email", get(verify_email))
        .route("/forgot-password", get(forgot_form).post(forgot))
        .route("/reset-password", get(reset_form).post(reset))
        .route("/confirm-email", get(confirm_form).post(confirm))
        .route("/account/security/email", post(change_email))
        .route("/account/security/email/verification", post(resend))
        .route("/account/security/anti-phishing-code", post(set_code))
}

/// A short message page: the outcome of a link or a form.
#[derive(Template)]
#[template(path = "identity/email_notice.html")]
struct Notice {
    ctx: PageCtx,
    heading: String,
    message: String,
    ok: bool,
    link: Option<(String, String)>,
    /// Development: point at `/dev/outbox`, where the mail is.
    dev_outbox: bool,
}

fn notice(
    csrf: &CsrfToken,
    heading: &str,
    message: String,
    ok: bool,
    link: Option<(&str, &str)>,
) -> Notice {
    Notice {
        ctx: PageCtx::new(heading, None, csrf),
        heading: heading.into(),
        message,
        ok,
        link: link.map(|(h, l)| (h.to_string(), l.to_string())),
        dev_outbox: false,
    }
}

/// The page after the sign-up form: the same whether or not the address had an account.
pub fn sign_up_sent(state: &AppState, csrf: &CsrfToken, email: &str) -> Response {
    let email = clipcart_domain::identity::Email::parse(email)
        .map(|e| e.as_str().to_string())
        .unwrap_or_default();
    let mut n = notice(
        csrf,
        "Check your inbox",
        format!(
            "We sent a mail to {email}. Open the link in it to confirm your address — it works for 24 hours. You can sign in already; selling and checking out wait for the confirmed address."
        ),
        true,
        Some(("/signin", "Sign in")),
    );
    n.dev_outbox = state.mail.dev_outbox();
    render(&n)
}

/// A link that did not work: 422 with what to do instead.
fn bad_link_page(csrf: &CsrfToken, e: &AppError, heading: &str, instead: (&str, &str)) -> Response {
    let message = FormErrors::from_error(e)
        .and_then(|f| f.fields.first().map(|f| f.message.clone()).or(f.general))
        .unwrap_or_else(|| e.detail());
    render_with_status(
        e.status(),
        &notice(csrf, heading, upper_first(&message), false, Some(instead)),
    )
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// Opening the verification link verifies at once: the link proves the mailbox, whoever's
/// browser (or mail scanner) opens it, and changes nothing else.
async fn verify_email(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    match email::verify_email(&state, &q.token).await {
        Ok(address) => Ok(render(&notice(
            &csrf,
            "Email address confirmed",
            format!("Thank you: {address} is confirmed."),
            true,
            Some(("/", "Continue to Clipcart")),
        ))),
        Err(e) if e.status().is_client_error() => Ok(bad_link_page(
            &csrf,
            &e,
            "This link does not work",
            ("/account/security#email", "Ask for a new link"),
        )),
        Err(e) => Err(e.into()),
    }
}

// ---- Forgotten password ----

#[derive(Template)]
#[template(path = "identity/forgot_password.html")]
struct ForgotPage {
    ctx: PageCtx,
    email: String,
}

async fn forgot_form(Extension(csrf): Extension<CsrfToken>) -> Response {
    render(&ForgotPage {
        ctx: PageCtx::new("Forgot your password?", None, &csrf),
        email: String::new(),
    })
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// The same page for every address, known or not.
async fn forgot(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<ForgotForm>,
) -> Response {
    email::request_password_reset(&state, &f.email, &client);
    let mut n = notice(&csrf,
        "Check your inbox",
        "If an account uses this address, a link to choose a new password is on its way. It works once, for one hour.".into(),
        true,
        Some(("/signin", "Back to sign in")),
    );
    n.dev_outbox = state.mail.dev_outbox();
    render(&n)
}

#[derive(Template)]
#[template(path = "identity/reset_password.html")]
struct ResetPage {
    ctx: PageCtx,
    errors: FormErrors,
    token: String,
    email: String,
    /// The account has TOTP: a code field.
    code: bool,
    /// The account has a passkey: "Confirm with a passkey and set the password".
    passkey: bool,
    otp: String,
}

async fn reset_form(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    match email::reset_link(&state, &q.token).await {
        Ok(link) => Ok(render(&ResetPage {
            ctx: PageCtx::new("Choose a new password", None, &csrf),
            errors: FormErrors::default(),
            token: q.token,
            code: link.code,
            passkey: link.passkey,
            email: link.email,
            otp: String::new(),
        })),
        Err(e) if e.status().is_client_error() => Ok(bad_link_page(
            &csrf,
            &e,
            "This link does not work",
            ("/forgot-password", "Ask for a new link"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    otp: String,
    /// The passkey's answer, filled in by `passkey.js`.
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: String,
}

async fn reset(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<ResetForm>,
) -> PageResult {
    // Read first, for the form's own fields should it come back with errors.
    let link = match email::reset_link(&state, &f.token).await {
        Ok(link) => link,
        Err(e) if e.status().is_client_error() => {
            return Ok(bad_link_page(
                &csrf,
                &e,
                "This link does not work",
                ("/forgot-password", "Ask for a new link"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let otp = (!f.otp.trim().is_empty()).then(|| SecretString::from(f.otp.clone()));
    let passkey = match f.credential.as_str() {
        "" => Ok(None),
        credential => super::passkey_pages::assertion(&f.ceremony, credential)
            .map(Some)
            .ok_or_else(|| {
                AppError::from(DomainError::invalid(
                    "credential",
                    "the browser's answer could not be read; try again",
                ))
            }),
    };
    let result = match passkey {
        Ok(passkey) => {
            email::complete_password_reset(
                &state,
                PasswordReset {
                    token: f.token.clone(),
                    new_password: SecretString::from(f.new_password),
                    otp,
                    passkey,
                },
                &client,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let (status, errors) = match result {
        Ok(()) => {
            return Ok(render(&notice(&csrf,
                "Password changed",
                "Your new password is set, and every session of your account was signed out. Sign in with it now.".into(),
                true,
                Some(("/signin", "Sign in")),
            )));
        }
        Err(AppError::SecondFactorRequired) if link.code => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FormErrors {
                fields: vec![FieldError::new(
                    "otp",
                    "enter a code from your authenticator app, or a recovery code",
                )],
                general: None,
            },
        ),
        Err(AppError::SecondFactorRequired) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FormErrors {
                fields: vec![],
                general: Some(
                    "Your account has a passkey: use “Confirm with a passkey and set the password”."
                        .into(),
                ),
            },
        ),
        Err(AppError::TooManyRequests { retry_after_secs }) => {
            let mut res = render_with_status(
                StatusCode::TOO_MANY_REQUESTS,
                &ResetPage {
                    ctx: PageCtx::new("Choose a new password", None, &csrf),
                    errors: FormErrors {
                        fields: vec![],
                        general: Some(
                            "Too many attempts for this account or from your network. Try again later."
                                .into(),
                        ),
                    },
                    token: f.token,
                    email: link.email,
                    code: link.code,
                    passkey: link.passkey,
                    otp: f.otp,
                },
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(res);
        }
        Err(e) => {
            let errors = FormErrors::from_error(&e).ok_or(e)?;
            (StatusCode::UNPROCESSABLE_ENTITY, errors)
        }
    };
    Ok(render_with_status(
        status,
        &ResetPage {
            ctx: PageCtx::new("Choose a new password", None, &csrf),
            errors,
            token: f.token,
            email: link.email,
            code: link.code,
            passkey: link.passkey,
            otp: f.otp,
        },
    ))
}

// ---- Confirming a new address ----

#[derive(Template)]
#[template(path = "identity/confirm_email.html")]
struct ConfirmPage {
    ctx: PageCtx,
    token: String,
    new_email: String,
}

/// Shows what the link will do; the change itself is a POST, so a mail scanner that opens
/// links cannot make it.
async fn confirm_form(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    match email::email_change_link(&state, &q.token).await {
        Ok(new_email) => Ok(render(&ConfirmPage {
            ctx: PageCtx::new("Confirm your new email address", None, &csrf),
            token: q.token,
            new_email,
        })),
        Err(e) if e.status().is_client_error() => Ok(bad_link_page(
            &csrf,
            &e,
            "This link does not work",
            ("/account/security#email", "Go to your security page"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    token: String,
}

async fn confirm(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    client: ClientInfo,
    CsrfForm(f): CsrfForm<ConfirmForm>,
) -> PageResult {
    match email::confirm_email_change(&state, &f.token, &client).await {
        Ok(address) => Ok(render(&notice(
            &csrf,
            "Email address changed",
            format!("Your account now uses {address}. Sign in with it from now on."),
            true,
            Some(("/account/security#email", "Go to your security page")),
        ))),
        Err(e) if e.status().is_client_error() => Ok(bad_link_page(
            &csrf,
            &e,
            "The address was not changed",
            ("/account/security#email", "Go to your security page"),
        )),
        Err(e) => Err(e.into()),
    }
}

// ---- The security page's email sections ----

/// What the email forms on the security page did.
#[derive(Default)]
pub struct EmailOutcome {
    notice: Option<String>,
    change_errors: FormErrors,
    new_email: String,
    code_errors: FormErrors,
    code_value: String,
}

/// What `identity/security_email.html` shows.
pub struct EmailSection {
    pub address: String,
    pub verified: bool,
    pub verified_at: String,
    pub pending_email: Option<String>,
    pub anti_phishing_code: String,
    /// What the change forms ask for as step-up now: nothing within the window, a code with
    /// TOTP, a "Confirm with a passkey first" link with a passkey, the password without either.
    pub ask: super::pages::ProofAsk,
    pub notice: Option<String>,
    pub change_errors: FormErrors,
    pub new_email: String,
    pub code_errors: FormErrors,
    pub code_value: String,
}

impl EmailSection {
    pub fn has_errors(&self) -> bool {
        self.change_errors.any() || self.code_errors.any()
    }
}

pub async fn section(
    state: &AppState,
    p: &Principal,
    outcome: EmailOutcome,
) -> AppResult<EmailSection> {
    let s = email::status(state, p).await?;
    Ok(EmailSection {
        verified: s.verified_at.is_some(),
        verified_at: s.verified_at.map(human).unwrap_or_default(),
        address: s.email,
        pending_email: s.pending_email,
        code_value: if outcome.code_errors.any() {
            outcome.code_value
        } else {
            s.anti_phishing_code.clone()
        },
        anti_phishing_code: s.anti_phishing_code,
        ask: super::pages::ProofAsk::now(state, p).await?,
        notice: outcome.notice,
        change_errors: outcome.change_errors,
        new_email: outcome.new_email,
        code_errors: outcome.code_errors,
    })
}

/// The security page again, showing `outcome` in the email sections (422 with errors, 429
/// with Retry-After when throttled).
async fn show(
    state: &AppState,
    csrf: &CsrfToken,
    headers: &HeaderMap,
    p: &Principal,
    outcome: EmailOutcome,
    retry_after: Option<u64>,
) -> PageResult {
    let mut res = render_security(state, csrf, headers, p, None, Outcome::email(outcome)).await?;
    if let Some(secs) = retry_after {
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    Ok(res)
}

/// Form errors for a step-up form: the page's wording for the API's problems.
async fn step_up_errors(
    state: &AppState,
    p: &Principal,
    e: AppError,
) -> Result<(FormErrors, Option<u64>), AppError> {
    let field = |name: &str, message: &str| FormErrors {
        fields: vec![FieldError::new(name, message)],
        general: None,
    };
    Ok(match e {
        AppError::SecondFactorRequired => (
            field(
                "otp",
                "enter a code from your authenticator app, or a recovery code",
            ),
            None,
        ),
        AppError::StepUpRequired => (
            FormErrors {
                fields: vec![],
                general: Some(
                    super::pages::ProofAsk::outside_window(state, &p.user_id)
                        .await?
                        .missing()
                        .into(),
                ),
            },
            None,
        ),
        AppError::TooManyRequests { retry_after_secs } => (
            FormErrors {
                fields: vec![],
                general: Some(
                    "Too many attempts for this account or from your network. Try again later."
                        .into(),
                ),
            },
            Some(retry_after_secs),
        ),
        e => (FormErrors::from_error(&e).ok_or(e)?, None),
    })
}

#[derive(Deserialize)]
struct ChangeEmailForm {
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    otp: String,
}

fn proof(otp: String, password: String) -> StepUpProof {
    StepUpProof::new(
        Some(SecretString::from(otp)),
        Some(SecretString::from(password)),
    )
}

async fn change_email(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<ChangeEmailForm>,
) -> PageResult {
    let result = email::request_email_change(
        &state,
        &p,
        &f.new_email,
        proof(f.otp, f.current_password),
        &client,
    )
    .await;
    let (outcome, retry_after) = match result {
        Ok(new_email) => (
            EmailOutcome {
                notice: Some(format!(
                    "We sent a link to {new_email}. Your address changes once you open it; until then it stays {}.",
                    p.email
                )),
                ..EmailOutcome::default()
            },
            None,
        ),
        Err(e) => {
            let (errors, retry_after) = step_up_errors(&state, &p, e).await?;
            (
                EmailOutcome {
                    change_errors: errors,
                    new_email: f.new_email,
                    ..EmailOutcome::default()
                },
                retry_after,
            )
        }
    };
    show(&state, &csrf, &headers, &p, outcome, retry_after).await
}

async fn resend(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(_): CsrfForm<NoFields>,
) -> PageResult {
    let notice = match email::resend_verification(&state, &p).await {
        Ok(()) => format!("We sent a new link to {}.", p.email),
        Err(AppError::TooManyRequests { .. }) => {
            "A link was sent less than a minute ago; wait a moment before asking again.".into()
        }
        Err(AppError::Domain(DomainError::Conflict(why))) => why,
        Err(e) => return Err(e.into()),
    };
    show(
        &state,
        &csrf,
        &headers,
        &p,
        EmailOutcome {
            notice: Some(notice),
            ..EmailOutcome::default()
        },
        None,
    )
    .await
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    anti_phishing_code: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    otp: String,
}

async fn set_code(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    client: ClientInfo,
    PagePrincipal(p): PagePrincipal,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let result = email::set_anti_phishing_code(
        &state,
        &p,
        &f.anti_phishing_code,
        proof(f.otp, f.current_password),
        &client,
    )
    .await;
    let (outcome, retry_after) = match result {
        Ok(_) => (
            EmailOutcome {
                notice: Some(
                    "Your anti-phishing code is saved. Every genuine Clipcart email shows it at the top."
                        .into(),
                ),
                ..EmailOutcome::default()
            },
            None,
        ),
        Err(e) => {
            let (errors, retry_after) = step_up_errors(&state, &p, e).await?;
            (
                EmailOutcome {
                    code_errors: errors,
                    code_value: f.anti_phishing_code,
                    ..EmailOutcome::default()
                },
                retry_after,
            )
        }
    };
    show(&state, &csrf, &headers, &p, outcome, retry_after).await
}
