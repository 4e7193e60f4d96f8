//! Sign-up, sign-in and sign-out pages.

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
        .route("/signout", post(sign_out))
        .route("/account/security", get(security_page))
        .route(
            "/account/security/sessions/{session_id}/revoke",
            post(revoke_session),
        )
        .route(
            "/account/security/sessions/revoke-others",
            post(revoke_other_sessions),
        )
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
    client: ClientInfo,
    CsrfForm(f): CsrfForm<SignUpForm>,
) -> PageResult {
    let role = match f.account_type.as_str() {
        "seller" => Role::Seller,
        _ => Role::Buyer,
    };
    let result = service::sign_up(
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
        Ok(user) => {
            let token = service::start_session_for(&state, &user.id, &client, None).await?;
            Ok(with_session(&state, &token, see_other(home_for(role))))
        }
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
    match service::check_password(&state, &f.email, SecretString::from(f.password), &client).await {
        Ok(user) => {
            let previous = cookie(&headers, state.session_cookie);
            let token = service::start_session_for(&state, &user.id, &client, previous).await?;
            let role = Role::parse(&user.role)?;
            let target = if is_local_path(&f.next) {
                f.next.as_str()
            } else {
                home_for(role)
            };
            Ok(with_session(&state, &token, see_other(target)))
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

#[derive(Template)]
#[template(path = "identity/security.html")]
struct SecurityPage {
    ctx: PageCtx,
    sessions: Vec<SessionItem>,
    sessions_truncated: bool,
    sign_ins: Vec<SignInItem>,
    next_cursor: Option<String>,
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
    let current = cookie(&headers, state.session_cookie);
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
    Ok(render(&SecurityPage {
        ctx: PageCtx::new("Account security", Some(&p), &csrf),
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
    }))
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
