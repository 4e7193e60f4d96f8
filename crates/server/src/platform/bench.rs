//! Benchmark baselines (P4 in docs/benchmarks.md; how they are used and why they are fair:
//! bench/README.md). Mounted only when `Config::bench_routes` is on (`CLIPCART_BENCH_ROUTES=1`),
//! and outside every middleware layer: no request id, no log line, no security headers, no CSRF
//! cookie, no session lookup, no template.
//!
//! `GET /__bench/baseline/products/{id}` runs the product page's two queries
//! (`catalog::store::live_product` and `catalog::store::variants`: the same SQL on the same pool;
//! `/__bench/baseline-session/…` also the session query when a session cookie comes) and answers with the bytes the real product page produces for the same viewer and the same
//! rows. Those bytes come from the real renderer, run once per (product, viewer cookies, rows)
//! and kept; a change in any row re-renders. So each request does the page's database work and
//! sends an identical body, and skips exactly what P4 weighs: middleware, session and templating.

use crate::catalog::{pages, store};
use crate::identity::service as identity;
use crate::identity::store as identity_store;
use crate::platform::http::AppError;
use crate::platform::http::auth::cookie;
use crate::platform::http::csrf::CsrfToken;
use crate::platform::http::page::FormErrors;
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

/// Captured pages kept at most; the cache is emptied when it would grow past this.
const MAX_CACHED: usize = 256;

/// The real page's answer for one product, viewer and set of rows.
#[derive(Clone)]
struct Captured {
    rows: u64,
    status: StatusCode,
    content_type: HeaderValue,
    body: Bytes,
}

/// (product id, CSRF cookie, session cookie) → the captured page.
type Cache = Arc<Mutex<HashMap<(String, String, String), Captured>>>;

/// The baseline routes: `/__bench/baseline/products/{id}` runs the catalogue's two queries;
/// `/__bench/baseline-session/products/{id}` also reads the session row, as the page does for a
/// signed-in viewer, so a signed-in page can be weighed against the same database reads.
pub fn router() -> Router<AppState> {
    let cache: Cache = Arc::default();
    let with_session = cache.clone();
    Router::new()
        .route(
            "/__bench/baseline/products/{id}",
            get(
                move |State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap| {
                    let cache = cache.clone();
                    async move { baseline_product(&state, id, &headers, &cache, false).await }
                },
            ),
        )
        .route(
            "/__bench/baseline-session/products/{id}",
            get(
                move |State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap| {
                    let cache = with_session.clone();
                    async move { baseline_product(&state, id, &headers, &cache, true).await }
                },
            ),
        )
}

async fn baseline_product(
    state: &AppState,
    id: String,
    headers: &HeaderMap,
    cache: &Cache,
    read_session: bool,
) -> Response {
    let session = cookie(headers, state.session_cookie).unwrap_or_default();
    if read_session && !session.is_empty() {
        // The page's session query; its answer is part of the viewer key below.
        if let Err(e) =
            identity_store::session_principal(&state.db.read, &identity::digest(session)).await
        {
            return failed(e.into());
        }
    }
    let product = match store::live_product(&state.db.read, &id).await {
        Ok(Some(p)) => p,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return failed(e.into()),
    };
    let variants = match store::variants(&state.db.read, &product.id).await {
        Ok(v) => v,
        Err(e) => return failed(e.into()),
    };
    let rows = fingerprint(&product, &variants);
    // The same viewer as the real page sees: the CSRF cookie only when the CSRF layer would
    // accept it, and the session cookie.
    let csrf = cookie(headers, state.csrf_cookie)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_default();
    let key = (id, csrf.to_string(), session.to_string());
    let hit = lock(cache).get(&key).filter(|c| c.rows == rows).cloned();
    let page = match hit {
        Some(page) => page,
        None => match capture(state, &key, rows).await {
            Ok(page) => {
                let mut cache = lock(cache);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(key, page.clone());
                page
            }
            Err(e) => return failed(e),
        },
    };
    (
        page.status,
        [(header::CONTENT_TYPE, page.content_type)],
        page.body,
    )
        .into_response()
}

/// Renders the real product page once, through the same function its handler calls.
async fn capture(
    state: &AppState,
    (id, csrf, session): &(String, String, String),
    rows: u64,
) -> Result<Captured, AppError> {
    let principal = if session.is_empty() {
        None
    } else {
        identity::principal_from_session(state, session).await?
    };
    let token = if csrf.is_empty() {
        clipcart_domain::ids::random_secret(20)
    } else {
        csrf.clone()
    };
    let res = match pages::render_product(
        state,
        principal.as_ref(),
        &CsrfToken(token),
        id,
        FormErrors::default(),
    )
    .await
    {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("text/html; charset=utf-8"));
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading the rendered page: {e}")))?;
    Ok(Captured {
        rows,
        status,
        content_type,
        body,
    })
}

/// Everything the page is rendered from, so a changed row never serves a stale page.
fn fingerprint(p: &store::ProductRow, variants: &[store::VariantRow]) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &p.id,
        &p.shop_id,
        &p.title,
        &p.description,
        &p.options_json,
        &p.status,
        &p.currency,
        p.created_at,
        p.updated_at,
    )
        .hash(&mut h);
    for v in variants {
        (
            &v.id,
            &v.option_values_json,
            v.price_minor,
            &v.currency,
            v.stock,
            &v.sku,
            v.position,
        )
            .hash(&mut h);
    }
    h.finish()
}

fn lock(cache: &Cache) -> MutexGuard<'_, HashMap<(String, String, String), Captured>> {
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn failed(e: AppError) -> Response {
    tracing::error!(error = ?e, "benchmark baseline failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

#[cfg(test)]
mod tests {
    use crate::platform::clock::SystemClock;
    use crate::platform::config::Config;
    use axum::body::Body;
    use axum::http::{HeaderMap, Request, StatusCode};
    use std::sync::Arc;
    use tower::ServiceExt;

    const CSRF: &str = "abcdefghijklmnopqrstuvwxyz012345";

    async fn get(app: &axum::Router, path: &str, cookies: &str) -> (StatusCode, HeaderMap, String) {
        let req = Request::get(path)
            .header("cookie", cookies)
            .body(Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("response");
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn baselines_send_the_product_page_bytes_only_when_enabled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = "127.0.0.1:9".parse().expect("addr");
        let mut config = Config::local(dir.path().to_path_buf(), addr);
        config.bench_routes = true;
        let state = crate::build_state(config, Arc::new(SystemClock))
            .await
            .expect("state");
        assert!(crate::demo::seed(&state).await.expect("demo data"));
        let (id,): (String,) =
            sqlx::query_as("SELECT id FROM products WHERE status = 'live' ORDER BY id LIMIT 1")
                .fetch_one(&state.db.read)
                .await
                .expect("a live product");
        let (buyer,): (String,) = sqlx::query_as("SELECT id FROM users WHERE email = $1")
            .bind(crate::demo::BUYER)
            .fetch_one(&state.db.read)
            .await
            .expect("the demo buyer");
        let session = crate::identity::service::start_session(&state, &buyer, "test", None)
            .await
            .expect("session");
        let anonymous = format!("__Host-clipcart_csrf={CSRF}");
        let signed_in = format!("{anonymous}; __Host-clipcart_session={session}");

        let app = crate::router(state.clone());
        for cookies in [&anonymous, &signed_in] {
            let (status, page_headers, page) = get(&app, &format!("/products/{id}"), cookies).await;
            assert_eq!(status, StatusCode::OK);
            assert!(page_headers.contains_key("content-security-policy"));
            assert_eq!(page.contains("id=\"signout\""), cookies == &signed_in);
            for route in ["baseline", "baseline-session", "baseline"] {
                let (status, headers, base) =
                    get(&app, &format!("/__bench/{route}/products/{id}"), cookies).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(base, page, "{route}");
                assert_eq!(headers["content-type"], page_headers["content-type"]);
                assert!(!headers.contains_key("x-request-id"));
                assert!(!headers.contains_key("content-security-policy"));
            }
        }
        let (status, _, _) = get(&app, "/__bench/baseline/products/prd_missing", &anonymous).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let mut off = state.config.clone();
        off.bench_routes = false;
        let plain = crate::build_state(off, Arc::new(SystemClock))
            .await
            .expect("state");
        let app = crate::router(plain);
        let (status, _, _) = get(
            &app,
            &format!("/__bench/baseline/products/{id}"),
            &anonymous,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        state.db.close().await;
    }
}
