//! SQL for shops and their applications. The tax id and the address are vault ciphertexts in
//! the database (`platform::crypto`): encrypted in `insert`, decrypted by every read here, so a
//! `ShopRow` always holds plaintext.

use crate::platform::crypto::{Vault, columns};
use crate::platform::http::AppResult;
use clipcart_domain::page::PageRequest;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct ShopRow {
    pub id: String,
    pub owner_user_id: String,
    pub name: String,
    pub seller_type: String,
    pub status: String,
    pub currency: String,
    pub tax_id: String,
    pub address_json: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decision_reason: Option<String>,
}

const COLUMNS: &str = "id, owner_user_id, name, seller_type, status, currency, tax_id, address_json, created_at, decided_at, decision_reason";

/// Decrypts the vault columns of a row as read from the database.
async fn open(vault: &Vault, mut s: ShopRow) -> AppResult<ShopRow> {
    s.tax_id = vault
        .decrypt(&columns::SHOP_TAX_ID.aad(&s.id), &s.tax_id)
        .await?;
    s.address_json = vault
        .decrypt(&columns::SHOP_ADDRESS.aad(&s.id), &s.address_json)
        .await?;
    Ok(s)
}

async fn open_all(vault: &Vault, rows: Vec<ShopRow>) -> AppResult<Vec<ShopRow>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(open(vault, row).await?);
    }
    Ok(out)
}

pub async fn insert(pool: &AnyPool, vault: &Vault, s: &ShopRow) -> AppResult<bool> {
    let tax_id = vault
        .encrypt(&columns::SHOP_TAX_ID.aad(&s.id), &s.tax_id)
        .await?;
    let address_json = vault
        .encrypt(&columns::SHOP_ADDRESS.aad(&s.id), &s.address_json)
        .await?;
    let r = sqlx::query(
        "INSERT INTO shops (id, owner_user_id, name, seller_type, status, currency, tax_id, address_json, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (owner_user_id) DO NOTHING",
    )
    .bind(&s.id)
    .bind(&s.owner_user_id)
    .bind(&s.name)
    .bind(&s.seller_type)
    .bind(&s.status)
    .bind(&s.currency)
    .bind(&tax_id)
    .bind(&address_json)
    .bind(s.created_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn by_owner(pool: &AnyPool, vault: &Vault, owner: &str) -> AppResult<Option<ShopRow>> {
    let row: Option<ShopRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM shops WHERE owner_user_id = $1"
    )))
    .bind(owner)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(s) => Ok(Some(open(vault, s).await?)),
        None => Ok(None),
    }
}

pub async fn by_id(pool: &AnyPool, vault: &Vault, id: &str) -> AppResult<Option<ShopRow>> {
    let row: Option<ShopRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM shops WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(s) => Ok(Some(open(vault, s).await?)),
        None => Ok(None),
    }
}

/// Shops in a status, oldest first (a review queue is worked from the front).
pub async fn list_by_status(
    pool: &AnyPool,
    vault: &Vault,
    status: &str,
    page: &PageRequest,
) -> AppResult<Vec<ShopRow>> {
    let (key, id) = page
        .after
        .as_ref()
        .map(|c| (c.key, c.id.clone()))
        .unwrap_or((i64::MIN, String::new()));
    let rows = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM shops WHERE status = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
         ORDER BY created_at, id LIMIT $4"
    )))
    .bind(status)
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await?;
    open_all(vault, rows).await
}

/// Records a decision, only if the shop is still in `from` (two admins cannot both decide).
pub async fn decide(
    conn: &mut AnyConnection,
    id: &str,
    from: &str,
    to: &str,
    admin: &str,
    reason: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE shops SET status = $1, decided_at = $2, decided_by = $3, decision_reason = $4 WHERE id = $5 AND status = $6",
    )
    .bind(to)
    .bind(now)
    .bind(admin)
    .bind(reason)
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
