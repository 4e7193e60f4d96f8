//! Runtime configuration, built by the binary from flags and `CLIPCART_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://path/to/file.db` (the default, under `data_dir`) or `postgres://...`.
    pub database_url: String,
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    /// The origin people reach Clipcart at, e.g. `https://shop.example.com`; used in links
    /// and for the CSRF origin check.
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Connections in the PostgreSQL pool (SQLite uses one writer and a few readers).
    pub max_connections: u32,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges); empty: none,
    /// the client address is the TCP peer. See `platform::http::client`.
    pub trusted_proxies: Vec<crate::platform::http::client::IpRange>,
    /// Mounts the benchmark baseline routes of `platform::bench` (off unless benchmarking).
    pub bench_routes: bool,
    /// The SMTP server mail is delivered through: `smtp://host:port` (plain, or
    /// `?tls=required` for STARTTLS), `smtps://user:password@host` (TLS from the start). A
    /// secret: it may carry the password. `None` (development): mail stays in the outbox,
    /// readable at `/dev/outbox` on a loopback public URL. See `platform::mail`.
    pub smtp_url: Option<secrecy::SecretString>,
    /// The `From` of every mail, e.g. `Clipcart <no-reply@shop.example.com>`.
    pub mail_from: String,
    /// Where the vault's master key comes from (`CLIPCART_MASTER_KEY`,
    /// `CLIPCART_MASTER_KEY_FILE`, else `<data dir>/master.key`). See `platform::crypto`.
    pub master_key: crate::platform::crypto::MasterKeySource,
}

impl Config {
    /// A configuration for a data folder with SQLite inside it.
    pub fn local(data_dir: PathBuf, bind: SocketAddr) -> Self {
        let database_url = format!("sqlite://{}", data_dir.join("clipcart.db").display());
        Self {
            database_url,
            data_dir,
            bind,
            public_url: format!("http://{bind}"),
            body_limit: 1024 * 1024,
            max_connections: 16,
            trusted_proxies: Vec::new(),
            bench_routes: false,
            smtp_url: None,
            mail_from: crate::platform::mail::DEFAULT_FROM.to_string(),
            master_key: crate::platform::crypto::MasterKeySource::DataDir,
        }
    }

    /// `__Host-` cookies must be Secure; browsers accept Secure cookies over plain HTTP only on
    /// loopback, so elsewhere plain HTTP would silently lose every session.
    pub fn cookies_can_be_secure(&self) -> bool {
        let url = self.public_url.to_ascii_lowercase();
        url.starts_with("https://")
            || url.starts_with("http://localhost")
            || url.starts_with("http://127.")
            || url.starts_with("http://[::1]")
    }
}
