//! Static assets compiled into the binary. Their URLs carry a fingerprint of their content, so
//! they can be cached for a year and a changed file always ships under a new name.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");
const HTMX_JS: &str = include_str!("../../static/htmx.min.js");
const PASSKEY_JS: &str = include_str!("../../static/passkey.js");

struct Asset {
    url: String,
    body: &'static str,
    kind: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static str, kind: &'static str) -> Asset {
    let fingerprint = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
    Asset {
        url: format!("/assets/{stem}-{fingerprint}.{ext}"),
        body,
        kind,
    }
}

static ASSETS: LazyLock<[Asset; 4]> = LazyLock::new(|| {
    [
        asset("app", "css", APP_CSS, "text/css; charset=utf-8"),
        asset("app", "js", APP_JS, "text/javascript; charset=utf-8"),
        asset("htmx", "js", HTMX_JS, "text/javascript; charset=utf-8"),
        asset(
            "passkey",
            "js",
            PASSKEY_JS,
            "text/javascript; charset=utf-8",
        ),
    ]
});

/// URL of the stylesheet, for templates: `{{ crate::platform::assets::css() }}`.
pub fn css() -> &'static str {
    &ASSETS[0].url
}

pub fn js() -> &'static str {
    &ASSETS[1].url
}

pub fn htmx() -> &'static str {
    &ASSETS[2].url
}

/// WebAuthn for the passkey buttons, only on the pages that have one.
pub fn passkey_js() -> &'static str {
    &ASSETS[3].url
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/assets/{name}");
    let Some(a) = ASSETS.iter().find(|a| a.url == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut res = a.body.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    res
}
