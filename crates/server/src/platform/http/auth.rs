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
use clipcart_domain::identity::staff::{Access, Area, OwnerOnly, ShopAccess};

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
    pub email: String,
    pub display_name: String,
    /// The shop this seller owns or works for, if any.
    pub shop_id: Option<String>,
    /// How this seller stands in `shop_id`: the owner, or staff with a role.
    pub shop_access: Option<ShopAccess>,
    /// The session or API token this request came with.
    pub credential: Credential,
    /// When a second factor (or, without one, the password) was last proved on this
    /// credential; 0 if never. Read by step-up.
    pub stepped_up_at: i64,
}

/// What a principal signed in with; step-up records its proof on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A page session, by the digest of its cookie value.
    Session { id_hash: String },
    /// An API token, by the digest of the token.
    Token { id_hash: String },
    /// Code acting on someone's behalf (the demo loader, command-line tools).
    Internal,
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

    /// The caller's shop, when their place in it grants `needed` on `area`. A seller without
    /// a shop gets 404 on shop data; staff whose role does not reach the area get 403.
    pub fn shop(&self, area: Area, needed: Access) -> Result<&str, AppError> {
        let (shop_id, access) = self.shop_and_access()?;
        if access.allows(area, needed) {
            Ok(shop_id)
        } else {
            Err(DomainError::Forbidden(match needed {
                Access::Edit => "your staff role does not allow changes in this area",
                _ => "your staff role does not give access to this area",
            })
            .into())
        }
    }

    /// The caller's shop for what only its owner may do, whatever a staff role grants.
    pub fn owned_shop(&self, area: OwnerOnly) -> Result<&str, AppError> {
        let (shop_id, access) = self.shop_and_access()?;
        if access.allows_owner_only(area) {
            Ok(shop_id)
        } else {
            Err(DomainError::Forbidden("only the shop's owner may do this").into())
        }
    }

    fn shop_and_access(&self) -> Result<(&str, &ShopAccess), AppError> {
        self.require(Role::Seller)?;
        match (self.shop_id.as_deref(), self.shop_access.as_ref()) {
            (Some(shop), Some(access)) => Ok((shop, access)),
            _ => Err(AppError::Domain(DomainError::NotFound)),
        }
    }

    /// Whether this seller works for a shop they do not own.
    pub fn is_staff(&self) -> bool {
        matches!(self.shop_access, Some(ShopAccess::Staff { .. }))
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

/// For operations anyone may call that do more for a signed-in caller: no Authorization
/// header is `None`; a token that does not work is still 401, never silently anonymous.
impl OptionalFromRequestParts<AppState> for ApiPrincipal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, AppError> {
        if parts.headers.get(header::AUTHORIZATION).is_none() {
            return Ok(None);
        }
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
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
