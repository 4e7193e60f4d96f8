//! The `clipcart` binary: `serve` (the default), `demo`, `migrate`, `admin create`,
//! `keys rotate|status`, `audit verify`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use clipcart_server::platform::clock::SystemClock;
use clipcart_server::platform::clock::human;
use clipcart_server::platform::config::Config;
use clipcart_server::platform::crypto::{MasterKeySource, Vault};
use clipcart_server::platform::db::Db;
use clipcart_server::platform::telemetry;
use clipcart_server::platform::{audit, keys};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "clipcart", version, about = "Self-hostable social commerce")]
struct Cli {
    /// Folder for the SQLite database and other local data; created on first run.
    #[arg(long, env = "CLIPCART_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    /// `postgres://user@host/db` to use PostgreSQL; defaults to SQLite in the data folder.
    #[arg(long, env = "CLIPCART_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(
        long,
        env = "CLIPCART_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    bind: SocketAddr,
    /// The URL people use to reach Clipcart (for links and the CSRF origin check).
    #[arg(long, env = "CLIPCART_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, env = "CLIPCART_LOG_JSON", global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    log_json: bool,
    /// Proxies whose X-Forwarded-For is believed: comma-separated addresses or CIDR ranges.
    #[arg(long, env = "CLIPCART_TRUSTED_PROXIES", global = true)]
    trusted_proxies: Option<String>,
    /// The SMTP server for mail: `smtp://host:port` (add `?tls=required` for STARTTLS) or
    /// `smtps://user:password@host`. Without it, mail stays in the outbox (`/dev/outbox`).
    #[arg(long, env = "CLIPCART_SMTP_URL", global = true, hide_env_values = true)]
    smtp_url: Option<String>,
    /// The From of every mail, e.g. `Clipcart <no-reply@shop.example.com>`.
    #[arg(long, env = "CLIPCART_MAIL_FROM", global = true)]
    mail_from: Option<String>,
    /// The vault's master key: 32 bytes in base64. Prefer CLIPCART_MASTER_KEY_FILE; without
    /// either, `<data dir>/master.key` is used (generated on first run).
    #[arg(
        long,
        env = "CLIPCART_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    master_key: Option<String>,
    /// A file holding the master key (32 bytes in base64).
    #[arg(long, env = "CLIPCART_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<PathBuf>,
    /// Mount the benchmark baseline routes (bench/README.md); never in production.
    #[arg(long, env = "CLIPCART_BENCH_ROUTES", hide = true, global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    bench_routes: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Load demo shops, products and accounts first (once).
        #[arg(long)]
        demo: bool,
    },
    /// Run the server with demo data: the same as `serve --demo`.
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage platform admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The vault's data keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new data key current and re-encrypt every encrypted column under it, in batches;
    /// retire the old key once nothing uses it. Safe to interrupt and run again: it continues.
    Rotate {
        /// Rows re-encrypted per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Seconds an old key must have been replaced before it is retired, so running servers
        /// (which re-read the keys every 30 s) have switched; 0 when no server is running.
        #[arg(long, default_value_t = 120)]
        grace_seconds: u64,
    },
    /// The data keys and how many values each encrypted column holds under each.
    Status,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; report the first broken link and exit non-zero if there is one.
    Verify,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a platform admin account.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Platform admin")]
        name: String,
        /// The password; read from CLIPCART_ADMIN_PASSWORD so it stays out of shell history.
        #[arg(long, env = "CLIPCART_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

impl Cli {
    fn config(&self) -> anyhow::Result<Config> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data folder {}", self.data_dir.display()))?;
        let mut config = Config::local(self.data_dir.clone(), self.bind);
        if let Some(url) = &self.database_url {
            config.database_url = url.clone();
        }
        config.trusted_proxies = clipcart_server::platform::http::client::parse_ranges(
            self.trusted_proxies.as_deref().unwrap_or(""),
        )
        .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        config.bench_routes = self.bench_routes;
        config.smtp_url = self
            .smtp_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|u| secrecy::SecretString::from(u.trim().to_string()));
        config.public_url = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            // localhost rather than 127.0.0.1: passkeys need a domain as the WebAuthn relying
            // party (an IP address cannot be one), and browsers treat localhost as secure.
            None if self.bind.ip().is_unspecified() || self.bind.ip().is_loopback() => {
                format!("http://localhost:{}", self.bind.port())
            }
            None => format!("http://{}", self.bind),
        };
        config.mail_from = match &self.mail_from {
            Some(from) => from.clone(),
            None => clipcart_server::platform::mail::default_from(&config.public_url),
        };
        config.master_key = match (&self.master_key, &self.master_key_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give the master key either as CLIPCART_MASTER_KEY or as CLIPCART_MASTER_KEY_FILE, not both"
            ),
            (Some(key), None) => MasterKeySource::Value(secrecy::SecretString::from(key.clone())),
            (None, Some(file)) => MasterKeySource::File(file.clone()),
            (None, None) => MasterKeySource::DataDir,
        };
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    let config = cli.config()?;
    match &cli.command {
        None => serve(config, false).await,
        Some(Command::Serve { demo }) => serve(config, *demo).await,
        Some(Command::Demo) => serve(config, true).await,
        Some(Command::Migrate) => {
            let db = Db::connect(&config.database_url, 2).await?;
            db.migrate().await?;
            println!("migrations applied to {}", redact(&config.database_url));
            Ok(())
        }
        Some(Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    name,
                    password,
                },
        }) => {
            let state = clipcart_server::build_state(config, Arc::new(SystemClock)).await?;
            let user = clipcart_server::identity::service::create_account(
                &state,
                email,
                password,
                name,
                clipcart_domain::identity::Role::Admin,
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {}",
                    e.title(),
                    e.field_errors()
                        .iter()
                        .map(|f| format!("{} {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            announce_master_key(&state);
            println!("created admin {} ({})", user.email, user.id);
            // Admins must use a passkey: without one every admin operation is refused.
            println!(
                "At the first sign-in, register a passkey (Account security > Passkeys, at {}/account/security): \
                 platform admins must have one, and the admin console and admin API stay closed until they do. \
                 Passkeys need the public URL to be a domain name (localhost works for development), not an IP address.",
                state.config.public_url.trim_end_matches('/')
            );
            Ok(())
        }
        Some(Command::Keys {
            command:
                KeysCommand::Rotate {
                    batch_size,
                    grace_seconds,
                },
        }) => keys_rotate(config, *batch_size, *grace_seconds).await,
        Some(Command::Keys {
            command: KeysCommand::Status,
        }) => keys_status(config).await,
        Some(Command::Audit {
            command: AuditCommand::Verify,
        }) => audit_verify(config).await,
    }
}

/// Says where a master key generated by this start is, and that it needs a backup.
fn announce_master_key(state: &clipcart_server::state::AppState) {
    if let Some(generated) = &state.generated_master_key {
        println!(
            "Generated the master key at {} (owner-only). Back it up apart from the database: \
             without it the encrypted data cannot be read.",
            generated.path.display()
        );
    }
}

/// The database (migrated) and the vault, without the rest of the server.
async fn open_vault(config: &Config) -> anyhow::Result<(Db, Vault)> {
    let db = Db::connect(&config.database_url, 4).await?;
    db.migrate().await?;
    let (vault, generated) = Vault::open(
        &db,
        &config.master_key,
        &config.data_dir,
        Arc::new(SystemClock),
    )
    .await?;
    if let Some(g) = generated {
        println!(
            "Generated the master key at {} (owner-only). Back it up apart from the database.",
            g.path.display()
        );
    }
    Ok((db, vault))
}

struct Bar(indicatif::ProgressBar);

impl keys::Progress for Bar {
    fn planned(&mut self, total: u64) {
        self.0.set_length(total);
    }
    fn column(&mut self, name: &str) {
        self.0.set_message(name.to_string());
    }
    fn advanced(&mut self, rows: u64) {
        self.0.inc(rows);
    }
}

async fn keys_rotate(config: Config, batch_size: usize, grace_seconds: u64) -> anyhow::Result<()> {
    let (db, vault) = open_vault(&config).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping after the batch in progress…");
            on_ctrl_c.store(true, Ordering::SeqCst);
        }
    });
    let opts = keys::RotateOptions {
        batch_size,
        grace: Duration::from_secs(grace_seconds),
        max_batches: None,
        stop: Some(stop.clone()),
    };
    let style =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} values  {msg}  ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    // A few rounds at most: the second finishes what servers wrote under the old key meanwhile.
    for round in 0..5 {
        let mut bar = Bar(indicatif::ProgressBar::new(0).with_style(style.clone()));
        let report = keys::rotate(&db, &vault, &opts, &mut bar).await?;
        bar.0.finish_and_clear();
        if round == 0 {
            if report.new_key {
                println!("data key v{} created and made current", report.target);
            } else {
                println!(
                    "continuing the unfinished rotation to data key v{}",
                    report.target
                );
            }
        }
        if round == 0 || report.moved > 0 {
            println!(
                "re-encrypted {} values under v{} ({} were plaintext from before the vault)",
                report.moved, report.target, report.legacy
            );
        }
        if report.interrupted {
            println!("interrupted: run `clipcart keys rotate` again to continue where it stopped");
            db.close().await;
            std::process::exit(1);
        }
        for v in &report.retired {
            println!("data key v{v} retired: nothing uses it any more");
        }
        for (v, uses) in &report.still_used {
            let list: Vec<String> = uses.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            println!(
                "data key v{v} is still used ({}); going over them again",
                list.join(", ")
            );
        }
        if let Some(wait) = report.retire_after {
            let secs = wait.as_secs_f64().ceil();
            println!(
                "waiting {secs} s before retiring the old key, so running servers switch to v{} first (--grace-seconds)",
                report.target
            );
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.enable_steady_tick(Duration::from_millis(200));
            let deadline = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            spinner.finish_and_clear();
            if stop.load(Ordering::SeqCst) {
                println!("interrupted: run `clipcart keys rotate` again to retire the old key");
                db.close().await;
                std::process::exit(1);
            }
            continue;
        }
        if report.still_used.is_empty() {
            println!(
                "rotation complete: every value is under data key v{}",
                report.target
            );
            db.close().await;
            return Ok(());
        }
    }
    db.close().await;
    anyhow::bail!(
        "old keys are still in use after several rounds; run `clipcart keys rotate` again"
    )
}

async fn keys_status(config: Config) -> anyhow::Result<()> {
    let (db, vault) = open_vault(&config).await?;
    let status = keys::status(&db, &vault).await?;
    println!("data keys:");
    for k in &status.keys {
        let since = match (k.status.as_str(), k.superseded_at, k.retired_at) {
            ("retired", _, Some(at)) => format!("retired {}", human(at)),
            (_, Some(at), _) => format!("replaced {}", human(at)),
            _ => String::new(),
        };
        println!(
            "  v{:<4} {:<9} created {}  {since}",
            k.version,
            k.status,
            human(k.created_at)
        );
    }
    println!("encrypted columns (values per key version):");
    for c in &status.columns {
        let mut parts: Vec<String> = c
            .by_version
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(v, n)| format!("v{v}: {n}"))
            .collect();
        if c.plaintext > 0 {
            parts.push(format!("plaintext: {}", c.plaintext));
        }
        if parts.is_empty() {
            parts.push("empty".into());
        }
        println!("  {:<24} {}", c.name, parts.join("  "));
    }
    db.close().await;
    Ok(())
}

async fn audit_verify(config: Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url, 2).await?;
    db.migrate().await?;
    let result = audit::verify(&db).await?;
    db.close().await;
    match result {
        Ok(v) => {
            println!(
                "audit log intact: {} entries; head hash {}",
                v.entries, v.head_hash
            );
            Ok(())
        }
        Err(broken) => {
            eprintln!("audit log BROKEN at {broken}");
            std::process::exit(2);
        }
    }
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let bind = config.bind;
    let url = config.public_url.clone();
    let db_label = redact(&config.database_url);
    let state = clipcart_server::build_state(config, Arc::new(SystemClock)).await?;
    announce_master_key(&state);
    if demo && clipcart_server::demo::seed(&state).await? {
        tracing::info!("demo data loaded");
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("listening on {bind}"))?;
    tracing::info!(%url, database = %db_label, startup_ms = started.elapsed().as_millis() as u64, "clipcart ready");
    println!("\nClipcart is running at {url}  (database: {db_label})");
    if demo {
        use clipcart_server::demo::{ADMIN, BUYER, PASSWORD, SELLERS};
        println!("Demo accounts, all with the password {PASSWORD}:");
        println!("  buyer   {BUYER}");
        for s in &SELLERS {
            println!("  seller  {}  ({})", s.email, s.shop);
        }
        println!("  admin   {ADMIN}");
    } else {
        println!(
            "Create the first platform admin with: clipcart admin create --email you@example.com"
        );
    }
    println!("Stop with Ctrl-C.\n");
    clipcart_server::serve(state, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
