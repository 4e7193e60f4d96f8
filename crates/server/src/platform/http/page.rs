//! Rendering server-side pages: the layout context every page gets, field errors beside their
//! fields, and the HTML face of `AppError` (same status and wording as the problem JSON).

use super::auth::Principal;
use super::csrf::CsrfToken;
use super::error::AppError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use clipcart_domain::FieldError;
use clipcart_domain::identity::Role;

/// What the layout needs: the page title, who is signed in, and the CSRF value for forms.
pub struct PageCtx {
    pub title: String,
    pub user: Option<NavUser>,
    pub csrf: String,
}

pub struct NavUser {
    pub name: String,
    pub is_admin: bool,
    pub is_seller: bool,
    pub is_buyer: bool,
    pub is_shop_owner: bool,
}

impl PageCtx {
    pub fn new(title: impl Into<String>, principal: Option<&Principal>, csrf: &CsrfToken) -> Self {
        Self {
            title: title.into(),
            user: principal.map(|p| NavUser {
                name: p.display_name.clone(),
                is_admin: p.role == Role::Admin,
                is_seller: p.role == Role::Seller,
                is_buyer: p.role == Role::Buyer,
                is_shop_owner: p.shop_access.as_ref().is_some_and(|a| a.is_owner()),
            }),
            csrf: csrf.0.clone(),
        }
    }
}

/// Field errors of a form, looked up by field name in templates.
#[derive(Default)]
pub struct FormErrors {
    pub fields: Vec<FieldError>,
    /// An error about the form as a whole (e.g. out of stock).
    pub general: Option<String>,
}

impl FormErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn any(&self) -> bool {
        !self.fields.is_empty() || self.general.is_some()
    }

    /// Splits an error into what a form can show; `None` when the error is not about the form.
    pub fn from_error(e: &AppError) -> Option<Self> {
        match e {
            AppError::Domain(clipcart_domain::DomainError::Invalid(errs)) => {
                let general = errs
                    .iter()
                    .find(|e| e.field.is_empty())
                    .map(|e| e.message.clone());
                Some(Self {
                    fields: errs.clone(),
                    general,
                })
            }
            AppError::Domain(_) if e.status().is_client_error() => Some(Self {
                fields: vec![],
                general: Some(e.detail()),
            }),
            _ => None,
        }
    }
}

pub fn render<T: Template>(template: &T) -> Response {
    render_with_status(StatusCode::OK, template)
}

pub fn render_with_status<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => error_page(&AppError::Internal(e.into())),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    detail: String,
    status: u16,
}

pub fn error_page(e: &AppError) -> Response {
    // An admin without a passkey is sent to add one rather than shown a dead end.
    if matches!(e, AppError::PasskeyRequired) {
        return see_other("/account/security#passkeys");
    }
    // A sensitive change without a fresh proof: confirm first (pages that know where to come
    // back to redirect with `next` themselves).
    if matches!(e, AppError::StepUpRequired) {
        return see_other("/account/confirm");
    }
    if let AppError::Internal(inner) = e {
        tracing::error!(error = ?inner, "internal error on a page");
    }
    let page = ErrorPage {
        title: e.title(),
        detail: e.detail(),
        status: e.status().as_u16(),
    };
    let mut res = match page.render() {
        Ok(html) => (e.status(), Html(html)).into_response(),
        Err(_) => (e.status(), e.title()).into_response(),
    };
    if let AppError::TooManyRequests { retry_after_secs } = e
        && let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_secs.to_string())
    {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    res
}

/// Pages return this: an error becomes the error page, never a blank response.
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(&self.0)
    }
}

pub type PageResult = Result<Response, PageError>;

/// The body of a form that carries nothing but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// Seller pages need a shop: a seller who has not applied yet is sent to the application form
/// instead of a "not found" page.
pub fn apply_first(p: &Principal) -> Option<Response> {
    (p.role == Role::Seller && p.shop_id.is_none()).then(|| see_other("/seller"))
}

/// A "303 See Other" after a successful form post (post/redirect/get).
pub fn see_other(location: &str) -> Response {
    axum::response::Redirect::to(location).into_response()
}

/// Only same-site paths: `/x`, never `//evil.example` or `/\\evil` (no open redirects).
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
}

/// A local path to return to, or `/` when the given one is missing or points elsewhere.
pub fn local_path(p: Option<&str>) -> String {
    p.filter(|p| is_local_path(p)).unwrap_or("/").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_redirects() {
        assert!(super::is_local_path("/seller/orders?cursor=1"));
        for bad in [
            "",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "seller",
        ] {
            assert!(!super::is_local_path(bad), "{bad}");
        }
        assert_eq!(super::local_path(Some("//x")), "/");
    }
}
