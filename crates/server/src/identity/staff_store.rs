//! SQL for shop staff: custom roles, members and invitations. Every query names the shop, so
//! one shop's owner can never reach another shop's staff.

use sqlx::{AnyConnection, AnyPool, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub permissions: String,
    pub created_at: i64,
}

pub async fn roles(pool: &AnyPool, shop_id: &str) -> Result<Vec<RoleRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, permissions, created_at FROM shop_roles WHERE shop_id = $1 ORDER BY name, id",
    )
    .bind(shop_id)
    .fetch_all(pool)
    .await
}

pub async fn role<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    shop_id: &str,
    role_id: &str,
) -> Result<Option<RoleRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, permissions, created_at FROM shop_roles WHERE shop_id = $1 AND id = $2",
    )
    .bind(shop_id)
    .bind(role_id)
    .fetch_optional(db)
    .await
}

/// False when the shop already has a role of that name.
pub async fn insert_role(
    pool: &AnyPool,
    shop_id: &str,
    role: &RoleRow,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO shop_roles (id, shop_id, name, permissions, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (shop_id, name) DO NOTHING",
    )
    .bind(&role.id)
    .bind(shop_id)
    .bind(&role.name)
    .bind(&role.permissions)
    .bind(role.created_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub enum RoleUpdate {
    Updated,
    NotFound,
    NameTaken,
}

pub async fn update_role(
    pool: &AnyPool,
    shop_id: &str,
    role_id: &str,
    name: &str,
    permissions: &str,
    now: i64,
) -> Result<RoleUpdate, sqlx::Error> {
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT id FROM shop_roles WHERE shop_id = $1 AND name = $2 AND id <> $3",
    )
    .bind(shop_id)
    .bind(name)
    .bind(role_id)
    .fetch_optional(pool)
    .await?;
    if taken.is_some() {
        return Ok(RoleUpdate::NameTaken);
    }
    let r = sqlx::query(
        "UPDATE shop_roles SET name = $1, permissions = $2, updated_at = $3 WHERE shop_id = $4 AND id = $5",
    )
    .bind(name)
    .bind(permissions)
    .bind(now)
    .bind(shop_id)
    .bind(role_id)
    .execute(pool)
    .await?;
    Ok(if r.rows_affected() == 1 {
        RoleUpdate::Updated
    } else {
        RoleUpdate::NotFound
    })
}

/// Deletes a custom role nobody holds and no pending invitation offers, in one statement so a
/// concurrent invitation cannot slip in between the check and the delete. `None`: no such
/// role; `Some(false)`: still in use.
pub async fn delete_unused_role(
    conn: &mut AnyConnection,
    shop_id: &str,
    role_id: &str,
) -> Result<Option<bool>, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM shop_roles WHERE shop_id = $1 AND id = $2 \
           AND NOT EXISTS (SELECT 1 FROM shop_members m WHERE m.shop_id = $1 AND m.role = $2) \
           AND NOT EXISTS (SELECT 1 FROM staff_invitations i \
                           WHERE i.shop_id = $1 AND i.role = $2 AND i.status = 'pending')",
    )
    .bind(shop_id)
    .bind(role_id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 1 {
        return Ok(Some(true));
    }
    let exists = role(&mut *conn, shop_id, role_id).await?.is_some();
    Ok(exists.then_some(false))
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub created_at: i64,
}

pub async fn members(pool: &AnyPool, shop_id: &str) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at \
         FROM shop_members m JOIN users u ON u.id = m.user_id \
         WHERE m.shop_id = $1 ORDER BY m.created_at, m.user_id",
    )
    .bind(shop_id)
    .fetch_all(pool)
    .await
}

pub async fn count_members(pool: &AnyPool, shop_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM shop_members WHERE shop_id = $1")
        .bind(shop_id)
        .fetch_one(pool)
        .await
}

pub async fn set_member_role(
    pool: &AnyPool,
    shop_id: &str,
    user_id: &str,
    role: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE shop_members SET role = $1 WHERE shop_id = $2 AND user_id = $3")
        .bind(role)
        .bind(shop_id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Removes a member and ends every session and API token of theirs, in one transaction: a
/// removed person keeps no way into the shop.
pub async fn remove_member(
    conn: &mut AnyConnection,
    shop_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM shop_members WHERE shop_id = $1 AND user_id = $2")
        .bind(shop_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

pub async fn insert_member(
    conn: &mut AnyConnection,
    shop_id: &str,
    user_id: &str,
    role: &str,
    invited_by: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO shop_members (user_id, shop_id, role, invited_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(shop_id)
    .bind(role)
    .bind(invited_by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub shop_id: String,
    pub email: String,
    pub role: String,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub status: String,
}

const INVITATION_COLUMNS: &str =
    "id, shop_id, email, role, invited_by, created_at, expires_at, status";

pub async fn insert_invitation(
    conn: &mut AnyConnection,
    inv: &InvitationRow,
    token_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO staff_invitations (id, shop_id, email, role, token_hash, invited_by, created_at, expires_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
    )
    .bind(&inv.id)
    .bind(&inv.shop_id)
    .bind(&inv.email)
    .bind(&inv.role)
    .bind(token_hash)
    .bind(&inv.invited_by)
    .bind(inv.created_at)
    .bind(inv.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Pending invitations of the shop that have not expired, newest first.
pub async fn pending_invitations(
    pool: &AnyPool,
    shop_id: &str,
    now: i64,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {INVITATION_COLUMNS} FROM staff_invitations \
         WHERE shop_id = $1 AND status = 'pending' AND expires_at > $2 ORDER BY created_at DESC, id"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shop_id)
        .bind(now)
        .fetch_all(pool)
        .await
}

/// A pending invitation to the same address: inviting again replaces it.
pub async fn revoke_pending_for_email(
    conn: &mut AnyConnection,
    shop_id: &str,
    email: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE staff_invitations SET status = 'revoked', decided_at = $1 \
         WHERE shop_id = $2 AND email = $3 AND status = 'pending'",
    )
    .bind(now)
    .bind(shop_id)
    .bind(email)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

pub async fn revoke_invitation(
    pool: &AnyPool,
    shop_id: &str,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE staff_invitations SET status = 'revoked', decided_at = $1 \
         WHERE shop_id = $2 AND id = $3 AND status = 'pending'",
    )
    .bind(now)
    .bind(shop_id)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn invitation_by_token(
    db: impl sqlx::Executor<'_, Database = sqlx::Any>,
    token_hash: &str,
) -> Result<Option<InvitationRow>, sqlx::Error> {
    let sql = format!("SELECT {INVITATION_COLUMNS} FROM staff_invitations WHERE token_hash = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(token_hash)
        .fetch_optional(db)
        .await
}

/// Marks a pending, unexpired invitation accepted; false when it was used, revoked or expired
/// meanwhile (the conditional update is what makes an invitation single-use under races).
pub async fn accept_invitation(
    conn: &mut AnyConnection,
    id: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE staff_invitations SET status = 'accepted', accepted_by = $1, decided_at = $2 \
         WHERE id = $3 AND status = 'pending' AND expires_at > $2",
    )
    .bind(user_id)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The shop's name, for invitation mails and pages.
pub async fn shop_name(
    db: impl sqlx::Executor<'_, Database = sqlx::Any>,
    shop_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM shops WHERE id = $1")
        .bind(shop_id)
        .fetch_optional(db)
        .await
}

/// Whether the account owns a shop or already works for one.
pub async fn has_shop(
    db: impl sqlx::Executor<'_, Database = sqlx::Any>,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM shops WHERE owner_user_id = $1) \
              + (SELECT COUNT(*) FROM shop_members WHERE user_id = $1)",
    )
    .bind(user_id)
    .fetch_one(db)
    .await?;
    Ok(n > 0)
}

/// An invitation proves its address: an account created from one starts verified.
pub async fn mark_email_verified(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2")
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn user_email(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
}

/// The name of the shop a user owns or works for, if any (a context word for passwords).
pub async fn shop_name_of_user(
    pool: &AnyPool,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.name FROM shops s WHERE s.owner_user_id = $1 \
         UNION ALL \
         SELECT s.name FROM shop_members m JOIN shops s ON s.id = m.shop_id WHERE m.user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}
