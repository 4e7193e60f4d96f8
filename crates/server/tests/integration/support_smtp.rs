//! A test SMTP server: a tokio TCP listener speaking just enough SMTP (EHLO/HELO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT) to receive what Clipcart sends and hand each message to the test,
//! decoded (MIME multipart, quoted-printable, base64).
//!
//! Use `on_both_databases!(configured by with_smtp: my_test)`: `with_smtp` starts a listener
//! and points the server at it; the test gets the messages with `mailbox(&app)`.

#![allow(dead_code)]

use crate::support::TestApp;
use base64::Engine;
use clipcart_server::platform::config::Config;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA as sent (headers and encoded body).
    pub raw: String,
    pub subject: String,
    pub to: String,
    /// The decoded text/plain part.
    pub text: String,
    /// The decoded text/html part.
    pub html: String,
}

impl Received {
    /// The first link in the text part that contains `path`.
    pub fn link(&self, path: &str) -> String {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(path))
            .unwrap_or_else(|| panic!("no link with {path} in: {}", self.text))
            .to_string()
    }

    /// The `token` parameter of the first link containing `path`.
    pub fn token(&self, path: &str) -> String {
        let link = self.link(path);
        link.split_once("token=")
            .map(|(_, t)| t.split('&').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| panic!("no token in {link}"))
    }
}

/// The test's end of a listener.
pub struct Mailbox {
    rx: tokio::sync::Mutex<Inbox>,
    /// How many of the next messages to refuse with a temporary error (451 at DATA).
    refuse_next: Arc<AtomicUsize>,
}

struct Inbox {
    rx: mpsc::UnboundedReceiver<Received>,
    /// Arrived but not asked for yet (`next_to` another address): mails written in one
    /// transaction may arrive in any order.
    waiting: Vec<Received>,
}

impl Mailbox {
    /// The next message, waiting up to 10 seconds.
    pub async fn next(&self) -> Received {
        let mut inbox = self.rx.lock().await;
        if !inbox.waiting.is_empty() {
            return inbox.waiting.remove(0);
        }
        receive(&mut inbox.rx).await
    }

    /// The next message to `to`; others that come first wait for their own `next_to`.
    pub async fn next_to(&self, to: &str) -> Received {
        let mut inbox = self.rx.lock().await;
        if let Some(i) = inbox
            .waiting
            .iter()
            .position(|m| m.rcpt_to.iter().any(|r| r == to))
        {
            return inbox.waiting.remove(i);
        }
        loop {
            let m = receive(&mut inbox.rx).await;
            if m.rcpt_to.iter().any(|r| r == to) {
                return m;
            }
            inbox.waiting.push(m);
        }
    }

    /// Asserts nothing arrives within `wait` (and nothing is waiting).
    pub async fn assert_quiet(&self, wait: Duration) {
        let mut inbox = self.rx.lock().await;
        if let Some(m) = inbox.waiting.first() {
            panic!(
                "expected no mail, got {:?} to {:?}: {}",
                m.subject, m.rcpt_to, m.text
            );
        }
        if let Ok(Some(m)) = tokio::time::timeout(wait, inbox.rx.recv()).await {
            panic!(
                "expected no mail, got {:?} to {:?}: {}",
                m.subject, m.rcpt_to, m.text
            );
        }
    }

    /// Refuses the next `n` messages with `451` (a temporary failure): the sender must retry.
    pub fn refuse_next(&self, n: usize) {
        self.refuse_next.store(n, Ordering::SeqCst);
    }
}

async fn receive(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a mail arrives within 10 s")
        .expect("the listener is running")
}

type Registry = Mutex<HashMap<String, Arc<Mailbox>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A configuration hook for `TestApp::spawn_with`: starts a listener on a free loopback port
/// and points `CLIPCART_SMTP_URL` at it. Must run inside the tokio runtime.
pub fn with_smtp(config: &mut Config) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind SMTP");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
    let (tx, rx) = mpsc::unbounded_channel();
    let refuse_next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(serve(listener, tx, refuse_next.clone()));
    let url = format!("smtp://{addr}");
    registry().lock().expect("registry").insert(
        url.clone(),
        Arc::new(Mailbox {
            rx: tokio::sync::Mutex::new(Inbox {
                rx,
                waiting: Vec::new(),
            }),
            refuse_next,
        }),
    );
    config.smtp_url = Some(secrecy::SecretString::from(url));
    config.mail_from = "Clipcart Tests <no-reply@clipcart.test>".into();
}

/// The mailbox of an app started with `with_smtp`.
pub fn mailbox(app: &TestApp) -> Arc<Mailbox> {
    use secrecy::ExposeSecret;
    let url = app
        .state
        .config
        .smtp_url
        .as_ref()
        .expect("the app was configured with_smtp")
        .expose_secret()
        .to_string();
    registry()
        .lock()
        .expect("registry")
        .get(&url)
        .cloned()
        .expect("a mailbox for this app")
}

async fn serve(
    listener: tokio::net::TcpListener,
    tx: mpsc::UnboundedSender<Received>,
    refuse_next: Arc<AtomicUsize>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (tx, refuse_next) = (tx.clone(), refuse_next.clone());
        tokio::spawn(async move {
            let _ = session(stream, tx, refuse_next).await;
        });
    }
}

/// One SMTP conversation (RFC 5321, the parts a client needs).
async fn session(
    stream: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<Received>,
    refuse_next: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 clipcart-test ESMTP ready\r\n")
        .await?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(b"250-clipcart-test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK\r\n")
                    .await?
            }
            "HELO" => write.write_all(b"250 clipcart-test\r\n").await?,
            "MAIL" => {
                mail_from = address(&command);
                rcpt_to.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "RCPT" => {
                rcpt_to.push(address(&command));
                write.write_all(b"250 OK\r\n").await?;
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut raw = String::new();
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    // Dot-stuffing: a leading dot was doubled by the client.
                    raw.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                let refuse = refuse_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refuse {
                    write.write_all(b"451 4.3.0 Try again later\r\n").await?;
                } else {
                    let _ = tx.send(decode(mail_from.clone(), rcpt_to.clone(), raw));
                    write.write_all(b"250 OK: queued\r\n").await?;
                }
                rcpt_to.clear();
            }
            "RSET" => {
                mail_from.clear();
                rcpt_to.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "NOOP" => write.write_all(b"250 OK\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 Command not implemented\r\n").await?,
        }
    }
}

/// The address inside `<…>` of `MAIL FROM:<a@b> …` / `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_default()
}

fn decode(mail_from: String, rcpt_to: Vec<String>, raw: String) -> Received {
    let (headers, body) = split_headers(&raw);
    let subject = header(&headers, "subject");
    let to = header(&headers, "to");
    let mut text = String::new();
    let mut html = String::new();
    collect_parts(&headers, body, &mut text, &mut html);
    Received {
        mail_from,
        rcpt_to,
        raw,
        subject,
        to,
        text,
        html,
    }
}

/// Unfolded headers (lower-case names) and the body.
fn split_headers(part: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = part
        .split_once("\r\n\r\n")
        .or_else(|| part.split_once("\n\n"))
        .unwrap_or((part, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (headers, body)
}

fn header(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn collect_parts(headers: &[(String, String)], body: &str, text: &mut String, html: &mut String) {
    let content_type = header(headers, "content-type");
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/") {
        let boundary = content_type
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim_matches('"').to_string())
            .expect("a multipart boundary");
        let delimiter = format!("--{boundary}");
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.trim_start_matches(['\r', '\n']);
            let (h, b) = split_headers(chunk);
            collect_parts(&h, b, text, html);
        }
        return;
    }
    let encoding = header(headers, "content-transfer-encoding").to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body"),
            )
            .expect("utf-8 body")
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_string(),
    };
    let decoded = decoded.replace("\r\n", "\n");
    if lower.starts_with("text/html") {
        html.push_str(&decoded);
    } else if lower.starts_with("text/plain") || lower.is_empty() {
        text.push_str(&decoded);
    }
}

fn quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    let raw = body.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'=' if raw.get(i + 1) == Some(&b'\r') && raw.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' if raw.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        bytes.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        bytes.push(b'=');
                        i += 1;
                    }
                }
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Without an SMTP server mail stays in the outbox: the body of the newest mail of `kind` to
/// `to`, waiting a little for mail queued by a spawned task (password resets answer first).
pub async fn outbox_body(app: &TestApp, to: &str, kind: &str) -> String {
    for _ in 0..100 {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body_text FROM outbox_mail WHERE to_address = $1 AND kind = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(to)
        .bind(kind)
        .fetch_optional(&app.state.db.read)
        .await
        .expect("outbox");
        if let Some(body) = body {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} mail to {to} in the outbox");
}

/// The link token (`…?token=XYZ`) in the newest outbox mail of `kind` to `to`.
pub async fn outbox_token(app: &TestApp, to: &str, kind: &str) -> String {
    let body = outbox_body(app, to, kind).await;
    let start = body
        .find("token=")
        .unwrap_or_else(|| panic!("no link with a token in the {kind} mail"))
        + "token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}
