//! Static assets compiled into the binary, served with long-lived caching: the file name carries
//! the version, so a change ships under a new name.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");
const HTMX_JS: &str = include_str!("../../static/htmx.min.js");

pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app-1.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app-1.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "htmx-2.0.11.min.js" => (HTMX_JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut res = body.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    res
}
