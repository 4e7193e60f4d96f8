//! `Idempotency-Key` on every creating POST of the API. The first request with a key claims it;
//! its response is stored and replayed for a retry with the same body. The same key with another
//! body is refused (422); a retry while the first is still running gets 409. Keys are scoped to
//! the caller (a hash of the bearer token), so one client cannot read another's responses.
//! Server errors release the claim so the client may retry.

use super::auth::bearer;
use super::error::AppError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
/// How long a stored response is replayed.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(req).await;
    };
    match run(state, key, req, next).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn run(state: AppState, key: String, req: Request, next: Next) -> Result<Response, AppError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(clipcart_domain::DomainError::invalid(
            "Idempotency-Key",
            "use 1 to 255 visible ASCII characters, e.g. a UUID",
        )
        .into());
    }
    let scope = hex::encode(Sha256::digest(
        bearer(req.headers()).unwrap_or("anonymous").as_bytes(),
    ));
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, state.config.body_limit)
        .await
        .map_err(|_| AppError::PayloadTooLarge)?;
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.query().unwrap_or("").as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());
    let now = state.now_ms();

    // Expired keys may be claimed afresh.
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at < $3")
        .bind(&scope)
        .bind(&key)
        .bind(now - RETENTION_MS)
        .execute(&state.db.write)
        .await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body, created_at) \
         VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(&scope)
    .bind(&key)
    .bind(&request_hash)
    .bind(now)
    .execute(&state.db.write)
    .await?
    .rows_affected()
        == 1;

    if !claimed {
        let (stored_hash, status, body): (String, i64, String) = sqlx::query_as(
            "SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(&scope)
        .bind(&key)
        .fetch_one(&state.db.read)
        .await?;
        if stored_hash != request_hash {
            return Err(AppError::IdempotencyMismatch);
        }
        if status == 0 {
            return Err(AppError::IdempotencyInProgress);
        }
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let mut res = (status, body).into_response();
        let content_type = if status.is_success() {
            "application/json"
        } else {
            "application/problem+json"
        };
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(res);
    }

    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = res.status();
    if status.is_server_error() {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(&scope)
            .bind(&key)
            .execute(&state.db.write)
            .await?;
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading response body: {e}")))?;
    sqlx::query("UPDATE idempotency_keys SET status_code = $1, response_body = $2 WHERE scope = $3 AND key = $4")
        .bind(i64::from(status.as_u16()))
        .bind(String::from_utf8_lossy(&bytes).into_owned())
        .bind(&scope)
        .bind(&key)
        .execute(&state.db.write)
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
