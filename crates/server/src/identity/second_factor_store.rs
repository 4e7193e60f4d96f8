//! SQL for second factors: TOTP seeds, recovery-code digests and pending page sign-ins.
//!
//! TOTP seeds are vault ciphertexts in the database (`crypto::columns::TOTP_SECRET`, bound to
//! the user id): encrypted by `start_totp`, decrypted by `totp`; outside the database they live
//! in a `SecretString`.

use crate::platform::crypto::{Vault, columns};
use crate::platform::http::AppResult;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{AnyPool, FromRow};

/// No `Debug`: it carries the seed (and `SecretString` would redact it anyway).
pub struct TotpRow {
    pub secret: SecretString,
    pub created_at: i64,
    /// 0 while enrolment waits for its first code.
    pub confirmed_at: i64,
    /// The last time step accepted; -1 before any.
    pub last_step: i64,
}

impl TotpRow {
    pub fn active(&self) -> bool {
        self.confirmed_at > 0
    }
}

#[derive(FromRow)]
struct RawTotpRow {
    secret: String,
    created_at: i64,
    confirmed_at: i64,
    last_step: i64,
}

pub async fn totp(pool: &AnyPool, vault: &Vault, user_id: &str) -> AppResult<Option<TotpRow>> {
    let row: Option<RawTotpRow> = sqlx::query_as(
        "SELECT secret, created_at, confirmed_at, last_step FROM totp_factors WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let secret = vault
        .decrypt(&columns::TOTP_SECRET.aad(user_id), &r.secret)
        .await?;
    Ok(Some(TotpRow {
        secret: SecretString::from(secret),
        created_at: r.created_at,
        confirmed_at: r.confirmed_at,
        last_step: r.last_step,
    }))
}

/// Starts (or restarts) an enrolment with a new seed; false when a confirmed factor exists.
pub async fn start_totp(
    pool: &AnyPool,
    vault: &Vault,
    user_id: &str,
    secret: &SecretString,
    now: i64,
) -> AppResult<bool> {
    let sealed = vault
        .encrypt(&columns::TOTP_SECRET.aad(user_id), secret.expose_secret())
        .await?;
    let r = sqlx::query(
        "INSERT INTO totp_factors (user_id, secret, created_at, confirmed_at, last_step) \
         VALUES ($1, $2, $3, 0, -1) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = -1 \
         WHERE totp_factors.confirmed_at = 0",
    )
    .bind(user_id)
    .bind(&sealed)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records `step` as accepted unless it (or a later one) already was: the single-use rule,
/// atomic against concurrent uses of the same code. Confirms a pending enrolment when
/// `confirm_at` is set. True when this call accepted the step.
pub async fn accept_step(
    pool: &AnyPool,
    user_id: &str,
    step: i64,
    confirm_at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let r = match confirm_at {
        Some(at) => {
            sqlx::query(
                "UPDATE totp_factors SET last_step = $2, confirmed_at = $3 \
                 WHERE user_id = $1 AND last_step < $2 AND confirmed_at = 0",
            )
            .bind(user_id)
            .bind(step)
            .bind(at)
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE totp_factors SET last_step = $2 \
                 WHERE user_id = $1 AND last_step < $2 AND confirmed_at > 0",
            )
            .bind(user_id)
            .bind(step)
            .execute(pool)
            .await?
        }
    };
    Ok(r.rows_affected() == 1)
}

/// Removes the TOTP factor and every recovery code.
pub async fn delete_second_factors(pool: &AnyPool, user_id: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Replaces the user's recovery codes with these digests (the old set stops working).
pub async fn replace_recovery_codes(
    pool: &AnyPool,
    user_id: &str,
    digests: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for d in digests {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at) VALUES ($1, $2, $3, 0)",
        )
        .bind(user_id)
        .bind(d)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Marks an unused recovery code used; true when it existed and was unused (single use,
/// atomic).
pub async fn use_recovery_code(
    pool: &AnyPool,
    user_id: &str,
    digest: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at = 0",
    )
    .bind(user_id)
    .bind(digest)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn unused_recovery_codes(pool: &AnyPool, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at = 0")
        .bind(user_id)
        .fetch_one(pool)
        .await
}

pub async fn insert_pending(
    pool: &AnyPool,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    // Expired rows are swept on the way in: they are few and short-lived.
    sqlx::query("DELETE FROM pending_second_factors WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO pending_second_factors (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The user of an unexpired pending sign-in.
pub async fn pending_user(
    pool: &AnyPool,
    id_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM pending_second_factors WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
}

pub async fn delete_pending(pool: &AnyPool, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pending_second_factors WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}
