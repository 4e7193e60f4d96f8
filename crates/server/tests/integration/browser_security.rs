//! Account security walked through the web pages in a headless Chromium (issue 3's acceptance):
//! TOTP enrolment with the code computed by the test at the server's clock, then signing in with
//! the next code; and the sessions page ending another session of the same account. Screenshots
//! go to `target/screenshots/sec-<walk>-NN-name.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the tests are skipped on a
//! laptop and fail when `CI=true`. SQLite only: the pages are the same on both databases.

use crate::browser::screenshot_dir;
use crate::second_factor::code_at;
use crate::support::{Actor, Backend, PASSWORD, TestApp, in_ci};
use crate::webdriver::{Browser, Tools, WAIT, xpath};
use reqwest::StatusCode;
use std::path::PathBuf;
use std::time::Instant;

/// Numbered screenshots of one walk: `sec-<walk>-01-name.png`, ...
pub struct Shots {
    dir: PathBuf,
    prefix: String,
    n: usize,
}

impl Shots {
    pub fn new(walk: &str) -> Shots {
        let dir = screenshot_dir();
        let prefix = format!("sec-{walk}-");
        // Only this walk's pictures from the last run; other tests write theirs alongside.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".png"))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Shots { dir, prefix, n: 0 }
    }

    pub async fn take(&mut self, browser: &Browser, name: &str) {
        self.n += 1;
        let path = self
            .dir
            .join(format!("{}{:02}-{name}.png", self.prefix, self.n));
        browser.screenshot(&path).await;
        eprintln!("screenshot: {}", path.display());
    }
}

/// The browser tools, `None` (with a note) when the test should be skipped.
pub fn tools() -> Option<Tools> {
    match Tools::find() {
        Ok(t) => Some(t),
        Err(why) if in_ci() => panic!("CI=true but the browser test cannot run: {why}"),
        Err(why) => {
            eprintln!("skipping browser test: {why}");
            None
        }
    }
}

pub async fn sign_in_with_password(b: &Browser, email: &str) {
    b.goto("/signin").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("#signin-submit").await;
}

pub async fn sign_out(b: &Browser) {
    b.click("#signout").await;
    b.wait_for_path("/").await;
    b.wait_for("#nav-signin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totp_enrolment_and_sign_in_through_the_pages() {
    let Some(tools) = tools() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ann = app.buyer().await;
    let b = Browser::launch(&tools, &app.base).await;
    let mut shots = Shots::new("totp");

    sign_in_with_password(&b, &ann.email).await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    b.goto("/account/security").await;
    b.wait_for_text("#two-factor-status", "Off").await;
    shots.take(&b, "security-2fa-off").await;

    // Enrolment: the page shows the QR code and the key; the test computes the code.
    b.click("#start-totp").await;
    b.wait_for("#totp-qr svg").await;
    let secret = b.text("#totp-secret").await.trim().to_string();
    assert!(
        secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_alphanumeric()),
        "the key is base32: {secret:?}"
    );
    b.wait_for_text("#two-factor-status", "Not on yet").await;
    shots.take(&b, "security-2fa-enrol").await;

    // A wrong code first: the error shows in the section and the enrolment waits.
    b.fill("#confirm-code", "000000").await;
    b.click("#confirm-totp").await;
    b.wait_for_text("#two-factor-error", "wrong").await;
    assert_eq!(b.text("#totp-secret").await.trim(), secret, "same key");
    shots.take(&b, "security-2fa-wrong-code").await;

    b.fill("#confirm-code", &code_at(&secret, app.now_ms()))
        .await;
    b.click("#confirm-totp").await;
    b.wait_for("#recovery-codes").await;
    let codes = b.find_all("#recovery-codes li code").await;
    assert_eq!(codes.len(), 10, "ten recovery codes shown once");
    b.wait_for_text("#two-factor-status", "On").await;
    assert!(b.find("#two-factor-error").await.is_none());
    shots.take(&b, "security-2fa-on-recovery-codes").await;

    // Signing in again: the password leads to the code page, not into the account.
    sign_out(&b).await;
    sign_in_with_password(&b, &ann.email).await;
    b.wait_for("#code").await;
    assert!(
        b.find("#signout").await.is_none(),
        "not signed in before the code"
    );
    shots.take(&b, "signin-code-page").await;
    // The enrolment used this step's code: move to the next step.
    app.clock.advance_ms(30_000);
    b.fill("#code", &code_at(&secret, app.now_ms())).await;
    b.click("#code-submit").await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    b.goto("/account/security").await;
    let status = b.wait_for_text("#two-factor-status", "On").await;
    assert!(status.contains("10 unused recovery codes"), "{status}");
    assert!(
        b.find("#recovery-codes").await.is_none(),
        "recovery codes are shown only once"
    );
    shots.take(&b, "security-signed-in-with-code").await;
    b.quit().await;
}

/// A second session of `actor` made with a plain HTTP client; its `Cookie` header value.
async fn other_session(app: &TestApp, actor: &Actor) -> String {
    app.page_cookies(actor).await
}

/// GET `path` with `cookie`, not following redirects: the status and the `Location`.
async fn get_with(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    cookie: &str,
) -> (StatusCode, String) {
    let res = http
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("request");
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (res.status(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sessions_page_ends_another_session() {
    let Some(tools) = tools() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let bob = app.buyer().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let other = other_session(&app, &bob).await;
    assert_eq!(
        get_with(&http, &app, "/account/security", &other).await.0,
        StatusCode::OK,
        "the other session works before it is revoked"
    );

    let b = Browser::launch(&tools, &app.base).await;
    let mut shots = Shots::new("sessions");
    sign_in_with_password(&b, &bob.email).await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    b.goto("/account/security").await;
    let rows = "#session-list tbody tr";
    b.wait_for("#session-list tbody tr.current-session").await;
    assert_eq!(
        b.find_all(rows).await.len(),
        2,
        "this browser and the other"
    );
    let current = b.text("#session-list tbody tr.current-session").await;
    assert!(current.contains("This session"), "{current}");
    shots.take(&b, "sessions-two").await;

    let revoke_other = xpath(
        "//table[@id='session-list']//tr[not(contains(@class,'current-session'))]//button[starts-with(@id,'revoke-')]",
    );
    assert_eq!(
        b.text(revoke_other.clone()).await.trim(),
        "Sign out this device"
    );
    b.click(revoke_other).await;
    b.wait_for_path("/account/security").await;
    let deadline = Instant::now() + WAIT;
    while b.find_all(rows).await.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "{}",
            b.describe("the revoked session stays listed").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.wait_for("#session-list tbody tr.current-session").await;
    assert!(
        b.find("#revoke-others").await.is_none(),
        "no other sessions left to sign out"
    );
    shots.take(&b, "sessions-after-revoke").await;

    // The revoked cookie no longer works: the page sends it to sign in.
    let (status, location) = get_with(&http, &app, "/account/security", &other).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "revoked session refused");
    assert!(location.starts_with("/signin"), "{location}");
    // This browser is still signed in.
    b.goto("/account/security").await;
    b.wait_for("#signout").await;
    b.quit().await;
}
