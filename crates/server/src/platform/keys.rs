//! Data-key rotation (`clipcart keys rotate`), the start-up sweep of pre-vault plaintext, and
//! `clipcart keys status`.
//!
//! Rotation makes a new data key current, then walks every column of `ENCRYPTED_COLUMNS` by id
//! (keyset, `batch_size` rows per transaction) and re-encrypts each value not yet under the new
//! key. The key version is part of every ciphertext, so a rotation that stopped half way (a
//! crash, Ctrl-C, `max_batches`) continues where it was when run again: rows already on the new
//! key are not selected. An old key is retired — its wrapped copy erased — only when no
//! ciphertext in any registered column names it any more, and only after `grace` has passed
//! since it stopped being current, so running servers (which re-read the keys every
//! `crypto::REFRESH_EVERY`) have stopped encrypting under it.

use super::crypto::{ENCRYPTED_COLUMNS, EncryptedColumn, KEY_PREVIOUS, PREFIX, Vault, VaultError};
use super::db::Db;
use secrecy::zeroize::Zeroizing;
use sqlx::AssertSqlSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Rows re-encrypted per transaction.
    pub batch_size: usize,
    /// How long a key must have been superseded before it may be retired (longer than
    /// `crypto::REFRESH_EVERY`, so every running server has switched to the new key).
    pub grace: Duration,
    /// Stop after this many batches (tests interrupt a rotation half way with it).
    pub max_batches: Option<usize>,
    /// Checked between batches: set it (Ctrl-C) to stop after the batch in progress.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            grace: Duration::from_secs(120),
            max_batches: None,
            stop: None,
        }
    }
}

/// What rotation reports as it goes (the command line draws a progress bar from it).
pub trait Progress {
    /// The rows the pass will re-encrypt, counted before it starts.
    fn planned(&mut self, _total: u64) {}
    /// A column's pass begins.
    fn column(&mut self, _name: &str) {}
    /// A batch was committed.
    fn advanced(&mut self, _rows: u64) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, Clone, Default)]
pub struct RotateReport {
    /// The key everything is moved to.
    pub target: u32,
    /// Whether this run created it (false: it continued an unfinished rotation).
    pub new_key: bool,
    /// Values re-encrypted in this run, legacy plaintext included.
    pub moved: u64,
    /// Of those, values that were still plaintext from before the vault.
    pub legacy: u64,
    /// Stopped early (`max_batches` or `stop`): run again to continue.
    pub interrupted: bool,
    pub retired: Vec<u32>,
    /// Old keys some ciphertexts still use (written meanwhile by a server that had not yet
    /// switched keys), with the columns and counts: run again.
    pub still_used: Vec<(u32, Vec<(String, i64)>)>,
    /// Old keys not yet retired because the grace period has not passed: wait this long, then
    /// run again.
    pub retire_after: Option<Duration>,
}

fn version_prefix(version: u32) -> String {
    format!("{PREFIX}{version}:")
}

/// Counts rows with a value that does not start with `prefix`.
async fn count_not_prefixed(
    db: &Db,
    col: &EncryptedColumn,
    prefix: &str,
) -> Result<i64, VaultError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {t} WHERE {has} AND substr({c}, 1, {n}) <> $1",
        t = col.table,
        has = col.has_value_sql(),
        c = col.column,
        n = prefix.len(),
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(prefix)
        .fetch_one(&db.read)
        .await?)
}

/// Counts rows whose value starts with `prefix`.
async fn count_prefixed(db: &Db, col: &EncryptedColumn, prefix: &str) -> Result<i64, VaultError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {t} WHERE substr({c}, 1, {n}) = $1",
        t = col.table,
        c = col.column,
        n = prefix.len(),
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(prefix)
        .fetch_one(&db.read)
        .await?)
}

async fn swept_columns(db: &Db) -> Result<Vec<String>, VaultError> {
    Ok(sqlx::query_scalar("SELECT column_name FROM vault_sweeps")
        .fetch_all(&db.read)
        .await?)
}

async fn mark_swept(db: &Db, col: &EncryptedColumn, now: i64) -> Result<(), VaultError> {
    sqlx::query(
        "INSERT INTO vault_sweeps (column_name, finished_at) VALUES ($1, $2) ON CONFLICT (column_name) DO NOTHING",
    )
    .bind(col.name())
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

struct Batch {
    rows: u64,
    legacy: u64,
    last_id: Option<String>,
}

/// Re-encrypts under `target`, in one transaction, up to `limit` rows after `after` whose value
/// does not start with `keep` (the target's prefix, or `enc:` for the plaintext sweep). A value
/// without the `enc:` prefix is legacy plaintext while the column has not been swept, and an
/// error after. A row changed meanwhile (compare-and-set) is left alone: it was written by the
/// application under a current key.
#[allow(clippy::too_many_arguments)]
async fn move_batch(
    db: &Db,
    vault: &Vault,
    col: &EncryptedColumn,
    keep: &str,
    target: u32,
    swept: bool,
    after: &str,
    limit: usize,
) -> Result<Batch, VaultError> {
    let select = format!(
        "SELECT {id}, {c} FROM {t} WHERE {id} > $1 AND {has} AND substr({c}, 1, {n}) <> $2 \
         ORDER BY {id} LIMIT $3",
        has = col.has_value_sql(),
        id = col.id_column,
        c = col.column,
        t = col.table,
        n = keep.len(),
    );
    let update = format!(
        "UPDATE {t} SET {c} = $1 WHERE {id} = $2 AND {c} = $3",
        t = col.table,
        c = col.column,
        id = col.id_column,
    );
    let mut tx = db.write.begin().await?;
    let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(select))
        .bind(after)
        .bind(keep)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
    let mut batch = Batch {
        rows: 0,
        legacy: 0,
        last_id: rows.last().map(|(id, _)| id.clone()),
    };
    for (id, stored) in &rows {
        let aad = col.aad(id);
        let plain = if stored.starts_with("enc:") || swept {
            Zeroizing::new(vault.decrypt(&aad, stored).await?)
        } else {
            batch.legacy += 1;
            Zeroizing::new(stored.clone())
        };
        let sealed = vault.encrypt_with(target, &aad, &plain)?;
        let r = sqlx::query(AssertSqlSafe(update.clone()))
            .bind(&sealed)
            .bind(id)
            .bind(stored)
            .execute(&mut *tx)
            .await?;
        batch.rows += r.rows_affected();
    }
    tx.commit().await?;
    Ok(batch)
}

/// Encrypts the plaintext left from before the vault in every column not yet swept, under the
/// current key, then marks the column swept. Runs at start-up; cheap once every column is swept.
pub async fn sweep_legacy(db: &Db, vault: &Vault) -> Result<u64, VaultError> {
    let swept = swept_columns(db).await?;
    let target = vault.current_version().ok_or(VaultError::NoCurrentKey)?;
    let mut total = 0;
    for col in ENCRYPTED_COLUMNS {
        if swept.contains(&col.name()) {
            continue;
        }
        let mut after = String::new();
        loop {
            let batch = move_batch(db, vault, col, "enc:", target, false, &after, 500).await?;
            total += batch.legacy;
            match batch.last_id {
                Some(last) => after = last,
                None => break,
            }
        }
        mark_swept(db, col, vault.now_ms()).await?;
    }
    if total > 0 {
        tracing::info!(values = total, "plaintext from before the vault encrypted");
    }
    Ok(total)
}

/// Rotates the data key: see the module documentation. Safe to run again at any point.
pub async fn rotate(
    db: &Db,
    vault: &Vault,
    opts: &RotateOptions,
    progress: &mut dyn Progress,
) -> Result<RotateReport, VaultError> {
    vault.reload().await?;
    let unfinished = vault
        .key_rows()
        .await?
        .iter()
        .any(|k| k.status == KEY_PREVIOUS);
    let (target, new_key) = if unfinished {
        (
            vault.current_version().ok_or(VaultError::NoCurrentKey)?,
            false,
        )
    } else {
        (vault.create_key().await?, true)
    };
    let mut report = RotateReport {
        target,
        new_key,
        ..RotateReport::default()
    };
    let keep = version_prefix(target);
    let mut planned = 0u64;
    for col in ENCRYPTED_COLUMNS {
        planned += u64::try_from(count_not_prefixed(db, col, &keep).await?).unwrap_or(0);
    }
    progress.planned(planned);
    let swept = swept_columns(db).await?;
    let batch_size = opts.batch_size.max(1);
    let mut batches = 0usize;
    for col in ENCRYPTED_COLUMNS {
        progress.column(&col.name());
        let is_swept = swept.contains(&col.name());
        let mut after = String::new();
        loop {
            let stop_asked = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
            if stop_asked || opts.max_batches.is_some_and(|m| batches >= m) {
                report.interrupted = true;
                return Ok(report);
            }
            let batch =
                move_batch(db, vault, col, &keep, target, is_swept, &after, batch_size).await?;
            batches += 1;
            report.moved += batch.rows;
            report.legacy += batch.legacy;
            progress.advanced(batch.rows);
            match batch.last_id {
                Some(last) => after = last,
                None => break,
            }
        }
        if !is_swept {
            mark_swept(db, col, vault.now_ms()).await?;
        }
    }
    retire_unused(db, vault, opts.grace, &mut report).await?;
    Ok(report)
}

/// Retires every previous key that has been superseded for `grace` and that no registered
/// column uses any more.
async fn retire_unused(
    db: &Db,
    vault: &Vault,
    grace: Duration,
    report: &mut RotateReport,
) -> Result<(), VaultError> {
    let now = vault.now_ms();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    for key in vault.key_rows().await? {
        if key.status != KEY_PREVIOUS {
            continue;
        }
        let Ok(version) = u32::try_from(key.version) else {
            continue;
        };
        let ready_at = key.superseded_at.unwrap_or(now).saturating_add(grace_ms);
        if ready_at > now {
            let wait = Duration::from_millis(u64::try_from(ready_at - now).unwrap_or(0));
            report.retire_after = Some(report.retire_after.map_or(wait, |w| w.max(wait)));
            continue;
        }
        let prefix = version_prefix(version);
        let mut uses = Vec::new();
        for col in ENCRYPTED_COLUMNS {
            let n = count_prefixed(db, col, &prefix).await?;
            if n > 0 {
                uses.push((col.name(), n));
            }
        }
        if uses.is_empty() {
            if vault.retire(version).await? {
                tracing::info!(version, "data key retired: no ciphertext uses it");
                report.retired.push(version);
            }
        } else {
            report.still_used.push((version, uses));
        }
    }
    Ok(())
}

/// One column's ciphertexts per key version, and its plaintext values.
#[derive(Debug, Clone)]
pub struct ColumnStatus {
    pub name: String,
    pub by_version: Vec<(u32, i64)>,
    pub plaintext: i64,
    pub swept: bool,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub keys: Vec<super::crypto::KeyRow>,
    pub columns: Vec<ColumnStatus>,
}

/// What `clipcart keys status` shows: the keys, and what uses each.
pub async fn status(db: &Db, vault: &Vault) -> Result<Status, VaultError> {
    let keys = vault.key_rows().await?;
    let swept = swept_columns(db).await?;
    let mut columns = Vec::new();
    for col in ENCRYPTED_COLUMNS {
        let mut by_version = Vec::new();
        for key in &keys {
            let Ok(version) = u32::try_from(key.version) else {
                continue;
            };
            let n = count_prefixed(db, col, &version_prefix(version)).await?;
            by_version.push((version, n));
        }
        columns.push(ColumnStatus {
            name: col.name(),
            by_version,
            plaintext: count_not_prefixed(db, col, "enc:").await?,
            swept: swept.contains(&col.name()),
        });
    }
    Ok(Status { keys, columns })
}
