//! Sign-up, sign-in and sign-out pages.

use super::service::{self, SignUp};
use crate::platform::http::auth::{PagePrincipal, cookie};
use crate::platform::http::csrf::{CsrfForm, CsrfToken};
use crate::platform::http::page::{
    FormErrors, NoFields, PageCtx, PageResult, is_local_path, render, render_with_status, see_other,
};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clipcart_domain::identity::Role;
use secrecy::SecretString;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(sign_up_form).post(sign_up))
        .route("/signin", get(sign_in_form).post(sign_in))
        .route("/signout", post(sign_out))
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
    headers: HeaderMap,
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
            let token =
                service::start_session(&state, &user.id, user_agent(&headers), None).await?;
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
    CsrfForm(f): CsrfForm<SignInForm>,
) -> PageResult {
    match service::check_password(&state, &f.email, SecretString::from(f.password)).await {
        Ok(user) => {
            let previous = cookie(&headers, state.session_cookie);
            let token =
                service::start_session(&state, &user.id, user_agent(&headers), previous).await?;
            let role = Role::parse(&user.role)?;
            let target = if is_local_path(&f.next) {
                f.next.as_str()
            } else {
                home_for(role)
            };
            Ok(with_session(&state, &token, see_other(target)))
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

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn home_for(role: Role) -> &'static str {
    match role {
        Role::Admin => "/admin",
        Role::Seller => "/seller",
        Role::Buyer => "/",
    }
}
