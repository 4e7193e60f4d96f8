//! SQL for the sign-in throttle and the sign-in history. The rules are in
//! `clipcart_domain::identity::throttle`; each reservation here applies them in one atomic
//! statement (row lock on PostgreSQL, the single writer on SQLite), so several nodes sharing one
//! database count every attempt exactly once.

use clipcart_domain::identity::throttle::{AccountState, AddressState, ThrottlePolicy};
use clipcart_domain::page::PageRequest;
use sqlx::{AnyPool, FromRow};

#[derive(FromRow)]
struct AccountRow {
    failures: i64,
    pending: i64,
    in_flight_until: i64,
    blocked_until: i64,
    locked: i64,
}

pub async fn account(pool: &AnyPool, key: &str) -> Result<Option<AccountState>, sqlx::Error> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT failures, pending, in_flight_until, blocked_until, locked \
         FROM sign_in_accounts WHERE account_key = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| AccountState {
        failures: r.failures,
        pending: r.pending,
        in_flight_until: r.in_flight_until,
        blocked_until: r.blocked_until,
        locked: r.locked != 0,
    }))
}

/// Counts an attempt as in flight if `ThrottlePolicy::check_account` allows it, in one
/// statement; false when it does not (then nothing changed).
pub async fn reserve_account(
    pool: &AnyPool,
    key: &str,
    now: i64,
    policy: &ThrottlePolicy,
) -> Result<bool, sqlx::Error> {
    // `live` is the domain's `effective_pending`: reservations whose lease ran out count as 0.
    const LIVE: &str = "(CASE WHEN sign_in_accounts.in_flight_until <= $3 THEN 0 ELSE sign_in_accounts.pending END)";
    let sql = format!(
        "INSERT INTO sign_in_accounts \
           (account_key, failures, pending, in_flight_until, blocked_until, locked, last_failure_at) \
         VALUES ($1, 0, 1, $2, 0, 0, 0) \
         ON CONFLICT (account_key) DO UPDATE SET pending = {LIVE} + 1, in_flight_until = $2 \
         WHERE sign_in_accounts.locked = 0 \
           AND sign_in_accounts.blocked_until <= $3 \
           AND sign_in_accounts.failures + {LIVE} < $4 \
           AND (sign_in_accounts.failures + {LIVE} < $5 OR {LIVE} = 0)"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .bind(now.saturating_add(policy.in_flight_lease_ms))
        .bind(now)
        .bind(policy.lock_after)
        .bind(policy.free_failures)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Gives a reservation back without an outcome (the verification could not run).
pub async fn release_account(pool: &AnyPool, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sign_in_accounts SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END \
         WHERE account_key = $1",
    )
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Settles a reservation as a failure and stores the back-off (and lock) `after` computes from
/// the new failure count, in one transaction: a concurrent reservation either sees both or
/// waits (row lock on PostgreSQL, the single writer on SQLite), so no extra attempt slips in
/// between the count and its back-off. Returns the consecutive failures.
pub async fn record_failure(
    pool: &AnyPool,
    key: &str,
    now: i64,
    after: impl FnOnce(i64) -> (i64, bool),
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let failures: i64 = sqlx::query_scalar(
        "UPDATE sign_in_accounts SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END, \
                failures = failures + 1, last_failure_at = $2 \
         WHERE account_key = $1 RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let (blocked_until, lock) = after(failures);
    sqlx::query(
        "UPDATE sign_in_accounts SET blocked_until = $2, \
                locked = CASE WHEN $3 = 1 THEN 1 ELSE locked END \
         WHERE account_key = $1",
    )
    .bind(key)
    .bind(blocked_until)
    .bind(i64::from(lock))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(failures)
}

/// Settles a reservation as a success: the consecutive failures start again from zero.
pub async fn settle_success(pool: &AnyPool, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sign_in_accounts SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END, \
                failures = 0, blocked_until = 0 \
         WHERE account_key = $1",
    )
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Clears the lock, the back-off and the failure count (an admin's unlock).
pub async fn unlock(pool: &AnyPool, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sign_in_accounts SET failures = 0, blocked_until = 0, locked = 0 \
         WHERE account_key = $1",
    )
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct AddressRow {
    window_start: i64,
    failures: i64,
}

pub async fn address(pool: &AnyPool, address: &str) -> Result<Option<AddressState>, sqlx::Error> {
    let row: Option<AddressRow> =
        sqlx::query_as("SELECT window_start, failures FROM sign_in_addresses WHERE address = $1")
            .bind(address)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| AddressState {
        window_start: r.window_start,
        failures: r.failures,
    }))
}

/// Takes the next ticket of the address's current window (a window older than the policy's
/// starts afresh now); returns the window and the ticket number.
pub async fn take_address_ticket(
    pool: &AnyPool,
    address: &str,
    now: i64,
    policy: &ThrottlePolicy,
) -> Result<AddressState, sqlx::Error> {
    let row: AddressRow = sqlx::query_as(
        "INSERT INTO sign_in_addresses (address, window_start, failures) VALUES ($1, $2, 1) \
         ON CONFLICT (address) DO UPDATE SET \
           failures = CASE WHEN sign_in_addresses.window_start <= $3 THEN 1 \
                           ELSE sign_in_addresses.failures + 1 END, \
           window_start = CASE WHEN sign_in_addresses.window_start <= $3 THEN $2 \
                               ELSE sign_in_addresses.window_start END \
         RETURNING window_start, failures",
    )
    .bind(address)
    .bind(now)
    .bind(policy.address_window_cutoff(now))
    .fetch_one(pool)
    .await?;
    Ok(AddressState {
        window_start: row.window_start,
        failures: row.failures,
    })
}

/// Gives a ticket back (the attempt succeeded, or never ran): only failures use the budget.
pub async fn return_address_ticket(
    pool: &AnyPool,
    address: &str,
    window_start: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sign_in_addresses SET failures = failures - 1 \
         WHERE address = $1 AND window_start = $2 AND failures > 0",
    )
    .bind(address)
    .bind(window_start)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct EventRow {
    pub id: String,
    pub user_id: Option<String>,
    pub at: i64,
    pub outcome: String,
    pub address: String,
    pub user_agent: String,
}

pub async fn insert_event(pool: &AnyPool, e: &EventRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sign_in_events (id, user_id, at, outcome, address, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(e.user_id.clone())
    .bind(e.at)
    .bind(&e.outcome)
    .bind(&e.address)
    .bind(&e.user_agent)
    .execute(pool)
    .await?;
    Ok(())
}

/// A user's sign-in attempts, newest first, keyset paginated (one more than the limit).
pub async fn list_events(
    pool: &AnyPool,
    user_id: &str,
    page: &PageRequest,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let (key, id) = crate::catalog::store::after(page);
    sqlx::query_as(
        "SELECT id, user_id, at, outcome, address, user_agent FROM sign_in_events \
         WHERE user_id = $1 AND (at < $2 OR (at = $2 AND id < $3)) \
         ORDER BY at DESC, id DESC LIMIT $4",
    )
    .bind(user_id)
    .bind(key)
    .bind(id)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await
}
