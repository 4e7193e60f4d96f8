//! SQL for shops and their applications.

use clipcart_domain::page::PageRequest;
use sqlx::{AnyPool, AssertSqlSafe, FromRow};

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

pub async fn insert(pool: &AnyPool, s: &ShopRow) -> Result<bool, sqlx::Error> {
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
    .bind(&s.tax_id)
    .bind(&s.address_json)
    .bind(s.created_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn by_owner(pool: &AnyPool, owner: &str) -> Result<Option<ShopRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM shops WHERE owner_user_id = $1"
    )))
    .bind(owner)
    .fetch_optional(pool)
    .await
}

pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<ShopRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM shops WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Shops in a status, oldest first (a review queue is worked from the front).
pub async fn list_by_status(
    pool: &AnyPool,
    status: &str,
    page: &PageRequest,
) -> Result<Vec<ShopRow>, sqlx::Error> {
    let (key, id) = page
        .after
        .as_ref()
        .map(|c| (c.key, c.id.clone()))
        .unwrap_or((i64::MIN, String::new()));
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM shops WHERE status = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
         ORDER BY created_at, id LIMIT $4"
    )))
    .bind(status)
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await
}

/// Records a decision, only if the shop is still in `from` (two admins cannot both decide).
pub async fn decide(
    pool: &AnyPool,
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
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}
