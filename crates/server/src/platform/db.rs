//! One store layer for SQLite and PostgreSQL through `sqlx::Any`: one SQL text per query with
//! `$n` placeholders (both dialects accept them). Ids are TEXT, times BIGINT epoch ms, money
//! BIGINT minor units, booleans INTEGER 0/1 — the types that bind identically through Any.
//!
//! SQLite allows one writer at a time, so writes go through a one-connection pool: transactions
//! queue in-process instead of failing with SQLITE_BUSY, while readers use their own pool (WAL
//! lets them read during a write). On PostgreSQL both pools are the same.

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub read: AnyPool,
    pub write: AnyPool,
    pub backend: Backend,
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("connecting to PostgreSQL")?;
            return Ok(Self {
                read: pool.clone(),
                write: pool,
                backend: Backend::Postgres,
            });
        }
        if !url.starts_with("sqlite:") {
            anyhow::bail!("CLIPCART_DATABASE_URL must start with sqlite:// or postgres://");
        }
        let url = if url.contains('?') {
            url.to_string()
        } else {
            format!("{url}?mode=rwc")
        };
        let write = sqlite_pool(&url, 1, true).await?;
        let read = sqlite_pool(&url, 4, false).await?;
        Ok(Self {
            read,
            write,
            backend: Backend::Sqlite,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.write)
            .await
            .context("running migrations")?;
        Ok(())
    }

    /// Checks the database answers; used by `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

async fn sqlite_pool(url: &str, size: u32, writer: bool) -> anyhow::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // A pinged SQLite connection is a round trip to its worker thread before every query,
        // and a local file cannot drop a connection the way a network can: skip the test.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                if writer {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                }
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .with_context(|| format!("opening SQLite database {url}"))
}

/// Maps a boolean to the INTEGER 0/1 we store.
pub fn flag(b: bool) -> i64 {
    i64::from(b)
}
