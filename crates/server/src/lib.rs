//! Clipcart's server: storage, services and HTTP, one folder per capability
//! (see docs/architecture.md). `build_state` wires the parts; `router` assembles the routes;
//! `serve` runs them until shutdown.

pub mod catalog;
pub mod demo;
pub mod finance;
pub mod identity;
pub mod onboarding;
pub mod orders;
pub mod payments;
pub mod platform;
pub mod state;

use crate::identity::password::PasswordHasher;
use crate::payments::testpay::TestProcessor;
use crate::platform::clock::SharedClock;
use crate::platform::config::Config;
use crate::platform::db::Db;
use crate::platform::http::{csrf, error, idempotency, middleware};
use crate::state::{AppState, Inner};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, middleware as mw};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Connects, migrates and wires the application state.
pub async fn build_state(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    let db = Db::connect(&config.database_url, config.max_connections).await?;
    db.migrate().await?;
    let (vault, generated_master_key) =
        platform::crypto::Vault::open(&db, &config.master_key, &config.data_dir, clock.clone())
            .await?;
    if let Some(generated) = &generated_master_key {
        tracing::warn!(path = %generated.path.display(), "generated a new master key (owner-only file): back it up apart from the database; without it the encrypted data cannot be read");
    }
    // Values written before the vault existed are encrypted once, column by column.
    platform::keys::sweep_legacy(&db, &vault).await?;
    let fingerprint_key = platform::secrets::get_or_create(&db, "testpay_fingerprint").await?;
    let sign_in_key = platform::secrets::get_or_create(&db, "sign_in_throttle").await?;
    let testpay = Arc::new(TestProcessor::new(
        db.clone(),
        clock.clone(),
        fingerprint_key,
    ));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let hasher = PasswordHasher::new(cores, Duration::from_secs(2))?;
    let mail = platform::mail::Mailer::from_config(&config)?;
    let secure = config.cookies_can_be_secure();
    if !secure {
        tracing::warn!(public_url = %config.public_url, "public URL is plain HTTP on a non-loopback host: cookies are not marked Secure; put Clipcart behind HTTPS");
    }
    Ok(AppState::new(Inner {
        db,
        clock,
        hasher,
        sign_in_key,
        payments: testpay.clone(),
        testpay: Some(testpay),
        session_cookie: if secure {
            "__Host-clipcart_session"
        } else {
            "clipcart_session"
        },
        csrf_cookie: if secure {
            "__Host-clipcart_csrf"
        } else {
            "clipcart_csrf"
        },
        secure_cookies: secure,
        device_cookie: if secure {
            "__Host-cc_device"
        } else {
            "cc_device"
        },
        mail,
        vault: Arc::new(vault),
        generated_master_key,
        config,
    }))
}

/// The JSON API under `/api/v1` and its OpenAPI document.
pub fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(platform::openapi::ApiDoc::openapi())
        .merge(identity::api::router())
        .merge(identity::email_api::router())
        .merge(identity::staff_api::router())
        .merge(onboarding::api::router())
        .merge(catalog::api::router())
        .merge(orders::api::router())
        .split_for_parts();
    let router = router
        .fallback(error::api_not_found)
        .layer(mw::from_fn_with_state(state.clone(), idempotency::layer));
    (router, doc)
}

pub fn router(state: AppState) -> Router {
    let bench = state.config.bench_routes.then(platform::bench::router);
    let (api, doc) = api(&state);
    let doc_json = Arc::new(doc.to_pretty_json().unwrap_or_default());
    let ops = Arc::new(platform::openapi::operations(&doc));
    let pages = Router::new()
        .merge(identity::pages::router())
        .merge(identity::staff_pages::router())
        .merge(onboarding::pages::router())
        .merge(catalog::pages::router())
        .merge(orders::pages::router())
        .merge(payments::testpay::router())
        .merge(identity::email_pages::router())
        .merge(platform::mail::dev_router())
        .merge(platform::audit_pages::router())
        .route(
            "/docs/api",
            get(move || {
                let ops = ops.clone();
                async move { platform::openapi::docs_page(&ops) }
            }),
        )
        .route(
            "/docs/problems",
            get(|| async { platform::openapi::problems_page() }),
        )
        .layer(mw::from_fn_with_state(state.clone(), csrf::layer));
    let app = Router::new()
        .nest("/api/v1", api)
        .route(
            "/api/openapi.json",
            get(move || {
                let d = doc_json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        d.as_ref().clone(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/assets/{name}", get(platform::assets::serve))
        .merge(pages)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        // A panic in a handler becomes a logged 500 problem, not a dropped connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(mw::from_fn(middleware::security_headers))
        .layer(mw::from_fn(middleware::request_context));
    // Benchmark baselines, only when asked for, merged after the layers so none applies to them.
    match bench {
        Some(b) => app.merge(b).with_state(state),
        None => app.with_state(state),
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    error::AppError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = state.db.clone();
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    // Mail delivery: woken after each commit that queued mail (see `platform::mail`).
    let mail = tokio::spawn(platform::mail::deliver(state.clone()));
    let app = router(state);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    housekeeping.abort();
    mail.abort();
    db.close().await;
    Ok(served?)
}

/// Periodic clean-up on every node; each step is idempotent, so nodes may overlap.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match idempotency::purge_expired(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency records removed"),
            Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
        }
        match platform::mail::purge_old(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "old outbox mail removed"),
            Err(e) => tracing::warn!(error = %e, "outbox purge failed"),
        }
    }
}
