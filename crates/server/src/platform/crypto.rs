//! The vault: envelope encryption for personal and financial columns.
//!
//! - **Data keys** (256-bit, random, numbered 1, 2, 3, ...) live in `vault_keys`, each wrapped
//!   with AES-256-GCM under the **master key**. The master key never enters the database: it
//!   comes from `CLIPCART_MASTER_KEY` (base64), a file (`CLIPCART_MASTER_KEY_FILE`), or
//!   `<data dir>/master.key`, which Clipcart generates on first run (owner-only permissions).
//! - **Values** are encrypted with AES-256-GCM under the current data key, with a random 96-bit
//!   nonce, and with associated data binding the table, the column, the row id and the key
//!   version: a ciphertext copied to another row or column does not decrypt.
//! - **Stored form**: `enc:v1:<key version>:<base64 of nonce ‖ ciphertext ‖ tag>`. Every
//!   ciphertext names its key, which is what lets `clipcart keys rotate` (see `keys.rs`) find and
//!   move old ciphertexts and retire a key once nothing uses it.
//! - A changed byte anywhere gives a `VaultError` naming the table, column and row (never the
//!   value), never wrong data.
//!
//! The columns that hold ciphertexts are listed once, in `ENCRYPTED_COLUMNS`.

use crate::platform::clock::SharedClock;
use crate::platform::db::Db;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rand::RngExt;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyPool;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Every ciphertext starts with this: the format version 1.
pub const PREFIX: &str = "enc:v1:";
/// How often a running server re-reads `vault_keys` to learn of a rotation made elsewhere (by
/// `clipcart keys rotate` or another node). Rotation waits longer than this before it retires
/// a key (see `keys::RotateOptions::grace`).
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The master key's file in the data folder, when neither variable names one.
pub const MASTER_KEY_FILE: &str = "master.key";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A column that holds vault ciphertexts: its table, the id column of the rows (bound into
/// every ciphertext, and the keyset rotation walks), and the column itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedColumn {
    pub table: &'static str,
    pub id_column: &'static str,
    pub column: &'static str,
    /// Whether `''` means "no value" and is stored as is, never encrypted (like NULL):
    /// rotation, the sweep and `keys status` leave such values alone.
    pub empty_is_none: bool,
}

impl EncryptedColumn {
    const fn new(table: &'static str, id_column: &'static str, column: &'static str) -> Self {
        Self {
            table,
            id_column,
            column,
            empty_is_none: false,
        }
    }

    /// A column where `''` means "not chosen" and stays `''` (see `empty_is_none`).
    const fn empty_is_none(self) -> Self {
        Self {
            empty_is_none: true,
            ..self
        }
    }

    /// The SQL condition (on this column) of the values that hold data: not NULL, and not
    /// `''` when that means "no value".
    pub fn has_value_sql(&self) -> String {
        if self.empty_is_none {
            format!("{c} IS NOT NULL AND {c} <> ''", c = self.column)
        } else {
            format!("{c} IS NOT NULL", c = self.column)
        }
    }

    /// The associated data for this column in row `row`.
    pub fn aad<'a>(&self, row: &'a str) -> Aad<'a> {
        Aad {
            table: self.table,
            column: self.column,
            row,
        }
    }

    /// `table.column`, as logs, `keys status` and `vault_sweeps` name it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// The encrypted columns, one constant each; `ENCRYPTED_COLUMNS` lists them all.
pub mod columns {
    use super::EncryptedColumn;

    pub const SHOP_TAX_ID: EncryptedColumn = EncryptedColumn::new("shops", "id", "tax_id");
    /// The registered address, as JSON.
    pub const SHOP_ADDRESS: EncryptedColumn = EncryptedColumn::new("shops", "id", "address_json");
    /// The buyer's shipping address on each order. `ship_country` stays plain: alone it names
    /// nobody, and shipping and tax rules read it.
    pub const ORDER_SHIP_NAME: EncryptedColumn = EncryptedColumn::new("orders", "id", "ship_name");
    pub const ORDER_SHIP_LINE1: EncryptedColumn =
        EncryptedColumn::new("orders", "id", "ship_line1");
    pub const ORDER_SHIP_LINE2: EncryptedColumn =
        EncryptedColumn::new("orders", "id", "ship_line2");
    pub const ORDER_SHIP_CITY: EncryptedColumn = EncryptedColumn::new("orders", "id", "ship_city");
    pub const ORDER_SHIP_POSTAL_CODE: EncryptedColumn =
        EncryptedColumn::new("orders", "id", "ship_postal_code");
    /// The TOTP seed (base32), one row per user.
    pub const TOTP_SECRET: EncryptedColumn =
        EncryptedColumn::new("totp_factors", "user_id", "secret");
    /// The anti-phishing code shown in every mail; `''` (not chosen) stays `''`.
    pub const USER_ANTI_PHISHING_CODE: EncryptedColumn =
        EncryptedColumn::new("users", "id", "anti_phishing_code").empty_is_none();
}

/// Every encrypted column: rotation, the start-up sweep of pre-vault plaintext, `keys status`
/// and the tests read this list. A new encrypted column is added here and nowhere else.
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[
    columns::SHOP_TAX_ID,
    columns::SHOP_ADDRESS,
    columns::ORDER_SHIP_NAME,
    columns::ORDER_SHIP_LINE1,
    columns::ORDER_SHIP_LINE2,
    columns::ORDER_SHIP_CITY,
    columns::ORDER_SHIP_POSTAL_CODE,
    columns::TOTP_SECRET,
    columns::USER_ANTI_PHISHING_CODE,
];

/// What a ciphertext is bound to: it decrypts only with the same table, column and row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl Aad<'_> {
    /// Length-prefixed, so no two different (table, column, row, version) give the same bytes.
    fn bytes(&self, version: u32) -> Vec<u8> {
        let version = version.to_string();
        let mut out = b"clipcart-vault-v1".to_vec();
        for part in [self.table, self.column, self.row, version.as_str()] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "{table}.{column} of row {row} is not a vault ciphertext (expected enc:v1:<key>:<data>); the value was altered"
    )]
    NotEncrypted {
        table: String,
        column: String,
        row: String,
    },
    #[error("{table}.{column} of row {row} holds a malformed ciphertext: {why}")]
    Malformed {
        table: String,
        column: String,
        row: String,
        why: &'static str,
    },
    #[error(
        "{table}.{column} of row {row} is encrypted under data key v{version}, which this database does not have"
    )]
    UnknownKey {
        table: String,
        column: String,
        row: String,
        version: u32,
    },
    #[error(
        "{table}.{column} of row {row} is encrypted under data key v{version}, which was retired"
    )]
    RetiredKey {
        table: String,
        column: String,
        row: String,
        version: u32,
    },
    #[error(
        "{table}.{column} of row {row} failed to decrypt under data key v{version}: the ciphertext was altered, or copied from another row or column"
    )]
    Tampered {
        table: String,
        column: String,
        row: String,
        version: u32,
    },
    #[error(
        "the master key does not open data key v{version}: this database was encrypted under another master key (check CLIPCART_MASTER_KEY, CLIPCART_MASTER_KEY_FILE or <data dir>/master.key; every node needs the same key)"
    )]
    WrongMasterKey { version: u32 },
    #[error("the vault has no current data key")]
    NoCurrentKey,
    #[error("data key v{0} is not usable (retired or unknown)")]
    KeyUnavailable(u32),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl VaultError {
    fn at(aad: &Aad<'_>, make: impl FnOnce(String, String, String) -> VaultError) -> VaultError {
        make(aad.table.into(), aad.column.into(), aad.row.into())
    }
}

impl From<VaultError> for crate::platform::http::AppError {
    fn from(e: VaultError) -> Self {
        crate::platform::http::AppError::Internal(anyhow::Error::new(e))
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// The base64 text of 32 bytes (`CLIPCART_MASTER_KEY`).
    Value(SecretString),
    /// A file holding that text (`CLIPCART_MASTER_KEY_FILE`).
    File(PathBuf),
    /// `<data dir>/master.key`, generated on first run.
    DataDir,
}

/// A freshly generated master key's file, for the first-run announcement.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub path: PathBuf,
}

fn decode_master(text: &str, origin: &str) -> Result<Aes256Gcm, VaultError> {
    let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
        VaultError::MasterKey(format!(
            "{origin} is not base64; it must be 32 random bytes in base64 (44 characters), e.g. from `openssl rand -base64 32`"
        ))
    })?);
    if bytes.len() != 32 {
        return Err(VaultError::MasterKey(format!(
            "{origin} holds {} bytes; it must be 32 bytes (256 bits) in base64",
            bytes.len()
        )));
    }
    Aes256Gcm::new_from_slice(&bytes)
        .map_err(|_| VaultError::MasterKey(format!("{origin} is not a usable AES-256 key")))
}

fn read_master_file(path: &Path) -> Result<Aes256Gcm, VaultError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| VaultError::MasterKey(format!("cannot read {}: {e}", path.display())))?,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the master key file is readable by other users; make it owner-only (chmod 600)");
        }
    }
    decode_master(&text, &path.display().to_string())
}

/// Writes a new random master key to `path`, owner-only, refusing to overwrite a file.
fn generate_master_file(path: &Path) -> Result<bool, VaultError> {
    use std::io::Write;
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rng().fill(&mut raw[..]);
    let text = Zeroizing::new(format!("{}\n", STANDARD.encode(&raw[..])));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| {
                    VaultError::MasterKey(format!("cannot write {}: {e}", path.display()))
                })?;
            Ok(true)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(VaultError::MasterKey(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Loads the master key; generates `<data dir>/master.key` on first run (only while the
/// database holds no data keys: a missing key file for an encrypted database is an error).
fn load_master(
    source: &MasterKeySource,
    data_dir: &Path,
    database_has_keys: bool,
) -> Result<(Aes256Gcm, Option<GeneratedKey>), VaultError> {
    match source {
        MasterKeySource::Value(text) => Ok((
            decode_master(text.expose_secret(), "CLIPCART_MASTER_KEY")?,
            None,
        )),
        MasterKeySource::File(path) => Ok((read_master_file(path)?, None)),
        MasterKeySource::DataDir => {
            let path = data_dir.join(MASTER_KEY_FILE);
            if path.exists() {
                return Ok((read_master_file(&path)?, None));
            }
            if database_has_keys {
                return Err(VaultError::MasterKey(format!(
                    "{} is missing but the database holds encrypted data: restore the key file from your backup, or point CLIPCART_MASTER_KEY_FILE at it",
                    path.display()
                )));
            }
            let generated = generate_master_file(&path)?;
            let key = read_master_file(&path)?;
            Ok((key, generated.then_some(GeneratedKey { path })))
        }
    }
}

/// The data keys this process holds, unwrapped.
struct Keys {
    current: Option<u32>,
    usable: HashMap<u32, Arc<Aes256Gcm>>,
    retired: HashSet<u32>,
    loaded_at: Instant,
}

pub struct Vault {
    master: Aes256Gcm,
    /// Keys are read through the read pool: `encrypt` may run while its caller holds the
    /// SQLite writer in a transaction, and must not wait for it.
    read: AnyPool,
    write: AnyPool,
    clock: SharedClock,
    keys: RwLock<Keys>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

fn wrap_aad(version: u32) -> Vec<u8> {
    format!("clipcart-vault-data-key-v1:{version}").into_bytes()
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill(&mut nonce[..]);
    nonce
}

fn seal_bytes(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let nonce = random_nonce();
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::MasterKey("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_bytes(cipher: &Aes256Gcm, aad: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
        .ok()
}

/// Splits a stored value into its key version and sealed bytes.
fn parse(aad: &Aad<'_>, stored: &str) -> Result<(u32, Vec<u8>), VaultError> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Err(if stored.starts_with("enc:") {
            VaultError::at(aad, |table, column, row| VaultError::Malformed {
                table,
                column,
                row,
                why: "unknown format version",
            })
        } else {
            VaultError::at(aad, |table, column, row| VaultError::NotEncrypted {
                table,
                column,
                row,
            })
        });
    };
    let malformed = |why| {
        VaultError::at(aad, |table, column, row| VaultError::Malformed {
            table,
            column,
            row,
            why,
        })
    };
    let (version, data) = rest
        .split_once(':')
        .ok_or_else(|| malformed("no key version"))?;
    if version.is_empty() || version.len() > 9 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("bad key version"));
    }
    let version: u32 = version.parse().map_err(|_| malformed("bad key version"))?;
    let data = STANDARD_NO_PAD
        .decode(data)
        .map_err(|_| malformed("bad base64"))?;
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(malformed("too short"));
    }
    Ok((version, data))
}

/// The key version a stored value names, if it is a well-formed ciphertext.
pub fn key_version(stored: &str) -> Option<u32> {
    let rest = stored.strip_prefix(PREFIX)?;
    let (version, _) = rest.split_once(':')?;
    if version.is_empty() || version.len() > 9 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    version.parse().ok()
}

/// One row of `vault_keys`, for `keys status` and rotation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub version: i64,
    pub status: String,
    pub created_at: i64,
    pub superseded_at: Option<i64>,
    pub retired_at: Option<i64>,
}

pub const KEY_CURRENT: &str = "current";
pub const KEY_PREVIOUS: &str = "previous";
pub const KEY_RETIRED: &str = "retired";

impl Vault {
    /// Opens the vault for a database: loads (or, on first run, generates) the master key,
    /// creates data key v1 when the database has none, and unwraps every usable data key.
    /// Fails with a clear message when the master key does not fit the database.
    pub async fn open(
        db: &Db,
        source: &MasterKeySource,
        data_dir: &Path,
        clock: SharedClock,
    ) -> Result<(Vault, Option<GeneratedKey>), VaultError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vault_keys")
            .fetch_one(&db.write)
            .await?;
        let (master, generated) = load_master(source, data_dir, count > 0)?;
        let vault = Vault {
            master,
            read: db.read.clone(),
            write: db.write.clone(),
            clock,
            keys: RwLock::new(Keys {
                current: None,
                usable: HashMap::new(),
                retired: HashSet::new(),
                loaded_at: Instant::now(),
            }),
            reload_lock: tokio::sync::Mutex::new(()),
        };
        if count == 0
            && let Err(e) = vault.create_key().await
        {
            // Another node starting at the same moment may have made v1 first: use theirs.
            vault.reload().await?;
            if vault.current_version().is_none() {
                return Err(e);
            }
        }
        vault.reload().await?;
        Ok((vault, generated))
    }

    /// Creates the next data key version and makes it current (the previous current key
    /// becomes `previous`). Returns the new version.
    pub async fn create_key(&self) -> Result<u32, VaultError> {
        let now = self.clock.now_ms();
        let mut tx = self.write.begin().await?;
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM vault_keys")
            .fetch_one(&mut *tx)
            .await?;
        let version = u32::try_from(max.unwrap_or(0) + 1)
            .map_err(|_| VaultError::MasterKey("data key versions exhausted".into()))?;
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rng().fill(&mut raw[..]);
        let wrapped =
            STANDARD_NO_PAD.encode(seal_bytes(&self.master, &wrap_aad(version), &raw[..])?);
        sqlx::query("UPDATE vault_keys SET status = $1, superseded_at = $2 WHERE status = $3")
            .bind(KEY_PREVIOUS)
            .bind(now)
            .bind(KEY_CURRENT)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO vault_keys (version, status, wrapped_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(i64::from(version))
        .bind(KEY_CURRENT)
        .bind(&wrapped)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.reload().await?;
        tracing::info!(version, "new data key created and made current");
        Ok(version)
    }

    /// Re-reads `vault_keys`: learns of new keys and of keys retired elsewhere.
    pub async fn reload(&self) -> Result<(), VaultError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT version, status, wrapped_key FROM vault_keys")
                .fetch_all(&self.read)
                .await?;
        let known: HashMap<u32, Arc<Aes256Gcm>> = self
            .keys
            .read()
            .map(|k| k.usable.clone())
            .unwrap_or_default();
        let mut next = Keys {
            current: None,
            usable: HashMap::new(),
            retired: HashSet::new(),
            loaded_at: Instant::now(),
        };
        for (version, status, wrapped) in rows {
            let Ok(version) = u32::try_from(version) else {
                continue;
            };
            if status == KEY_RETIRED {
                next.retired.insert(version);
                continue;
            }
            let cipher = match known.get(&version) {
                Some(c) => c.clone(),
                None => Arc::new(self.unwrap_key(version, &wrapped)?),
            };
            if status == KEY_CURRENT {
                next.current = Some(version);
            }
            next.usable.insert(version, cipher);
        }
        if let Ok(mut keys) = self.keys.write() {
            *keys = next;
        }
        Ok(())
    }

    fn unwrap_key(&self, version: u32, wrapped: &str) -> Result<Aes256Gcm, VaultError> {
        let data = STANDARD_NO_PAD
            .decode(wrapped)
            .map_err(|_| VaultError::WrongMasterKey { version })?;
        let raw = Zeroizing::new(
            open_bytes(&self.master, &wrap_aad(version), &data)
                .ok_or(VaultError::WrongMasterKey { version })?,
        );
        Key::<Aes256Gcm>::try_from(&raw[..])
            .map(|k| Aes256Gcm::new(&k))
            .map_err(|_| VaultError::WrongMasterKey { version })
    }

    async fn reload_if_stale(&self) -> Result<(), VaultError> {
        let stale = self
            .keys
            .read()
            .map(|k| k.loaded_at.elapsed() >= REFRESH_EVERY)
            .unwrap_or(true);
        if stale {
            self.reload().await?;
        }
        Ok(())
    }

    /// The current data key's version.
    pub fn current_version(&self) -> Option<u32> {
        self.keys.read().ok().and_then(|k| k.current)
    }

    fn key(&self, version: u32) -> Option<Arc<Aes256Gcm>> {
        self.keys
            .read()
            .ok()
            .and_then(|k| k.usable.get(&version).cloned())
    }

    fn is_retired(&self, version: u32) -> bool {
        self.keys
            .read()
            .map(|k| k.retired.contains(&version))
            .unwrap_or(false)
    }

    /// Encrypts `plaintext` under the current data key, bound to `aad`.
    pub async fn encrypt(&self, aad: &Aad<'_>, plaintext: &str) -> Result<String, VaultError> {
        self.reload_if_stale().await?;
        let version = self.current_version().ok_or(VaultError::NoCurrentKey)?;
        self.encrypt_with(version, aad, plaintext)
    }

    /// Encrypts under a given key version (rotation moves values to its target key).
    pub fn encrypt_with(
        &self,
        version: u32,
        aad: &Aad<'_>,
        plaintext: &str,
    ) -> Result<String, VaultError> {
        let cipher = self
            .key(version)
            .ok_or(VaultError::KeyUnavailable(version))?;
        let sealed = seal_bytes(&cipher, &aad.bytes(version), plaintext.as_bytes())?;
        Ok(format!(
            "{PREFIX}{version}:{}",
            STANDARD_NO_PAD.encode(sealed)
        ))
    }

    /// Decrypts a stored value bound to `aad`. Anything but an intact ciphertext of this very
    /// table, column and row is an error.
    pub async fn decrypt(&self, aad: &Aad<'_>, stored: &str) -> Result<String, VaultError> {
        let (version, data) = parse(aad, stored)?;
        if self.key(version).is_none() && !self.is_retired(version) {
            // A key made after this process loaded its keys (a rotation elsewhere).
            self.reload().await?;
        }
        let Some(cipher) = self.key(version) else {
            return Err(if self.is_retired(version) {
                VaultError::at(aad, |table, column, row| VaultError::RetiredKey {
                    table,
                    column,
                    row,
                    version,
                })
            } else {
                VaultError::at(aad, |table, column, row| VaultError::UnknownKey {
                    table,
                    column,
                    row,
                    version,
                })
            });
        };
        let plain = open_bytes(&cipher, &aad.bytes(version), &data).ok_or_else(|| {
            VaultError::at(aad, |table, column, row| VaultError::Tampered {
                table,
                column,
                row,
                version,
            })
        })?;
        String::from_utf8(plain).map_err(|_| {
            VaultError::at(aad, |table, column, row| VaultError::Malformed {
                table,
                column,
                row,
                why: "the plaintext is not UTF-8",
            })
        })
    }

    /// Every row of `vault_keys`, newest first.
    pub async fn key_rows(&self) -> Result<Vec<KeyRow>, VaultError> {
        Ok(sqlx::query_as(
            "SELECT version, status, created_at, superseded_at, retired_at FROM vault_keys ORDER BY version DESC",
        )
        .fetch_all(&self.read)
        .await?)
    }

    /// Retires a key no ciphertext uses any more: its wrapped key is erased for good.
    pub(crate) async fn retire(&self, version: u32) -> Result<bool, VaultError> {
        let r = sqlx::query(
            "UPDATE vault_keys SET status = $1, wrapped_key = '', retired_at = $2 WHERE version = $3 AND status = $4",
        )
        .bind(KEY_RETIRED)
        .bind(self.clock.now_ms())
        .bind(i64::from(version))
        .bind(KEY_PREVIOUS)
        .execute(&self.write)
        .await?;
        self.reload().await?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from([7u8; 32]))
    }

    const AAD: Aad<'static> = Aad {
        table: "shops",
        column: "tax_id",
        row: "shp_1",
    };

    #[test]
    fn aad_is_unambiguous() {
        let a = Aad {
            table: "ab",
            column: "c",
            row: "r",
        };
        let b = Aad {
            table: "a",
            column: "bc",
            row: "r",
        };
        assert_ne!(a.bytes(1), b.bytes(1));
        assert_ne!(a.bytes(1), a.bytes(11));
    }

    #[test]
    fn sealed_bytes_open_only_with_their_aad() {
        let c = cipher();
        let sealed = seal_bytes(&c, &AAD.bytes(1), b"DE123").expect("sealed");
        assert_eq!(
            open_bytes(&c, &AAD.bytes(1), &sealed).as_deref(),
            Some(&b"DE123"[..])
        );
        let other = Aad {
            row: "shp_2",
            ..AAD
        };
        assert!(open_bytes(&c, &other.bytes(1), &sealed).is_none());
        assert!(open_bytes(&c, &AAD.bytes(2), &sealed).is_none());
    }

    #[test]
    fn parse_names_what_is_wrong() {
        assert!(matches!(
            parse(&AAD, "DE123"),
            Err(VaultError::NotEncrypted { .. })
        ));
        assert!(matches!(
            parse(&AAD, "enc:v2:1:AAAA"),
            Err(VaultError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&AAD, "enc:v1:x:AAAA"),
            Err(VaultError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&AAD, "enc:v1:1:AAAA"),
            Err(VaultError::Malformed { .. })
        ));
        assert_eq!(key_version("enc:v1:12:abc"), Some(12));
        assert_eq!(key_version("enc:v1:+1:abc"), None);
        assert_eq!(key_version("plain"), None);
    }

    #[test]
    fn master_keys_must_be_32_bytes_of_base64() {
        assert!(decode_master(&STANDARD.encode([1u8; 32]), "test").is_ok());
        assert!(decode_master(&format!(" {}\n", STANDARD.encode([1u8; 32])), "test").is_ok());
        assert!(decode_master(&STANDARD.encode([1u8; 16]), "test").is_err());
        assert!(decode_master("not base64!", "test").is_err());
    }

    #[test]
    fn generated_key_files_are_owner_only_and_never_overwritten() {
        let tmp = tempfile::tempdir().expect("dir");
        let dir = tmp.path();
        let (_, generated) = load_master(&MasterKeySource::DataDir, dir, false).expect("made");
        let path = generated.expect("announced").path;
        let first = std::fs::read_to_string(&path).expect("read");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (_, again) = load_master(&MasterKeySource::DataDir, dir, true).expect("read back");
        assert!(again.is_none());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), first);
        std::fs::remove_file(&path).expect("removed");
        let missing = load_master(&MasterKeySource::DataDir, dir, true);
        assert!(matches!(missing, Err(VaultError::MasterKey(m)) if m.contains("missing")));
    }
}
