//! The security baseline (`../shared/security.md`, sections "Accounts and sign-in",
//! "Authorisation and tenancy" and "Web"): the requirements that no other module proved, one
//! test each, on both databases. `docs/security-baseline.md` maps every line of those sections
//! to the test that proves it (here or elsewhere in the suite).
//!
//! Pages are driven with a plain HTTP client carrying the cookies a browser would; the last
//! test runs an XSS corpus through a real headless Chromium.

use crate::on_both_databases;
use crate::support::{Actor, Backend, PAGE_CSRF, PASSWORD, TestApp, variant_id};
use clipcart_server::identity::service::{SESSION_ABSOLUTE_MS, digest};
use clipcart_server::identity::step_up::STEP_UP_WINDOW_MS;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

on_both_databases!(
    // Accounts and sign-in.
    session_cookies_are_host_prefixed_secure_http_only_and_lax,
    session_ids_are_random_and_stored_only_as_digests,
    a_planted_session_id_is_never_adopted_at_sign_in,
    confirming_on_the_step_up_page_rotates_the_session_id,
    a_passkey_step_up_on_a_page_rotates_the_session_id,
    an_active_session_still_ends_at_its_absolute_timeout,
    the_session_list_shows_first_and_last_seen,
    a_disabled_account_loses_every_session_and_token_at_once,
    sign_in_and_reset_take_similar_time_for_unknown_emails,
    every_stored_password_hash_is_argon2id_with_the_minimum_parameters,
    the_hashing_pool_is_the_size_of_the_cores_and_refuses_a_flood_quickly,
    second_factor_secrets_are_kept_as_digests_and_last_steps,
    passkey_ceremony_state_stays_on_the_server,
    step_up_guards_every_sensitive_operation,
    passwords_never_expire_and_may_be_pasted,
    a_new_password_may_not_be_built_from_the_shop_name,
    // Authorisation and tenancy.
    foreign_objects_answer_exactly_like_missing_ones_in_the_api,
    foreign_objects_answer_exactly_like_missing_ones_on_the_pages,
    requests_cannot_set_fields_they_do_not_own,
    // Web.
    every_kind_of_response_carries_the_security_headers,
    pages_contain_no_inline_script,
    authenticated_answers_are_never_cached,
    every_page_form_refuses_a_missing_or_cross_site_token,
    safe_methods_change_nothing_and_the_api_ignores_cookies,
    cross_origin_requests_get_no_cors_grant,
    redirects_stay_on_this_site,
    user_text_is_encoded_on_every_page,
);

const CSRF: &str = PAGE_CSRF;
const WRONG: &str = "wrong password, long enough";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

// ---- helpers ----

fn csrf_only() -> String {
    format!("__Host-clipcart_csrf={CSRF}")
}

/// The `Cookie` header of a browser holding this session (and the tests' CSRF cookie).
fn cookies(session: &str) -> String {
    format!("__Host-clipcart_csrf={CSRF}; __Host-clipcart_session={session}")
}

async fn page_get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("page GET")
}

/// A form post as the page would send it: the CSRF token is added to `fields`.
async fn page_post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf", CSRF)];
    form.extend_from_slice(fields);
    app.http
        .post(app.url(path))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .expect("page POST")
}

/// Signs in through the sign-in page with whatever `Cookie` header the browser already had.
async fn sign_in_page(
    app: &TestApp,
    email: &str,
    password: &str,
    cookie: &str,
) -> reqwest::Response {
    page_post(
        app,
        "/signin",
        cookie,
        &[("email", email), ("password", password)],
    )
    .await
}

/// Whether a session cookie value still signs its holder in (the security page answers 200;
/// without a session it sends to the sign-in page).
async fn session_works(app: &TestApp, session: &str) -> bool {
    let res = page_get(app, "/account/security", Some(&cookies(session))).await;
    match res.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => false,
        other => panic!("the security page answered {other}"),
    }
}

/// The whole `Set-Cookie` header that sets `name`, attributes included.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// A `__Host-` cookie as browsers require it (Secure, `Path=/`, no `Domain`), and as the
/// baseline asks: HttpOnly and SameSite=Lax.
fn assert_host_cookie(set_cookie: &str) {
    let mut parts = set_cookie.split(';').map(str::trim);
    let name = parts
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(k, _)| k)
        .unwrap_or_default();
    let attrs: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
    assert!(name.starts_with("__Host-"), "{set_cookie}");
    for wanted in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == wanted),
            "{wanted} missing: {set_cookie}"
        );
    }
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain=")),
        "a __Host- cookie names no domain: {set_cookie}"
    );
}

/// A fresh id with the prefix of `id` (`prd_…` gives another `prd_…`): one that names nothing.
fn missing_like(id: &str) -> String {
    let prefix = id.split_once('_').map(|(p, _)| p).expect("a prefixed id");
    clipcart_domain::ids::new_id(prefix)
}

async fn sessions_of(app: &TestApp, actor: &Actor) -> Vec<Value> {
    app.get_ok("/api/v1/me/sessions", Some(&actor.token)).await["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn count(app: &TestApp, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&app.state.db.read)
        .await
        .expect("count")
}

// ---- Accounts and sign-in: sessions ----

/// Every cookie the sign-in sets, and the one sign-out clears, on the real `Set-Cookie` headers.
async fn session_cookies_are_host_prefixed_secure_http_only_and_lax(app: TestApp) {
    let buyer = app.buyer().await;
    let form = page_get(&app, "/signin", None).await;
    let csrf_line = set_cookie(&form, "__Host-clipcart_csrf").expect("a CSRF cookie");
    assert_host_cookie(&csrf_line);
    let csrf = cookie_value(&csrf_line);
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={csrf}"))
        .header("user-agent", FIREFOX)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", buyer.email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session_line = set_cookie(&res, "__Host-clipcart_session").expect("a session cookie");
    assert_host_cookie(&session_line);
    // A persistent cookie lives no longer than the session can on the server.
    let max_age: i64 = session_line
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .expect("seconds");
    assert!(max_age <= SESSION_ABSOLUTE_MS / 1000, "{session_line}");
    // The device cookie (new-device alerts) is just as closed.
    let device_line = set_cookie(&res, "__Host-cc_device").expect("a device cookie");
    assert_host_cookie(&device_line);

    // Signing out clears the cookie with the same attributes (a browser would not match it
    // otherwise).
    let session = cookie_value(&session_line);
    let out = page_post(&app, "/signout", &cookies(&session), &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookie(&out, "__Host-clipcart_session").expect("a clearing cookie");
    assert_host_cookie(&cleared);
    assert_eq!(cookie_value(&cleared), "");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

/// Session ids carry at least 128 random bits, and the server keeps only their SHA-256
/// digests: a read of the sessions table does not hand out live cookies.
async fn session_ids_are_random_and_stored_only_as_digests(app: TestApp) {
    let buyer = app.buyer().await;
    let mut ids = BTreeSet::new();
    for _ in 0..8 {
        let id = app.page_session(&buyer, FIREFOX).await;
        // 32 base32 characters: 160 bits.
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
            "{id}"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 8, "every sign-in gets a new id");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id_hash, public_id FROM sessions WHERE user_id = $1")
            .bind(&buyer.user_id)
            .fetch_all(&app.state.db.read)
            .await
            .expect("sessions");
    assert_eq!(rows.len(), 8);
    for id in &ids {
        assert!(
            rows.iter().any(|(hash, _)| *hash == digest(id)),
            "the digest of each id is stored"
        );
        assert!(
            !rows.iter().any(|(hash, public)| hash == id || public == id),
            "no cookie value is stored"
        );
    }
}

/// Session fixation: a cookie value chosen by someone else before sign-in is never kept, and
/// an attacker's own live session planted in the victim's browser ends at the victim's sign-in.
async fn a_planted_session_id_is_never_adopted_at_sign_in(app: TestApp) {
    let victim = app.buyer().await;
    let attacker = app.buyer().await;

    let planted = clipcart_domain::ids::random_secret(20);
    let res = sign_in_page(&app, &victim.email, PASSWORD, &cookies(&planted)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let issued = cookie_value(&set_cookie(&res, "__Host-clipcart_session").expect("cookie"));
    assert_ne!(issued, planted, "the planted value is not adopted");
    assert!(!session_works(&app, &planted).await);
    assert!(session_works(&app, &issued).await);

    let attackers = app.page_session(&attacker, FIREFOX).await;
    let res = sign_in_page(&app, &victim.email, PASSWORD, &cookies(&attackers)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let issued = cookie_value(&set_cookie(&res, "__Host-clipcart_session").expect("cookie"));
    assert_ne!(issued, attackers);
    assert!(
        !session_works(&app, &attackers).await,
        "the session that was in the browser before the sign-in ended"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
            &attacker.user_id
        )
        .await,
        0
    );
}

/// "id rotated at login and step-up": proving it is you on the confirm page raises the
/// session, so the raised session gets a new id and the old one ends — whoever learned the
/// old value does not hold the raised session. To its owner it is the same session (same
/// public id in the list), and it is inside the step-up window.
async fn confirming_on_the_step_up_page_rotates_the_session_id(app: TestApp) {
    let buyer = app.buyer().await;
    let old = app.page_session(&buyer, FIREFOX).await;
    let listed = sessions_of(&app, &buyer).await;
    assert_eq!(listed.len(), 1);
    let public_id = listed[0]["id"].clone();
    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);

    // A wrong password raises nothing and rotates nothing.
    let res = page_post(
        &app,
        "/account/confirm",
        &cookies(&old),
        &[("next", "/account/security"), ("current_password", WRONG)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(set_cookie(&res, "__Host-clipcart_session").is_none());
    assert!(session_works(&app, &old).await);

    let res = page_post(
        &app,
        "/account/confirm",
        &cookies(&old),
        &[
            ("next", "/account/security"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/account/security");
    let line = set_cookie(&res, "__Host-clipcart_session").expect("a new session id at step-up");
    assert_host_cookie(&line);
    let new = cookie_value(&line);
    assert_ne!(new, old);
    assert!(!session_works(&app, &old).await, "the old id ended");
    assert!(session_works(&app, &new).await);
    let listed = sessions_of(&app, &buyer).await;
    assert_eq!(listed.len(), 1, "still one session");
    assert_eq!(listed[0]["id"], public_id, "the same session to its owner");

    // The new id carries the step-up: a change that needs one goes through without asking.
    let res = page_post(
        &app,
        "/account/security/anti-phishing-code",
        &cookies(&new),
        &[("anti_phishing_code", "blue heron")],
    )
    .await;
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    let email = app.get_ok("/api/v1/me/email", Some(&buyer.token)).await;
    assert_eq!(email["anti_phishing_code"], "blue heron");
}

/// The same with a passkey as the proof, from the confirm page (back to `next`) and from the
/// security page's Passkeys section: each success gives a new id and ends the old one; a
/// refused assertion gives nothing.
async fn a_passkey_step_up_on_a_page_rotates_the_session_id(app: TestApp) {
    let buyer = app.buyer().await;
    // The page session first: with a passkey, a password sign-in would need it too.
    let mut session = app.page_session(&buyer, FIREFOX).await;
    let mut auth = crate::support_passkey::Authenticator::for_app(&app);
    crate::support_passkey::register_passkey(&app, &buyer, &mut auth).await;
    let public_id = sessions_of(&app, &buyer).await[0]["id"].clone();
    let answer = |session: String, credential: Value, ceremony: String, next: &'static str| {
        let app = &app;
        async move {
            page_post(
                app,
                "/account/security/step-up/passkey",
                &cookies(&session),
                &[
                    ("ceremony", ceremony.as_str()),
                    ("credential", credential.to_string().as_str()),
                    ("next", next),
                ],
            )
            .await
        }
    };
    let options = |session: String| {
        let app = &app;
        async move {
            let v: Value = page_post(
                app,
                "/account/security/step-up/passkey/options",
                &cookies(&session),
                &[],
            )
            .await
            .json()
            .await
            .expect("options JSON");
            (v["ceremony_id"].as_str().expect("id").to_string(), v)
        }
    };

    // A refused assertion (another origin: a phishing page) rotates nothing.
    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    let (ceremony, v) = options(session.clone()).await;
    let mut phisher = auth.clone();
    phisher.origin = "http://evil.example".into();
    let credential = phisher.assert(&v["public_key"]);
    let res = answer(session.clone(), credential, ceremony, "/account/security").await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(set_cookie(&res, "__Host-clipcart_session").is_none());
    assert!(session_works(&app, &session).await);

    for next in ["/account/security", ""] {
        app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
        let (ceremony, v) = options(session.clone()).await;
        let credential = auth.assert(&v["public_key"]);
        let res = answer(session.clone(), credential, ceremony, next).await;
        assert!(
            res.status().is_redirection(),
            "next={next:?}: {}",
            res.status()
        );
        let line = set_cookie(&res, "__Host-clipcart_session")
            .unwrap_or_else(|| panic!("next={next:?}: a new session id at step-up"));
        assert_host_cookie(&line);
        let new = cookie_value(&line);
        assert_ne!(new, session);
        assert!(
            !session_works(&app, &session).await,
            "next={next:?}: the old id ended"
        );
        assert!(session_works(&app, &new).await);
        let listed = sessions_of(&app, &buyer).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["id"], public_id, "the same session to its owner");
        session = new;
    }
}

/// A session in constant use still ends at its absolute timeout, on the server.
async fn an_active_session_still_ends_at_its_absolute_timeout(app: TestApp) {
    let buyer = app.buyer().await;
    let session = app.page_session(&buyer, FIREFOX).await;
    // Used every six hours: never idle for long (the idle limit is twelve).
    let step = 6 * 60 * 60 * 1000;
    let mut elapsed = 0;
    while elapsed + step < SESSION_ABSOLUTE_MS {
        app.clock.advance_ms(step);
        elapsed += step;
        assert!(
            session_works(&app, &session).await,
            "in use after {} h",
            elapsed / 3_600_000
        );
    }
    app.clock.advance_ms(SESSION_ABSOLUTE_MS - elapsed);
    assert!(!session_works(&app, &session).await, "ended after 7 days");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
            &buyer.user_id
        )
        .await,
        0,
        "ended on the server, not only refused"
    );
}

/// Users list their sessions with the device, the address, when it was first and last seen.
async fn the_session_list_shows_first_and_last_seen(app: TestApp) {
    let buyer = app.buyer().await;
    let session = app.page_session(&buyer, FIREFOX).await;
    let first = sessions_of(&app, &buyer).await;
    assert_eq!(first[0]["device"], "Firefox on Linux");
    assert_eq!(first[0]["address"], "127.0.0.1");
    assert_eq!(first[0]["created_at"], first[0]["last_seen_at"]);
    app.clock.advance_ms(5 * 60 * 1000);
    assert!(session_works(&app, &session).await);
    let later = sessions_of(&app, &buyer).await;
    assert_eq!(later[0]["created_at"], first[0]["created_at"], "first seen");
    let (was, now) = (
        first[0]["last_seen_at"].as_str().expect("time"),
        later[0]["last_seen_at"].as_str().expect("time"),
    );
    assert!(now > was, "last seen moves with use: {was} → {now}");
    let html = page_get(&app, "/account/security", Some(&cookies(&session)))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("First seen") && html.contains("Last seen"));
}

/// Suspension: there is no suspend operation yet (see docs/security-baseline.md); an account
/// marked disabled (`users.disabled`, what one will set) loses every session and token on the
/// server at once, and cannot sign in again by password or passkey — answered like an unknown
/// account.
async fn a_disabled_account_loses_every_session_and_token_at_once(app: TestApp) {
    let buyer = app.buyer().await;
    // The page session first: with a passkey, a password sign-in would need it too.
    let session = app.page_session(&buyer, FIREFOX).await;
    let mut authenticator = crate::support_passkey::Authenticator::for_app(&app);
    crate::support_passkey::register_passkey(&app, &buyer, &mut authenticator).await;
    assert!(session_works(&app, &session).await);

    sqlx::query("UPDATE users SET disabled = 1 WHERE id = $1")
        .bind(&buyer.user_id)
        .execute(&app.state.db.write)
        .await
        .expect("disable");

    assert!(
        !session_works(&app, &session).await,
        "the session is refused"
    );
    let (s, _) = app.get("/api/v1/me", Some(&buyer.token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the token is refused");
    let (s, disabled) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": buyer.email, "password": PASSWORD}),
        )
        .await;
    let (s2, unknown) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": "nobody@example.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!((s, &disabled), (s2, &unknown), "like an unknown account");
    let (s, v) = crate::support_passkey::passkey_sign_in(&app, &mut authenticator).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

// ---- Accounts and sign-in: enumeration, hashing ----

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// "Similar time": medians of interleaved tries within a factor of two (or within 15 ms of
/// each other when both are that fast). Skipping the argon2 verification for unknown emails
/// would make them many times faster and fail this.
fn assert_similar_time(what: &str, known: &mut [Duration], unknown: &mut [Duration]) {
    let (k, u) = (median(known), median(unknown));
    let (lo, hi) = if k < u { (k, u) } else { (u, k) };
    assert!(
        hi - lo < Duration::from_millis(15) || hi.as_secs_f64() / lo.as_secs_f64() < 2.0,
        "{what}: the time tells a known email ({k:?}) from an unknown one ({u:?})"
    );
}

/// No enumeration by time (and, on the pages, by body): a wrong password for a real account
/// and any password for an unknown email take about as long, on the API and the sign-in page;
/// a reset request answers as fast for both. Sign-up's timing is in email.rs.
async fn sign_in_and_reset_take_similar_time_for_unknown_emails(app: TestApp) {
    const TRIES: usize = 9;
    // One wrong password per account, so no account reaches the throttle's back-off.
    let mut known = Vec::new();
    for _ in 0..TRIES {
        known.push(app.buyer().await);
    }
    let unknown: Vec<String> = (0..TRIES)
        .map(|i| format!("nobody{i}-{}@example.test", app.unique()))
        .collect();

    let api = |email: String| {
        let app = &app;
        async move {
            let started = Instant::now();
            let (s, v) = app
                .post(
                    "/api/v1/auth/tokens",
                    None,
                    json!({"email": email, "password": WRONG}),
                )
                .await;
            (started.elapsed(), s, v)
        }
    };
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for (actor, nobody) in known.iter().zip(&unknown) {
        let (t, s, body_k) = api(actor.email.clone()).await;
        k.push(t);
        let (t, s2, body_u) = api(nobody.clone()).await;
        u.push(t);
        assert_eq!((s, &body_k), (s2, &body_u));
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_similar_time("API sign-in", &mut k, &mut u);

    // A fresh failure budget for this address.
    app.clock.advance_ms(16 * 60 * 1000);
    let page = |email: String| {
        let app = &app;
        async move {
            let started = Instant::now();
            let res = sign_in_page(app, &email, WRONG, &csrf_only()).await;
            let status = res.status();
            // The form keeps the typed email; everything else must be the same.
            let html = res.text().await.expect("html").replace(&email, "EMAIL");
            (started.elapsed(), status, html)
        }
    };
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for (actor, nobody) in known.iter().zip(&unknown) {
        let (t, s, html_k) = page(actor.email.clone()).await;
        k.push(t);
        let (t, s2, html_u) = page(nobody.clone()).await;
        u.push(t);
        assert_eq!(s, s2);
        assert_eq!(html_k, html_u, "the sign-in page tells nothing");
    }
    assert_similar_time("page sign-in", &mut k, &mut u);

    let reset = |email: String| {
        let app = &app;
        async move {
            let started = Instant::now();
            let (s, v) = app
                .post("/api/v1/auth/password-reset", None, json!({"email": email}))
                .await;
            (started.elapsed(), s, v)
        }
    };
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for (actor, nobody) in known.iter().zip(&unknown) {
        let (t, s, v) = reset(actor.email.clone()).await;
        k.push(t);
        let (t, s2, v2) = reset(nobody.clone()).await;
        u.push(t);
        assert_eq!((s, v), (s2, v2));
    }
    assert_similar_time("password reset", &mut k, &mut u);
}

/// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`: the algorithm and parameters of one stored hash.
fn argon2_parameters(phc: &str) -> (String, u32, u32, u32, String, String) {
    let parts: Vec<&str> = phc.split('$').collect();
    assert_eq!(parts.len(), 6, "a PHC string: {phc}");
    assert_eq!(parts[2], "v=19", "{phc}");
    let param = |name: &str| -> u32 {
        parts[3]
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {phc}"))
    };
    (
        parts[1].to_string(),
        param("m"),
        param("t"),
        param("p"),
        parts[4].to_string(),
        parts[5].to_string(),
    )
}

/// Every way a password gets stored — sign-up (API and page), `clipcart admin create`, a staff
/// invitation, a password change — stores argon2id with at least m=19456 KiB, t=2, p=1 in PHC
/// form, with its own salt (the same password never gives the same string).
async fn every_stored_password_hash_is_argon2id_with_the_minimum_parameters(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Hash Shop").await;
    crate::staff::staff_member(&app, &owner, "analyst").await;
    let res = page_post(
        &app,
        "/signup",
        &csrf_only(),
        &[
            ("account_type", "buyer"),
            ("display_name", "Pia Page"),
            ("email", "pia.page@example.test"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changer = app.buyer().await;
    app.post_ok(
        "/api/v1/me/password",
        Some(&changer.token),
        json!({"current_password": PASSWORD, "new_password": "vivid otter lantern quay marmalade"}),
        StatusCode::OK,
    )
    .await;

    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_all(&app.state.db.read)
        .await
        .expect("hashes");
    assert_eq!(
        hashes.len(),
        5,
        "admin, owner, staff, page sign-up, changer"
    );
    let mut salts = BTreeSet::new();
    for phc in &hashes {
        let (algorithm, m, t, p, salt, hash) = argon2_parameters(phc);
        assert_eq!(algorithm, "argon2id");
        assert!(m >= 19_456 && t >= 2 && p >= 1, "{phc}");
        // Unpadded base64: 16 bytes of salt are 22 characters, a 32-byte hash 43.
        assert!(salt.len() >= 22 && hash.len() >= 43, "{phc}");
        salts.insert(salt);
    }
    assert_eq!(salts.len(), hashes.len(), "a salt per hash");
}

/// The hashing pool: as many argon2 runs at once as there are cores, and a caller waits at
/// most briefly for a slot. With every slot taken, a flood of sign-ins (with the right
/// password) is answered 429 with Retry-After within that wait — all at once, not one after
/// another — and nothing is counted against the account.
async fn the_hashing_pool_is_the_size_of_the_cores_and_refuses_a_flood_quickly(app: TestApp) {
    let buyer = app.buyer().await;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // Occupy `n` slots with work that holds them until released.
    let occupy = |n: usize| {
        let hasher = app.state.hasher.clone();
        async move {
            let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
            let mut releases = Vec::new();
            let mut holders = Vec::new();
            for _ in 0..n {
                let (release, wait) = std::sync::mpsc::channel::<()>();
                let started_tx = started_tx.clone();
                let hasher = hasher.clone();
                holders.push(tokio::spawn(async move {
                    hasher
                        .run(move || {
                            let _ = started_tx.send(());
                            let _ = wait.recv();
                        })
                        .await
                }));
                releases.push(release);
            }
            for _ in 0..n {
                started.recv().await.expect("a slot taken");
            }
            (releases, holders)
        }
    };
    let sign_in = || {
        let http = app.http.clone();
        let url = app.url("/api/v1/auth/tokens");
        let body = json!({"email": buyer.email, "password": PASSWORD});
        async move {
            let started = Instant::now();
            let res = http.post(url).json(&body).send().await.expect("sent");
            let retry_after = res.headers().get("retry-after").cloned();
            (res.status(), retry_after, started.elapsed())
        }
    };

    // One slot free: sign-in works.
    let (releases, holders) = occupy(cores - 1).await;
    let (status, _, _) = sign_in().await;
    assert_eq!(status, StatusCode::CREATED, "{cores} cores, one slot free");
    drop(releases);
    for h in holders {
        h.await.expect("joined").expect("ran");
    }

    // Every slot taken: twenty sign-ins at once are all refused, quickly and together.
    let (releases, holders) = occupy(cores).await;
    let started = Instant::now();
    let flood: Vec<_> = (0..20).map(|_| tokio::spawn(sign_in())).collect();
    for attempt in flood {
        let (status, retry_after, took) = attempt.await.expect("joined");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(retry_after.is_some(), "with Retry-After");
        assert!(took < Duration::from_secs(5), "refused after {took:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the flood waited side by side, not in a queue: {:?}",
        started.elapsed()
    );
    // The page says the same.
    let page = sign_in_page(&app, &buyer.email, PASSWORD, &csrf_only()).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(releases);
    for h in holders {
        h.await.expect("joined").expect("ran");
    }

    // The pool is free again and nothing was held against the account.
    let (status, _, _) = sign_in().await;
    assert_eq!(status, StatusCode::CREATED);
    let failures: Option<i64> = sqlx::query_scalar("SELECT failures FROM sign_in_accounts")
        .fetch_optional(&app.state.db.read)
        .await
        .expect("failures");
    assert_eq!(failures.unwrap_or(0), 0);
}

// ---- Accounts and sign-in: second factors and step-up ----

/// TOTP keeps the last accepted time step (so each code works once) and recovery codes are
/// stored only as digests: the table does not give anyone a usable code.
async fn second_factor_secrets_are_kept_as_digests_and_last_steps(app: TestApp) {
    let ann = app.buyer().await;
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let secret = e["secret"].as_str().expect("secret").to_string();
    let confirmed = app
        .post_ok(
            "/api/v1/me/totp/confirm",
            Some(&ann.token),
            json!({"code": crate::second_factor::code_at(&secret, app.now_ms())}),
            StatusCode::OK,
        )
        .await;
    let step = |ms: i64| ms / 30_000;
    let last_step = || async {
        sqlx::query_scalar::<_, i64>("SELECT last_step FROM totp_factors WHERE user_id = $1")
            .bind(&ann.user_id)
            .fetch_one(&app.state.db.read)
            .await
            .expect("last step")
    };
    assert_eq!(last_step().await, step(app.now_ms()));
    app.clock.advance_ms(30_000);
    app.post_ok(
        "/api/v1/auth/tokens",
        None,
        json!({"email": ann.email, "password": PASSWORD, "otp": crate::second_factor::code_at(&secret, app.now_ms())}),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        last_step().await,
        step(app.now_ms()),
        "moved to the used step"
    );

    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT code_hash FROM recovery_codes WHERE user_id = $1")
            .bind(&ann.user_id)
            .fetch_all(&app.state.db.read)
            .await
            .expect("stored codes");
    assert_eq!(stored.len(), codes.len());
    for code in &codes {
        let plain = code.replace('-', "");
        for s in &stored {
            assert!(
                !s.contains(code.as_str())
                    && !s.contains(&plain)
                    && !s.contains(&plain.to_uppercase()),
                "a recovery code is stored as it is"
            );
            assert!(s.len() >= 64, "a digest: {s}");
        }
    }
}

/// WebAuthn ceremony state stays in the database: the client gets an opaque id and the
/// options, never the state; the row is keyed by the id's digest and is gone once answered.
async fn passkey_ceremony_state_stays_on_the_server(app: TestApp) {
    let ann = app.buyer().await;
    let started = app
        .post_ok(
            "/api/v1/me/passkeys/registrations",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let keys: BTreeSet<&str> = started
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["ceremony_id", "public_key"]));
    assert!(started["public_key"].get("state").is_none());
    let ceremony = started["ceremony_id"].as_str().expect("id").to_string();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id_hash, kind, state FROM passkey_ceremonies")
            .fetch_all(&app.state.db.read)
            .await
            .expect("ceremonies");
    assert_eq!(rows.len(), 1);
    let (id_hash, kind, state) = &rows[0];
    assert_eq!(id_hash, &digest(&ceremony), "keyed by the digest of the id");
    assert_eq!(kind, "register");
    assert!(
        serde_json::from_str::<Value>(state).is_ok_and(|s| s.is_object()),
        "the library's state, as JSON"
    );
    let mut auth = crate::support_passkey::Authenticator::for_app(&app);
    let credential = auth.register(&started["public_key"]);
    let answer = json!({"ceremony_id": ceremony, "name": "Key", "credential": credential});
    app.post_ok(
        "/api/v1/me/passkeys",
        Some(&ann.token),
        answer.clone(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM passkey_ceremonies WHERE id_hash = $1",
            &digest(&ceremony)
        )
        .await,
        0,
        "used up"
    );
    let (s, _) = app
        .post("/api/v1/me/passkeys", Some(&ann.token), answer)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "not twice");
}

/// Step-up before every sensitive operation the baseline names that exists today (email,
/// password, second factors and passkeys, staff, admin actions; the bank account and API
/// credentials do not exist yet): outside the window each answers 403 `step-up-required`;
/// after a step-up the same calls go through. A password does not step up an account that has
/// a second factor.
async fn step_up_guards_every_sensitive_operation(app: TestApp) {
    let (admin, mut admin_passkey) = app.admin_with_authenticator().await;
    let owner = app.active_seller(&admin, "Step Shop").await;
    let pending = app.applied_seller("Waiting Shop").await;
    let pending_shop = pending.shop_id.clone().expect("shop");
    let mut authenticator = crate::support_passkey::Authenticator::for_app(&app);
    let passkey = crate::support_passkey::register_passkey(&app, &owner, &mut authenticator).await;
    let passkey_path = format!(
        "/api/v1/me/passkeys/{}",
        passkey["id"].as_str().expect("id")
    );

    let owner_calls = |n: usize| -> Vec<(Method, String, Value)> {
        vec![
            (
                Method::POST,
                "/api/v1/me/email".into(),
                json!({"new_email": format!("moved{n}@example.test")}),
            ),
            (
                Method::PUT,
                "/api/v1/me/anti-phishing-code".into(),
                json!({"anti_phishing_code": format!("heron {n}")}),
            ),
            (Method::POST, "/api/v1/me/totp".into(), json!({})),
            (
                Method::POST,
                "/api/v1/me/passkeys/registrations".into(),
                json!({}),
            ),
            (
                Method::POST,
                "/api/v1/seller/staff/invitations".into(),
                json!({"email": format!("inv{n}@example.test"), "role": "analyst"}),
            ),
            (
                Method::POST,
                "/api/v1/seller/roles".into(),
                json!({"name": format!("Role {n}"), "permissions": {"analytics": "view"}}),
            ),
            (Method::DELETE, passkey_path.clone(), json!({})),
        ]
    };
    let admin_calls = vec![
        (
            Method::POST,
            format!("/api/v1/admin/shops/{pending_shop}/approve"),
            json!({}),
        ),
        (
            Method::POST,
            "/api/v1/admin/sign-in-locks/unlock".into(),
            json!({"email": "someone@example.test"}),
        ),
    ];
    let refused = |actor: &Actor, calls: Vec<(Method, String, Value)>| {
        let app = &app;
        let token = actor.token.clone();
        async move {
            for (method, path, body) in calls {
                let (s, v) = app
                    .request(method.clone(), &path, Some(&token), Some(&body))
                    .await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
                assert_eq!(
                    v["type"], "/docs/problems#step-up-required",
                    "{method} {path}"
                );
            }
        }
    };

    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    refused(&owner, owner_calls(1)).await;
    refused(&admin, admin_calls.clone()).await;
    // The owner has a passkey now: the password alone no longer steps up.
    let (s, v) = app
        .post(
            "/api/v1/me/step-up",
            Some(&owner.token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    refused(&owner, owner_calls(2)).await;

    // A passkey steps up; then every call goes through (or meets its own business rules).
    crate::support_passkey::step_up_with_passkey(&app, &owner, &mut authenticator).await;
    for (method, path, body) in owner_calls(3) {
        let (s, v) = app
            .request(method.clone(), &path, Some(&owner.token), Some(&body))
            .await;
        assert!(s.is_success(), "{method} {path} after step-up: {s} {v}");
    }
    crate::support_passkey::step_up_with_passkey(&app, &admin, &mut admin_passkey).await;
    for (method, path, body) in admin_calls {
        let (s, v) = app
            .request(method.clone(), &path, Some(&admin.token), Some(&body))
            .await;
        assert!(s.is_success(), "{method} {path} after step-up: {s} {v}");
    }
    // The window closes again after five minutes.
    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    refused(&owner, owner_calls(4)[..2].to_vec()).await;
}

/// No forced rotation (a password works years later without being changed), and nothing stops
/// pasting or password managers: password fields carry no paste handlers, no length cap and
/// an `autocomplete` hint, and no script of ours listens for paste.
async fn passwords_never_expire_and_may_be_pasted(app: TestApp) {
    let buyer = app.buyer().await;
    app.clock.advance_ms(3 * 365 * 24 * 60 * 60 * 1000);
    let t = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": buyer.email, "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    app.get_ok("/api/v1/me", t["token"].as_str()).await;

    let session = app.page_session(&buyer, FIREFOX).await;
    let signed_in = cookies(&session);
    for (path, cookie, fields) in [
        ("/signup", None, 1),
        ("/signin", None, 1),
        ("/account/security", Some(signed_in.as_str()), 2),
        ("/account/confirm", Some(signed_in.as_str()), 1),
    ] {
        let html = page_get(&app, path, cookie)
            .await
            .text()
            .await
            .expect("html");
        let mut checked = 0;
        for input in html.split("<input").skip(1) {
            let tag = input.split('>').next().unwrap_or("").to_ascii_lowercase();
            if !tag.contains("type=\"password\"") {
                continue;
            }
            checked += 1;
            for banned in [
                "onpaste",
                "oncopy",
                "ondrop",
                "maxlength",
                "autocomplete=\"off\"",
            ] {
                assert!(!tag.contains(banned), "{path}: {banned} in <input{tag}>");
            }
            assert!(tag.contains("autocomplete=\""), "{path}: <input{tag}>");
        }
        assert!(checked >= fields, "{path}: only {checked} password fields");
    }
    for asset in [
        clipcart_server::platform::assets::js(),
        clipcart_server::platform::assets::htmx(),
        clipcart_server::platform::assets::passkey_js(),
    ] {
        let js = page_get(&app, asset, None).await.text().await.expect("js");
        assert!(!js.to_ascii_lowercase().contains("paste"), "{asset}");
    }
}

/// A seller named Ann Lee whose shop, approved, is called `shop_name`.
async fn seller_of(app: &TestApp, admin: &Actor, shop_name: &str) -> Actor {
    let mut seller = named_account(app, "seller", "Ann Lee").await;
    let shop = app
        .post_ok(
            "/api/v1/seller/application",
            Some(&seller.token),
            crate::support::application(shop_name),
            StatusCode::CREATED,
        )
        .await;
    let shop_id = shop["id"].as_str().expect("shop").to_string();
    app.post_ok(
        &format!("/api/v1/admin/shops/{shop_id}/approve"),
        Some(&admin.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    seller.shop_id = Some(shop_id);
    seller
}

/// Context words include the shop's name: a seller cannot change the password to one built
/// from it, though it has nothing of their own name or email (those and "clipcart" are tested
/// in passwords.rs).
async fn a_new_password_may_not_be_built_from_the_shop_name(app: TestApp) {
    let admin = app.admin().await;
    let owner = seller_of(&app, &admin, "Kite & Loom").await;
    let (s, v) = app
        .post(
            "/api/v1/me/password",
            Some(&owner.token),
            json!({"current_password": PASSWORD, "new_password": "kiteloomkiteloom99"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "new_password");
    assert_eq!(
        v["errors"][0]["message"],
        "the password is too close to your email, your name or the site name"
    );
    // Staff are held to their shop's name too.
    let staff = crate::staff::staff_member(&app, &owner, "analyst").await;
    let (s, v) = app
        .post(
            "/api/v1/me/password",
            Some(&staff.token),
            json!({"current_password": PASSWORD, "new_password": "kiteloomkiteloom99"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // A reset by mailed link is held to it as well.
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": owner.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    let token = crate::support_smtp::outbox_token(&app, &owner.email, "password_reset").await;
    let (s, v) = app
        .post(
            "/api/v1/auth/password-reset/complete",
            None,
            json!({"token": token, "new_password": "kiteloomkiteloom99"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "new_password");
    // The same password is fine for a seller whose shop is called otherwise.
    let other = seller_of(&app, &admin, "Harbour Tea").await;
    app.post_ok(
        "/api/v1/me/password",
        Some(&other.token),
        json!({"current_password": PASSWORD, "new_password": "kiteloomkiteloom99"}),
        StatusCode::OK,
    )
    .await;
}

// ---- Authorisation and tenancy ----

/// Shop A with a product, a paid order, a staff member, a custom role and an invitation;
/// shop B; two buyers; buyer A with a passkey.
struct Tenants {
    owner_b: Actor,
    buyer_b: Actor,
    buyer_a: Actor,
    product_a: String,
    variant_a: String,
    product_b: String,
    order_a: String,
    staff_a: String,
    role_a: String,
    invitation_a: String,
    passkey_a: String,
    session_a: String,
}

async fn tenants(app: &TestApp) -> Tenants {
    let admin = app.admin().await;
    let owner_a = app.active_seller(&admin, "Shop A").await;
    let owner_b = app.active_seller(&admin, "Shop B").await;
    let buyer_a = app.buyer().await;
    let buyer_b = app.buyer().await;
    let product = app.live_product(&owner_a, "Mug", &[(&[], 1200, 5)]).await;
    let product_b = app.live_product(&owner_b, "Bowl", &[(&[], 900, 5)]).await;
    let placed = app.buy(&buyer_a, &variant_id(&product, 0), 1).await;
    let staff = crate::staff::staff_member(app, &owner_a, "analyst").await;
    let role = app
        .post_ok(
            "/api/v1/seller/roles",
            Some(&owner_a.token),
            json!({"name": "Packers", "permissions": {"fulfilment": "edit"}}),
            StatusCode::CREATED,
        )
        .await;
    let invitation = app
        .post_ok(
            "/api/v1/seller/staff/invitations",
            Some(&owner_a.token),
            json!({"email": "pending@example.test", "role": "analyst"}),
            StatusCode::CREATED,
        )
        .await;
    // A live session of buyer A (before the passkey, which a password sign-in would then need).
    app.page_session(&buyer_a, FIREFOX).await;
    let session = sessions_of(app, &buyer_a).await;
    let mut auth = crate::support_passkey::Authenticator::for_app(app);
    let passkey = crate::support_passkey::register_passkey(app, &buyer_a, &mut auth).await;
    let s = |v: &Value| v.as_str().expect("an id").to_string();
    Tenants {
        product_a: s(&product["id"]),
        variant_a: variant_id(&product, 0),
        product_b: s(&product_b["id"]),
        order_a: s(&placed["orders"][0]["id"]),
        staff_a: staff.user_id,
        role_a: s(&role["key"]),
        invitation_a: s(&invitation["id"]),
        passkey_a: s(&passkey["id"]),
        session_a: s(&session[0]["id"]),
        owner_b,
        buyer_b,
        buyer_a,
    }
}

/// Every object-level API operation, called by another shop's owner or another buyer with
/// shop A's (or buyer A's) real id and with an id that names nothing: the same status (404)
/// and the same body, so a foreign id cannot even be told to exist.
async fn foreign_objects_answer_exactly_like_missing_ones_in_the_api(app: TestApp) {
    let t = tenants(&app).await;
    let b = &t.owner_b;
    let order_path = format!("/api/v1/orders/{}", t.order_a);
    let order_before = app.get_ok(&order_path, Some(&t.buyer_a.token)).await;
    let calls: Vec<(&Actor, Method, &str, &str, Value)> = vec![
        (
            b,
            Method::GET,
            "/api/v1/seller/products/{}",
            &t.product_a,
            Value::Null,
        ),
        (
            b,
            Method::POST,
            "/api/v1/seller/products/{}/publish",
            &t.product_a,
            json!({}),
        ),
        (
            b,
            Method::GET,
            "/api/v1/seller/orders/{}",
            &t.order_a,
            Value::Null,
        ),
        (
            b,
            Method::POST,
            "/api/v1/seller/orders/{}/ship",
            &t.order_a,
            json!({"carrier": "DHL", "tracking_number": "JD014600003SE"}),
        ),
        (
            b,
            Method::PUT,
            "/api/v1/seller/staff/{}",
            &t.staff_a,
            json!({"role": "finance"}),
        ),
        (
            b,
            Method::DELETE,
            "/api/v1/seller/staff/{}",
            &t.staff_a,
            Value::Null,
        ),
        (
            b,
            Method::PUT,
            "/api/v1/seller/roles/{}",
            &t.role_a,
            json!({"name": "Mine", "permissions": {"finance": "edit"}}),
        ),
        (
            b,
            Method::DELETE,
            "/api/v1/seller/roles/{}",
            &t.role_a,
            Value::Null,
        ),
        (
            b,
            Method::DELETE,
            "/api/v1/seller/staff/invitations/{}",
            &t.invitation_a,
            Value::Null,
        ),
        (
            &t.buyer_b,
            Method::GET,
            "/api/v1/orders/{}",
            &t.order_a,
            Value::Null,
        ),
        (
            &t.buyer_b,
            Method::POST,
            "/api/v1/orders/{}/confirm-receipt",
            &t.order_a,
            json!({}),
        ),
        (
            &t.buyer_b,
            Method::DELETE,
            "/api/v1/me/sessions/{}",
            &t.session_a,
            Value::Null,
        ),
        (
            &t.buyer_b,
            Method::PATCH,
            "/api/v1/me/passkeys/{}",
            &t.passkey_a,
            json!({"name": "Mine now"}),
        ),
        (
            &t.buyer_b,
            Method::DELETE,
            "/api/v1/me/passkeys/{}",
            &t.passkey_a,
            json!({}),
        ),
    ];
    for (caller, method, template, id, body) in calls {
        let body = (!body.is_null()).then_some(body);
        let call = |id: String| {
            let (app, method, body) = (&app, method.clone(), body.clone());
            let path = template.replace("{}", &id);
            async move {
                app.request(method, &path, Some(&caller.token), body.as_ref())
                    .await
            }
        };
        let (fs, foreign) = call(id.to_string()).await;
        let (ms, missing) = call(missing_like(id)).await;
        assert_eq!(fs, StatusCode::NOT_FOUND, "{method} {template}: {foreign}");
        assert_eq!((fs, &foreign), (ms, &missing), "{method} {template}");
    }
    // A variant of shop A under shop B's own product is not B's either.
    let (fs, foreign) = app
        .request(
            Method::PUT,
            &format!(
                "/api/v1/seller/products/{}/variants/{}/stock",
                t.product_b, t.variant_a
            ),
            Some(&b.token),
            Some(&json!({"stock": 0})),
        )
        .await;
    let (ms, missing) = app
        .request(
            Method::PUT,
            &format!(
                "/api/v1/seller/products/{}/variants/{}/stock",
                t.product_b,
                missing_like(&t.variant_a)
            ),
            Some(&b.token),
            Some(&json!({"stock": 0})),
        )
        .await;
    assert_eq!((fs, &foreign), (ms, &missing));
    assert_eq!(fs, StatusCode::NOT_FOUND);
    // Nothing of A's changed: the order is as it was, the passkey kept its name.
    let order_after = app.get_ok(&order_path, Some(&t.buyer_a.token)).await;
    assert_eq!(order_after, order_before);
    let passkeys = app
        .get_ok("/api/v1/me/passkeys", Some(&t.buyer_a.token))
        .await;
    assert_eq!(passkeys["items"][0]["name"], "Test key");
}

/// A page call: the caller's cookies, the method, the path with `{}` for the id, the id, and
/// the form's fields.
type PageCall<'a> = (&'a str, Method, &'a str, &'a str, Vec<(&'a str, &'a str)>);

/// The same on the pages: another shop's or buyer's object gives the very page a missing one
/// gives.
async fn foreign_objects_answer_exactly_like_missing_ones_on_the_pages(app: TestApp) {
    let t = tenants(&app).await;
    let seller_b = cookies(&app.page_session(&t.owner_b, FIREFOX).await);
    let buyer_b = cookies(&app.page_session(&t.buyer_b, FIREFOX).await);
    let calls: Vec<PageCall> = vec![
        (
            &seller_b,
            Method::GET,
            "/seller/products/{}",
            &t.product_a,
            vec![],
        ),
        (
            &seller_b,
            Method::POST,
            "/seller/products/{}/publish",
            &t.product_a,
            vec![],
        ),
        (
            &seller_b,
            Method::GET,
            "/seller/orders/{}",
            &t.order_a,
            vec![],
        ),
        (
            &seller_b,
            Method::POST,
            "/seller/orders/{}/ship",
            &t.order_a,
            vec![("carrier", "DHL"), ("tracking_number", "JD014600003SE")],
        ),
        (
            &seller_b,
            Method::POST,
            "/seller/staff/members/{}/role",
            &t.staff_a,
            vec![("role", "finance")],
        ),
        (
            &seller_b,
            Method::POST,
            "/seller/staff/members/{}/remove",
            &t.staff_a,
            vec![],
        ),
        (
            &seller_b,
            Method::POST,
            "/seller/staff/roles/{}/delete",
            &t.role_a,
            vec![],
        ),
        (
            &seller_b,
            Method::POST,
            "/seller/staff/invitations/{}/revoke",
            &t.invitation_a,
            vec![],
        ),
        (&buyer_b, Method::GET, "/orders/{}", &t.order_a, vec![]),
        (
            &buyer_b,
            Method::POST,
            "/orders/{}/confirm-receipt",
            &t.order_a,
            vec![],
        ),
        (
            &buyer_b,
            Method::POST,
            "/account/security/sessions/{}/revoke",
            &t.session_a,
            vec![],
        ),
        (
            &buyer_b,
            Method::POST,
            "/account/security/passkeys/{}/rename",
            &t.passkey_a,
            vec![("name", "Mine now")],
        ),
        (
            &buyer_b,
            Method::POST,
            "/account/security/passkeys/{}/remove",
            &t.passkey_a,
            vec![],
        ),
    ];
    for (cookie, method, template, id, fields) in calls {
        let call = |id: String| {
            let (app, method, fields) = (&app, method.clone(), fields.clone());
            let path = template.replace("{}", &id);
            async move {
                let res = if method == Method::GET {
                    page_get(app, &path, Some(cookie)).await
                } else {
                    page_post(app, &path, cookie, &fields).await
                };
                let status = res.status();
                // Pages that show the error inside themselves name the path they were at.
                (status, res.text().await.expect("html").replace(&id, "ID"))
            }
        };
        let (fs, foreign) = call(id.to_string()).await;
        let (ms, missing) = call(missing_like(id)).await;
        assert!(fs.is_client_error(), "{method} {template}: {fs}\n{foreign}");
        assert_eq!(fs, ms, "{method} {template}");
        assert_eq!(
            foreign, missing,
            "{method} {template}: the page tells them apart"
        );
    }
}

/// Requests cannot set what they do not own: every body is read strictly, so a price, a
/// status, a shop or an owner sent along is refused (422 "unknown field") and changes nothing.
async fn requests_cannot_set_fields_they_do_not_own(app: TestApp) {
    let (admin, mut admin_passkey) = app.admin_with_authenticator().await;
    let owner = app.active_seller(&admin, "Own Shop").await;
    let other = app.active_seller(&admin, "Other Shop").await;
    let other_shop = other.shop_id.clone().expect("shop");
    let newcomer = app.sign_up("seller", "New Seller").await;
    let pending = app.applied_seller("Pending Shop").await;
    let pending_shop = pending.shop_id.clone().expect("shop");
    let buyer = app.buyer().await;
    let product = app.live_product(&owner, "Cap", &[(&[], 900, 5)]).await;
    let pid = product["id"].as_str().expect("id").to_string();
    let vid = variant_id(&product, 0);
    let placed = app.buy(&buyer, &vid, 1).await;
    let oid = placed["orders"][0]["id"].as_str().expect("id").to_string();
    let mut auth = crate::support_passkey::Authenticator::for_app(&app);
    let passkey = crate::support_passkey::register_passkey(&app, &buyer, &mut auth).await;
    let passkey_id = passkey["id"].as_str().expect("id").to_string();
    app.add_to_cart(&buyer, &vid, 1).await;
    let card = app.card_token("4242424242424242").await;
    crate::support_passkey::step_up_with_passkey(&app, &admin, &mut admin_passkey).await;

    let mut checkout = crate::support::checkout_body(&card);
    checkout["total"] = json!(1);
    let mut application = crate::support::application("Sneaky Shop");
    application["status"] = json!("active");
    let calls: Vec<(&Actor, Method, String, Value)> = vec![
        (
            &buyer,
            Method::POST,
            "/api/v1/auth/signup".into(),
            json!({"email": "sneak@example.test", "password": PASSWORD, "display_name": "S", "account_type": "buyer", "role": "admin"}),
        ),
        (
            &newcomer,
            Method::POST,
            "/api/v1/seller/application".into(),
            application,
        ),
        (
            &owner,
            Method::POST,
            "/api/v1/seller/products".into(),
            json!({"title": "Hat", "options": [], "variants": [{"option_values": [], "price": 900, "stock": 2}], "shop_id": other_shop}),
        ),
        (
            &owner,
            Method::POST,
            "/api/v1/seller/products".into(),
            json!({"title": "Hat", "options": [], "variants": [{"option_values": [], "price": 900, "stock": 2, "sold": 100}]}),
        ),
        (
            &owner,
            Method::PUT,
            format!("/api/v1/seller/products/{pid}/variants/{vid}/stock"),
            json!({"stock": 4, "price": 1}),
        ),
        (
            &owner,
            Method::POST,
            format!("/api/v1/seller/orders/{oid}/ship"),
            json!({"carrier": "DHL", "tracking_number": "JD014600003SE", "status": "COMPLETED"}),
        ),
        (
            &owner,
            Method::POST,
            "/api/v1/seller/staff/invitations".into(),
            json!({"email": "x@example.test", "role": "analyst", "shop_id": other_shop}),
        ),
        (
            &owner,
            Method::POST,
            "/api/v1/seller/roles".into(),
            json!({"name": "R", "permissions": {"analytics": "view"}, "shop_id": other_shop}),
        ),
        (
            &buyer,
            Method::POST,
            "/api/v1/cart/items".into(),
            json!({"variant_id": vid, "quantity": 1, "price": 1}),
        ),
        (
            &buyer,
            Method::PUT,
            format!("/api/v1/cart/items/{vid}"),
            json!({"quantity": 1, "price": 1}),
        ),
        (&buyer, Method::POST, "/api/v1/checkout".into(), checkout),
        (
            &buyer,
            Method::PUT,
            "/api/v1/me/anti-phishing-code".into(),
            json!({"anti_phishing_code": "heron", "user_id": owner.user_id}),
        ),
        (
            &buyer,
            Method::POST,
            "/api/v1/me/email".into(),
            json!({"new_email": "b2@example.test", "verified": true}),
        ),
        (
            &buyer,
            Method::PATCH,
            format!("/api/v1/me/passkeys/{passkey_id}"),
            json!({"name": "K", "user_id": owner.user_id}),
        ),
    ];
    for (caller, method, path, body) in calls {
        let (s, v) = app
            .request(method.clone(), &path, Some(&caller.token), Some(&body))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{method} {path}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown field"),
            "{method} {path}: {v}"
        );
    }
    // Operations that take no body read none: a status sent along sets nothing. The order
    // cannot be completed before it ships; approving makes the shop active, not "closed".
    let (s, v) = app
        .post(
            &format!("/api/v1/orders/{oid}/confirm-receipt"),
            Some(&buyer.token),
            json!({"status": "COMPLETED"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let shops = app
        .get_ok("/api/v1/admin/shops?status=submitted", Some(&admin.token))
        .await;
    assert!(
        shops["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|s| s["id"] == pending_shop.as_str()),
        "still waiting after the refused calls"
    );
    let approved = app
        .post_ok(
            &format!("/api/v1/admin/shops/{pending_shop}/approve"),
            Some(&admin.token),
            json!({"status": "closed"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(approved["status"], "active");
    // Nothing else happened: no product in either shop, the order not shipped or completed,
    // no account made.
    for (seller, products) in [(&owner, 1), (&other, 0)] {
        let list = app
            .get_ok("/api/v1/seller/products", Some(&seller.token))
            .await;
        assert_eq!(list["items"].as_array().expect("items").len(), products);
    }
    let order = app
        .get_ok(&format!("/api/v1/orders/{oid}"), Some(&buyer.token))
        .await;
    assert_ne!(order["status"], "COMPLETED");
    assert!(order["shipped_at"].is_null(), "{order}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "sneak@example.test"
        )
        .await,
        0
    );
}

// ---- Web ----

/// The headers on every kind of answer: pages and API, success, redirect, each error status,
/// assets. CSP allows no inline or evaluated script and no framing.
async fn every_kind_of_response_carries_the_security_headers(app: TestApp) {
    let buyer = app.buyer().await;
    let session = app.page_session(&buyer, FIREFOX).await;
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": buyer.email, "password": WRONG}),
        )
        .await;
    }
    let mut answers: Vec<(String, reqwest::Response)> = Vec::new();
    let mut add = |what: &str, res: reqwest::Response| {
        answers.push((format!("{what} ({})", res.status()), res))
    };
    add("page", page_get(&app, "/", None).await);
    add(
        "signed-in page",
        page_get(&app, "/account/security", Some(&cookies(&session))).await,
    );
    add("redirect to sign-in", page_get(&app, "/orders", None).await);
    add("page 404", page_get(&app, "/nope", None).await);
    add(
        "CSRF refusal",
        app.http
            .post(app.url("/signin"))
            .form(&[("email", "x")])
            .send()
            .await
            .expect("post"),
    );
    add("method not allowed", page_get(&app, "/signout", None).await);
    add(
        "asset",
        page_get(&app, clipcart_server::platform::assets::css(), None).await,
    );
    add("API 200", page_get(&app, "/api/v1/products", None).await);
    add(
        "API password check",
        app.http
            .post(app.url("/api/v1/auth/password-check"))
            .json(&json!({"password": "x"}))
            .send()
            .await
            .expect("post"),
    );
    add(
        "API 204",
        app.http
            .delete(app.url("/api/v1/me/sessions"))
            .bearer_auth(&buyer.token)
            .send()
            .await
            .expect("delete"),
    );
    add("API 401", page_get(&app, "/api/v1/me", None).await);
    add(
        "API 403",
        app.http
            .get(app.url("/api/v1/seller/orders"))
            .bearer_auth(&buyer.token)
            .send()
            .await
            .expect("get"),
    );
    add("API 404", page_get(&app, "/api/v1/nope", None).await);
    add(
        "API 415",
        app.http
            .post(app.url("/api/v1/auth/tokens"))
            .body("x")
            .send()
            .await
            .expect("post"),
    );
    add(
        "API 422",
        app.http
            .post(app.url("/api/v1/auth/tokens"))
            .json(&json!({"nope": 1}))
            .send()
            .await
            .expect("post"),
    );
    add(
        "API 429",
        app.http
            .post(app.url("/api/v1/auth/tokens"))
            .json(&json!({"email": buyer.email, "password": WRONG}))
            .send()
            .await
            .expect("post"),
    );
    add(
        "HEAD",
        app.http.head(app.url("/")).send().await.expect("head"),
    );
    let statuses: BTreeSet<u16> = answers.iter().map(|(_, r)| r.status().as_u16()).collect();
    for wanted in [200, 204, 303, 401, 403, 404, 405, 415, 422, 429] {
        assert!(statuses.contains(&wanted), "no {wanted} among {statuses:?}");
    }
    for (what, res) in &answers {
        let h = res.headers();
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: no {name}"))
                .to_string()
        };
        let csp = get("content-security-policy");
        let directive = |name: &str| -> Vec<String> {
            csp.split(';')
                .map(str::trim)
                .find_map(|d| d.strip_prefix(name).filter(|r| r.starts_with(' ')))
                .unwrap_or_else(|| panic!("{what}: no {name} in {csp}"))
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(directive("script-src"), ["'self'"], "{what}: {csp}");
        assert_eq!(directive("default-src"), ["'self'"], "{what}: {csp}");
        assert_eq!(directive("frame-ancestors"), ["'none'"], "{what}: {csp}");
        assert_eq!(directive("object-src"), ["'none'"], "{what}: {csp}");
        assert_eq!(directive("base-uri"), ["'none'"], "{what}: {csp}");
        assert!(
            !csp.contains("unsafe-") && !csp.contains('*'),
            "{what}: {csp}"
        );
        assert_eq!(get("x-frame-options"), "DENY", "{what}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(
            get("referrer-policy"),
            "strict-origin-when-cross-origin",
            "{what}"
        );
        assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
        let hsts = get("strict-transport-security");
        let max_age: u64 = hsts
            .split(';')
            .find_map(|p| p.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(max_age >= 31_536_000, "{what}: a year at least: {hsts}");
    }
}

/// The pages really live within the CSP: no inline `<script>` body, no `on…=` handler, no
/// `javascript:` URL on any page a visitor, buyer, seller or staff member can open.
async fn pages_contain_no_inline_script(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Script Shop").await;
    let product = app.live_product(&owner, "Teapot", &[(&[], 4200, 3)]).await;
    let pid = product["id"].as_str().expect("id").to_string();
    let buyer = app.buyer().await;
    let placed = app.buy(&buyer, &variant_id(&product, 0), 1).await;
    let oid = placed["orders"][0]["id"].as_str().expect("id").to_string();
    app.add_to_cart(&buyer, &variant_id(&product, 0), 1).await;
    let buyer_c = cookies(&app.page_session(&buyer, FIREFOX).await);
    let owner_c = cookies(&app.page_session(&owner, FIREFOX).await);
    let pages: Vec<(String, Option<&str>)> = vec![
        ("/".into(), None),
        (format!("/products/{pid}"), None),
        ("/signin".into(), None),
        ("/signup".into(), None),
        ("/forgot-password".into(), None),
        ("/docs/api".into(), None),
        ("/docs/problems".into(), None),
        ("/testpay/pay?return_to=/checkout/review".into(), None),
        ("/nope".into(), None),
        ("/cart".into(), Some(&buyer_c)),
        ("/checkout/review".into(), Some(&buyer_c)),
        ("/orders".into(), Some(&buyer_c)),
        (format!("/orders/{oid}"), Some(&buyer_c)),
        ("/account/security".into(), Some(&buyer_c)),
        ("/account/confirm".into(), Some(&buyer_c)),
        ("/seller".into(), Some(&owner_c)),
        ("/seller/products".into(), Some(&owner_c)),
        ("/seller/products/new".into(), Some(&owner_c)),
        (format!("/seller/products/{pid}"), Some(&owner_c)),
        ("/seller/orders".into(), Some(&owner_c)),
        (format!("/seller/orders/{oid}"), Some(&owner_c)),
        ("/seller/staff".into(), Some(&owner_c)),
    ];
    for (path, cookie) in pages {
        let res = page_get(&app, &path, cookie).await;
        assert!(
            res.status().is_success() || res.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            res.status()
        );
        let html = res.text().await.expect("html");
        let problems = inline_script(&html);
        assert!(problems.is_empty(), "{path}: {problems:?}");
    }
}

/// What in `html` would need `'unsafe-inline'`: script elements with a body or without a
/// `src`, `on…` handler attributes, `javascript:` URLs.
fn inline_script(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag_end = lower[i..].find('>').map_or(lower.len(), |e| i + e);
        let tag = &lower[i..tag_end];
        let body_end = lower[tag_end..]
            .find("</script>")
            .map_or(tag_end, |e| tag_end + e);
        let body = lower[tag_end + 1..body_end.max(tag_end + 1)].trim();
        if !tag.contains(" src=") || !body.is_empty() {
            found.push(html[i..body_end.min(i + 120)].to_string());
        }
    }
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        for attr in tag.split_whitespace().skip(1) {
            let name = attr.split('=').next().unwrap_or("");
            if name.len() > 2 && name.starts_with("on") && attr.contains('=') {
                found.push(format!("<{tag}>"));
            }
        }
    }
    if lower.contains("javascript:") {
        found.push("a javascript: URL".into());
    }
    found
}

/// `Cache-Control: no-store` on every answer made for a signed-in person, pages and API.
async fn authenticated_answers_are_never_cached(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Cache Shop").await;
    let buyer = app.buyer().await;
    let buyer_c = cookies(&app.page_session(&buyer, FIREFOX).await);
    let owner_c = cookies(&app.page_session(&owner, FIREFOX).await);
    for (path, cookie) in [
        ("/", &buyer_c),
        ("/cart", &buyer_c),
        ("/orders", &buyer_c),
        ("/account/security", &buyer_c),
        ("/account/confirm", &buyer_c),
        ("/seller", &owner_c),
        ("/seller/products", &owner_c),
        ("/seller/orders", &owner_c),
        ("/seller/staff", &owner_c),
    ] {
        let res = page_get(&app, path, Some(cookie)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
    for (path, token) in [
        ("/api/v1/me", &buyer.token),
        ("/api/v1/me/sessions", &buyer.token),
        ("/api/v1/me/email", &buyer.token),
        ("/api/v1/cart", &buyer.token),
        ("/api/v1/seller/shop", &owner.token),
        ("/api/v1/seller/staff", &owner.token),
    ] {
        let res = app
            .http
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
}

/// Every form the pages accept, posted by a signed-in browser without the token, with a token
/// that does not match the cookie, or from another origin (even a sibling subdomain): 403,
/// and the session is still there (sign-out did not happen).
async fn every_page_form_refuses_a_missing_or_cross_site_token(app: TestApp) {
    let buyer = app.buyer().await;
    let session = app.page_session(&buyer, FIREFOX).await;
    let id = "x_aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let forms = [
        "/signup",
        "/signup/password-strength",
        "/signin",
        "/signin/code",
        "/signin/passkey/options",
        "/signin/passkey",
        "/signin/passkey/second-factor/options",
        "/signin/passkey/second-factor",
        "/signout",
        "/forgot-password",
        "/reset-password",
        "/confirm-email",
        "/account/confirm",
        "/account/security/password",
        "/account/security/totp/start",
        "/account/security/totp/confirm",
        "/account/security/totp/disable",
        "/account/security/recovery-codes",
        "/account/security/sessions/revoke-others",
        &format!("/account/security/sessions/{id}/revoke"),
        "/account/security/passkeys/options",
        "/account/security/passkeys",
        &format!("/account/security/passkeys/{id}/rename"),
        &format!("/account/security/passkeys/{id}/remove"),
        "/account/security/step-up/passkey/options",
        "/account/security/step-up/passkey",
        "/account/security/email",
        "/account/security/email/verification",
        "/account/security/anti-phishing-code",
        "/staff/invitation",
        "/cart/items",
        &format!("/cart/items/{id}/remove"),
        "/checkout/place",
        &format!("/orders/{id}/confirm-receipt"),
        "/reset-password/passkey/options",
        "/testpay/pay",
        // Seller and admin forms: the token is checked before who may use them.
        "/seller/apply",
        "/seller/products",
        &format!("/seller/products/{id}/publish"),
        &format!("/seller/orders/{id}/ship"),
        "/seller/staff/invite",
        &format!("/seller/staff/invitations/{id}/revoke"),
        &format!("/seller/staff/members/{id}/role"),
        &format!("/seller/staff/members/{id}/remove"),
        "/seller/staff/roles",
        &format!("/seller/staff/roles/{id}/delete"),
        &format!("/admin/shops/{id}/approve"),
        &format!("/admin/shops/{id}/reject"),
    ]
    .map(String::from);
    let signed_in = cookies(&session);
    // (what, the form's csrf field, a header the browser adds)
    let attempts = [
        ("no token", None, None),
        (
            "another token",
            Some("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            None,
        ),
        (
            "cross-site",
            Some(CSRF),
            Some(("origin", "https://evil.example")),
        ),
        (
            "sibling subdomain",
            Some(CSRF),
            Some(("sec-fetch-site", "same-site")),
        ),
    ];
    for path in &forms {
        for (what, csrf, header) in attempts {
            let mut req = app.http.post(app.url(path)).header("cookie", &signed_in);
            if let Some((name, value)) = header {
                req = req.header(name, value);
            }
            let form: Vec<(&str, &str)> = csrf.map(|c| ("csrf", c)).into_iter().collect();
            let res = req.form(&form).send().await.expect("post");
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}, {what}");
        }
    }
    assert!(session_works(&app, &session).await, "no form did anything");
}

/// CSRF protection is for unsafe methods; safe ones must then never change anything: a GET of
/// a form's address is refused (405), sign-out by GET does not sign out. And the API does not
/// take the session cookie at all, so a cross-site request cannot borrow a signed-in browser.
async fn safe_methods_change_nothing_and_the_api_ignores_cookies(app: TestApp) {
    let buyer = app.buyer().await;
    let session = app.page_session(&buyer, FIREFOX).await;
    for path in [
        "/signout",
        "/account/security/sessions/revoke-others",
        "/account/security/password",
        "/account/security/totp/start",
        "/cart/items",
        "/checkout/place",
    ] {
        let res = page_get(&app, path, Some(&cookies(&session))).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "GET {path}");
    }
    assert!(session_works(&app, &session).await);
    for (method, path) in [
        (Method::GET, "/api/v1/me"),
        (Method::GET, "/api/v1/me/sessions"),
        (Method::DELETE, "/api/v1/me/sessions"),
    ] {
        let res = app
            .http
            .request(method.clone(), app.url(path))
            .header("cookie", cookies(&session))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let res = app
        .http
        .post(app.url("/api/v1/cart/items"))
        .header("cookie", cookies(&session))
        .header("origin", "https://evil.example")
        .json(&json!({"variant_id": "var_aaaaaaaaaaaaaaaaaaaaaaaaaa", "quantity": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        session_works(&app, &session).await,
        "DELETE /me/sessions by cookie did nothing"
    );
}

/// CORS is closed: no configuration opens it, so no answer — preflight or not, API or page —
/// grants another origin anything.
async fn cross_origin_requests_get_no_cors_grant(app: TestApp) {
    let buyer = app.buyer().await;
    let evil = "https://evil.example";
    let mut answers = vec![
        app.http
            .request(Method::OPTIONS, app.url("/api/v1/me"))
            .header("origin", evil)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .expect("preflight"),
        app.http
            .request(Method::OPTIONS, app.url("/api/v1/cart/items"))
            .header("origin", evil)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
            .await
            .expect("preflight"),
    ];
    for path in ["/api/v1/products", "/api/v1/me", "/", "/account/security"] {
        answers.push(
            app.http
                .get(app.url(path))
                .header("origin", evil)
                .bearer_auth(&buyer.token)
                .send()
                .await
                .expect("get"),
        );
    }
    for res in answers {
        assert!(!res.status().is_server_error());
        let granted: Vec<&str> = res
            .headers()
            .keys()
            .map(|k| k.as_str())
            .filter(|k| k.starts_with("access-control-"))
            .collect();
        assert!(granted.is_empty(), "{}: {granted:?}", res.url());
    }
}

/// Every place that redirects to an address it was given keeps to this site's paths: after
/// sign-in (`next`), after the confirm page (`next`), and the payment form (`return_to`).
async fn redirects_stay_on_this_site(app: TestApp) {
    let buyer = app.buyer().await;
    let mut session = app.page_session(&buyer, FIREFOX).await;
    let local = |location: &str| {
        location.starts_with('/')
            && !location.starts_with("//")
            && !location.contains('\\')
            && !location.chars().any(char::is_control)
    };
    let location = |res: &reqwest::Response| {
        res.headers()["location"]
            .to_str()
            .expect("location")
            .to_string()
    };
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        " //evil.example",
    ] {
        let res = page_post(
            &app,
            "/signin",
            &csrf_only(),
            &[
                ("email", &buyer.email),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert!(
            local(&location(&res)),
            "sign-in, next={next:?}: {}",
            location(&res)
        );

        app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
        let res = page_post(
            &app,
            "/account/confirm",
            &cookies(&session),
            &[("next", next), ("current_password", PASSWORD)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert!(
            local(&location(&res)),
            "confirm, next={next:?}: {}",
            location(&res)
        );
        // The confirm page rotates the session id: carry on with the new one.
        if let Some(c) = set_cookie(&res, "__Host-clipcart_session") {
            session = cookie_value(&c);
        }
    }
    for return_to in ["//evil.example/", "https://evil.example/x"] {
        let html = page_get(
            &app,
            &format!("/testpay/pay?return_to={}", urlencode(return_to)),
            None,
        )
        .await
        .text()
        .await
        .expect("html");
        assert!(
            !html.contains("evil.example"),
            "{return_to:?} kept in the form"
        );
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What people type is shown as text on every page that shows it: an XSS payload in a shop
/// name, a product title and description, a person's name, an address, a role name, a
/// tracking number, a search and a `next` parameter comes back escaped, never as markup. The
/// browser test below checks the same pages fire nothing in Chromium.
async fn user_text_is_encoded_on_every_page(app: TestApp) {
    let world = xss_world(&app).await;
    for (path, who) in &world.pages {
        let cookie = match who {
            Who::Anonymous => None,
            Who::Buyer => Some(world.buyer_cookie.as_str()),
            Who::Seller => Some(world.seller_cookie.as_str()),
        };
        let res = page_get(&app, path, cookie).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let html = res.text().await.expect("html");
        assert!(
            !html.contains(XSS),
            "{path}: the payload came back as markup"
        );
        assert!(!html.contains("<img src=x data-xss"), "{path}: {XSS_SHORT}");
        assert!(!html.contains("<script data-xss"), "{path}");
        assert!(
            html.contains("data-xss"),
            "{path}: the payload is not on the page at all, so this proves nothing"
        );
    }
}

/// One payload with the usual breakouts (attribute, tag, script), short enough for a name.
pub const XSS: &str = "\"'><img src=x data-xss onerror=alert(1)><script data-xss>alert(2)</script>";
/// The tag alone, for fields of at most 40 characters.
const XSS_SHORT: &str = "<img src=x data-xss onerror=alert(3)>";

#[derive(Clone, Copy)]
pub enum Who {
    Anonymous,
    Buyer,
    Seller,
}

pub struct XssWorld {
    pub buyer: Actor,
    pub seller: Actor,
    pub buyer_cookie: String,
    pub seller_cookie: String,
    /// Pages that show a payload, and who opens them.
    pub pages: Vec<(String, Who)>,
}

/// An account whose name is `name` (the test kit's `sign_up` makes the email from the name,
/// which a payload cannot be part of). Its address counts as verified.
async fn named_account(app: &TestApp, kind: &str, name: &str) -> Actor {
    let email = format!("{kind}{}@example.test", app.unique());
    app.post_ok(
        "/api/v1/auth/signup",
        None,
        json!({"email": email, "password": PASSWORD, "display_name": name, "account_type": kind}),
        StatusCode::ACCEPTED,
    )
    .await;
    app.mark_email_verified(&email).await;
    let t = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": email, "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    Actor {
        token: t["token"].as_str().expect("token").into(),
        user_id: t["user_id"].as_str().expect("id").into(),
        email,
        shop_id: None,
    }
}

/// A seller, a buyer and an order whose every free-text field carries `XSS`.
pub async fn xss_world(app: &TestApp) -> XssWorld {
    let admin = app.admin().await;
    let mut seller = named_account(app, "seller", XSS).await;
    let shop = app
        .post_ok(
            "/api/v1/seller/application",
            Some(&seller.token),
            crate::support::application(XSS),
            StatusCode::CREATED,
        )
        .await;
    let shop_id = shop["id"].as_str().expect("shop").to_string();
    app.post_ok(
        &format!("/api/v1/admin/shops/{shop_id}/approve"),
        Some(&admin.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    seller.shop_id = Some(shop_id);
    let product = app
        .post_ok(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": XSS, "description": XSS, "options": [], "variants": [{"option_values": [], "price": 1500, "stock": 9}]}),
            StatusCode::CREATED,
        )
        .await;
    let pid = product["id"].as_str().expect("id").to_string();
    app.post_ok(
        &format!("/api/v1/seller/products/{pid}/publish"),
        Some(&seller.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    app.post_ok(
        "/api/v1/seller/roles",
        Some(&seller.token),
        json!({"name": XSS_SHORT, "permissions": {"analytics": "view"}}),
        StatusCode::CREATED,
    )
    .await;
    let buyer = named_account(app, "buyer", XSS).await;
    app.add_to_cart(&buyer, &variant_id(&product, 0), 1).await;
    let card = app.card_token("4242424242424242").await;
    let placed = app
        .post_ok(
            "/api/v1/checkout",
            Some(&buyer.token),
            json!({"payment_token": card, "shipping_address": {"name": XSS, "line1": XSS, "city": "Hamburg", "postal_code": "20095", "country": "DE"}}),
            StatusCode::CREATED,
        )
        .await;
    let oid = placed["orders"][0]["id"].as_str().expect("id").to_string();
    app.post_ok(
        &format!("/api/v1/seller/orders/{oid}/ship"),
        Some(&seller.token),
        json!({"carrier": XSS_SHORT, "tracking_number": "JD014600003SE"}),
        StatusCode::OK,
    )
    .await;
    let buyer_cookie = cookies(&app.page_session(&buyer, FIREFOX).await);
    let seller_cookie = cookies(&app.page_session(&seller, FIREFOX).await);
    let q = urlencode(XSS);
    let pages = vec![
        ("/".to_string(), Who::Anonymous),
        (format!("/?q={q}"), Who::Anonymous),
        (format!("/products/{pid}"), Who::Anonymous),
        (format!("/signin?next={q}"), Who::Anonymous),
        (format!("/orders/{oid}"), Who::Buyer),
        ("/orders".to_string(), Who::Buyer),
        ("/account/security".to_string(), Who::Buyer),
        ("/seller".to_string(), Who::Seller),
        ("/seller/products".to_string(), Who::Seller),
        (format!("/seller/products/{pid}"), Who::Seller),
        ("/seller/orders".to_string(), Who::Seller),
        (format!("/seller/orders/{oid}"), Who::Seller),
        ("/seller/staff".to_string(), Who::Seller),
    ];
    XssWorld {
        buyer,
        seller,
        buyer_cookie,
        seller_cookie,
        pages,
    }
}

/// The XSS corpus in a real browser: on every page that shows a payload, nothing runs (no
/// dialog, no blocked inline script reported by CSP), no payload element exists in the DOM, and
/// the payload is on the page as text. Also: the session cookie is HttpOnly for real — page
/// script cannot read it. SQLite only: the pages are the same on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_xss_corpus_fires_nothing_in_chromium() {
    let Some(tools) = crate::browser_security::tools() else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let world = xss_world(&app).await;
    let b = crate::webdriver::Browser::launch(&tools, &app.base).await;
    // Before any page script: count dialogs and CSP reports of blocked script.
    b.devtools(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": "window.__fired = [];\
            for (const f of ['alert', 'confirm', 'prompt']) { window[f] = (m) => { window.__fired.push(f + ':' + m); }; }\
            document.addEventListener('securitypolicyviolation', (e) => {\
              if (e.effectiveDirective.startsWith('script-src')) window.__fired.push('csp:' + e.effectiveDirective + ' ' + e.sample);\
            });"}),
    )
    .await
    .expect("a script before every page");

    let mut signed_in_as = None::<u8>;
    for (path, who) in &world.pages {
        let (email, id) = match who {
            Who::Anonymous => (None, 0),
            Who::Buyer => (Some(&world.buyer.email), 1),
            Who::Seller => (Some(&world.seller.email), 2),
        };
        if signed_in_as != Some(id) {
            if signed_in_as.is_some_and(|s| s != 0) {
                crate::browser_security::sign_out(&b).await;
            }
            if let Some(email) = email {
                crate::browser_security::sign_in_with_password(&b, email).await;
                b.wait_for("#signout").await;
                // HttpOnly, for real: the page's script cannot see the session cookie.
                let visible = b
                    .execute("return document.cookie", json!([]))
                    .await
                    .expect("cookie");
                assert!(
                    !visible
                        .as_str()
                        .unwrap_or_default()
                        .contains("clipcart_session"),
                    "{visible}"
                );
            }
            signed_in_as = Some(id);
        }
        b.goto(path).await;
        b.wait_for("body").await;
        let seen = b
            .execute(
                "return {fired: window.__fired || ['no probe'], \
                 elements: document.querySelectorAll('[data-xss]').length, \
                 text: document.body.innerText.includes(arguments[0]) \
                   || [...document.querySelectorAll('input')].some((i) => i.value === arguments[0])}",
                json!([XSS]),
            )
            .await
            .expect("probe");
        assert_eq!(seen["fired"], json!([]), "{path}: {seen}");
        assert_eq!(seen["elements"], 0, "{path}: payload parsed as markup");
        // As text, or (a reflected `next`) as the value of the form field that carries it.
        assert_eq!(
            seen["text"], true,
            "{path}: the payload is not shown as text"
        );
    }
    b.quit().await;
}
