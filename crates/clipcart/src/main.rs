//! The `clipcart` binary: `serve` (the default), `demo`, `migrate`, `admin create`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use clipcart_server::platform::clock::SystemClock;
use clipcart_server::platform::config::Config;
use clipcart_server::platform::db::Db;
use clipcart_server::platform::telemetry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    }
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let bind = config.bind;
    let url = config.public_url.clone();
    let db_label = redact(&config.database_url);
    let state = clipcart_server::build_state(config, Arc::new(SystemClock)).await?;
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
