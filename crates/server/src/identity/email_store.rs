//! SQL for email: verified addresses, anti-phishing codes, single-use mailed links and known
//! devices. Links are stored only as the SHA-256 digest of their token. The anti-phishing code
//! is a vault ciphertext (`crypto::columns::USER_ANTI_PHISHING_CODE`); `''` (not chosen) stays
//! `''`.

use crate::platform::crypto::{Vault, columns};
use crate::platform::http::AppResult;
use sqlx::{AnyConnection, AnyPool, FromRow};

/// What a mailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
    EmailChange,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
            Purpose::EmailChange => "email_change",
        }
    }
}

#[derive(Debug, FromRow)]
pub struct TokenRow {
    pub user_id: String,
    /// The address the link proves.
    pub email: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub struct NewToken<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub purpose: Purpose,
    pub email: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Stores a new link, first retiring the user's unused links of the same purpose: only the
/// newest link works.
pub async fn replace_token(conn: &mut AnyConnection, t: &NewToken<'_>) -> Result<(), sqlx::Error> {
    retire_tokens(conn, t.user_id, Some(t.purpose), t.now).await?;
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.token_hash)
    .bind(t.user_id)
    .bind(t.purpose.as_str())
    .bind(t.email)
    .bind(t.now)
    .bind(t.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the user's unused links (of one purpose, or all) as used.
pub async fn retire_tokens(
    conn: &mut AnyConnection,
    user_id: &str,
    purpose: Option<Purpose>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let r = match purpose {
        Some(p) => {
            sqlx::query(
                "UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at = 0",
            )
            .bind(now)
            .bind(user_id)
            .bind(p.as_str())
            .execute(&mut *conn)
            .await?
        }
        None => {
            sqlx::query("UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND used_at = 0")
                .bind(now)
                .bind(user_id)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(r.rows_affected())
}

/// A usable link (unused, not expired), without using it.
pub async fn usable_token(
    pool: &AnyPool,
    token_hash: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, email, created_at, expires_at FROM email_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at = 0 AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await
}

/// Uses a link: one statement, so two concurrent uses cannot both succeed. `None` when it is
/// unknown, used, replaced or expired.
pub async fn use_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE email_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_at = 0 AND expires_at > $1 \
         RETURNING user_id, email, created_at, expires_at",
    )
    .bind(now)
    .bind(token_hash)
    .bind(purpose.as_str())
    .fetch_optional(&mut *conn)
    .await
}

/// When the user's newest link of this purpose was made (any state), if ever.
pub async fn latest_token_at(
    pool: &AnyPool,
    user_id: &str,
    purpose: Purpose,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MAX(created_at) FROM email_tokens WHERE user_id = $1 AND purpose = $2",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .fetch_one(pool)
    .await
}

/// The address of the user's pending email change (a usable link), if any.
pub async fn pending_change(
    pool: &AnyPool,
    user_id: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT email FROM email_tokens WHERE user_id = $1 AND purpose = 'email_change' \
         AND used_at = 0 AND expires_at > $2 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(now)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct EmailState {
    pub email: String,
    pub display_name: String,
    pub email_verified_at: i64,
}

pub async fn email_state<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
) -> Result<Option<EmailState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT email, display_name, email_verified_at FROM users WHERE id = $1 AND disabled = 0",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Marks the address verified if it still is `email`; false otherwise (changed meanwhile).
pub async fn mark_verified<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
    email: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email = $3 AND email_verified_at = 0",
    )
    .bind(now)
    .bind(user_id)
    .bind(email)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether any account (enabled or not) has this address.
pub async fn email_taken<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    email: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(db)
        .await?;
    Ok(n > 0)
}

/// Moves the account to a new, verified address; false when the account is gone or disabled.
pub async fn change_email(
    conn: &mut AnyConnection,
    user_id: &str,
    new_email: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET email = $1, email_verified_at = $2 WHERE id = $3 AND disabled = 0",
    )
    .bind(new_email)
    .bind(now)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Decrypts a stored anti-phishing code of user `user_id`; `''` (not chosen) stays `''`.
pub async fn open_anti_phishing_code(
    vault: &Vault,
    user_id: &str,
    stored: &str,
) -> AppResult<String> {
    if stored.is_empty() {
        return Ok(String::new());
    }
    Ok(vault
        .decrypt(&columns::USER_ANTI_PHISHING_CODE.aad(user_id), stored)
        .await?)
}

/// The user's anti-phishing code in plain text (`''` when not chosen); `None` when the account
/// is gone or disabled.
pub async fn anti_phishing_code(
    pool: &AnyPool,
    vault: &Vault,
    user_id: &str,
) -> AppResult<Option<String>> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT anti_phishing_code FROM users WHERE id = $1 AND disabled = 0")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    match stored {
        Some(s) => Ok(Some(open_anti_phishing_code(vault, user_id, &s).await?)),
        None => Ok(None),
    }
}

pub async fn set_anti_phishing_code(
    pool: &AnyPool,
    vault: &Vault,
    user_id: &str,
    code: &str,
) -> AppResult<bool> {
    let sealed = if code.is_empty() {
        String::new()
    } else {
        vault
            .encrypt(&columns::USER_ANTI_PHISHING_CODE.aad(user_id), code)
            .await?
    };
    let r = sqlx::query("UPDATE users SET anti_phishing_code = $1 WHERE id = $2 AND disabled = 0")
        .bind(&sealed)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---- Known devices ----

/// Records a sign-in from a device; returns (whether it was known, how many devices the user
/// had before).
pub async fn note_device(
    conn: &mut AnyConnection,
    user_id: &str,
    device_hash: &str,
    label: &str,
    now: i64,
) -> Result<(bool, i64), sqlx::Error> {
    let touched = sqlx::query(
        "UPDATE known_devices SET last_seen_at = $1, label = $2 WHERE user_id = $3 AND device_hash = $4",
    )
    .bind(now)
    .bind(label)
    .bind(user_id)
    .bind(device_hash)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if touched > 0 {
        return Ok((true, 0));
    }
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM known_devices WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO known_devices (user_id, device_hash, label, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, device_hash) DO NOTHING",
    )
    .bind(user_id)
    .bind(device_hash)
    .bind(label)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    // Lost a race with a concurrent sign-in from the same device: that one alerted.
    Ok((inserted == 0, before))
}
