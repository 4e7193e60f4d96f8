//! Mail: a durable outbox and its delivery over SMTP.
//!
//! A service never talks SMTP. It writes the mail to `outbox_mail` with `enqueue`, in the same
//! transaction as the change the mail reports, so a mail is sent if and only if the change
//! committed; after the commit it calls `Mailer::wake`. A background task (`deliver`, started
//! by `serve`) sends what is due through lettre's async SMTP transport, one mail at a time,
//! retrying transient failures with exponential back-off. Sending happens outside every
//! transaction: a slow SMTP server never holds a database connection (on SQLite, the writer).
//! Several nodes may run the task: a mail is claimed with a lease before it is sent.
//!
//! Every mail goes through one layout (`templates/mail/layout.{txt,html}`), which puts the
//! recipient's anti-phishing code first, so no kind of mail can forget it. Bodies are erased
//! once delivered, since they may hold a single-use link; rows are purged after 30 days.
//!
//! Without an SMTP server (development) nothing is delivered: mail stays in the outbox marked
//! as not sent, and `/dev/outbox` lists it — only when the public URL is a loopback address,
//! because the outbox holds every password-reset link and must never be public.

use crate::platform::clock::human;
use crate::platform::config::Config;
use crate::platform::http::AppResult;
use crate::platform::http::csrf::CsrfToken;
use crate::platform::http::page::{PageCtx, PageResult, render};
use crate::state::AppState;
use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use clipcart_domain::DomainError;
use clipcart_domain::ids;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sqlx::{AnyConnection, FromRow};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::Notify;

pub const DEFAULT_FROM: &str = "Clipcart <no-reply@localhost>";
const MAIL_ID_PREFIX: &str = "mal";
/// Mails claimed and sent per round before looking again.
const BATCH: i64 = 20;
/// A node's claim on a mail it is sending; past it another node may take the mail over.
const LEASE_MS: i64 = 2 * 60 * 1000;
/// Attempts before a mail is given up (back-off 30 s doubling to 1 h: about 4 hours in all).
pub const MAX_ATTEMPTS: i64 = 10;
const FIRST_RETRY_MS: i64 = 30 * 1000;
const MAX_RETRY_MS: i64 = 60 * 60 * 1000;
/// Unsent mail older than this is not sent any more (its links have expired): e.g. mail written
/// while no SMTP server was configured.
const SEND_WITHIN_MS: i64 = 24 * 60 * 60 * 1000;
/// Rows are deleted this long after they were written.
pub const RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// The task looks for due mail at least this often even when nobody wakes it (retries, and
/// mail written by other nodes).
const POLL: Duration = Duration::from_secs(30);

/// `Clipcart <no-reply@HOST>` for a public URL on a domain name; `DEFAULT_FROM` otherwise.
pub fn default_from(public_url: &str) -> String {
    let host = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split(['/', ':', '?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let domain_name = host.contains('.')
        && host.parse::<std::net::IpAddr>().is_err()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if domain_name {
        format!("Clipcart <no-reply@{host}>")
    } else {
        DEFAULT_FROM.to_string()
    }
}

/// The delivery side of mail, shared through the application state.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    wake: Arc<Notify>,
    dev_outbox: bool,
    public_url: String,
}

impl Mailer {
    /// From `CLIPCART_SMTP_URL` and `CLIPCART_MAIL_FROM`; refuses settings that cannot work.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let from: Mailbox = config.mail_from.parse().map_err(|e| {
            anyhow::anyhow!(
                "CLIPCART_MAIL_FROM `{}` is not a mail address: {e}",
                config.mail_from
            )
        })?;
        let transport = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    // Not the URL in the message: it may carry the password.
                    .map_err(|e| anyhow::anyhow!("CLIPCART_SMTP_URL cannot be used: {e}"))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            ),
            None => None,
        };
        let dev_outbox = transport.is_none() && is_loopback_url(&config.public_url);
        if transport.is_none() {
            tracing::warn!(
                dev_outbox,
                "no SMTP server configured (CLIPCART_SMTP_URL): mail is kept in the outbox and not sent"
            );
        }
        Ok(Self {
            transport,
            from,
            wake: Arc::new(Notify::new()),
            dev_outbox,
            public_url: config.public_url.trim_end_matches('/').to_string(),
        })
    }

    /// Tells the delivery task there is new mail (call after the transaction commits). A wake
    /// while the task is busy is remembered, never lost.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn smtp_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Whether `/dev/outbox` is served: no SMTP server and a loopback public URL.
    pub fn dev_outbox(&self) -> bool {
        self.dev_outbox
    }

    /// An absolute link to a path of this site, for mails.
    pub fn link(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_url)
    }
}

/// Whether a public URL names this machine: plain HTTP to `localhost` or a loopback address.
fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .to_ascii_lowercase()
        .strip_prefix("http://")
        .map(str::to_string)
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a mail says. The layout adds the anti-phishing line, the greeting's place and the
/// footer; the text and HTML parts are rendered from the same content.
pub struct Mail {
    pub to: String,
    /// Whose anti-phishing code the mail shows; `None`: the account that owns `to`, if any.
    /// (A confirmation sent to a new address shows the code of the account asking for it.)
    pub user_id: Option<String>,
    /// A short name of the kind of mail (`verify_email`, `alert_password_changed`, …), for the
    /// outbox listing, the logs and the anti-automation limits.
    pub kind: &'static str,
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    pub action: Option<Action>,
    /// Paragraphs after the button.
    pub after: Vec<String>,
}

/// The one link a mail asks the reader to follow.
pub struct Action {
    pub label: String,
    pub url: String,
}

#[derive(Template)]
#[template(path = "mail/layout.txt")]
struct TextLayout<'a> {
    mail: &'a Mail,
    /// The recipient's anti-phishing code, if they chose one...
    code: Option<&'a str>,
    /// ...and whether an account has the address at all (an invitation may go to a stranger).
    has_account: bool,
    security_url: &'a str,
}

#[derive(Template)]
#[template(path = "mail/layout.html")]
struct HtmlLayout<'a> {
    mail: &'a Mail,
    code: Option<&'a str>,
    has_account: bool,
    security_url: &'a str,
}

/// Writes a mail to the outbox on `conn` — pass the transaction of the change it reports.
/// Call `state.mail.wake()` after the commit. Returns the mail's id.
pub async fn enqueue(conn: &mut AnyConnection, state: &AppState, mail: Mail) -> AppResult<String> {
    // The code is read here, not by each caller, so that no mail can leave without it.
    // It is a vault ciphertext bound to the user id (`''` when not chosen).
    let stored: Option<(String, String)> = match &mail.user_id {
        Some(user_id) => {
            sqlx::query_as("SELECT id, anti_phishing_code FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => {
            sqlx::query_as("SELECT id, anti_phishing_code FROM users WHERE email = $1")
                .bind(&mail.to)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let code: Option<String> = match stored {
        Some((user_id, stored)) => Some(
            crate::identity::email_store::open_anti_phishing_code(&state.vault, &user_id, &stored)
                .await?,
        ),
        None => None,
    };
    let has_account = code.is_some();
    let code = code.as_deref().filter(|c| !c.is_empty());
    let security_url = state.mail.link("/account/security");
    let text = TextLayout {
        mail: &mail,
        code,
        has_account,
        security_url: &security_url,
    }
    .render()
    .map_err(|e| crate::platform::http::AppError::Internal(e.into()))?;
    let html = HtmlLayout {
        mail: &mail,
        code,
        has_account,
        security_url: &security_url,
    }
    .render()
    .map_err(|e| crate::platform::http::AppError::Internal(e.into()))?;
    let id = ids::new_id(MAIL_ID_PREFIX);
    let now = state.now_ms();
    sqlx::query(
        "INSERT INTO outbox_mail (id, user_id, to_address, kind, subject, body_text, body_html, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(mail.user_id.as_deref())
    .bind(&mail.to)
    .bind(mail.kind)
    .bind(&mail.subject)
    .bind(&text)
    .bind(&html)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    tracing::info!(mail_id = %id, kind = mail.kind, "mail queued");
    Ok(id)
}

/// `enqueue` in a transaction of its own, then wakes the delivery task: for mail that reports
/// nothing written in the same breath.
pub async fn send(state: &AppState, mail: Mail) -> AppResult<String> {
    let mut tx = state.db.write.begin().await?;
    let id = enqueue(&mut tx, state, mail).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(id)
}

/// How many mails of `kind` went to `to` since `since` (for anti-automation limits).
pub async fn count_recent(state: &AppState, to: &str, kind: &str, since: i64) -> AppResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_mail WHERE to_address = $1 AND kind = $2 AND created_at >= $3",
    )
    .bind(to)
    .bind(kind)
    .bind(since)
    .fetch_one(&state.db.write)
    .await?)
}

// ---- Delivery ----

#[derive(FromRow)]
struct DueMail {
    id: String,
    to_address: String,
    kind: String,
    subject: String,
    body_text: String,
    body_html: String,
    attempts: i64,
}

/// The delivery task: sends what is due, then sleeps until woken or until the next retry is
/// due (at most `POLL`). Returns at once when no SMTP server is configured.
pub async fn deliver(state: AppState) {
    let Some(transport) = state.mail.transport.clone() else {
        return;
    };
    loop {
        let wait = match deliver_due(&state, &transport).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "mail delivery round failed");
                POLL
            }
        };
        tokio::select! {
            () = state.mail.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Claims and sends due mail until none is left; returns how long to sleep.
async fn deliver_due(
    state: &AppState,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
) -> anyhow::Result<Duration> {
    loop {
        let now = state.now_ms();
        let due: Vec<DueMail> = sqlx::query_as(
            "SELECT id, to_address, kind, subject, body_text, body_html, attempts FROM outbox_mail \
             WHERE sent_at = 0 AND failed = 0 AND next_attempt_at <= $1 AND claimed_until <= $1 AND created_at >= $2 \
             ORDER BY next_attempt_at, created_at, id LIMIT $3",
        )
        .bind(now)
        .bind(now - SEND_WITHIN_MS)
        .bind(BATCH)
        .fetch_all(&state.db.write)
        .await?;
        let full = i64::try_from(due.len()).unwrap_or(i64::MAX) >= BATCH;
        for mail in due {
            let claimed = sqlx::query(
                "UPDATE outbox_mail SET claimed_until = $1, attempts = attempts + 1 \
                 WHERE id = $2 AND sent_at = 0 AND failed = 0 AND claimed_until <= $3",
            )
            .bind(now + LEASE_MS)
            .bind(&mail.id)
            .bind(now)
            .execute(&state.db.write)
            .await?
            .rows_affected()
                == 1;
            if claimed {
                deliver_one(state, transport, mail).await?;
            }
        }
        if full {
            continue;
        }
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM outbox_mail WHERE sent_at = 0 AND failed = 0 AND created_at >= $1",
        )
        .bind(state.now_ms() - SEND_WITHIN_MS)
        .fetch_one(&state.db.write)
        .await?;
        let wait = next
            .map(|at| at - state.now_ms())
            .and_then(|ms| u64::try_from(ms.max(0)).ok())
            .map_or(POLL, |ms| Duration::from_millis(ms).min(POLL));
        return Ok(wait);
    }
}

async fn deliver_one(
    state: &AppState,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    mail: DueMail,
) -> anyhow::Result<()> {
    let attempt = mail.attempts + 1;
    let outcome = match message(state, &mail) {
        Ok(message) => transport.send(message).await.map_err(|e| {
            let permanent = e.is_permanent();
            (e.to_string(), permanent)
        }),
        // An address lettre cannot write will never work.
        Err(e) => Err((e, true)),
    };
    let now = state.now_ms();
    match outcome {
        Ok(_) => {
            sqlx::query(
                "UPDATE outbox_mail SET sent_at = $1, claimed_until = 0, body_text = '', body_html = '', last_error = '' WHERE id = $2",
            )
            .bind(now)
            .bind(&mail.id)
            .execute(&state.db.write)
            .await?;
            tracing::info!(mail_id = %mail.id, kind = %mail.kind, attempt, "mail sent");
        }
        Err((error, permanent)) => {
            let give_up = permanent || attempt >= MAX_ATTEMPTS;
            let error: String = error.chars().take(300).collect();
            sqlx::query(
                "UPDATE outbox_mail SET claimed_until = 0, failed = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
            )
            .bind(crate::platform::db::flag(give_up))
            .bind(now + retry_delay_ms(attempt))
            .bind(&error)
            .bind(&mail.id)
            .execute(&state.db.write)
            .await?;
            if give_up {
                tracing::error!(mail_id = %mail.id, kind = %mail.kind, attempt, permanent, error, "mail given up");
            } else {
                tracing::warn!(mail_id = %mail.id, kind = %mail.kind, attempt, error, "mail not sent; will retry");
            }
        }
    }
    Ok(())
}

/// The wait after failed attempt `n` (1-based): 30 s, doubling, at most an hour.
pub fn retry_delay_ms(attempt: i64) -> i64 {
    let doublings = u32::try_from((attempt - 1).clamp(0, 20)).unwrap_or(20);
    FIRST_RETRY_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_MS)
}

fn message(state: &AppState, mail: &DueMail) -> Result<Message, String> {
    let from = state.mail.from.clone();
    let to: Mailbox = mail
        .to_address
        .parse()
        .map_err(|e| format!("the recipient address cannot be used: {e}"))?;
    let sent_at = UNIX_EPOCH + Duration::from_millis(u64::try_from(state.now_ms()).unwrap_or(0));
    // The Message-ID's domain is ours (the From domain), not the machine's hostname.
    let message_id = format!("<{}@{}>", mail.id, from.email.domain());
    Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .date(sent_at)
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(
            mail.body_text.clone(),
            mail.body_html.clone(),
        ))
        .map_err(|e| format!("the message cannot be built: {e}"))
}

/// Deletes outbox rows older than `RETENTION_MS`; run by housekeeping.
pub async fn purge_old(state: &AppState) -> AppResult<u64> {
    let r = sqlx::query("DELETE FROM outbox_mail WHERE created_at < $1")
        .bind(state.now_ms() - RETENTION_MS)
        .execute(&state.db.write)
        .await?;
    Ok(r.rows_affected())
}

// ---- The development outbox page ----

pub fn dev_router() -> Router<AppState> {
    Router::new().route("/dev/outbox", get(dev_outbox))
}

struct OutboxItem {
    id: String,
    to: String,
    kind: String,
    subject: String,
    created: String,
    status: &'static str,
    body: String,
    /// The links to this site in the text body, to click.
    links: Vec<String>,
}

#[derive(Template)]
#[template(path = "dev/outbox.html")]
struct OutboxPage {
    ctx: PageCtx,
    mails: Vec<OutboxItem>,
}

#[derive(FromRow)]
struct OutboxRow {
    id: String,
    to_address: String,
    kind: String,
    subject: String,
    body_text: String,
    created_at: i64,
    sent_at: i64,
    failed: i64,
}

/// The latest 50 mails, newest first, with their links. 404 unless `Mailer::dev_outbox`.
async fn dev_outbox(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> PageResult {
    if !state.mail.dev_outbox() {
        return Err(DomainError::NotFound.into());
    }
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT id, to_address, kind, subject, body_text, created_at, sent_at, failed FROM outbox_mail \
         ORDER BY created_at DESC, id DESC LIMIT 50",
    )
    .fetch_all(&state.db.read)
    .await?;
    let site = format!("{}/", state.mail.public_url);
    let mails = rows
        .into_iter()
        .map(|r| OutboxItem {
            links: r
                .body_text
                .split_whitespace()
                .filter(|w| w.starts_with(&site))
                .map(str::to_string)
                .collect(),
            status: if r.sent_at > 0 {
                "sent"
            } else if r.failed != 0 {
                "failed"
            } else {
                "not sent (no SMTP server configured)"
            },
            id: r.id,
            to: r.to_address,
            kind: r.kind,
            subject: r.subject,
            created: human(r.created_at),
            body: r.body_text,
        })
        .collect();
    Ok(render(&OutboxPage {
        ctx: PageCtx::new("Development outbox", None, &csrf),
        mails,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay_ms(1), 30_000);
        assert_eq!(retry_delay_ms(2), 60_000);
        assert_eq!(retry_delay_ms(3), 120_000);
        assert_eq!(retry_delay_ms(9), MAX_RETRY_MS);
        assert_eq!(retry_delay_ms(1000), MAX_RETRY_MS);
        assert_eq!(retry_delay_ms(0), 30_000);
    }

    #[test]
    fn only_loopback_urls_get_the_dev_outbox() {
        assert!(is_loopback_url("http://127.0.0.1:8080"));
        assert!(is_loopback_url("http://localhost:8080"));
        assert!(is_loopback_url("http://[::1]:8080"));
        assert!(!is_loopback_url("https://shop.example.com"));
        assert!(!is_loopback_url("http://10.0.0.5:8080"));
        assert!(!is_loopback_url("http://localhost.example.com"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com/"));
    }

    #[test]
    fn the_default_sender_is_on_the_public_domain() {
        assert_eq!(
            default_from("https://shop.example.com"),
            "Clipcart <no-reply@shop.example.com>"
        );
        assert_eq!(
            default_from("https://Shop.Example.com:8443/x"),
            "Clipcart <no-reply@shop.example.com>"
        );
        assert_eq!(default_from("http://127.0.0.1:8080"), DEFAULT_FROM);
        assert_eq!(default_from("http://localhost:8080"), DEFAULT_FROM);
    }
}
