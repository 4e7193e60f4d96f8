//! Who is calling: an API bearer token (`Authorization: Bearer cc_…`) for the JSON API, a
//! session cookie for pages. Both resolve to the same `Principal`, so services never care how.

use super::error::AppError;
use crate::identity::service;
use crate::state::AppState;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use clipcart_domain::DomainError;
use clipcart_domain::identity::Role;

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
    pub email: String,
    pub display_name: String,
    /// The shop this seller owns, if any.
    pub shop_id: Option<String>,
}

impl Principal {
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role == role {
            Ok(())
        } else {
            Err(DomainError::Forbidden(match role {
                Role::Admin => "only platform admins may do this",
                Role::Seller => "only sellers may do this",
                Role::Buyer => "only buyers may do this",
            })
            .into())
        }
    }

    /// The caller's shop, for seller operations. A seller without a shop gets 404 on shop data.
    pub fn seller_shop(&self) -> Result<&str, AppError> {
        self.require(Role::Seller)?;
        self.shop_id
            .as_deref()
            .ok_or(AppError::Domain(DomainError::NotFound))
    }
}

/// The principal behind an API bearer token.
pub struct ApiPrincipal(pub Principal);

impl FromRequestParts<AppState> for ApiPrincipal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(&parts.headers).ok_or(AppError::Domain(DomainError::Unauthenticated))?;
        let p = service::principal_from_token(state, token).await?;
        Ok(ApiPrincipal(
            p.ok_or(AppError::Domain(DomainError::Unauthenticated))?,
        ))
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The signed-in person on a page; anonymous visitors are sent to the sign-in page.
pub struct PagePrincipal(pub Principal);

pub struct SignInRedirect(String);

impl IntoResponse for SignInRedirect {
    fn into_response(self) -> Response {
        Redirect::to(&format!("/signin?next={}", self.0)).into_response()
    }
}

impl FromRequestParts<AppState> for PagePrincipal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match session_principal(parts, state).await {
            Ok(Some(p)) => Ok(PagePrincipal(p)),
            Ok(None) => {
                // After signing in, come back here; a form post comes back to the page it was
                // posted from (its action cannot be opened with GET).
                let next = if parts.method == axum::http::Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".into())
                } else {
                    referer_path(&parts.headers).unwrap_or_else(|| "/".into())
                };
                let next: String = next
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        other => format!("%{other:02X}"),
                    })
                    .collect();
                Err(SignInRedirect(next).into_response())
            }
            Err(e) => Err(crate::platform::http::page::error_page(&e)),
        }
    }
}

impl OptionalFromRequestParts<AppState> for PagePrincipal {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Response> {
        session_principal(parts, state)
            .await
            .map(|p| p.map(PagePrincipal))
            .map_err(|e| crate::platform::http::page::error_page(&e))
    }
}

async fn session_principal(parts: &Parts, state: &AppState) -> Result<Option<Principal>, AppError> {
    match cookie(&parts.headers, state.session_cookie) {
        Some(token) => service::principal_from_session(state, token).await,
        None => Ok(None),
    }
}

/// The path of a same-site Referer (scheme and host dropped), if any.
fn referer_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let path = rest.strip_prefix(host)?;
    crate::platform::http::page::is_local_path(path).then(|| path.to_string())
}

/// The value of one cookie from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
