//! SQL for users, sessions and API tokens. Secrets are stored only as SHA-256 digests.

use crate::platform::http::auth::Principal;
use clipcart_domain::identity::Role;
use sqlx::{AnyPool, FromRow};

/// No `Debug`: it carries the password hash.
#[derive(FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: String,
    pub created_at: i64,
}

pub async fn insert_user(pool: &AnyPool, u: &UserRow) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO users (id, email, password_hash, display_name, role, created_at, disabled) \
         VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT (email) DO NOTHING",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.password_hash)
    .bind(&u.display_name)
    .bind(&u.role)
    .bind(u.created_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn user_by_email(pool: &AnyPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, password_hash, display_name, role, created_at FROM users WHERE email = $1 AND disabled = 0",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct PrincipalRow {
    pub user_id: String,
    pub role: String,
    pub email: String,
    pub display_name: String,
    pub shop_id: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl PrincipalRow {
    pub fn into_principal(self) -> Option<Principal> {
        Some(Principal {
            role: Role::parse(&self.role).ok()?,
            user_id: self.user_id,
            email: self.email,
            display_name: self.display_name,
            shop_id: self.shop_id,
        })
    }
}

pub async fn session_principal(
    pool: &AnyPool,
    id_hash: &str,
) -> Result<Option<PrincipalRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.role, u.email, u.display_name, s.id AS shop_id, \
                se.created_at, se.last_seen_at, se.expires_at \
         FROM sessions se JOIN users u ON u.id = se.user_id LEFT JOIN shops s ON s.owner_user_id = u.id \
         WHERE se.id_hash = $1 AND u.disabled = 0",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await
}

pub async fn insert_session(
    pool: &AnyPool,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
    user_agent: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, user_agent) \
         VALUES ($1, $2, $3, $3, $4, $5)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .bind(user_agent)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn touch_session(pool: &AnyPool, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete_session(pool: &AnyPool, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn insert_token(
    pool: &AnyPool,
    id: &str,
    token_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_tokens (id, token_hash, user_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(id)
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn token_principal(
    pool: &AnyPool,
    token_hash: &str,
) -> Result<Option<PrincipalRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.role, u.email, u.display_name, s.id AS shop_id, \
                t.created_at, t.last_seen_at, t.expires_at \
         FROM api_tokens t JOIN users u ON u.id = t.user_id LEFT JOIN shops s ON s.owner_user_id = u.id \
         WHERE t.token_hash = $1 AND u.disabled = 0",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

pub async fn delete_token(pool: &AnyPool, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}
