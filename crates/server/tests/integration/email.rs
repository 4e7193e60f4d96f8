//! Email, end to end over real SMTP (the test listener of `support_smtp`): verification at
//! sign-up, password reset (with and without TOTP, with a passkey), email change, new-device and other
//! security alerts — every mail carrying the anti-phishing code — single-use and expiring
//! links, no enumeration on sign-up and reset, delivery retries, and the development outbox.

use crate::on_both_databases;
use crate::support::{Actor, PAGE_CSRF, PASSWORD, TestApp};
use crate::support_smtp::{Received, mailbox, with_smtp};
use clipcart_server::identity::step_up::STEP_UP_WINDOW_MS;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_databases!(configured by with_smtp:
    verification_over_smtp_single_use_and_expiring,
    sign_up_answers_the_same_for_a_taken_address,
    password_reset_over_smtp,
    password_reset_with_totp_needs_the_code,
    password_reset_with_a_passkey_needs_the_passkey,
    new_device_and_failure_alerts,
    email_change_over_smtp,
    email_change_to_a_taken_address_looks_the_same,
    anti_phishing_code_rules_and_step_up,
    security_changes_are_alerted,
    temporary_smtp_failures_are_retried_with_back_off,
    security_page_email_sections,
    dev_outbox_is_off_with_smtp
);

on_both_databases!(dev_outbox_shows_mail_without_smtp);

on_both_databases!(configured by public_host: dev_outbox_is_off_on_a_public_host);

fn public_host(config: &mut clipcart_server::platform::config::Config) {
    config.public_url = "https://shop.example.com".into();
}

const NEW_PASSWORD: &str = "a brand new passphrase for reset";

/// Signs up through the API without verifying; returns the email.
async fn sign_up(app: &TestApp, kind: &str, name: &str) -> String {
    let email = format!("{kind}{}@example.test", app.unique());
    let body = app
        .post_ok(
            "/api/v1/auth/signup",
            None,
            json!({"email": email, "password": PASSWORD, "display_name": name, "account_type": kind}),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(body["email"], email.as_str());
    email
}

/// `TestApp::buyer` (signed up and verified through the database), with the verification mail
/// its sign-up sent taken out of the mailbox.
async fn buyer(app: &TestApp) -> Actor {
    let actor = app.buyer().await;
    let m = mailbox(app).next_to(&actor.email).await;
    assert_eq!(m.subject, "Confirm your email address for Clipcart");
    actor
}

async fn token(app: &TestApp, email: &str, password: &str) -> String {
    let t = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": email, "password": password}),
            StatusCode::CREATED,
        )
        .await;
    t["token"].as_str().expect("token").to_string()
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.request(Method::PUT, path, Some(token), Some(&body))
        .await
}

/// Sets the anti-phishing code with the password as step-up, and takes the confirmation mail.
async fn choose_code(app: &TestApp, email: &str, token: &str, code: &str) {
    let (s, v) = put(
        app,
        "/api/v1/me/anti-phishing-code",
        token,
        json!({"anti_phishing_code": code, "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = mailbox(app).next_to(email).await;
    assert_eq!(m.subject, "Your Clipcart anti-phishing code was changed");
    assert_code(&m, code);
}

/// The anti-phishing line is the first line of the text and sits at the top of the HTML.
fn assert_code(m: &Received, code: &str) {
    let first = m.text.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("Your anti-phishing code: {code}"),
        "the code heads the mail: {}",
        m.text
    );
    let html_code = format!("Your anti-phishing code: <strong>{}</strong>", escape(code));
    assert!(m.html.contains(&html_code), "{}", m.html);
    assert!(
        m.html.find(&html_code) < m.html.find("<p>Hello"),
        "before the greeting"
    );
}

/// HTML-escaped as askama writes it.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&#38;".to_string(),
            '<' => "&#60;".to_string(),
            '>' => "&#62;".to_string(),
            '"' => "&#34;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn assert_no_code_yet(m: &Received) {
    assert!(
        m.text.lines().next().unwrap_or("").starts_with(
            "Your anti-phishing code: not chosen yet. Choose one on your security page"
        ),
        "{}",
        m.text
    );
}

fn path_of(link: &str) -> String {
    let rest = link.split_once("://").map_or(link, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

async fn get_page(app: &TestApp, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut req = app.http.get(app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.expect("get");
    let status = res.status();
    (status, res.text().await.expect("html"))
}

async fn post_page(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut form = vec![("csrf", PAGE_CSRF)];
    form.extend_from_slice(fields);
    let res = app
        .http
        .post(app.url(path))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .expect("post");
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.expect("body"))
}

fn csrf_cookie() -> String {
    format!("__Host-clipcart_csrf={PAGE_CSRF}")
}

async fn outbox_count(app: &TestApp, to: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox_mail WHERE to_address = $1")
        .bind(to)
        .fetch_one(&app.state.db.read)
        .await
        .expect("count")
}

// ---- Verification ----

async fn verification_over_smtp_single_use_and_expiring(app: TestApp) {
    let mail = mailbox(&app);
    let email = sign_up(&app, "seller", "Vera Verify").await;
    let first = mail.next_to(&email).await;
    assert_eq!(first.subject, "Confirm your email address for Clipcart");
    assert_eq!(first.mail_from, "no-reply@clipcart.test");
    assert!(first.to.contains(&email), "{}", first.to);
    assert_no_code_yet(&first);
    assert!(first.text.contains("Hello Vera Verify,"), "{}", first.text);
    assert!(
        !first.text.contains(PASSWORD) && !first.raw.contains(PASSWORD),
        "mail never carries the password"
    );
    let first_token = first.token("/verify-email");
    // Only the digest is stored.
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM email_tokens WHERE token_hash = $1 OR token_hash = $2",
    )
    .bind(&first_token)
    .bind(clipcart_server::identity::service::digest(&first_token))
    .fetch_one(&app.state.db.read)
    .await
    .expect("count");
    assert_eq!(stored, 1);

    // Unverified: signing in works, applying to sell does not.
    let seller_token = token(&app, &email, PASSWORD).await;
    let (s, problem) = app
        .post(
            "/api/v1/seller/application",
            Some(&seller_token),
            crate::support::application("Vera's Shop"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#email-not-verified");
    let status = app.get_ok("/api/v1/me/email", Some(&seller_token)).await;
    assert_eq!(status["verified"], false);
    assert_eq!(status["anti_phishing_code"], Value::Null);

    // The code chosen now heads every later mail, the verification link included.
    choose_code(&app, &email, &seller_token, "blue heron 42").await;
    // A new link at most once a minute.
    let (s, _) = app
        .post(
            "/api/v1/me/verification-email",
            Some(&seller_token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance_ms(61_000);
    app.post_ok(
        "/api/v1/me/verification-email",
        Some(&seller_token),
        json!({}),
        StatusCode::ACCEPTED,
    )
    .await;
    let second = mail.next_to(&email).await;
    assert_eq!(second.subject, "Confirm your email address for Clipcart");
    assert_code(&second, "blue heron 42");
    let link = second.link("/verify-email");
    assert!(
        link.starts_with(&format!(
            "{}/verify-email?token=",
            app.state.config.public_url
        )),
        "{link}"
    );

    // The older link was replaced by the newer one.
    let (s, problem) = app
        .post(
            "/api/v1/auth/verify-email",
            None,
            json!({"token": first_token}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "token");

    // The link works in a browser, once.
    let (s, html) = get_page(&app, &path_of(&link), None).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Email address confirmed"), "{html}");
    let (s, html) = get_page(&app, &path_of(&link), None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("This link does not work"), "{html}");
    let status = app.get_ok("/api/v1/me/email", Some(&seller_token)).await;
    assert_eq!(status["verified"], true);
    assert_eq!(status["anti_phishing_code"], "blue heron 42");
    let (s, _) = app
        .post(
            "/api/v1/me/verification-email",
            Some(&seller_token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "already verified");
    app.post_ok(
        "/api/v1/seller/application",
        Some(&seller_token),
        crate::support::application("Vera's Shop"),
        StatusCode::CREATED,
    )
    .await;

    // Links expire after 24 hours; checking out waits for the address as well.
    let buyer_email = sign_up(&app, "buyer", "Late Larry").await;
    let m = mail.next_to(&buyer_email).await;
    let buyer_token = token(&app, &buyer_email, PASSWORD).await;
    let card = app.card_token("4242424242424242").await;
    let (s, problem) = app
        .post(
            "/api/v1/checkout",
            Some(&buyer_token),
            crate::support::checkout_body(&card),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#email-not-verified");
    app.clock
        .advance_ms(clipcart_server::identity::email::VERIFY_LINK_MS);
    let (s, _) = app
        .post(
            "/api/v1/auth/verify-email",
            None,
            json!({"token": m.token("/verify-email")}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "expired");
    let (s, _) = app
        .post(
            "/api/v1/auth/verify-email",
            None,
            json!({"token": "nonsense"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn sign_up_answers_the_same_for_a_taken_address(app: TestApp) {
    let mail = mailbox(&app);
    let signup = |email: String, name: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let r = app
                .post(
                    "/api/v1/auth/signup",
                    None,
                    json!({"email": email, "password": password, "display_name": name, "account_type": "buyer"}),
                )
                .await;
            (r, started.elapsed())
        }
    };
    let email = format!("taken{}@example.test", app.unique());
    let (fresh, fresh_time) = signup(email.clone(), "Tia Taken", PASSWORD).await;
    let verification = mail.next_to(&email).await;
    assert_eq!(
        verification.subject,
        "Confirm your email address for Clipcart"
    );
    // Again, with another name and password: the same status and body.
    let (again, again_time) =
        signup(email.clone(), "Mallory", "another long passphrase here").await;
    assert_eq!(fresh.0, StatusCode::ACCEPTED);
    assert_eq!(again, fresh, "no user enumeration");
    let notice = mail.next_to(&email).await;
    assert_eq!(
        notice.subject,
        "Someone tried to create a Clipcart account with your address"
    );
    assert!(notice.text.contains("Hello Tia Taken,"), "{}", notice.text);
    assert!(!notice.text.contains("Mallory"));
    assert_no_code_yet(&notice);
    assert!(
        notice
            .link("/forgot-password")
            .ends_with("/forgot-password")
    );
    // Nothing else: no second account, no verification link for the second try.
    let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&app.state.db.read)
        .await
        .expect("count");
    assert_eq!(accounts, 1);
    // A third try within the hour mails nothing (mail bombing), and still answers the same.
    let (third, _) = signup(email.clone(), "Mallory", "another long passphrase here").await;
    assert_eq!(third, fresh);
    mail.assert_quiet(Duration::from_millis(500)).await;

    // Similar time: both hash the password (the slow part). Medians of a few tries.
    let mut new_times = vec![fresh_time];
    let mut taken_times = vec![again_time];
    for _ in 0..4 {
        let e = format!("timing{}@example.test", app.unique());
        new_times.push(signup(e, "Tim Timing", PASSWORD).await.1);
        taken_times.push(signup(email.clone(), "Tim Timing", PASSWORD).await.1);
    }
    new_times.sort();
    taken_times.sort();
    let (n, t) = (new_times[2].as_secs_f64(), taken_times[2].as_secs_f64());
    assert!(
        (n - t).abs() < 0.1 || (n / t < 3.0 && t / n < 3.0),
        "sign-up time tells new ({n:.3} s) from taken ({t:.3} s)"
    );

    // The page: the same "check your inbox" for a taken address as for a new one.
    let page = |email: String| {
        let app = &app;
        async move {
            post_page(
                app,
                "/signup",
                &csrf_cookie(),
                &[
                    ("account_type", "buyer"),
                    ("display_name", "Pat Page"),
                    ("email", email.as_str()),
                    ("password", PASSWORD),
                ],
            )
            .await
        }
    };
    let new_email = format!("page{}@example.test", app.unique());
    let (s1, _, first) = page(new_email.clone()).await;
    let (s2, h2, second) = page(new_email.clone()).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first, second, "the page does not tell either");
    assert!(first.contains("Check your inbox"));
    assert!(
        !h2.get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.contains("clipcart_session=")),
        "no session from sign-up"
    );
}

// ---- Password reset ----

async fn password_reset_over_smtp(app: TestApp) {
    let mail = mailbox(&app);
    let user = buyer(&app).await;
    choose_code(&app, &user.email, &user.token, "otter-7").await;
    let other_token = token(&app, &user.email, PASSWORD).await;
    let cookies = app.page_cookies(&user).await;
    let _new_device = mail.next_to(&user.email).await;

    // Known and unknown addresses: the same status and body, at once.
    let (s1, known) = app
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": user.email}),
        )
        .await;
    let (s2, unknown) = app
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "nobody-here@example.test"}),
        )
        .await;
    let (s3, malformed) = app
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "not an address"}),
        )
        .await;
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED
        )
    );
    assert_eq!(known, unknown);
    assert_eq!(known, malformed);
    let first = mail.next().await;
    assert_eq!(
        first.rcpt_to,
        vec![user.email.clone()],
        "only the account gets mail"
    );
    assert_eq!(first.subject, "Reset your Clipcart password");
    assert_code(&first, "otter-7");
    mail.assert_quiet(Duration::from_millis(300)).await;

    // A second request within a minute sends nothing; after it, a new link retires the old.
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": user.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    mail.assert_quiet(Duration::from_millis(300)).await;
    app.clock.advance_ms(61_000);
    // The page form asks the same way.
    let (s, _, html) = post_page(
        &app,
        "/forgot-password",
        &csrf_cookie(),
        &[("email", user.email.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("If an account uses this address"), "{html}");
    let second = mail.next_to(&user.email).await;
    assert_code(&second, "otter-7");
    let (s, _) = app
        .post(
            "/api/v1/auth/password-reset/complete",
            None,
            json!({"token": first.token("/reset-password"), "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the older link is retired"
    );

    // The link opens the form; the new password passes the usual rules.
    let link = second.link("/reset-password");
    let (s, html) = get_page(&app, &path_of(&link), Some(&csrf_cookie())).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains(&user.email) && html.contains("name=\"new_password\""));
    assert!(!html.contains("name=\"otp\""), "no code without 2FA");
    let token_value = second.token("/reset-password");
    let (s, problem) = app
        .post(
            "/api/v1/auth/password-reset/complete",
            None,
            json!({"token": token_value, "new_password": "password1234567"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "new_password");
    // Through the page form.
    let (s, _, html) = post_page(
        &app,
        "/reset-password",
        &csrf_cookie(),
        &[
            ("token", token_value.as_str()),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Password changed"), "{html}");
    let alert = mail.next_to(&user.email).await;
    assert_eq!(alert.subject, "Your Clipcart password was changed");
    assert_code(&alert, "otter-7");
    assert!(alert.text.contains("Address: 127.0.0.1"), "{}", alert.text);
    assert!(alert.text.contains("If this was not you"));
    // Single use.
    let (s, _) = app
        .post(
            "/api/v1/auth/password-reset/complete",
            None,
            json!({"token": token_value, "new_password": "yet another passphrase again"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Every session and token ended; the new password works, the old does not.
    for t in [&user.token, &other_token] {
        let (s, _) = app.get("/api/v1/me", Some(t)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = get_page(&app, "/account/security", Some(&cookies)).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "the page session ended too");
    let (s, _) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": user.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    token(&app, &user.email, NEW_PASSWORD).await;

    // Links expire after an hour.
    app.clock.advance_ms(61_000);
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": user.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    let late = mail.next_to(&user.email).await;
    app.clock
        .advance_ms(clipcart_server::identity::email::RESET_LINK_MS);
    let (s, _) = app
        .post(
            "/api/v1/auth/password-reset/complete",
            None,
            json!({"token": late.token("/reset-password"), "new_password": "an expired link passphrase"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, html) = get_page(&app, &path_of(&late.link("/reset-password")), None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("This link does not work"));
}

async fn password_reset_with_totp_needs_the_code(app: TestApp) {
    let mail = mailbox(&app);
    let user = buyer(&app).await;
    let secret = enrol_totp(&app, &user).await;
    let on = mail.next_to(&user.email).await;
    assert_eq!(on.subject, "Two-factor authentication is on");
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": user.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    let m = mail.next_to(&user.email).await;
    let reset_token = m.token("/reset-password");
    let (s, html) = get_page(&app, &path_of(&m.link("/reset-password")), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("name=\"otp\""), "the form asks for the code");
    let complete = |otp: Option<String>| {
        let app = &app;
        let reset_token = reset_token.clone();
        async move {
            let mut body = json!({"token": reset_token, "new_password": "eight+ chars ok"});
            if let Some(otp) = otp {
                body["otp"] = json!(otp);
            }
            app.post("/api/v1/auth/password-reset/complete", None, body)
                .await
        }
    };
    // No code: refused, nothing used up.
    let (s, problem) = complete(None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#second-factor-required");
    // A wrong code counts as a failed sign-in of the account.
    let failures_before = failures(&app).await;
    let (s, problem) = complete(Some("000000".into())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "otp");
    assert_eq!(failures(&app).await, failures_before + 1);
    // The right code: done, with the 8-character minimum of an account with 2FA.
    let code = crate::second_factor::code_at(&secret, app.now_ms());
    let (s, v) = complete(Some(code.clone())).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let alert = mail.next_to(&user.email).await;
    assert_eq!(alert.subject, "Your Clipcart password was changed");
    // The link is used up; signing in still needs the second factor.
    let (s, _) = complete(Some(code)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, problem) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": user.email, "password": "eight+ chars ok"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{problem}");
}

/// Starts the passkey check of a reset through the API; answers `(ceremony_id, public_key)`.
async fn reset_challenge(app: &TestApp, reset_token: &str) -> (String, Value) {
    let v = app
        .post_ok(
            "/api/v1/auth/password-reset/passkey/challenges",
            None,
            json!({"token": reset_token}),
            StatusCode::CREATED,
        )
        .await;
    (
        v["ceremony_id"].as_str().expect("ceremony").to_string(),
        v["public_key"].clone(),
    )
}

async fn password_reset_with_a_passkey_needs_the_passkey(app: TestApp) {
    use crate::support_passkey::{Authenticator, register_passkey, sign_in_challenge};
    let mail = mailbox(&app);
    let user = buyer(&app).await;
    let mut key = Authenticator::for_app(&app);
    register_passkey(&app, &user, &mut key).await;
    let added = mail.next_to(&user.email).await;
    assert_eq!(
        added.subject,
        "A passkey was added to your Clipcart account"
    );
    let other = buyer(&app).await;
    let mut other_key = Authenticator::for_app(&app);
    register_passkey(&app, &other, &mut other_key).await;
    mail.next_to(&other.email).await;
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": user.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    let m = mail.next_to(&user.email).await;
    let link = m.link("/reset-password");
    let reset_token = m.token("/reset-password");

    // The page offers the passkey (no code field: there is no authenticator app), and the
    // 8-character minimum of an account with a second factor.
    let (s, html) = get_page(&app, &path_of(&link), Some(&csrf_cookie())).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"reset-with-passkey\""), "{html}");
    assert!(
        html.contains("data-passkey-get=\"/reset-password/passkey/options\""),
        "{html}"
    );
    assert!(!html.contains("name=\"otp\""), "{html}");
    assert!(html.contains("minlength=\"8\""), "{html}");
    assert!(html.contains("At least 8 characters"), "{html}");

    let complete = |body: Value| {
        let app = &app;
        async move {
            app.post("/api/v1/auth/password-reset/complete", None, body)
                .await
        }
    };
    let base = json!({"token": reset_token, "new_password": "eight+ch"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    // The link alone: refused (it was enough before passkeys counted), nothing used up.
    let (s, problem) = complete(base.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#second-factor-required");
    // A code is no proof for an account without an authenticator app.
    let (s, problem) = complete(with(json!({"otp": "123456"}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{problem}");
    // The page form without the passkey: the form again, saying what is missing.
    let (s, _, html) = post_page(
        &app,
        "/reset-password",
        &csrf_cookie(),
        &[
            ("token", reset_token.as_str()),
            ("new_password", "eight+ch"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Your account has a passkey"), "{html}");

    // The challenge names the account's passkeys and needs a usable link.
    let (s, problem) = app
        .post(
            "/api/v1/auth/password-reset/passkey/challenges",
            None,
            json!({"token": "notavalidtoken"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "token");
    let (ceremony, options) = reset_challenge(&app, &reset_token).await;
    let allowed = options["allowCredentials"].as_array().expect("allowed");
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], key.last_credential_id().as_str());

    let failures_before = failures(&app).await;
    let refused = |what: &'static str, (s, problem): (StatusCode, Value)| {
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {problem}");
        assert_eq!(
            problem["errors"][0]["field"], "credential",
            "{what}: {problem}"
        );
    };
    // Another account's passkey on this account's challenge.
    let challenge = options["challenge"].as_str().expect("challenge");
    let forged = other_key.assert_with(0, challenge);
    refused(
        "another account's passkey",
        complete(with(
            json!({"passkey": {"ceremony_id": ceremony, "credential": forged}}),
        ))
        .await,
    );
    // A sign-in challenge (not bound to the link) answered by the right passkey.
    let (sign_in, sign_in_options) = sign_in_challenge(&app).await;
    let credential = key.assert(&sign_in_options);
    refused(
        "a sign-in challenge",
        complete(with(
            json!({"passkey": {"ceremony_id": sign_in, "credential": credential}}),
        ))
        .await,
    );
    // A wrong origin (a phishing page relaying the challenge).
    let mut phisher = key.clone();
    phisher.origin = "http://evil.example".into();
    let (ceremony, options) = reset_challenge(&app, &reset_token).await;
    refused(
        "wrong origin",
        complete(with(
            json!({"passkey": {"ceremony_id": ceremony, "credential": phisher.assert(&options)}}),
        ))
        .await,
    );
    // An expired challenge.
    let (ceremony, options) = reset_challenge(&app, &reset_token).await;
    let late = key.assert(&options);
    app.clock.advance_ms(5 * 60 * 1000 + 1);
    refused(
        "expired",
        complete(with(
            json!({"passkey": {"ceremony_id": ceremony, "credential": late}}),
        ))
        .await,
    );
    // A newer challenge retires the older one.
    let (older, older_options) = reset_challenge(&app, &reset_token).await;
    let (_newer, _) = reset_challenge(&app, &reset_token).await;
    let credential = key.assert(&older_options);
    refused(
        "retired challenge",
        complete(with(
            json!({"passkey": {"ceremony_id": older, "credential": credential}}),
        ))
        .await,
    );
    // Each refusal counted as a failed sign-in of the account.
    assert_eq!(failures(&app).await, failures_before + 5);

    // A challenge of an older link does not complete a newer one.
    let (old_link_ceremony, old_link_options) = reset_challenge(&app, &reset_token).await;
    app.clock.advance_ms(61_000);
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": user.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    let newer = mail.next_to(&user.email).await;
    let newer_token = newer.token("/reset-password");
    let credential = key.assert(&old_link_options);
    let (s, problem) = complete(json!({"token": newer_token, "new_password": "eight+ch", "passkey": {"ceremony_id": old_link_ceremony, "credential": credential}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "credential", "{problem}");

    // Through the page, as passkey.js does it: the options for the link, then the form with
    // the new password and the answer. After all those refusals (and the back-off they
    // earned) the link still works.
    app.clock.advance_ms(15 * 60 * 1000);
    let options: Value = app
        .http
        .post(app.url("/reset-password/passkey/options"))
        .header("cookie", csrf_cookie())
        .form(&[("csrf", PAGE_CSRF), ("token", newer_token.as_str())])
        .send()
        .await
        .expect("options")
        .json()
        .await
        .expect("options JSON");
    let credential = key.assert(&options["public_key"]);
    let ceremony = options["ceremony_id"].as_str().expect("id").to_string();
    let (s, _, html) = post_page(
        &app,
        "/reset-password",
        &csrf_cookie(),
        &[
            ("token", newer_token.as_str()),
            ("new_password", "eight+ch"),
            ("ceremony", ceremony.as_str()),
            ("credential", &credential.to_string()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Password changed"), "{html}");
    let alert = mail.next_to(&user.email).await;
    assert_eq!(alert.subject, "Your Clipcart password was changed");
    // The same answer again: the link is used up (and the challenge too).
    let (s, problem) = complete(json!({"token": newer_token, "new_password": "Zt4!pW9q", "passkey": {"ceremony_id": ceremony, "credential": credential}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "token");
    // Replayed on a fresh link and a fresh challenge: refused.
    app.clock.advance_ms(61_000);
    app.post_ok(
        "/api/v1/auth/password-reset",
        None,
        json!({"email": user.email}),
        StatusCode::ACCEPTED,
    )
    .await;
    let third = mail.next_to(&user.email).await.token("/reset-password");
    let (fresh, _) = reset_challenge(&app, &third).await;
    refused(
        "replayed assertion",
        complete(json!({"token": third, "new_password": "Zt4!pW9q", "passkey": {"ceremony_id": fresh, "credential": credential}}))
            .await,
    );
    // The sessions ended; the new password signs in only with the passkey.
    let (s, _) = app.get("/api/v1/me", Some(&user.token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, problem) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": user.email, "password": "eight+ch"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{problem}");
    let (ceremony, options) = sign_in_challenge(&app).await;
    let credential = key.assert(&options);
    app.post_ok(
        "/api/v1/auth/tokens",
        None,
        json!({"email": user.email, "password": "eight+ch", "passkey": {"ceremony_id": ceremony, "credential": credential}}),
        StatusCode::CREATED,
    )
    .await;
}

/// The sign-in history's failures of all accounts (the throttle counts them).
async fn failures(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sign_in_events WHERE outcome = 'wrong_password'")
        .fetch_one(&app.state.db.read)
        .await
        .expect("count")
}

async fn enrol_totp(app: &TestApp, actor: &Actor) -> String {
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&actor.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let secret = e["secret"].as_str().expect("secret").to_string();
    app.post_ok(
        "/api/v1/me/totp/confirm",
        Some(&actor.token),
        json!({"code": crate::second_factor::code_at(&secret, app.now_ms())}),
        StatusCode::OK,
    )
    .await;
    app.clock.advance_ms(30_000);
    secret
}

// ---- Alerts ----

async fn page_sign_in(
    app: &TestApp,
    email: &str,
    password: &str,
    user_agent: &str,
    device: Option<&str>,
) -> (StatusCode, Option<String>) {
    let mut cookie = csrf_cookie();
    if let Some(d) = device {
        cookie.push_str(&format!("; __Host-cc_device={d}"));
    }
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", cookie)
        .header("user-agent", user_agent)
        .form(&[
            ("csrf", PAGE_CSRF),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("sign in");
    let device = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-cc_device="))
        .map(|c| c.split(';').next().unwrap_or("").to_string());
    (res.status(), device)
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

async fn new_device_and_failure_alerts(app: TestApp) {
    let mail = mailbox(&app);
    // The first sign-in (the API token of `buyer`) records the device without an alert.
    let user = buyer(&app).await;
    choose_code(&app, &user.email, &user.token, "kestrel").await;
    // A browser never seen: an alert, and a device cookie for next time.
    let (s, device) = page_sign_in(&app, &user.email, PASSWORD, FIREFOX, None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let device = device.expect("a device cookie");
    let alert = mail.next_to(&user.email).await;
    assert_eq!(alert.subject, "New sign-in to your Clipcart account");
    assert_code(&alert, "kestrel");
    assert!(
        alert.text.contains("Device: Firefox on Linux"),
        "{}",
        alert.text
    );
    assert!(alert.text.contains("Address: 127.0.0.1"), "{}", alert.text);
    assert!(alert.text.contains("When: 2026-"), "{}", alert.text);
    assert!(alert.text.contains("If this was not you"), "{}", alert.text);
    assert!(
        alert
            .link("/account/security")
            .ends_with("/account/security")
    );
    // The same browser again: no alert, no new cookie.
    let (s, again) = page_sign_in(&app, &user.email, PASSWORD, FIREFOX, Some(&device)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(again, None);
    // The same API client and network: no alert either; another client: an alert.
    token(&app, &user.email, PASSWORD).await;
    mail.assert_quiet(Duration::from_millis(500)).await;
    let res = app
        .http
        .post(app.url("/api/v1/auth/tokens"))
        .header("user-agent", "curl/8.5.0")
        .json(&json!({"email": user.email, "password": PASSWORD}))
        .send()
        .await
        .expect("token");
    assert_eq!(res.status(), StatusCode::CREATED);
    let alert = mail.next_to(&user.email).await;
    assert_eq!(alert.subject, "New sign-in to your Clipcart account");
    assert!(alert.text.contains("Device: curl"), "{}", alert.text);
    // Stored as digests only.
    let cookie_stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM known_devices WHERE device_hash = $1")
            .bind(&device)
            .fetch_one(&app.state.db.read)
            .await
            .expect("count");
    assert_eq!(cookie_stored, 0);

    // Five failures, then a success: an alert naming the failures.
    for _ in 0..5 {
        let (s, _) = app
            .post(
                "/api/v1/auth/tokens",
                None,
                json!({"email": user.email, "password": "a wrong password, long enough"}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.clock.advance_ms(2 * 60 * 1000);
    token(&app, &user.email, PASSWORD).await;
    let alert = mail.next_to(&user.email).await;
    assert_eq!(
        alert.subject,
        "Sign-in to your Clipcart account after failed attempts"
    );
    assert!(
        alert
            .text
            .contains("after 5 failed sign-in attempts in a row"),
        "{}",
        alert.text
    );
    assert_code(&alert, "kestrel");
}

async fn security_changes_are_alerted(app: TestApp) {
    let mail = mailbox(&app);
    let user = buyer(&app).await;
    choose_code(&app, &user.email, &user.token, "quail").await;
    // Password change (service::change_password).
    app.post_ok(
        "/api/v1/me/password",
        Some(&user.token),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        StatusCode::OK,
    )
    .await;
    let m = mail.next_to(&user.email).await;
    assert_eq!(m.subject, "Your Clipcart password was changed");
    assert_code(&m, "quail");
    // Second factors: on, new recovery codes, off.
    let secret = enrol_totp(&app, &user).await;
    let m = mail.next_to(&user.email).await;
    assert_eq!(m.subject, "Two-factor authentication is on");
    assert_code(&m, "quail");
    app.post_ok(
        "/api/v1/me/recovery-codes",
        Some(&user.token),
        json!({"code": crate::second_factor::code_at(&secret, app.now_ms())}),
        StatusCode::CREATED,
    )
    .await;
    let m = mail.next_to(&user.email).await;
    assert_eq!(m.subject, "New recovery codes for your Clipcart account");
    app.clock.advance_ms(30_000);
    let (s, v) = app
        .request(
            Method::DELETE,
            "/api/v1/me/totp",
            Some(&user.token),
            Some(&json!({"code": crate::second_factor::code_at(&secret, app.now_ms())})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let m = mail.next_to(&user.email).await;
    assert_eq!(m.subject, "Two-factor authentication was turned off");
    assert_code(&m, "quail");
    assert!(m.text.contains("Device: ") && m.text.contains("Address: "));
}

// ---- Email change ----

async fn email_change_over_smtp(app: TestApp) {
    let mail = mailbox(&app);
    let user = buyer(&app).await;
    choose_code(&app, &user.email, &user.token, "harbour-9").await;
    // Past the step-up window the password just opened.
    app.clock.advance_ms(STEP_UP_WINDOW_MS);
    let new_email = format!("moved{}@example.test", app.unique());
    // Step-up first.
    let (s, problem) = app
        .post(
            "/api/v1/me/email",
            Some(&user.token),
            json!({"new_email": new_email}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#step-up-required");
    let (s, problem) = app
        .post(
            "/api/v1/me/email",
            Some(&user.token),
            json!({"new_email": "not an address", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "new_email");
    let accepted = app
        .post_ok(
            "/api/v1/me/email",
            Some(&user.token),
            json!({"new_email": new_email.to_uppercase(), "current_password": PASSWORD}),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(accepted["new_email"], new_email.as_str());
    let confirm = mail.next_to(&new_email).await;
    assert_eq!(
        confirm.subject,
        "Confirm your new email address for Clipcart"
    );
    assert_code(&confirm, "harbour-9");
    let notice = mail.next_to(&user.email).await;
    assert_eq!(
        notice.subject,
        "A change of your Clipcart email address was requested"
    );
    assert!(notice.text.contains(&new_email));
    assert_code(&notice, "harbour-9");
    let status = app.get_ok("/api/v1/me/email", Some(&user.token)).await;
    assert_eq!(status["email"], user.email.as_str(), "nothing changed yet");
    assert_eq!(status["pending_email"], new_email.as_str());

    // The link shows a confirmation page; the change is a POST.
    let link = confirm.link("/confirm-email");
    let (s, html) = get_page(&app, &path_of(&link), Some(&csrf_cookie())).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&new_email), "{html}");
    let t = confirm.token("/confirm-email");
    let (s, _, html) = post_page(
        &app,
        "/confirm-email",
        &csrf_cookie(),
        &[("token", t.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("Email address changed"), "{html}");
    let told = mail.next_to(&user.email).await;
    assert_eq!(told.subject, "Your Clipcart email address was changed");
    assert!(told.text.contains(&new_email));
    assert_code(&told, "harbour-9");
    // Single use.
    let (s, _) = app
        .post(
            "/api/v1/auth/email-change/confirm",
            None,
            json!({"token": t}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let status = app.get_ok("/api/v1/me/email", Some(&user.token)).await;
    assert_eq!(status["email"], new_email.as_str());
    assert_eq!(status["verified"], true);
    assert_eq!(status["pending_email"], Value::Null);
    token(&app, &new_email, PASSWORD).await;
    let (s, _) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": user.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the old address no longer signs in"
    );

    // Change links expire after 24 hours.
    let later = format!("later{}@example.test", app.unique());
    app.post_ok(
        "/api/v1/me/email",
        Some(&user.token),
        json!({"new_email": later, "current_password": PASSWORD}),
        StatusCode::ACCEPTED,
    )
    .await;
    let m = mail.next_to(&later).await;
    app.clock
        .advance_ms(clipcart_server::identity::email::EMAIL_CHANGE_LINK_MS);
    let (s, _) = app
        .post(
            "/api/v1/auth/email-change/confirm",
            None,
            json!({"token": m.token("/confirm-email")}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn email_change_to_a_taken_address_looks_the_same(app: TestApp) {
    let mail = mailbox(&app);
    let alice = buyer(&app).await;
    let bob = buyer(&app).await;
    choose_code(&app, &bob.email, &bob.token, "bob's code").await;
    let free = format!("free{}@example.test", app.unique());
    let to_free = app
        .post_ok(
            "/api/v1/me/email",
            Some(&alice.token),
            json!({"new_email": free, "current_password": PASSWORD}),
            StatusCode::ACCEPTED,
        )
        .await;
    let _confirm = mail.next_to(&free).await;
    let _notice = mail.next_to(&alice.email).await;
    let (s, to_taken) = app
        .post(
            "/api/v1/me/email",
            Some(&alice.token),
            json!({"new_email": bob.email, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let normalise = |v: &Value, email: &str| v.to_string().replace(email, "ADDRESS");
    assert_eq!(normalise(&to_taken, &bob.email), normalise(&to_free, &free));
    // Bob is told, with his own code and nothing about Alice; Alice's address gets the usual
    // notice.
    let to_bob = mail.next_to(&bob.email).await;
    assert_eq!(
        to_bob.subject,
        "Your address was offered for another Clipcart account"
    );
    assert_code(&to_bob, "bob's code");
    assert!(!to_bob.raw.contains(&alice.email) && !to_bob.text.contains("Bea"));
    assert!(!to_bob.text.contains("token="), "no link to use");
    let to_alice = mail.next_to(&alice.email).await;
    assert_eq!(
        to_alice.subject,
        "A change of your Clipcart email address was requested"
    );
    // Nothing changed for either.
    let status = app.get_ok("/api/v1/me/email", Some(&alice.token)).await;
    assert_eq!(status["email"], alice.email.as_str());
}

// ---- The anti-phishing code ----

async fn anti_phishing_code_rules_and_step_up(app: TestApp) {
    let user = buyer(&app).await;
    let mail = mailbox(&app);
    for (code, why) in [
        ("abc", "use 4 to 32 characters"),
        ("   ab   ", "use 4 to 32 characters"),
        (&"x".repeat(33)[..], "use 4 to 32 characters"),
        ("tab\there", "use visible characters only"),
        ("zero\u{200B}width", "use visible characters only"),
        ("rtl\u{202E}trick", "use visible characters only"),
    ] {
        let (s, problem) = put(
            &app,
            "/api/v1/me/anti-phishing-code",
            &user.token,
            json!({"anti_phishing_code": code, "current_password": PASSWORD}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{code:?}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "anti_phishing_code");
        assert_eq!(problem["errors"][0]["message"], why);
    }
    // Step-up: nothing, or a wrong password, is refused (outside the window a sign-in opens).
    app.clock.advance_ms(STEP_UP_WINDOW_MS);
    let (s, problem) = put(
        &app,
        "/api/v1/me/anti-phishing-code",
        &user.token,
        json!({"anti_phishing_code": "good code"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#step-up-required");
    let (s, problem) = put(
        &app,
        "/api/v1/me/anti-phishing-code",
        &user.token,
        json!({"anti_phishing_code": "good code", "current_password": "not my password at all"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "current_password");
    // Trimmed; 4 to 32 characters of any script.
    let (s, v) = put(
        &app,
        "/api/v1/me/anti-phishing-code",
        &user.token,
        json!({"anti_phishing_code": "  Grüße 🦦 ok  ", "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["anti_phishing_code"], "Grüße 🦦 ok");
    let m = mail.next_to(&user.email).await;
    assert_code(&m, "Grüße 🦦 ok");
    // HTML in a code is shown as text, never markup.
    let (s, _) = put(
        &app,
        "/api/v1/me/anti-phishing-code",
        &user.token,
        json!({"anti_phishing_code": "<b>bold</b>", "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let m = mail.next_to(&user.email).await;
    assert!(m.text.starts_with("Your anti-phishing code: <b>bold</b>"));
    assert!(!m.html.contains("<b>bold</b>"), "{}", m.html);
    assert_code(&m, "<b>bold</b>");
}

// ---- Delivery ----

async fn temporary_smtp_failures_are_retried_with_back_off(app: TestApp) {
    let mail = mailbox(&app);
    mail.refuse_next(1);
    let email = sign_up(&app, "buyer", "Rita Retry").await;
    // Refused once: still in the outbox, to be tried again in 30 s (by the injected clock).
    let mut row = (0_i64, 0_i64, String::new());
    for _ in 0..100 {
        row = sqlx::query_as(
            "SELECT attempts, sent_at, last_error FROM outbox_mail WHERE to_address = $1",
        )
        .bind(&email)
        .fetch_one(&app.state.db.read)
        .await
        .expect("row");
        if !row.2.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(row.0, 1, "one attempt");
    assert_eq!(row.1, 0, "not sent");
    assert!(
        row.2.contains("451") || row.2.to_lowercase().contains("try again"),
        "{}",
        row.2
    );
    mail.assert_quiet(Duration::from_millis(300)).await;
    app.clock
        .advance_ms(clipcart_server::platform::mail::retry_delay_ms(1));
    app.state.mail.wake();
    let m = mail.next_to(&email).await;
    assert_eq!(m.subject, "Confirm your email address for Clipcart");
    // Sent: the body, which held the link, is erased.
    let mut sent: (i64, i64, String) = (0, 0, String::new());
    for _ in 0..100 {
        sent = sqlx::query_as(
            "SELECT attempts, sent_at, body_text FROM outbox_mail WHERE to_address = $1",
        )
        .bind(&email)
        .fetch_one(&app.state.db.read)
        .await
        .expect("row");
        if sent.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent.0, 2);
    assert!(sent.1 > 0);
    assert_eq!(sent.2, "");
    assert_eq!(outbox_count(&app, &email).await, 1);
}

// ---- The security page ----

async fn security_page_email_sections(app: TestApp) {
    let mail = mailbox(&app);
    let email = sign_up(&app, "buyer", "Sue Section").await;
    let verification = mail.next_to(&email).await;
    let user = Actor {
        token: token(&app, &email, PASSWORD).await,
        user_id: String::new(),
        email: email.clone(),
        shop_id: None,
    };
    let cookies = app.page_cookies(&user).await;
    let device = mail.next_to(&email).await;
    assert_eq!(device.subject, "New sign-in to your Clipcart account");
    // Outside the step-up window the page sign-in opened.
    app.clock.advance_ms(STEP_UP_WINDOW_MS);
    let (s, html) = get_page(&app, "/account/security", Some(&cookies)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Not verified") && html.contains("id=\"resend-verification\""));
    assert!(html.contains("id=\"anti-phishing\""));
    // A wrong password on the code form: shown beside the field, 422.
    let (s, _, html) = post_page(
        &app,
        "/account/security/anti-phishing-code",
        &cookies,
        &[
            ("anti_phishing_code", "magpie"),
            ("current_password", "wrong wrong wrong"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"anti-phishing-current-password-error\""),
        "{html}"
    );
    assert!(html.contains("value=\"magpie\""), "what was typed is kept");
    let (s, _, html) = post_page(
        &app,
        "/account/security/anti-phishing-code",
        &cookies,
        &[
            ("anti_phishing_code", "magpie"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("id=\"anti-phishing-current\">magpie<"),
        "{html}"
    );
    let m = mail.next_to(&email).await;
    assert_code(&m, "magpie");
    // Resend from the page (a minute after the first link).
    app.clock.advance_ms(61_000);
    let (s, _, html) = post_page(&app, "/account/security/email/verification", &cookies, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("We sent a new link"), "{html}");
    let again = mail.next_to(&email).await;
    assert_code(&again, "magpie");
    assert_ne!(
        again.token("/verify-email"),
        verification.token("/verify-email")
    );
    let (s, _) = get_page(&app, &path_of(&again.link("/verify-email")), None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, html) = get_page(&app, "/account/security", Some(&cookies)).await;
    assert!(html.contains("Verified") && !html.contains("id=\"resend-verification\""));
    // The change form.
    let moved = format!("sue{}@example.test", app.unique());
    let (s, _, html) = post_page(
        &app,
        "/account/security/email",
        &cookies,
        &[
            ("new_email", moved.as_str()),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("We sent a link to {moved}")),
        "{html}"
    );
    assert!(html.contains("id=\"email-pending\""));
    mail.next_to(&moved).await;
    // The sign-in page links to the reset form.
    let (_, html) = get_page(&app, "/signin", None).await;
    assert!(html.contains("href=\"/forgot-password\""));
    let (s, _) = get_page(&app, "/forgot-password", None).await;
    assert_eq!(s, StatusCode::OK);
}

// ---- The development outbox ----

async fn dev_outbox_shows_mail_without_smtp(app: TestApp) {
    assert!(!app.state.mail.smtp_configured());
    let email = sign_up(&app, "buyer", "Dev Dora").await;
    let (s, html) = get_page(&app, "/dev/outbox", None).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains(&email) && html.contains("Confirm your email address for Clipcart"));
    assert!(html.contains("not sent (no SMTP server configured)"));
    // The verification link is there to click.
    let start = html.find("/verify-email?token=").expect("a link");
    let token: String = html[start + "/verify-email?token=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let (s, html) = get_page(&app, &format!("/verify-email?token={token}"), None).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let sent: i64 = sqlx::query_scalar("SELECT sent_at FROM outbox_mail WHERE to_address = $1")
        .bind(&email)
        .fetch_one(&app.state.db.read)
        .await
        .expect("row");
    assert_eq!(sent, 0, "kept as not sent");
}

async fn dev_outbox_is_off_with_smtp(app: TestApp) {
    let (s, _) = get_page(&app, "/dev/outbox", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn dev_outbox_is_off_on_a_public_host(app: TestApp) {
    assert!(!app.state.mail.smtp_configured());
    let (s, _) = get_page(&app, "/dev/outbox", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
