//! SQL for carts and orders. Seller queries filter by `shop_id`, buyer queries by `buyer_id`.
//! The shipping address (all but the country) is stored as vault ciphertexts
//! (`platform::crypto`): encrypted in `insert_order`, decrypted by every order read here, so an
//! `OrderRow` always holds plaintext.

use crate::platform::crypto::{EncryptedColumn, Vault, columns};
use crate::platform::http::AppResult;
use clipcart_domain::DomainError;
use clipcart_domain::page::PageRequest;
use sqlx::{Any, AnyPool, AssertSqlSafe, FromRow, Transaction};

/// A cart line joined with what it points at.
#[derive(Debug, Clone, FromRow)]
pub struct CartLineRow {
    pub variant_id: String,
    pub quantity: i64,
    pub product_id: String,
    pub title: String,
    pub option_values_json: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i64,
    pub shop_id: String,
    pub shop_name: String,
    /// 1 when the product is live and its shop active.
    pub buyable: i64,
}

pub async fn cart_lines(pool: &AnyPool, buyer_id: &str) -> Result<Vec<CartLineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.variant_id, c.quantity, p.id AS product_id, p.title, v.option_values_json, v.price_minor, v.currency, v.stock, \
                s.id AS shop_id, s.name AS shop_name, \
                CASE WHEN p.status = 'live' AND s.status = 'active' THEN 1 ELSE 0 END AS buyable \
         FROM cart_items c JOIN variants v ON v.id = c.variant_id JOIN products p ON p.id = v.product_id JOIN shops s ON s.id = p.shop_id \
         WHERE c.buyer_id = $1 ORDER BY c.created_at, c.variant_id",
    )
    .bind(buyer_id)
    .fetch_all(pool)
    .await
}

/// Whether a variant can be bought now (live product, active shop).
pub async fn variant_buyable(pool: &AnyPool, variant_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT v.stock FROM variants v JOIN products p ON p.id = v.product_id JOIN shops s ON s.id = p.shop_id \
         WHERE v.id = $1 AND p.status = 'live' AND s.status = 'active'",
    )
    .bind(variant_id)
    .fetch_optional(pool)
    .await
}

pub async fn set_cart_quantity(
    pool: &AnyPool,
    buyer_id: &str,
    variant_id: &str,
    quantity: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cart_items (buyer_id, variant_id, quantity, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (buyer_id, variant_id) DO UPDATE SET quantity = excluded.quantity",
    )
    .bind(buyer_id)
    .bind(variant_id)
    .bind(quantity)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds to a cart line in one statement (no lost update between two adds); false when the line
/// would exceed `max`.
pub async fn add_cart_quantity(
    pool: &AnyPool,
    buyer_id: &str,
    variant_id: &str,
    quantity: i64,
    max: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO cart_items (buyer_id, variant_id, quantity, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (buyer_id, variant_id) DO UPDATE SET quantity = cart_items.quantity + excluded.quantity \
         WHERE cart_items.quantity + excluded.quantity <= $5",
    )
    .bind(buyer_id)
    .bind(variant_id)
    .bind(quantity)
    .bind(now)
    .bind(max)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn cart_quantity(
    pool: &AnyPool,
    buyer_id: &str,
    variant_id: &str,
) -> Result<i64, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "SELECT quantity FROM cart_items WHERE buyer_id = $1 AND variant_id = $2",
    )
    .bind(buyer_id)
    .bind(variant_id)
    .fetch_optional(pool)
    .await?
    .unwrap_or(0))
}

pub async fn remove_cart_item(
    pool: &AnyPool,
    buyer_id: &str,
    variant_id: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM cart_items WHERE buyer_id = $1 AND variant_id = $2")
        .bind(buyer_id)
        .bind(variant_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    pub id: String,
    pub shop_id: String,
    pub shop_name: String,
    pub buyer_id: String,
    pub checkout_id: String,
    pub status: String,
    pub total_minor: i64,
    pub currency: String,
    pub ship_name: String,
    pub ship_line1: String,
    pub ship_line2: String,
    pub ship_city: String,
    pub ship_postal_code: String,
    pub ship_country: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    pub shipped_at: Option<i64>,
    pub completed_at: Option<i64>,
}

const ORDER_COLUMNS: &str = "o.id, o.shop_id, s.name AS shop_name, o.buyer_id, o.checkout_id, o.status, o.total_minor, o.currency, \
    o.ship_name, o.ship_line1, o.ship_line2, o.ship_city, o.ship_postal_code, o.ship_country, o.carrier, o.tracking_number, \
    o.created_at, o.paid_at, o.shipped_at, o.completed_at";

#[derive(Debug, Clone, FromRow)]
pub struct OrderLineRow {
    pub order_id: String,
    pub product_id: String,
    pub variant_id: String,
    pub title: String,
    pub variant_label: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub currency: String,
}

/// The encrypted shipping fields of an order, with their columns.
fn address_fields(o: &mut OrderRow) -> [(EncryptedColumn, &mut String); 5] {
    [
        (columns::ORDER_SHIP_NAME, &mut o.ship_name),
        (columns::ORDER_SHIP_LINE1, &mut o.ship_line1),
        (columns::ORDER_SHIP_LINE2, &mut o.ship_line2),
        (columns::ORDER_SHIP_CITY, &mut o.ship_city),
        (columns::ORDER_SHIP_POSTAL_CODE, &mut o.ship_postal_code),
    ]
}

/// Decrypts the shipping address of an order as read from the database.
async fn open(vault: &Vault, mut o: OrderRow) -> AppResult<OrderRow> {
    let id = o.id.clone();
    for (column, value) in address_fields(&mut o) {
        *value = vault.decrypt(&column.aad(&id), value).await?;
    }
    Ok(o)
}

async fn open_all(vault: &Vault, rows: Vec<OrderRow>) -> AppResult<Vec<OrderRow>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(open(vault, row).await?);
    }
    Ok(out)
}

pub async fn insert_order(
    tx: &mut Transaction<'_, Any>,
    vault: &Vault,
    o: &OrderRow,
) -> AppResult<()> {
    let mut sealed = o.clone();
    let id = o.id.clone();
    for (column, value) in address_fields(&mut sealed) {
        *value = vault.encrypt(&column.aad(&id), value).await?;
    }
    let o = &sealed;
    sqlx::query(
        "INSERT INTO orders (id, shop_id, buyer_id, checkout_id, status, total_minor, currency, ship_name, ship_line1, ship_line2, \
         ship_city, ship_postal_code, ship_country, created_at, paid_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14)",
    )
    .bind(&o.id)
    .bind(&o.shop_id)
    .bind(&o.buyer_id)
    .bind(&o.checkout_id)
    .bind(&o.status)
    .bind(o.total_minor)
    .bind(&o.currency)
    .bind(&o.ship_name)
    .bind(&o.ship_line1)
    .bind(&o.ship_line2)
    .bind(&o.ship_city)
    .bind(&o.ship_postal_code)
    .bind(&o.ship_country)
    .bind(o.created_at)
    .bind(o.paid_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_line(
    tx: &mut Transaction<'_, Any>,
    shop_id: &str,
    l: &OrderLineRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_lines (order_id, shop_id, product_id, variant_id, title, variant_label, quantity, unit_price_minor, currency) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&l.order_id)
    .bind(shop_id)
    .bind(&l.product_id)
    .bind(&l.variant_id)
    .bind(&l.title)
    .bind(&l.variant_label)
    .bind(l.quantity)
    .bind(l.unit_price_minor)
    .bind(&l.currency)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes `quantity` units if that many are left, at the price the buyer saw, of a product still
/// on sale. The condition in the UPDATE makes the check and the decrement one atomic step on both
/// databases: no oversell.
pub async fn take_stock(
    tx: &mut Transaction<'_, Any>,
    variant_id: &str,
    quantity: i64,
    price_minor: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE variants SET stock = stock - $1 WHERE id = $2 AND stock >= $1 AND price_minor = $3 \
         AND EXISTS (SELECT 1 FROM products p JOIN shops s ON s.id = p.shop_id \
                     WHERE p.id = variants.product_id AND p.status = 'live' AND s.status = 'active')",
    )
    .bind(quantity)
    .bind(variant_id)
    .bind(price_minor)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Why `take_stock` refused: the price changed, the product left sale, or the stock ran out.
pub async fn why_not_sellable(
    tx: &mut Transaction<'_, Any>,
    variant_id: &str,
    price_minor: i64,
) -> Result<DomainError, sqlx::Error> {
    let row: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT v.price_minor, p.title, CASE WHEN p.status = 'live' AND s.status = 'active' THEN 1 ELSE 0 END \
         FROM variants v JOIN products p ON p.id = v.product_id JOIN shops s ON s.id = p.shop_id WHERE v.id = $1",
    )
    .bind(variant_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some((_, title, 0)) => DomainError::Conflict(format!(
            "{title} is no longer on sale; remove it from the cart"
        )),
        Some((price, title, _)) if price != price_minor => {
            DomainError::Conflict(format!("the price of {title} changed; review your cart"))
        }
        _ => DomainError::OutOfStock {
            variant_id: variant_id.to_string(),
        },
    })
}

/// Removes a cart line only if it still holds `quantity`; false when the cart changed.
pub async fn consume_cart_line(
    tx: &mut Transaction<'_, Any>,
    buyer_id: &str,
    variant_id: &str,
    quantity: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM cart_items WHERE buyer_id = $1 AND variant_id = $2 AND quantity = $3",
    )
    .bind(buyer_id)
    .bind(variant_id)
    .bind(quantity)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_payment_status(
    pool: &AnyPool,
    checkout_id: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE checkouts SET payment_status = $1 WHERE id = $2")
        .bind(status)
        .bind(checkout_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn payment_status(
    pool: &AnyPool,
    checkout_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT payment_status FROM checkouts WHERE id = $1")
        .bind(checkout_id)
        .fetch_optional(pool)
        .await
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_checkout(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    buyer_id: &str,
    total: i64,
    currency: &str,
    authorization_id: &str,
    card: &crate::payments::CardSummary,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO checkouts (id, buyer_id, total_minor, currency, authorization_id, payment_status, card_brand, card_last4, \
         card_exp_month, card_exp_year, card_country, card_fingerprint, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'authorized', $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(buyer_id)
    .bind(total)
    .bind(currency)
    .bind(authorization_id)
    .bind(&card.brand)
    .bind(&card.last4)
    .bind(card.exp_month)
    .bind(card.exp_year)
    .bind(&card.country)
    .bind(&card.fingerprint)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn shop_order(
    pool: &AnyPool,
    vault: &Vault,
    shop_id: &str,
    id: &str,
) -> AppResult<Option<OrderRow>> {
    let row: Option<OrderRow> = sqlx::query_as(AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders o JOIN shops s ON s.id = o.shop_id WHERE o.id = $1 AND o.shop_id = $2")))
        .bind(id)
        .bind(shop_id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(o) => Ok(Some(open(vault, o).await?)),
        None => Ok(None),
    }
}

pub async fn buyer_order(
    pool: &AnyPool,
    vault: &Vault,
    buyer_id: &str,
    id: &str,
) -> AppResult<Option<OrderRow>> {
    let row: Option<OrderRow> = sqlx::query_as(AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders o JOIN shops s ON s.id = o.shop_id WHERE o.id = $1 AND o.buyer_id = $2")))
        .bind(id)
        .bind(buyer_id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(o) => Ok(Some(open(vault, o).await?)),
        None => Ok(None),
    }
}

pub async fn lines(pool: &AnyPool, order_id: &str) -> Result<Vec<OrderLineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, product_id, variant_id, title, variant_label, quantity, unit_price_minor, currency FROM order_lines \
         WHERE order_id = $1 ORDER BY variant_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// Newest first, keyset paginated: `owner_column` is `shop_id` or `buyer_id`, never user input.
pub async fn list(
    pool: &AnyPool,
    vault: &Vault,
    owner_column: OwnerColumn,
    owner: &str,
    status: Option<&str>,
    page: &PageRequest,
) -> AppResult<Vec<OrderRow>> {
    let (key, id) = crate::catalog::store::after(page);
    let column = match owner_column {
        OwnerColumn::Shop => "o.shop_id",
        OwnerColumn::Buyer => "o.buyer_id",
    };
    let status_filter = if status.is_some() {
        "AND o.status = $5"
    } else {
        ""
    };
    let mut q = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders o JOIN shops s ON s.id = o.shop_id \
         WHERE {column} = $1 AND (o.created_at < $2 OR (o.created_at = $2 AND o.id < $3)) {status_filter} \
         ORDER BY o.created_at DESC, o.id DESC LIMIT $4"
    )))
    .bind(owner.to_string())
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1);
    if let Some(s) = status {
        q = q.bind(s.to_string());
    }
    let rows = q.fetch_all(pool).await?;
    open_all(vault, rows).await
}

#[derive(Debug, Clone, Copy)]
pub enum OwnerColumn {
    Shop,
    Buyer,
}

#[allow(clippy::too_many_arguments)]
pub async fn mark_shipped(
    pool: &AnyPool,
    shop_id: &str,
    id: &str,
    from: &str,
    to: &str,
    carrier: &str,
    tracking: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = $1, carrier = $2, tracking_number = $3, shipped_at = $4, updated_at = $4 \
         WHERE id = $5 AND shop_id = $6 AND status = $7",
    )
    .bind(to)
    .bind(carrier)
    .bind(tracking)
    .bind(now)
    .bind(id)
    .bind(shop_id)
    .bind(from)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn mark_completed(
    tx: &mut Transaction<'_, Any>,
    buyer_id: &str,
    id: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = $1, delivered_at = COALESCE(delivered_at, $2), completed_at = $2, updated_at = $2 \
         WHERE id = $3 AND buyer_id = $4 AND status = $5",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .bind(buyer_id)
    .bind(from)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
