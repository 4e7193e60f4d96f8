//! `Idempotency-Key` on every creating POST of the API. The first request with a key claims it;
//! its response is stored and replayed for a retry with the same body. The same key with another
//! body is refused (422); a retry while the first is still running gets 409. Keys are scoped to
//! the caller (a hash of the bearer token), so one client cannot read another's responses.
//! Outcomes that may change on a retry (5xx, 401, 403, 408, 429) release the claim instead of
//! being stored. A claim whose request died (a crash, a panic) is taken over after a lease.
//! Credential-issuing routes (`/auth/…`) and anonymous calls are not recorded: their responses
//! would be secrets, or would be shared by every anonymous client.

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
/// After this long, an unfinished claim is presumed dead and may be taken over.
pub const LEASE_MS: i64 = 60 * 1000;

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
    let path = req.uri().path();
    let credentials = path.starts_with("/auth/") || path.starts_with("/api/v1/auth/");
    if credentials || bearer(req.headers()).is_none() {
        return next.run(req).await;
    }
    match run(state, key, req, next).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

fn replay(status: i64, body: String) -> Response {
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
    res
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
        bearer(req.headers()).unwrap_or("").as_bytes(),
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

    let mut claimed = false;
    // Two rounds at most: the second after removing an expired or abandoned claim.
    for _ in 0..2 {
        claimed = sqlx::query(
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
        if claimed {
            break;
        }
        let stored: Option<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT request_hash, status_code, response_body, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(&scope)
        .bind(&key)
        .fetch_optional(&state.db.write)
        .await?;
        let Some((stored_hash, status, body, created_at)) = stored else {
            continue; // released meanwhile: claim it
        };
        let expired = created_at < now - RETENTION_MS;
        let abandoned = status == 0 && created_at < now - LEASE_MS;
        if expired || abandoned {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at = $3 AND status_code = $4",
            )
            .bind(&scope)
            .bind(&key)
            .bind(created_at)
            .bind(status)
            .execute(&state.db.write)
            .await?;
            continue;
        }
        if stored_hash != request_hash {
            return Err(AppError::IdempotencyMismatch);
        }
        if status == 0 {
            return Err(AppError::IdempotencyInProgress);
        }
        return Ok(replay(status, body));
    }
    if !claimed {
        return Err(AppError::IdempotencyInProgress);
    }

    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = res.status();
    let retryable = status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        );
    if retryable {
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

/// Deletes records past their retention; run periodically.
pub async fn purge_expired(state: &AppState) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(state.now_ms() - RETENTION_MS)
        .execute(&state.db.write)
        .await?;
    Ok(r.rows_affected())
}
