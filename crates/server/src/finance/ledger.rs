//! Storing balanced ledger transactions, inside the caller's database transaction so the money
//! moves together with the business change that caused it. Each transaction also appends one
//! audit entry (`platform::audit`) in the same database transaction.

use crate::platform::audit;
use clipcart_domain::ids;
use clipcart_domain::ledger::Transaction;
use sqlx::{Any, AnyPool};

/// Stores `t`, caused by `actor` (a user id, or `audit::SYSTEM`), and its audit entry.
pub async fn record(
    tx: &mut sqlx::Transaction<'_, Any>,
    t: &Transaction,
    actor: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = ids::new_id(ids::LEDGER_TX);
    sqlx::query(
        "INSERT INTO ledger_transactions (id, kind, reference, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(t.kind)
    .bind(&t.reference)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    for (seq, p) in t.postings().iter().enumerate() {
        sqlx::query("INSERT INTO ledger_postings (transaction_id, seq, account, amount_minor, currency) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(&p.account)
            .bind(p.amount)
            .bind(p.currency.code())
            .execute(&mut **tx)
            .await?;
    }
    // Accounts are named by ids and amounts are money: nothing personal.
    let postings: Vec<serde_json::Value> = t
        .postings()
        .iter()
        .map(|p| serde_json::json!({"account": p.account, "amount_minor": p.amount, "currency": p.currency.code()}))
        .collect();
    audit::record(
        tx,
        audit::Entry::new(now, actor, audit::action::LEDGER_TRANSACTION, &id)
            .with("kind", t.kind)
            .with("reference", t.reference.as_str())
            .with("postings", postings),
    )
    .await?;
    Ok(id)
}

/// An account's balance in one currency (debits positive).
pub async fn balance(pool: &AnyPool, account: &str, currency: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM ledger_postings WHERE account = $1 AND currency = $2")
        .bind(account)
        .bind(currency)
        .fetch_one(pool)
        .await
}

/// Transactions whose postings do not sum to zero; must always be empty.
pub async fn unbalanced(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT transaction_id FROM ledger_postings GROUP BY transaction_id, currency HAVING SUM(amount_minor) <> 0")
        .fetch_all(pool)
        .await
}
