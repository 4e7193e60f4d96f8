//! Sign-in security: throttling per account and per client address (429 + Retry-After, no
//! user enumeration, the 100-failure lock), the client address behind proxies, the sign-in
//! history, and sessions their owner can list and end.

use crate::on_both_databases;
use crate::support::{Actor, PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

on_both_databases!(
    throttling_backs_off_with_retry_after_and_lifts,
    unknown_and_known_emails_throttle_alike,
    forwarded_for_is_ignored_from_an_untrusted_peer,
    a_hundred_failures_lock_until_an_admin_unlocks,
    sign_in_history_lists_attempts_with_outcomes,
    sessions_are_listed_and_revoked,
    two_nodes_share_one_throttle
);

// 127.0.0.1 (where the tests connect from) is a trusted proxy here, so `X-Forwarded-For`
// names the client.
on_both_databases!(configured by trust_loopback: each_address_has_a_failure_budget);

fn trust_loopback(config: &mut clipcart_server::platform::config::Config) {
    config.trusted_proxies = clipcart_server::platform::http::client::parse_ranges("127.0.0.1")
        .expect("trusted proxies");
}

const WRONG: &str = "wrong password, long enough";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
use crate::support::PAGE_CSRF as CSRF;

/// One API sign-in attempt.
struct Attempt {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

async fn attempt(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Attempt {
    let mut req = app
        .http
        .post(app.url("/api/v1/auth/tokens"))
        .header("user-agent", FIREFOX)
        .json(&json!({"email": email, "password": password}));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let res = req.send().await.expect("sign-in sent");
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").parse().expect("seconds"));
    let body = res.json().await.expect("json body");
    Attempt {
        status,
        retry_after,
        body,
    }
}

/// Signs in through the page with this user agent; returns the session cookie value.
async fn page_session(app: &TestApp, actor: &Actor, user_agent: &str) -> String {
    app.page_session(actor, user_agent).await
}

fn cookies(session: &str) -> String {
    format!("__Host-clipcart_csrf={CSRF}; __Host-clipcart_session={session}")
}

/// Whether the session cookie still signs its holder in.
async fn session_works(app: &TestApp, session: &str) -> bool {
    let res = app
        .http
        .get(app.url("/account/security"))
        .header("cookie", cookies(session))
        .send()
        .await
        .expect("get");
    match res.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => false,
        other => panic!("unexpected {other}"),
    }
}

async fn page_post(app: &TestApp, session: &str, path: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header("cookie", cookies(session))
        .form(&[("csrf", CSRF)])
        .send()
        .await
        .expect("post")
}

async fn throttling_backs_off_with_retry_after_and_lifts(app: TestApp) {
    let buyer = app.buyer().await;
    for i in 0..5 {
        let a = attempt(&app, &buyer.email, WRONG, None).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "failure {i}");
        assert_eq!(a.retry_after, None);
    }
    // The sixth attempt is refused at once — even with the right password — for a minute.
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.retry_after, Some(60));
    assert_eq!(a.body["type"], "/docs/problems#too-many-requests");
    assert_eq!(a.body["status"], 429);
    // The sign-in page says so too, with the same header.
    let page = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={CSRF}"))
        .form(&[
            ("csrf", CSRF),
            ("email", buyer.email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("page sign-in");
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(page.headers()["retry-after"], "60");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Too many sign-in attempts") && html.contains("a minute"),
        "{html}"
    );
    app.clock.advance_ms(59_000);
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.retry_after, Some(1));
    // The window passes: the right password works, and the count starts again.
    app.clock.advance_ms(1_000);
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    for _ in 0..5 {
        let a = attempt(&app, &buyer.email, WRONG, None).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let a = attempt(&app, &buyer.email, WRONG, None).await;
    assert_eq!(a.retry_after, Some(60));
    // Each further failure doubles the wait.
    app.clock.advance_ms(60_000);
    let a = attempt(&app, &buyer.email, WRONG, None).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = attempt(&app, &buyer.email, WRONG, None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.retry_after, Some(120));
}

async fn unknown_and_known_emails_throttle_alike(app: TestApp) {
    let buyer = app.buyer().await;
    let unknown = format!("nobody{}@example.test", app.unique());
    let mut statuses = Vec::new();
    for step in 0..8 {
        let known = attempt(&app, &buyer.email, WRONG, None).await;
        let nobody = attempt(&app, &unknown, WRONG, None).await;
        let malformed = attempt(&app, " Not An Email ", WRONG, None).await;
        for other in [&nobody, &malformed] {
            assert_eq!(known.status, other.status, "step {step}");
            assert_eq!(known.retry_after, other.retry_after, "step {step}");
            assert_eq!(known.body, other.body, "step {step}: no user enumeration");
        }
        statuses.push(known.status.as_u16());
        if step == 6 {
            app.clock.advance_ms(60_000);
        }
    }
    assert_eq!(statuses, [422, 422, 422, 422, 422, 429, 429, 422]);
    // The throttle does not say which emails were tried: its key is a keyed hash.
    let keys: Vec<String> = sqlx::query_scalar("SELECT account_key FROM sign_in_accounts")
        .fetch_all(&app.state.db.read)
        .await
        .expect("keys");
    assert!(keys.len() >= 3);
    for k in keys {
        assert!(!k.contains('@') && k.len() == 64, "{k}");
    }
}

async fn each_address_has_a_failure_budget(app: TestApp) {
    let buyer = app.buyer().await;
    let attacker = "203.0.113.9";
    let neighbour = "198.51.100.7";
    // Fifty failures from one address, each on another email (none of them throttled alone).
    for i in 0..50 {
        let email = format!("spray{i}@example.test");
        // The proxy appends the real peer; what the client wrote on the left is not believed.
        let xff = format!("10.9.8.7, {attacker}");
        let a = attempt(&app, &email, WRONG, Some(&xff)).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "failure {i}");
    }
    // The address's budget is spent: even a real account with its right password waits.
    app.clock.advance_ms(1);
    let a = attempt(&app, &buyer.email, PASSWORD, Some(attacker)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.retry_after, Some(15 * 60));
    // Another address is not affected.
    app.clock.advance_ms(1);
    let a = attempt(&app, &buyer.email, PASSWORD, Some(neighbour)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    // The history names the forwarded addresses.
    let history = app
        .get_ok("/api/v1/me/sign-ins?limit=2", Some(&buyer.token))
        .await;
    assert_eq!(history["items"][0]["outcome"], "success");
    assert_eq!(history["items"][0]["address"], neighbour);
    assert_eq!(history["items"][1]["outcome"], "throttled");
    assert_eq!(history["items"][1]["address"], attacker);
    // The window ends.
    app.clock.advance_ms(15 * 60 * 1000);
    let a = attempt(&app, &buyer.email, PASSWORD, Some(attacker)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

async fn forwarded_for_is_ignored_from_an_untrusted_peer(app: TestApp) {
    let buyer = app.buyer().await;
    let a = attempt(&app, &buyer.email, WRONG, Some("203.0.113.9")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={CSRF}"))
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[
            ("csrf", CSRF),
            ("email", buyer.email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let history = app.get_ok("/api/v1/me/sign-ins", Some(&buyer.token)).await;
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{history}");
    for item in items {
        assert_eq!(item["address"], "127.0.0.1", "{item}");
    }
    let sessions = app.get_ok("/api/v1/me/sessions", Some(&buyer.token)).await;
    assert_eq!(sessions["items"][0]["address"], "127.0.0.1");
    // The throttle counted the failure against the peer, not the claimed address.
    let budgets: Vec<String> = sqlx::query_scalar("SELECT address FROM sign_in_addresses")
        .fetch_all(&app.state.db.read)
        .await
        .expect("addresses");
    assert_eq!(budgets, ["127.0.0.1"]);
}

async fn a_hundred_failures_lock_until_an_admin_unlocks(app: TestApp) {
    let (admin, mut admin_passkey) = app.admin_with_authenticator().await;
    let buyer = app.buyer().await;
    let mut failures = 0;
    let mut waits = 0;
    while failures < 100 {
        let a = attempt(&app, &buyer.email, WRONG, None).await;
        match a.status {
            StatusCode::UNPROCESSABLE_ENTITY => failures += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let secs = a.retry_after.expect("Retry-After");
                assert!(secs <= 15 * 60, "the back-off is capped: {secs}");
                app.clock
                    .advance_ms(i64::try_from(secs).expect("secs") * 1000);
                waits += 1;
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert!(waits >= 90, "{waits}");
    // Locked: the right password is refused without being checked, and time does not help.
    app.clock.advance_ms(7 * 24 * 60 * 60 * 1000);
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.retry_after, Some(3600));
    let history = app
        .get_ok("/api/v1/me/sign-ins?limit=2", Some(&buyer.token))
        .await;
    assert_eq!(history["items"][0]["outcome"], "locked");
    assert_eq!(history["items"][1]["outcome"], "wrong_password");
    let locked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sign_in_accounts WHERE locked = 1")
        .fetch_one(&app.state.db.read)
        .await
        .expect("count");
    assert_eq!(locked, 1);
    // Only a platform admin may unlock.
    let (s, _) = app
        .post(
            "/api/v1/admin/sign-in-locks/unlock",
            Some(&buyer.token),
            json!({"email": buyer.email}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A week later the admin's token is long out of the step-up window: a passkey assertion
    // (an admin's second factor) opens it again.
    crate::support_passkey::step_up_with_passkey(&app, &admin, &mut admin_passkey).await;
    let unlocked = app
        .post_ok(
            "/api/v1/admin/sign-in-locks/unlock",
            Some(&admin.token),
            json!({"email": buyer.email.to_uppercase()}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(unlocked["was_locked"], true);
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

async fn sign_in_history_lists_attempts_with_outcomes(app: TestApp) {
    let buyer = app.buyer().await;
    let other = app.buyer().await;
    for _ in 0..5 {
        app.clock.advance_ms(1);
        let a = attempt(&app, &buyer.email, WRONG, None).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.clock.advance_ms(1);
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance_ms(60_000);
    let a = attempt(&app, &buyer.email, PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::CREATED);
    // Newest first, page by page.
    let mut outcomes = Vec::new();
    let mut ids = BTreeSet::new();
    let mut path = "/api/v1/me/sign-ins?limit=3".to_string();
    loop {
        let page = app.get_ok(&path, Some(&buyer.token)).await;
        for item in page["items"].as_array().expect("items") {
            outcomes.push(item["outcome"].as_str().expect("outcome").to_string());
            assert!(ids.insert(item["id"].as_str().expect("id").to_string()));
            assert_eq!(item["address"], "127.0.0.1");
            assert!(item["at"].as_str().expect("at").ends_with('Z'));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/me/sign-ins?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        outcomes,
        [
            "success",
            "throttled",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "success"
        ]
    );
    let latest = app
        .get_ok("/api/v1/me/sign-ins?limit=1", Some(&buyer.token))
        .await;
    assert_eq!(latest["items"][0]["device"], "Firefox on Linux");
    // Each account sees only its own.
    let theirs = app.get_ok("/api/v1/me/sign-ins", Some(&other.token)).await;
    assert_eq!(theirs["items"].as_array().expect("items").len(), 1);
    let (s, _) = app.get("/api/v1/me/sign-ins", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .get("/api/v1/me/sign-ins?cursor=zz", Some(&buyer.token))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The security page shows them too.
    let session = page_session(&app, &buyer, FIREFOX).await;
    let html = app
        .http
        .get(app.url("/account/security"))
        .header("cookie", cookies(&session))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Wrong password") && html.contains("Refused: too many attempts"));
    assert!(
        html.contains("href=\"/account/security\""),
        "linked from the nav"
    );
}

async fn sessions_are_listed_and_revoked(app: TestApp) {
    let buyer = app.buyer().await;
    let other = app.buyer().await;
    let firefox = page_session(&app, &buyer, FIREFOX).await;
    app.clock.advance_ms(1_000);
    let chrome = page_session(&app, &buyer, CHROME).await;
    app.clock.advance_ms(1_000);
    let safari = page_session(&app, &buyer, SAFARI).await;
    let theirs = page_session(&app, &other, FIREFOX).await;
    // The API lists them, newest first, by public id: never the cookie value.
    let list = app.get_ok("/api/v1/me/sessions", Some(&buyer.token)).await;
    let items = list["items"].as_array().expect("items");
    let devices: Vec<&str> = items
        .iter()
        .map(|s| s["device"].as_str().expect("device"))
        .collect();
    assert_eq!(
        devices,
        ["Safari on iPhone", "Chrome on Windows", "Firefox on Linux"]
    );
    for s in items {
        let id = s["id"].as_str().expect("id");
        assert!(id.starts_with("ses_"), "{id}");
        assert!(
            ![&firefox, &chrome, &safari]
                .iter()
                .any(|c| c.as_str() == id)
        );
        assert_eq!(s["address"], "127.0.0.1");
        assert_eq!(s["current"], false, "a bearer call has no session");
        assert!(s["last_seen_at"].as_str().is_some() && s["expires_at"].as_str().is_some());
    }
    let id_of = |device: &str| {
        items
            .iter()
            .find(|s| s["device"] == device)
            .and_then(|s| s["id"].as_str())
            .expect("session")
            .to_string()
    };
    let (firefox_id, chrome_id, safari_id) = (
        id_of("Firefox on Linux"),
        id_of("Chrome on Windows"),
        id_of("Safari on iPhone"),
    );
    // The page marks the session in use.
    let html = app
        .http
        .get(app.url("/account/security"))
        .header("cookie", cookies(&firefox))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert_eq!(html.matches("This session").count(), 1);
    assert!(html.contains(&chrome_id) && html.contains(&safari_id));
    let mine = html
        .split("class=\"current-session\"")
        .nth(1)
        .expect("current row");
    assert!(mine.contains("Firefox on Linux"));
    // Revoking one from the page ends it at once.
    let res = page_post(
        &app,
        &firefox,
        &format!("/account/security/sessions/{chrome_id}/revoke"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/account/security");
    assert!(
        !session_works(&app, &chrome).await,
        "revoked cookie is dead"
    );
    assert!(session_works(&app, &firefox).await);
    // Someone else's session id is "not found", on the page and in the API, and survives.
    let res = page_post(
        &app,
        &theirs,
        &format!("/account/security/sessions/{firefox_id}/revoke"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (s, body) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/me/sessions/{safari_id}"),
            Some(&other.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "/docs/problems#not-found");
    assert!(session_works(&app, &safari).await && session_works(&app, &firefox).await);
    // "Sign out all other sessions" keeps only this one, and no one else's.
    let res = page_post(&app, &firefox, "/account/security/sessions/revoke-others").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!session_works(&app, &safari).await);
    assert!(session_works(&app, &firefox).await);
    assert!(session_works(&app, &theirs).await);
    let list = app.get_ok("/api/v1/me/sessions", Some(&buyer.token)).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [firefox_id.as_str()]);
    // The API ends a session too; twice is "not found".
    let path = format!("/api/v1/me/sessions/{firefox_id}");
    let (s, _) = app
        .request(reqwest::Method::DELETE, &path, Some(&buyer.token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!session_works(&app, &firefox).await);
    let (s, _) = app
        .request(reqwest::Method::DELETE, &path, Some(&buyer.token), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Signing out everywhere through the API; the API token itself stays valid.
    let again = page_session(&app, &buyer, SAFARI).await;
    let (s, _) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/me/sessions",
            Some(&buyer.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!session_works(&app, &again).await);
    app.get_ok("/api/v1/me", Some(&buyer.token)).await;
    assert!(session_works(&app, &theirs).await);
    // Idle sessions drop off the list.
    let _fresh = page_session(&app, &buyer, CHROME).await;
    app.clock
        .advance_ms(clipcart_server::identity::service::SESSION_IDLE_MS);
    let list = app.get_ok("/api/v1/me/sessions", Some(&buyer.token)).await;
    assert_eq!(list["items"].as_array().expect("items").len(), 0, "{list}");
}

/// Two servers on one database, a burst of wrong passwords spread over both at once: the
/// reservations are atomic in the database, so no more than the five free failures get through
/// before the back-off, however the attempts interleave.
async fn two_nodes_share_one_throttle(app: TestApp) {
    let buyer = app.buyer().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = app.state.config.clone();
    config.bind = listener.local_addr().expect("addr");
    let clock: clipcart_server::platform::clock::SharedClock = app.clock.clone();
    let second = clipcart_server::build_state(config.clone(), clock)
        .await
        .expect("second node");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(clipcart_server::serve(second, listener, async {
        let _ = stopped.await;
    }));
    let nodes = [app.base.clone(), format!("http://{}", config.bind)];
    let mut burst = Vec::new();
    for i in 0..12 {
        let http = app.http.clone();
        let url = format!("{}/api/v1/auth/tokens", nodes[i % 2]);
        let body = json!({"email": buyer.email, "password": WRONG});
        burst.push(tokio::spawn(async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .expect("sent")
                .status()
        }));
    }
    let mut failed = 0;
    for task in burst {
        match task.await.expect("joined") {
            StatusCode::UNPROCESSABLE_ENTITY => failed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!((1..=5).contains(&failed), "{failed} failures got through");
    let stored: i64 = sqlx::query_scalar("SELECT failures FROM sign_in_accounts")
        .fetch_one(&app.state.db.read)
        .await
        .expect("failures");
    assert_eq!(stored, failed, "every verified attempt counted once");
    let pending: i64 = sqlx::query_scalar("SELECT pending FROM sign_in_accounts")
        .fetch_one(&app.state.db.read)
        .await
        .expect("pending");
    assert_eq!(pending, 0, "every reservation settled");
    let _ = stop.send(());
    node.await.expect("joined").expect("second node ran");
}
