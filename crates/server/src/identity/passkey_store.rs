//! SQL for passkeys and the state of their ceremonies (migration 0005).

use sqlx::{AnyPool, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    /// base64url of the authenticator's credential id.
    pub credential_id: String,
    /// base64url of the WebAuthn user handle given to the authenticator.
    pub user_handle: String,
    /// webauthn-rs `Passkey` as JSON (public key, counter, flags).
    pub credential: String,
    pub name: String,
    pub sign_count: i64,
    pub backup_eligible: i32,
    pub backed_up: i32,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// The columns of `PasskeyRow`, as a literal so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, user_id, credential_id, user_handle, credential, name, sign_count, \
         backup_eligible, backed_up, created_at, last_used_at"
    };
}

/// Inserts a passkey; false when its credential id is already registered (to anyone).
pub async fn insert(pool: &AnyPool, p: &PasskeyRow) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, user_handle, credential, name, sign_count, \
         backup_eligible, backed_up, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (credential_id) DO NOTHING",
    )
    .bind(&p.id)
    .bind(&p.user_id)
    .bind(&p.credential_id)
    .bind(&p.user_handle)
    .bind(&p.credential)
    .bind(&p.name)
    .bind(p.sign_count)
    .bind(p.backup_eligible)
    .bind(p.backed_up)
    .bind(p.created_at)
    .bind(p.last_used_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A user's passkeys, oldest first.
pub async fn list_for_user(pool: &AnyPool, user_id: &str) -> Result<Vec<PasskeyRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

pub async fn count_for_user(pool: &AnyPool, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await
}

pub async fn by_credential_id(
    pool: &AnyPool,
    credential_id: &str,
) -> Result<Option<PasskeyRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM passkeys WHERE credential_id = $1"
    ))
    .bind(credential_id)
    .fetch_optional(pool)
    .await
}

/// Stores the credential after a successful assertion. The counter only moves forward: the
/// update applies only while the stored count is below `sign_count` (or the authenticator keeps
/// no counter, `sign_count` 0), so two concurrent uses of one counter value cannot both pass.
/// False when the update did not apply.
pub async fn record_use(
    pool: &AnyPool,
    id: &str,
    credential: &str,
    sign_count: i64,
    backed_up: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE passkeys SET credential = $2, sign_count = $3, backed_up = $4, last_used_at = $5 \
         WHERE id = $1 AND (sign_count < $3 OR $3 = 0)",
    )
    .bind(id)
    .bind(credential)
    .bind(sign_count)
    .bind(i32::from(backed_up))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Renames one of the user's passkeys; false when the user has no such passkey.
pub async fn rename(
    pool: &AnyPool,
    user_id: &str,
    id: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE passkeys SET name = $3 WHERE id = $2 AND user_id = $1")
        .bind(user_id)
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes one of the user's passkeys unless `keep_one` and it is the last one, in one
/// statement so two concurrent deletions cannot remove the last two. Returns whether it was
/// deleted; `exists` tells a missing passkey from a refused last one.
pub async fn delete(
    pool: &AnyPool,
    user_id: &str,
    id: &str,
    keep_one: bool,
) -> Result<bool, sqlx::Error> {
    let r = if keep_one {
        sqlx::query(
            "DELETE FROM passkeys WHERE id = $2 AND user_id = $1 \
             AND (SELECT COUNT(*) FROM passkeys WHERE user_id = $1) > 1",
        )
        .bind(user_id)
        .bind(id)
        .execute(pool)
        .await?
    } else {
        sqlx::query("DELETE FROM passkeys WHERE id = $2 AND user_id = $1")
            .bind(user_id)
            .bind(id)
            .execute(pool)
            .await?
    };
    Ok(r.rows_affected() == 1)
}

pub async fn exists(pool: &AnyPool, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE id = $2 AND user_id = $1")
        .bind(user_id)
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

// ---- ceremonies ----

#[derive(Debug, FromRow)]
pub struct CeremonyRow {
    pub kind: String,
    pub user_id: Option<String>,
    pub state: String,
    pub expires_at: i64,
}

pub async fn insert_ceremony(
    pool: &AnyPool,
    id_hash: &str,
    kind: &str,
    user_id: Option<&str>,
    state: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    // Expired rows are swept on the way in: they are few and short-lived.
    sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO passkey_ceremonies (id_hash, kind, user_id, state, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(kind)
    .bind(user_id)
    .bind(state)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// How many ceremonies of a kind are live: anonymous sign-in ceremonies are capped.
pub async fn live_ceremonies(pool: &AnyPool, kind: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM passkey_ceremonies WHERE kind = $1 AND expires_at > $2",
    )
    .bind(kind)
    .bind(now)
    .fetch_one(pool)
    .await
}

/// Retires the live ceremonies of one kind for an account (a newer one replaces them: at most
/// one password-reset ceremony per account is live).
pub async fn delete_ceremonies_of(
    pool: &AnyPool,
    kind: &str,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM passkey_ceremonies WHERE kind = $1 AND user_id = $2")
        .bind(kind)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Takes a ceremony out: whoever deletes the row owns it, so it is answered at most once, even
/// by concurrent requests. The caller checks kind, user and expiry.
pub async fn take_ceremony(
    pool: &AnyPool,
    id_hash: &str,
) -> Result<Option<CeremonyRow>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM passkey_ceremonies WHERE id_hash = $1 RETURNING kind, user_id, state, expires_at",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await
}
