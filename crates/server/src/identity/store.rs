//! SQL for users, sessions and API tokens. Secrets are stored only as SHA-256 digests.

use crate::platform::http::auth::{Credential, Principal};
use clipcart_domain::identity::Role;
use clipcart_domain::identity::staff::{Permissions, PresetRole, ShopAccess};
use clipcart_domain::ids;
use clipcart_domain::page::PageRequest;
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

pub async fn insert_user<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    u: &UserRow,
) -> Result<bool, sqlx::Error> {
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
    .execute(db)
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

pub async fn user_by_id(pool: &AnyPool, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, password_hash, display_name, role, created_at FROM users WHERE id = $1 AND disabled = 0",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct PrincipalRow {
    pub user_id: String,
    pub role: String,
    pub email: String,
    pub display_name: String,
    /// The shop the user owns...
    pub owned_shop_id: Option<String>,
    /// ...or works for, with the role's key and, for a custom role, its permissions.
    pub member_shop_id: Option<String>,
    pub member_role: Option<String>,
    pub role_permissions: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub stepped_up_at: i64,
}

impl PrincipalRow {
    pub fn into_principal(self, credential: Credential) -> Option<Principal> {
        let (shop_id, shop_access) = match (self.owned_shop_id, self.member_shop_id) {
            (Some(owned), _) => (Some(owned), Some(ShopAccess::Owner)),
            (None, Some(shop)) => {
                let role = self.member_role.unwrap_or_default();
                let permissions = match PresetRole::parse(&role) {
                    Some(preset) => preset.permissions(),
                    // A custom role: its stored grants; a row that cannot be read grants nothing.
                    None => self
                        .role_permissions
                        .as_deref()
                        .and_then(|p| Permissions::decode(p).ok())
                        .unwrap_or_default(),
                };
                (Some(shop), Some(ShopAccess::Staff { role, permissions }))
            }
            (None, None) => (None, None),
        };
        Some(Principal {
            role: Role::parse(&self.role).ok()?,
            user_id: self.user_id,
            email: self.email,
            display_name: self.display_name,
            shop_id,
            shop_access,
            credential,
            stepped_up_at: self.stepped_up_at,
        })
    }
}

/// The user, their shop and their place in it: owner (`shops.owner_user_id`) or staff
/// (`shop_members`, with the custom role's grants when the role is not a preset).
macro_rules! principal_select {
    ($credential:literal) => {
        concat!(
            "SELECT u.id AS user_id, u.role, u.email, u.display_name, s.id AS owned_shop_id, \
                    m.shop_id AS member_shop_id, m.role AS member_role, r.permissions AS role_permissions, ",
            $credential,
            " JOIN users u ON u.id = c.user_id \
             LEFT JOIN shops s ON s.owner_user_id = u.id \
             LEFT JOIN shop_members m ON m.user_id = u.id \
             LEFT JOIN shop_roles r ON r.id = m.role AND r.shop_id = m.shop_id "
        )
    };
}

pub async fn session_principal(
    pool: &AnyPool,
    id_hash: &str,
) -> Result<Option<PrincipalRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        principal_select!(
            "c.created_at, c.last_seen_at, c.expires_at, c.second_factor_at AS stepped_up_at \
             FROM sessions c"
        ),
        "WHERE c.id_hash = $1 AND u.disabled = 0"
    ))
    .bind(id_hash)
    .fetch_optional(pool)
    .await
}

/// A session whose client address is not known (see `insert_session_from`).
pub async fn insert_session(
    pool: &AnyPool,
    id_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
    user_agent: &str,
) -> Result<(), sqlx::Error> {
    let s = NewSession {
        id_hash,
        public_id: &ids::new_id(SESSION_ID_PREFIX),
        user_id,
        now,
        expires_at,
        user_agent,
        address: "",
        second_factor_at: 0,
    };
    insert_session_from(pool, &s).await
}

/// Sessions are named to their owner by a public id (`ses_…`), never by the cookie value.
pub const SESSION_ID_PREFIX: &str = "ses";

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub public_id: &'a str,
    pub user_id: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub user_agent: &'a str,
    pub address: &'a str,
    /// When a second factor was proved for this session (0: not at this sign-in).
    pub second_factor_at: i64,
}

pub async fn insert_session_from(pool: &AnyPool, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, public_id, user_id, created_at, last_seen_at, expires_at, user_agent, address, second_factor_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)",
    )
    .bind(s.id_hash)
    .bind(s.public_id)
    .bind(s.user_id)
    .bind(s.now)
    .bind(s.expires_at)
    .bind(s.user_agent)
    .bind(s.address)
    .bind(s.second_factor_at)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct SessionRow {
    pub public_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    pub address: String,
}

/// A user's live sessions (not past their absolute end, used after `idle_cutoff`), newest
/// first, keyset paginated (one more than the limit).
pub async fn list_sessions(
    pool: &AnyPool,
    user_id: &str,
    now: i64,
    idle_cutoff: i64,
    page: &PageRequest,
) -> Result<Vec<SessionRow>, sqlx::Error> {
    let (key, id) = crate::catalog::store::after(page);
    sqlx::query_as(
        "SELECT public_id, created_at, last_seen_at, expires_at, user_agent, address FROM sessions \
         WHERE user_id = $1 AND expires_at > $2 AND last_seen_at > $3 \
           AND (created_at < $4 OR (created_at = $4 AND public_id < $5)) \
         ORDER BY created_at DESC, public_id DESC LIMIT $6",
    )
    .bind(user_id)
    .bind(now)
    .bind(idle_cutoff)
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await
}

/// The public id of the session behind a cookie digest.
pub async fn session_public_id(
    pool: &AnyPool,
    id_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT public_id FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .fetch_optional(pool)
        .await
}

/// Ends one of the user's sessions; false when the user has no session with that id.
pub async fn delete_user_session(
    pool: &AnyPool,
    user_id: &str,
    public_id: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND public_id = $2")
        .bind(user_id)
        .bind(public_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Ends every session of the user except the one with digest `keep_hash` (`""` keeps none).
pub async fn delete_other_sessions<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
    keep_hash: &str,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
        .bind(user_id)
        .bind(keep_hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
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

/// Gives the session with digest `old_hash` the digest of a new cookie value, keeping the rest
/// of the row; false when there is no such session.
pub async fn rekey_session(
    pool: &AnyPool,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE sessions SET id_hash = $1 WHERE id_hash = $2")
        .bind(new_hash)
        .bind(old_hash)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
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
        "INSERT INTO api_tokens (id, token_hash, user_id, created_at, last_seen_at, expires_at, stepped_up_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $4)",
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
    sqlx::query_as(concat!(
        principal_select!(
            "c.created_at, c.last_seen_at, c.expires_at, c.stepped_up_at FROM api_tokens c"
        ),
        "WHERE c.token_hash = $1 AND u.disabled = 0"
    ))
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Records a step-up proof on a session (`second_factor_at`) or an API token.
pub async fn record_step_up(
    pool: &AnyPool,
    credential: &Credential,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (sql, hash) = match credential {
        Credential::Session { id_hash } => (
            "UPDATE sessions SET second_factor_at = $1 WHERE id_hash = $2",
            id_hash,
        ),
        Credential::Token { id_hash } => (
            "UPDATE api_tokens SET stepped_up_at = $1 WHERE token_hash = $2",
            id_hash,
        ),
        Credential::Internal => return Ok(()),
    };
    sqlx::query(sql).bind(now).bind(hash).execute(pool).await?;
    Ok(())
}

pub async fn delete_token(pool: &AnyPool, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Replaces the user's password hash; false when there is no such (enabled) user.
pub async fn update_password_hash<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND disabled = 0")
        .bind(password_hash)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Revokes every API token of the user except the one with digest `keep_hash` (`""` keeps
/// none); returns how many were revoked.
pub async fn delete_other_tokens<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
    keep_hash: &str,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(keep_hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}
