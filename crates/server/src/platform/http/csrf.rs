//! CSRF protection for the pages: a `__Host-` double-submit cookie whose value every form
//! carries back in a hidden `csrf` field, plus an Origin / Sec-Fetch-Site check. `__Host-`
//! stops sibling subdomains from planting the cookie; the origin check stops other sites.

use super::auth::cookie;
use super::error::AppError;
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The CSRF value of this browser, put in request extensions for pages to render into forms.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// Ensures every page request has a CSRF cookie, and refuses cross-site unsafe requests.
pub async fn layer(
    state: axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && !same_origin(req.headers(), &state.config.public_url)
    {
        tracing::warn!(path = %req.uri().path(), "cross-site form post refused");
        return AppError::CsrfRejected.into_response();
    }
    let existing = cookie(req.headers(), state.csrf_cookie)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string);
    let (token, fresh) = match existing {
        Some(t) => (t, false),
        None => (clipcart_domain::ids::random_secret(20), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut res = next.run(req).await;
    if fresh {
        let secure = if state.secure_cookies { "; Secure" } else { "" };
        let value = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax{secure}",
            state.csrf_cookie
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// Browsers send Sec-Fetch-Site and Origin on unsafe requests; either one naming another site
/// is refused. Clients that send neither (curl, tests) are not browsers and carry no cookies of
/// a victim, and the token check still applies to them.
fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin.trim_end_matches('/') == public_url.trim_end_matches('/')
                || origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(host)
        }
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form body whose `csrf` field matched the browser's CSRF cookie.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let expected = req.extensions().get::<CsrfToken>().map(|t| t.0.clone());
        let had_cookie = cookie(req.headers(), state.csrf_cookie).is_some();
        let bytes = axum::body::to_bytes(req.into_body(), state.config.body_limit)
            .await
            .map_err(|_| AppError::PayloadTooLarge)?;
        let field: CsrfField =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| AppError::CsrfRejected)?;
        let ok = had_cookie && expected.is_some_and(|e| constant_time_eq(&e, &field.csrf));
        if !ok {
            return Err(AppError::CsrfRejected);
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(CsrfForm)
            .map_err(|e| {
                AppError::BadRequest(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the form could not be read: {e}"),
                )
            })
    }
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    // Comparing digests keeps the time independent of where the inputs differ.
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}
