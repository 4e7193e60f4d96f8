//! A small W3C WebDriver client on top of `reqwest`, enough to drive a headless Chromium through
//! `chromedriver`: start the driver on a free port, open a session, navigate, find elements,
//! click and type, read text, and save screenshots. Waits are bounded polls, never fixed sleeps.
//!
//! The `Browser` owns the chromedriver process: dropping it ends the session (which closes
//! Chromium) and kills the driver, also when a test panics half-way.

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a wait for a page, an element or a text may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
/// The key under which W3C WebDriver returns element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Chromium and chromedriver live; `CLIPCART_CHROMIUM` / `CLIPCART_CHROMEDRIVER` override.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Tools {
    /// The tools, or a sentence saying which one is missing.
    pub fn find() -> Result<Tools, String> {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let chromium = pick("CLIPCART_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = pick("CLIPCART_CHROMEDRIVER", "/usr/bin/chromedriver");
        for (what, path) in [("chromium", &chromium), ("chromedriver", &chromedriver)] {
            if !path.is_file() {
                return Err(format!(
                    "{what} not found at {} (install Debian's chromium and chromium-driver)",
                    path.display()
                ));
            }
        }
        Ok(Tools {
            chromium,
            chromedriver,
        })
    }
}

/// How to find an element: a CSS selector (`"#id"` converts) or an XPath (`xpath("//a")`).
#[derive(Debug, Clone)]
pub struct Locator {
    using: &'static str,
    value: String,
}

impl From<&str> for Locator {
    fn from(css: &str) -> Self {
        Locator {
            using: "css selector",
            value: css.to_string(),
        }
    }
}

impl From<String> for Locator {
    fn from(css: String) -> Self {
        Locator {
            using: "css selector",
            value: css,
        }
    }
}

pub fn xpath(expr: impl Into<String>) -> Locator {
    Locator {
        using: "xpath",
        value: expr.into(),
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.using, self.value)
    }
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// An element's position and size in CSS pixels.
#[derive(Debug, Clone, Copy)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// A WebDriver error answer, e.g. `no such element`.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

type WdResult<T> = Result<T, WdError>;

pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`, where chromedriver listens.
    driver: String,
    driver_port: u16,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    session_id: String,
    /// The application under test; `goto("/x")` is relative to it.
    base: String,
    process: Child,
    closed: bool,
    /// Holds Chromium's fresh profile (`profile/`) and the driver's log (`chromedriver.log`).
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `base` is the app's origin.
    pub async fn launch(tools: &Tools, base: &str) -> Browser {
        let port = free_port();
        let dir = tempfile::tempdir().expect("browser temp dir");
        let process = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("WebDriver HTTP client");
        let driver = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            http,
            driver: driver.clone(),
            driver_port: port,
            session: String::new(),
            session_id: String::new(),
            base: base.trim_end_matches('/').to_string(),
            process,
            closed: true,
            dir,
        };
        browser.wait_until_ready().await;
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1000".into(),
            format!(
                "--user-data-dir={}",
                browser.dir.path().join("profile").display()
            ),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": tools.chromium.display().to_string(),
                "args": args,
            }
        }}});
        let v = browser
            .raw(Method::POST, &format!("{driver}/session"), Some(caps))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium: {e}\n{}",
                    browser.driver_log()
                )
            });
        let id = v["sessionId"]
            .as_str()
            .expect("new session answer carries a sessionId")
            .to_string();
        browser.session = format!("{driver}/session/{id}");
        browser.session_id = id;
        browser.closed = false;
        browser
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!(
                    "chromedriver exited at start with {status}\n{}",
                    self.driver_log()
                );
            }
            if let Ok(v) = self
                .raw(Method::GET, &format!("{}/status", self.driver), None)
                .await
                && v["ready"] == true
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver on port {} did not become ready within 20 s\n{}",
                self.driver_port,
                self.driver_log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The end of chromedriver's log, for failure messages.
    fn driver_log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("chromedriver log (last lines):\n{tail}")
    }

    /// One WebDriver command; answers the `value` of a success, or the error.
    async fn raw(&self, method: Method, url: &str, body: Option<Value>) -> WdResult<Value> {
        let mut req = self.http.request(method.clone(), url);
        if method == Method::POST {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let res = req.send().await.map_err(|e| WdError {
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let ok = res.status().is_success();
        let mut v: Value = res.json().await.map_err(|e| WdError {
            error: "bad answer".into(),
            message: e.to_string(),
        })?;
        let value = v["value"].take();
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                error: value["error"].as_str().unwrap_or("unknown error").into(),
                message: value["message"].as_str().unwrap_or("").into(),
            })
        }
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> WdResult<Value> {
        self.raw(method, &format!("{}{path}", self.session), body)
            .await
    }

    // ---- navigation ----

    /// Opens a path of the app (`/signin`) or a full URL.
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            path.to_string()
        };
        self.cmd(Method::POST, "/url", Some(json!({"url": url})))
            .await
            .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    pub async fn url(&self) -> WdResult<String> {
        let v = self.cmd(Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or("").to_string())
    }

    /// Waits until the current path (without the query) is `expected`; answers the full path.
    pub async fn wait_for_path(&self, expected: &str) -> String {
        self.wait_for_path_where(expected, |p| p.split('?').next().unwrap_or("") == expected)
            .await
    }

    /// Waits until the current path and query satisfy `ok`; `what` describes it for failures.
    pub async fn wait_for_path_where(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(url) = self.url().await {
                let path = url.strip_prefix(&self.base).unwrap_or(&url).to_string();
                if ok(&path) && self.ready().await {
                    return path;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.describe(&format!("waited {WAIT:?} for the page {what}"))
                        .await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn ready(&self) -> bool {
        self.execute("return document.readyState", json!([]))
            .await
            .is_ok_and(|v| v == "complete")
    }

    // ---- elements ----

    pub async fn find(&self, at: impl Into<Locator>) -> Option<Element> {
        let at = at.into();
        self.try_find(&at).await.ok().flatten()
    }

    async fn try_find(&self, at: &Locator) -> WdResult<Option<Element>> {
        match self
            .cmd(
                Method::POST,
                "/element",
                Some(json!({"using": at.using, "value": at.value})),
            )
            .await
        {
            Ok(v) => Ok(v[ELEMENT_KEY].as_str().map(|s| Element(s.to_string()))),
            Err(e) if e.error == "no such element" => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn find_all(&self, at: impl Into<Locator>) -> Vec<Element> {
        let at = at.into();
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                Some(json!({"using": at.using, "value": at.value})),
            )
            .await
            .unwrap_or_else(|e| panic!("finding {at}: {e}"));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|s| Element(s.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the element is on the page and displayed.
    pub async fn wait_for(&self, at: impl Into<Locator>) -> Element {
        let at = at.into();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(el)) = self.try_find(&at).await
                && self.displayed(&el).await.unwrap_or(false)
            {
                return el;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.describe(&format!("waited {WAIT:?} for {at}")).await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element's visible text contains `expected`; answers the whole text.
    pub async fn wait_for_text(&self, at: impl Into<Locator>, expected: &str) -> String {
        let at = at.into();
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Ok(Some(el)) = self.try_find(&at).await
                && let Ok(text) = self.text_of(&el).await
            {
                if text.contains(expected) {
                    return text;
                }
                last = text;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}",
                    self.describe(&format!(
                        "waited {WAIT:?} for {at} to contain {expected:?}; it last read {last:?}"
                    ))
                    .await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn displayed(&self, el: &Element) -> WdResult<bool> {
        let v = self
            .cmd(Method::GET, &format!("/element/{}/displayed", el.0), None)
            .await?;
        Ok(v == true)
    }

    pub async fn text_of(&self, el: &Element) -> WdResult<String> {
        let v = self
            .cmd(Method::GET, &format!("/element/{}/text", el.0), None)
            .await?;
        Ok(v.as_str().unwrap_or("").to_string())
    }

    /// The visible text of an element, once it is displayed.
    pub async fn text(&self, at: impl Into<Locator>) -> String {
        let at = at.into();
        let el = self.wait_for(at.clone()).await;
        self.text_of(&el)
            .await
            .unwrap_or_else(|e| panic!("reading the text of {at}: {e}"))
    }

    /// The current `value` of a form field.
    pub async fn value(&self, at: impl Into<Locator>) -> String {
        let at = at.into();
        let el = self.wait_for(at.clone()).await;
        let v = self
            .cmd(
                Method::GET,
                &format!("/element/{}/property/value", el.0),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("reading the value of {at}: {e}"));
        v.as_str().unwrap_or("").to_string()
    }

    pub async fn is_selected(&self, at: impl Into<Locator>) -> bool {
        let at = at.into();
        let el = self.wait_for(at.clone()).await;
        self.cmd(Method::GET, &format!("/element/{}/selected", el.0), None)
            .await
            .unwrap_or_else(|e| panic!("reading whether {at} is selected: {e}"))
            == true
    }

    pub async fn rect(&self, at: impl Into<Locator>) -> Rect {
        let at = at.into();
        let el = self.wait_for(at.clone()).await;
        let v = self
            .cmd(Method::GET, &format!("/element/{}/rect", el.0), None)
            .await
            .unwrap_or_else(|e| panic!("reading the position of {at}: {e}"));
        let n = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Rect {
            x: n("x"),
            y: n("y"),
            width: n("width"),
            height: n("height"),
        }
    }

    /// Clicks an element once it is displayed.
    pub async fn click(&self, at: impl Into<Locator>) {
        let at = at.into();
        let el = self.wait_for(at.clone()).await;
        if let Err(e) = self
            .cmd(Method::POST, &format!("/element/{}/click", el.0), None)
            .await
        {
            panic!("{}", self.describe(&format!("clicking {at}: {e}")).await);
        }
    }

    /// Replaces the contents of a field by typing `text` into it.
    pub async fn fill(&self, at: impl Into<Locator>, text: &str) {
        let at = at.into();
        let el = self.wait_for(at.clone()).await;
        let result = async {
            self.cmd(Method::POST, &format!("/element/{}/clear", el.0), None)
                .await?;
            self.cmd(
                Method::POST,
                &format!("/element/{}/value", el.0),
                Some(json!({"text": text})),
            )
            .await
        }
        .await;
        if let Err(e) = result {
            panic!("{}", self.describe(&format!("typing into {at}: {e}")).await);
        }
    }

    /// Runs a synchronous script in the page (`arguments` are passed as-is).
    pub async fn execute(&self, script: &str, args: Value) -> WdResult<Value> {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The page's visible text, for failure messages.
    pub async fn body_text(&self) -> String {
        match self.find("body").await {
            Some(b) => self.text_of(&b).await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// A failure message with the current URL and the page's text, which usually tells why.
    pub async fn describe(&self, why: &str) -> String {
        let url = self
            .url()
            .await
            .unwrap_or_else(|e| format!("(unknown: {e})"));
        let mut text: String = self.body_text().await.chars().take(2000).collect();
        if text.trim().is_empty() {
            let source = self.cmd(Method::GET, "/source", None).await;
            let source = source.map(|v| v.as_str().unwrap_or("").to_string());
            text = format!("(no visible text) source: {source:?}")
                .chars()
                .take(2000)
                .collect();
        }
        format!("{why}\n  at {url}\n  page text:\n{text}")
    }

    // ---- WebAuthn: a virtual authenticator ----

    /// Adds a virtual authenticator through WebDriver's WebAuthn extension: CTAP2 on the
    /// internal transport (a platform authenticator), keeping discoverable credentials, with
    /// user verification that always succeeds. Answers its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .cmd(
                Method::POST,
                "/webauthn/authenticator",
                Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                    "isUserConsenting": true,
                })),
            )
            .await
            .unwrap_or_else(|e| panic!("adding a virtual authenticator: {e}"));
        v.as_str()
            .expect("the authenticator id is a string")
            .to_string()
    }

    /// The credentials a virtual authenticator holds (`credentialId`, `isResidentCredential`,
    /// `rpId`, `userHandle`, `signCount`, ...).
    pub async fn virtual_credentials(&self, authenticator: &str) -> Vec<Value> {
        let v = self
            .cmd(
                Method::GET,
                &format!("/webauthn/authenticator/{authenticator}/credentials"),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("reading the virtual authenticator's credentials: {e}"));
        v.as_array().cloned().unwrap_or_default()
    }

    // ---- screenshots ----

    /// Saves a PNG of the whole page (beyond the window when the page is taller) to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = match self.full_page_png().await {
            Ok(png) => png,
            Err(_) => {
                let v = self
                    .cmd(Method::GET, "/screenshot", None)
                    .await
                    .unwrap_or_else(|e| panic!("taking a screenshot: {e}"));
                decode_png(&v)
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// One Chrome DevTools Protocol command through chromedriver's passthrough, e.g.
    /// `Page.addScriptToEvaluateOnNewDocument` to watch a page from before its own scripts.
    pub async fn devtools(&self, cmd: &str, params: Value) -> WdResult<Value> {
        self.cmd(
            Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
    }

    /// Chromium's own full-page capture, through chromedriver's DevTools passthrough.
    async fn full_page_png(&self) -> WdResult<Vec<u8>> {
        let m = self
            .cmd(
                Method::POST,
                "/goog/cdp/execute",
                Some(json!({"cmd": "Page.getLayoutMetrics", "params": {}})),
            )
            .await?;
        let width = m["cssLayoutViewport"]["clientWidth"]
            .as_f64()
            .unwrap_or(1280.0);
        let height = m["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(1000.0)
            .max(
                m["cssLayoutViewport"]["clientHeight"]
                    .as_f64()
                    .unwrap_or(0.0),
            );
        let v = self
            .cmd(
                Method::POST,
                "/goog/cdp/execute",
                Some(json!({"cmd": "Page.captureScreenshot", "params": {
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
                }})),
            )
            .await?;
        Ok(decode_png(&v["data"]))
    }

    // ---- the end ----

    /// Ends the session, which closes Chromium; the driver is killed when `self` drops.
    pub async fn quit(mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self.cmd(Method::DELETE, "", None).await;
        }
    }
}

fn decode_png(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("screenshot data is a string"))
        .expect("screenshot data is base64")
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // Drop cannot await: a plain blocking HTTP request ends the session, so chromedriver
            // closes Chromium before it is killed itself.
            let _ = delete_session_blocking(self.driver_port, &self.session_id);
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn delete_session_blocking(port: u16, session_id: &str) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(())
}
