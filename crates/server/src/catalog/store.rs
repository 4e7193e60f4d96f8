//! SQL for products and variants. Every seller-side query filters by `shop_id` too.

use clipcart_domain::page::PageRequest;
use sqlx::{Any, AnyPool, AssertSqlSafe, FromRow, Transaction};

#[derive(Debug, Clone, FromRow)]
pub struct ProductRow {
    pub id: String,
    pub shop_id: String,
    pub title: String,
    pub description: String,
    pub options_json: String,
    pub status: String,
    pub currency: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct VariantRow {
    pub id: String,
    pub product_id: String,
    pub shop_id: String,
    pub option_values_json: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i64,
    pub sku: String,
    pub position: i64,
}

const PRODUCT_COLUMNS: &str = "p.id, p.shop_id, p.title, p.description, p.options_json, p.status, p.currency, p.created_at, p.updated_at";
const VARIANT_COLUMNS: &str =
    "id, product_id, shop_id, option_values_json, price_minor, currency, stock, sku, position";

pub async fn insert(
    tx: &mut Transaction<'_, Any>,
    p: &ProductRow,
    variants: &[VariantRow],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (id, shop_id, title, description, options_json, status, currency, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&p.id)
    .bind(&p.shop_id)
    .bind(&p.title)
    .bind(&p.description)
    .bind(&p.options_json)
    .bind(&p.status)
    .bind(&p.currency)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    for v in variants {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO variants ({VARIANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(&v.id)
        .bind(&v.product_id)
        .bind(&v.shop_id)
        .bind(&v.option_values_json)
        .bind(v.price_minor)
        .bind(&v.currency)
        .bind(v.stock)
        .bind(&v.sku)
        .bind(v.position)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A product of one shop; another shop's product is simply not found.
pub async fn shop_product(
    pool: &AnyPool,
    shop_id: &str,
    id: &str,
) -> Result<Option<ProductRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = $1 AND p.shop_id = $2"
    )))
    .bind(id)
    .bind(shop_id)
    .fetch_optional(pool)
    .await
}

/// A product buyers may see: live, from an active shop.
pub async fn live_product(pool: &AnyPool, id: &str) -> Result<Option<ProductRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p JOIN shops s ON s.id = p.shop_id \
         WHERE p.id = $1 AND p.status = 'live' AND s.status = 'active'"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn variants(pool: &AnyPool, product_id: &str) -> Result<Vec<VariantRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE product_id = $1 ORDER BY position"
    )))
    .bind(product_id)
    .fetch_all(pool)
    .await
}

/// A product in a list: what a card or a table row shows, in one query (no N+1).
#[derive(Debug, Clone, FromRow)]
pub struct CardRow {
    pub id: String,
    pub shop_id: String,
    pub title: String,
    pub status: String,
    pub currency: String,
    pub created_at: i64,
    pub min_price: i64,
    pub stock: i64,
    pub variant_count: i64,
}

const CARD_COLUMNS: &str = "p.id, p.shop_id, p.title, p.status, p.currency, p.created_at, \
    COALESCE((SELECT MIN(v.price_minor) FROM variants v WHERE v.product_id = p.id), 0) AS min_price, \
    CAST(COALESCE((SELECT SUM(v.stock) FROM variants v WHERE v.product_id = p.id), 0) AS BIGINT) AS stock, \
    (SELECT COUNT(*) FROM variants v WHERE v.product_id = p.id) AS variant_count";

/// Newest first, keyset paginated.
pub async fn list_shop_products(
    pool: &AnyPool,
    shop_id: &str,
    page: &PageRequest,
) -> Result<Vec<CardRow>, sqlx::Error> {
    let (key, id) = after(page);
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM products p WHERE p.shop_id = $1 AND (p.created_at < $2 OR (p.created_at = $2 AND p.id < $3)) \
         ORDER BY p.created_at DESC, p.id DESC LIMIT $4"
    )))
    .bind(shop_id)
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await
}

/// Live products of active shops, newest first, optionally matching a title word.
pub async fn list_live(
    pool: &AnyPool,
    query: &str,
    page: &PageRequest,
) -> Result<Vec<CardRow>, sqlx::Error> {
    let (key, id) = after(page);
    let pattern = format!(
        "%{}%",
        query
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM products p JOIN shops s ON s.id = p.shop_id \
         WHERE p.status = 'live' AND s.status = 'active' AND LOWER(p.title) LIKE $1 ESCAPE '\\' \
         AND (p.created_at < $2 OR (p.created_at = $2 AND p.id < $3)) \
         ORDER BY p.created_at DESC, p.id DESC LIMIT $4"
    )))
    .bind(pattern)
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await
}

/// Keyset position for descending lists; the first page starts above every real row.
pub fn after(page: &PageRequest) -> (i64, String) {
    page.after
        .as_ref()
        .map(|c| (c.key, c.id.clone()))
        .unwrap_or((i64::MAX, "~".into()))
}

pub async fn set_status(
    pool: &AnyPool,
    shop_id: &str,
    id: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE products SET status = $1, updated_at = $2 WHERE id = $3 AND shop_id = $4 AND status = $5")
        .bind(to)
        .bind(now)
        .bind(id)
        .bind(shop_id)
        .bind(from)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets a variant's stock (the seller counted their shelf).
pub async fn set_stock(
    pool: &AnyPool,
    shop_id: &str,
    variant_id: &str,
    stock: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE variants SET stock = $1 WHERE id = $2 AND shop_id = $3")
        .bind(stock)
        .bind(variant_id)
        .bind(shop_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}
