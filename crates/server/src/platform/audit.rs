//! The audit log: append-only and hash-chained.
//!
//! Each entry (`audit_log`) carries `hash = SHA-256(canonical encoding of seq, at, actor,
//! action, subject, details_json, prev_hash)`, where `prev_hash` is the previous entry's hash
//! (64 zeros before the first). Changing, deleting or reordering a row breaks the chain, and
//! `clipcart audit verify` (`verify`) names the first broken link.
//!
//! **Appending** (`record`) happens inside the transaction of the change it reports, so an
//! entry exists exactly when the change committed. It first moves the chain head
//! (`UPDATE audit_head ... RETURNING`): on PostgreSQL that row stays locked until the
//! transaction ends, on SQLite the single writer does the same, so appends are serialised and
//! the chain cannot fork. The head is taken last in each transaction (call `record` right before
//! the commit) to hold that lock briefly.
//!
//! **Details** hold ids, kinds, amounts and masked values only: never secrets or personal data
//! in plain text (the log is not encrypted, and it is never edited, so nothing can be erased
//! from it later).
//!
//! The chain proves the rows agree with each other and with the head; someone who can rewrite
//! the whole table and the head could forge a consistent chain. `verify` prints the head hash:
//! record it elsewhere (monitoring, a ticket) to anchor the chain outside the database.

use super::db::Db;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records. The admin page filters by these.
pub mod action {
    /// An admin approved or rejected a seller application.
    pub const SHOP_DECISION: &str = "shop.decision";
    /// An admin lifted a sign-in lock.
    pub const SIGN_IN_UNLOCK: &str = "sign_in.unlock";
    pub const STAFF_INVITE: &str = "staff.invite";
    pub const STAFF_INVITATION_REVOKE: &str = "staff.invitation_revoke";
    /// An invitation was accepted: the account now works for the shop.
    pub const STAFF_JOIN: &str = "staff.join";
    pub const STAFF_ROLE_CHANGE: &str = "staff.role_change";
    pub const STAFF_REMOVE: &str = "staff.remove";
    /// A custom staff role was created, changed or deleted.
    pub const STAFF_ROLE_DEFINE: &str = "staff.role_define";
    /// A balanced ledger transaction (money moved).
    pub const LEDGER_TRANSACTION: &str = "ledger.transaction";
    /// A successful sign-in; details: `method` (password, passkey) and, for a password,
    /// whether a second factor was proved.
    pub const SIGN_IN: &str = "sign_in";
    /// TOTP two-factor authentication turned on (enrolment confirmed) or off.
    pub const TWO_FACTOR_ENABLE: &str = "two_factor.enable";
    pub const TWO_FACTOR_DISABLE: &str = "two_factor.disable";
    /// A new set of recovery codes (the old set stopped working).
    pub const RECOVERY_CODES_REGENERATE: &str = "two_factor.recovery_codes";
    /// A passkey registered or removed; the subject is the passkey id.
    pub const PASSKEY_ADD: &str = "passkey.add";
    pub const PASSKEY_REMOVE: &str = "passkey.remove";
    /// The password changed by its owner, or reset through a mailed link.
    pub const PASSWORD_CHANGE: &str = "password.change";
    pub const PASSWORD_RESET: &str = "password.reset";
    /// The account moved to a new address (neither address is recorded).
    pub const EMAIL_CHANGE: &str = "email.change";

    pub const ALL: &[&str] = &[
        SHOP_DECISION,
        SIGN_IN_UNLOCK,
        STAFF_INVITE,
        STAFF_INVITATION_REVOKE,
        STAFF_JOIN,
        STAFF_ROLE_CHANGE,
        STAFF_REMOVE,
        STAFF_ROLE_DEFINE,
        LEDGER_TRANSACTION,
        SIGN_IN,
        TWO_FACTOR_ENABLE,
        TWO_FACTOR_DISABLE,
        RECOVERY_CODES_REGENERATE,
        PASSKEY_ADD,
        PASSKEY_REMOVE,
        PASSWORD_CHANGE,
        PASSWORD_RESET,
        EMAIL_CHANGE,
    ];
}

/// The actor of entries made by the platform itself rather than a person.
pub const SYSTEM: &str = "system";

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at: i64,
    /// The user id who acted, or `SYSTEM`.
    pub actor: String,
    pub action: &'static str,
    /// What it was done to: an id (shop, user, invitation, ledger transaction, ...).
    pub subject: String,
    pub details: Map<String, Value>,
}

impl Entry {
    pub fn new(
        at: i64,
        actor: impl Into<String>,
        action: &'static str,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            action,
            subject: subject.into(),
            details: Map::new(),
        }
    }

    /// Adds a detail: ids, kinds, amounts, masked values — never secrets or personal data.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// The hash of an entry: SHA-256 over a domain tag and each field, integers as 8 big-endian
/// bytes and texts as their 8-byte big-endian length then their UTF-8 bytes, in this order:
/// seq, at, actor, action, subject, details_json, prev_hash. Lowercase hex.
pub fn chain_hash(
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details_json: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"clipcart-audit-v1");
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for text in [actor, action, subject, details_json, prev_hash] {
        h.update(u64::try_from(text.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(text.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends `entry` inside the caller's transaction (pass the transaction: `&mut tx`), and
/// returns its seq. Call it last before the commit: it holds the chain head until then.
pub async fn record(conn: &mut AnyConnection, entry: Entry) -> Result<i64, sqlx::Error> {
    let (seq, prev_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *conn)
            .await?;
    let details_json = Value::Object(entry.details).to_string();
    let hash = chain_hash(
        seq,
        entry.at,
        &entry.actor,
        entry.action,
        &entry.subject,
        &details_json,
        &prev_hash,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, subject, details_json, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(entry.action)
    .bind(&entry.subject)
    .bind(&details_json)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// `record` in a transaction of its own, for a change that was not made in one the caller
/// could share. Prefer `record` inside the change's transaction.
pub async fn record_alone(db: &Db, entry: Entry) -> Result<i64, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let seq = record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(seq)
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details_json: String,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str = "seq, at, actor, action, subject, details_json, prev_hash, hash";

/// Entries newest first, before `before` (a seq; keyset pagination), optionally of one action.
pub async fn list(
    db: &Db,
    action: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let before = before.unwrap_or(i64::MAX);
    match action {
        Some(a) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE action = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            )))
            .bind(a)
            .bind(before)
            .bind(limit)
            .fetch_all(&db.read)
            .await
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
            )))
            .bind(before)
            .bind(limit)
            .fetch_all(&db.read)
            .await
        }
    }
}

/// An intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: i64,
    /// The last entry's hash (the genesis value for an empty log).
    pub head_hash: String,
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The entry at which the chain stops holding.
    pub seq: i64,
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry {}: {}", self.seq, self.reason)
    }
}

/// Walks the whole chain from the first entry to the head.
pub async fn verify(db: &Db) -> Result<Result<Verified, BrokenLink>, sqlx::Error> {
    // The head first: entries appended during the walk lie beyond it and are left for the
    // next run (the head and its entry commit together, so every seq up to it is visible).
    let (head_seq, head_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&db.read)
            .await?;
    let mut expected = 1i64;
    let mut prev = GENESIS.to_string();
    loop {
        let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT 1000"
        )))
        .bind(expected)
        .bind(head_seq)
        .fetch_all(&db.read)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if let Some(broken) = check(&row, expected, &prev) {
                return Ok(Err(broken));
            }
            prev = row.hash;
            expected += 1;
        }
    }
    let last = expected - 1;
    if last < head_seq {
        return Ok(Err(BrokenLink {
            seq: last + 1,
            reason: format!(
                "missing: the log ends at entry {last} but the chain head says {head_seq}; entries were deleted"
            ),
        }));
    }
    if prev != head_hash {
        return Ok(Err(BrokenLink {
            seq: last,
            reason:
                "the chain head's hash does not match the last entry: it was changed or replaced"
                    .into(),
        }));
    }
    Ok(Ok(Verified {
        entries: last,
        head_hash,
    }))
}

fn check(row: &AuditRow, expected: i64, prev: &str) -> Option<BrokenLink> {
    if row.seq != expected {
        return Some(BrokenLink {
            seq: expected,
            reason: format!(
                "missing: the next entry is {}; entry {expected} was deleted (or renumbered)",
                row.seq
            ),
        });
    }
    let recomputed = chain_hash(
        row.seq,
        row.at,
        &row.actor,
        &row.action,
        &row.subject,
        &row.details_json,
        &row.prev_hash,
    );
    if recomputed != row.hash {
        return Some(BrokenLink {
            seq: row.seq,
            reason: "edited: its contents do not match its hash".into(),
        });
    }
    if row.prev_hash != prev {
        return Some(BrokenLink {
            seq: row.seq,
            reason: format!(
                "does not follow entry {}: its previous hash differs, so an entry before it was edited (with its hash recomputed), replaced or reordered",
                row.seq - 1
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_unambiguously() {
        let base = chain_hash(1, 2, "a", "b", "c", "{}", GENESIS);
        assert_eq!(base.len(), 64);
        assert_ne!(base, chain_hash(2, 2, "a", "b", "c", "{}", GENESIS));
        assert_ne!(base, chain_hash(1, 3, "a", "b", "c", "{}", GENESIS));
        assert_ne!(base, chain_hash(1, 2, "ab", "", "c", "{}", GENESIS));
        assert_ne!(base, chain_hash(1, 2, "a", "b", "c", "{ }", GENESIS));
        assert_ne!(base, chain_hash(1, 2, "a", "b", "c", "{}", &base));
        assert_eq!(base, chain_hash(1, 2, "a", "b", "c", "{}", GENESIS));
    }

    #[test]
    fn check_names_the_kind_of_break() {
        let hash = chain_hash(1, 5, "usr_1", "x", "s", "{}", GENESIS);
        let row = AuditRow {
            seq: 1,
            at: 5,
            actor: "usr_1".into(),
            action: "x".into(),
            subject: "s".into(),
            details_json: "{}".into(),
            prev_hash: GENESIS.into(),
            hash,
        };
        assert!(check(&row, 1, GENESIS).is_none());
        let edited = AuditRow {
            subject: "t".into(),
            ..row.clone()
        };
        assert!(check(&edited, 1, GENESIS).is_some_and(|b| b.reason.starts_with("edited")));
        assert!(
            check(&row, 2, GENESIS).is_some_and(|b| b.seq == 2 && b.reason.starts_with("missing"))
        );
        assert!(
            check(&row, 1, &"1".repeat(64))
                .is_some_and(|b| b.reason.starts_with("does not follow"))
        );
    }
}
