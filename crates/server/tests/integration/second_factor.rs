//! Second factors: TOTP enrolment through the API (codes computed with totp-rs at the test
//! clock's time), single use, token issuance needing the code, recovery codes, turning it off.

use crate::on_both_databases;
use crate::support::{Actor, PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    enrolment_needs_a_current_code_and_codes_work_once,
    tokens_need_the_second_factor,
    recovery_codes_work_once_and_regenerate,
    turning_it_off_needs_a_code,
    my_codes_are_mine,
    page_sign_in_asks_for_the_code,
    wrong_codes_on_security_actions_are_throttled,
    wrong_page_codes_are_throttled_with_retry_after,
    turning_it_on_or_off_ends_the_other_sessions
);

pub(crate) fn code_at(secret: &str, now_ms: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).expect("base32"))
        .build()
        .expect("totp");
    totp.generate(u64::try_from(now_ms / 1000).expect("positive"))
        .to_string()
}

/// Enrols `actor`; returns the seed and the recovery codes. Leaves the clock on a fresh step.
async fn enrol(app: &TestApp, actor: &Actor) -> (String, Vec<String>) {
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&actor.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let secret = e["secret"].as_str().expect("secret").to_string();
    let uri = e["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/Clipcart:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let codes = app
        .post_ok(
            "/api/v1/me/totp/confirm",
            Some(&actor.token),
            json!({"code": code_at(&secret, app.now_ms())}),
            StatusCode::OK,
        )
        .await;
    let codes: Vec<String> = codes["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    next_step(app);
    (secret, codes)
}

fn next_step(app: &TestApp) {
    app.clock.advance_ms(30_000);
}

async fn token_with(app: &TestApp, actor: &Actor, otp: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"email": actor.email, "password": PASSWORD});
    if let Some(otp) = otp {
        body["otp"] = json!(otp);
    }
    app.post("/api/v1/auth/tokens", None, body).await
}

async fn enrolment_needs_a_current_code_and_codes_work_once(app: TestApp) {
    let ann = app.buyer().await;
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let secret = e["secret"].as_str().expect("secret");
    // Not active yet: tokens are issued without a code.
    assert_eq!(token_with(&app, &ann, None).await.0, StatusCode::CREATED);
    // A code from two steps ago is outside the window.
    let (status, body) = app
        .post(
            "/api/v1/me/totp/confirm",
            Some(&ann.token),
            json!({"code": code_at(secret, app.now_ms() - 60_000)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // One step of skew is fine.
    let code = code_at(secret, app.now_ms() - 30_000);
    app.post_ok(
        "/api/v1/me/totp/confirm",
        Some(&ann.token),
        json!({"code": code}),
        StatusCode::OK,
    )
    .await;
    // Already on: starting again is a conflict.
    let (status, _) = app
        .post("/api/v1/me/totp", Some(&ann.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The code that confirmed cannot sign in; the current one can, once.
    assert_eq!(
        token_with(&app, &ann, Some(&code)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let now_code = code_at(secret, app.now_ms());
    assert_eq!(
        token_with(&app, &ann, Some(&now_code)).await.0,
        StatusCode::CREATED
    );
    let (status, body) = token_with(&app, &ann, Some(&now_code)).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "replay refused: {body}"
    );
    // Thirty seconds on, the next code works.
    next_step(&app);
    let later = code_at(secret, app.now_ms());
    assert_eq!(
        token_with(&app, &ann, Some(&later)).await.0,
        StatusCode::CREATED
    );
}

async fn tokens_need_the_second_factor(app: TestApp) {
    let ann = app.buyer().await;
    let (secret, _) = enrol(&app, &ann).await;
    let (status, body) = token_with(&app, &ann, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["type"], "/docs/problems#second-factor-required");
    assert!(body.get("token").is_none());
    // A wrong code answers exactly like a wrong password.
    let (wrong_code_status, wrong_code_body) = token_with(&app, &ann, Some("000000")).await;
    let (wrong_pw_status, wrong_pw_body) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": "not the password at all"}),
        )
        .await;
    assert_eq!(wrong_code_status, wrong_pw_status);
    assert_eq!(wrong_code_body, wrong_pw_body);
    // ...and counts as a failure in the sign-in history.
    let history = app.get_ok("/api/v1/me/sign-ins", Some(&ann.token)).await;
    let failures = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "wrong_password")
        .count();
    assert_eq!(failures, 2, "{history}");
    // The throttle's back-off from those failures passes; then the right code works.
    app.clock.advance_ms(10 * 60 * 1000);
    let (status, body) = token_with(&app, &ann, Some(&code_at(&secret, app.now_ms()))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The problems page documents the new type.
    let res = reqwest::get(app.url("/docs/problems")).await.expect("docs");
    let text = res.text().await.expect("text");
    assert!(text.contains("id=\"second-factor-required\""));
}

async fn recovery_codes_work_once_and_regenerate(app: TestApp) {
    let ann = app.buyer().await;
    let (secret, codes) = enrol(&app, &ann).await;
    let (status, body) = token_with(&app, &ann, Some(&codes[0])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // In capitals and without the dash it is the same code: already used.
    let same = codes[0].replace('-', "").to_uppercase();
    assert_eq!(
        token_with(&app, &ann, Some(&same)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Regenerating needs a code and invalidates the old set.
    let fresh = app
        .post_ok(
            "/api/v1/me/recovery-codes",
            Some(&ann.token),
            json!({"code": code_at(&secret, app.now_ms())}),
            StatusCode::CREATED,
        )
        .await;
    let fresh = fresh["recovery_codes"][0]
        .as_str()
        .expect("code")
        .to_string();
    app.clock.advance_ms(10 * 60 * 1000);
    assert_eq!(
        token_with(&app, &ann, Some(&codes[1])).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an old code stops working"
    );
    app.clock.advance_ms(10 * 60 * 1000);
    assert_eq!(
        token_with(&app, &ann, Some(&fresh)).await.0,
        StatusCode::CREATED
    );
}

async fn turning_it_off_needs_a_code(app: TestApp) {
    let ann = app.buyer().await;
    let (secret, _) = enrol(&app, &ann).await;
    let (status, _) = del(&app, &ann, json!("123456")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        token_with(&app, &ann, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = del(&app, &ann, json!(code_at(&secret, app.now_ms()))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(token_with(&app, &ann, None).await.0, StatusCode::CREATED);
}

async fn del(app: &TestApp, actor: &Actor, code: Value) -> (StatusCode, Value) {
    app.request(
        reqwest::Method::DELETE,
        "/api/v1/me/totp",
        Some(&actor.token),
        Some(&json!({ "code": code })),
    )
    .await
}

async fn my_codes_are_mine(app: TestApp) {
    let ann = app.buyer().await;
    let bob = app.buyer().await;
    let (ann_secret, ann_codes) = enrol(&app, &ann).await;
    let (bob_secret, _) = enrol(&app, &bob).await;
    assert_ne!(ann_secret, bob_secret);
    // Ann's current TOTP code and her recovery code do not sign Bob in...
    let (status, _) = token_with(&app, &bob, Some(&code_at(&ann_secret, app.now_ms()))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.clock.advance_ms(10 * 60 * 1000);
    let (status, _) = token_with(&app, &bob, Some(&ann_codes[0])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // ...nor turn off Bob's factor.
    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/me/totp",
            Some(&bob.token),
            Some(&json!({"code": ann_codes[1]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Ann's codes still work for Ann.
    let (status, _) = token_with(&app, &ann, Some(&ann_codes[0])).await;
    assert_eq!(status, StatusCode::CREATED);
}

const CSRF: &str = "abcdefghijklmnopqrstuvwxyz234567";

async fn page_sign_in_asks_for_the_code(app: TestApp) {
    let ann = app.buyer().await;
    let (secret, _) = enrol(&app, &ann).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = format!("__Host-clipcart_csrf={CSRF}");
    let res = http
        .post(app.url("/signin"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", CSRF),
            ("email", &ann.email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap_or("").contains("clipcart_session"))
    );
    let page = res.text().await.expect("page");
    let pending = page
        .split("name=\"pending\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("pending id")
        .to_string();
    // A wrong code: the form again, no session.
    let res = http
        .post(app.url("/signin/code"))
        .header("cookie", &cookie)
        .form(&[("csrf", CSRF), ("pending", &pending), ("code", "000000")])
        .send()
        .await
        .expect("code");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A made-up pending id does not help.
    app.clock.advance_ms(60_000);
    let code = code_at(&secret, app.now_ms());
    let res = http
        .post(app.url("/signin/code"))
        .header("cookie", &cookie)
        .form(&[("csrf", CSRF), ("pending", "made-up"), ("code", &code)])
        .send()
        .await
        .expect("code");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = http
        .post(app.url("/signin/code"))
        .header("cookie", &cookie)
        .form(&[("csrf", CSRF), ("pending", &pending), ("code", &code)])
        .send()
        .await
        .expect("code");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-clipcart_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let page = http
        .get(app.url("/account/security"))
        .header(
            "cookie",
            format!("{cookie}; __Host-clipcart_session={session}"),
        )
        .send()
        .await
        .expect("security page");
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.expect("text");
    assert!(text.contains("id=\"two-factor\""), "2FA section shown");
    assert!(text.contains("status-active\">On"), "2FA shown as on");
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A request with a bearer token and a JSON body: the status and the `Retry-After` header.
async fn api_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    actor: &Actor,
    code: &str,
) -> (StatusCode, Option<String>) {
    let res = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&actor.token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .expect("request");
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (res.status(), retry)
}

/// A page form POST with the session cookie `cookie` (from `page_cookies`).
async fn page_post(
    app: &TestApp,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf", CSRF)];
    form.extend_from_slice(fields);
    no_redirects()
        .post(app.url(path))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .expect("form post")
}

async fn page_get_status(app: &TestApp, cookie: &str, path: &str) -> StatusCode {
    no_redirects()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page")
        .status()
}

async fn wrong_codes_on_security_actions_are_throttled(app: TestApp) {
    // Five free failures, mixed over the three actions, each a 422...
    let ann = app.buyer().await;
    let (secret, codes) = enrol(&app, &ann).await;
    let attempts = [
        (reqwest::Method::DELETE, "/api/v1/me/totp"),
        (reqwest::Method::POST, "/api/v1/me/recovery-codes"),
        (reqwest::Method::DELETE, "/api/v1/me/totp"),
        (reqwest::Method::POST, "/api/v1/me/recovery-codes"),
        (reqwest::Method::DELETE, "/api/v1/me/totp"),
    ];
    for (method, path) in attempts {
        let (status, _) = api_call(&app, method, path, &ann, "000000").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    }
    // ...then the account backs off: even the right code is refused with 429 and Retry-After,
    // and so is signing in (the same throttle).
    let right = code_at(&secret, app.now_ms());
    let (status, retry) = api_call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/me/totp",
        &ann,
        &right,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let (status, _) = api_call(
        &app,
        reqwest::Method::POST,
        "/api/v1/me/recovery-codes",
        &ann,
        &codes[0],
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        token_with(&app, &ann, Some(&right)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The failures are in the sign-in history.
    let history = app.get_ok("/api/v1/me/sign-ins", Some(&ann.token)).await;
    let failures = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "wrong_password")
        .count();
    assert_eq!(failures, 5, "{history}");
    // The factor is still on, and once the back-off has passed the right code works.
    app.clock.advance_ms(2 * 60 * 1000);
    let right = code_at(&secret, app.now_ms());
    let (status, _) = api_call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/me/totp",
        &ann,
        &right,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Confirming an enrolment counts too.
    let bob = app.buyer().await;
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&bob.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let bob_secret = e["secret"].as_str().expect("secret").to_string();
    for _ in 0..5 {
        let (status, _) = api_call(
            &app,
            reqwest::Method::POST,
            "/api/v1/me/totp/confirm",
            &bob,
            "000000",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let right = code_at(&bob_secret, app.now_ms());
    let (status, retry) = api_call(
        &app,
        reqwest::Method::POST,
        "/api/v1/me/totp/confirm",
        &bob,
        &right,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some(), "Retry-After");
    // Ann's account is not Bob's: her throttle was settled by her right code.
    assert_eq!(token_with(&app, &ann, None).await.0, StatusCode::CREATED);
}

async fn wrong_page_codes_are_throttled_with_retry_after(app: TestApp) {
    let ann = app.buyer().await;
    let cookie = app.page_cookies(&ann).await;
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let secret = e["secret"].as_str().expect("secret").to_string();
    let res = page_post(
        &app,
        &cookie,
        "/account/security/totp/confirm",
        &[("code", &code_at(&secret, app.now_ms()))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    next_step(&app);
    for path in [
        "/account/security/totp/disable",
        "/account/security/recovery-codes",
        "/account/security/totp/disable",
        "/account/security/recovery-codes",
        "/account/security/totp/disable",
    ] {
        let res = page_post(&app, &cookie, path, &[("code", "000000")]).await;
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: the page again"
        );
        let text = res.text().await.expect("page");
        assert!(
            text.contains("id=\"two-factor-error\""),
            "{path}: error shown"
        );
    }
    let right = code_at(&secret, app.now_ms());
    let res = page_post(
        &app,
        &cookie,
        "/account/security/totp/disable",
        &[("code", &right)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        res.text().await.expect("page").contains("<html"),
        "an HTML page"
    );
    assert_eq!(
        token_with(&app, &ann, None).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the account's sign-in is throttled too"
    );
}

async fn turning_it_on_or_off_ends_the_other_sessions(app: TestApp) {
    let ann = app.buyer().await;
    let here = app.page_cookies(&ann).await;
    let elsewhere = app.page_cookies(&ann).await;
    assert_eq!(
        page_get_status(&app, &elsewhere, "/account/security").await,
        StatusCode::OK
    );
    // Turned on from the page: this session stays, the other one ends.
    let e = app
        .post_ok(
            "/api/v1/me/totp",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let secret = e["secret"].as_str().expect("secret").to_string();
    let res = page_post(
        &app,
        &here,
        "/account/security/totp/confirm",
        &[("code", &code_at(&secret, app.now_ms()))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .expect("page")
            .contains("id=\"recovery-codes\"")
    );
    assert_eq!(
        page_get_status(&app, &here, "/account/security").await,
        StatusCode::OK
    );
    assert_eq!(
        page_get_status(&app, &elsewhere, "/account/security").await,
        StatusCode::SEE_OTHER,
        "the other session ended"
    );
    // The API token that was used keeps working.
    app.get_ok("/api/v1/me", Some(&ann.token)).await;
    // Turned off from the page: the same.
    next_step(&app);
    let again = {
        // A second session, now with the code step.
        let http = no_redirects();
        let csrf_cookie = format!("__Host-clipcart_csrf={CSRF}");
        let page = http
            .post(app.url("/signin"))
            .header("cookie", &csrf_cookie)
            .form(&[
                ("csrf", CSRF),
                ("email", ann.email.as_str()),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("sign in")
            .text()
            .await
            .expect("page");
        let pending = page
            .split("name=\"pending\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("pending id")
            .to_string();
        let code = code_at(&secret, app.now_ms());
        let res = http
            .post(app.url("/signin/code"))
            .header("cookie", &csrf_cookie)
            .form(&[
                ("csrf", CSRF),
                ("pending", pending.as_str()),
                ("code", code.as_str()),
            ])
            .send()
            .await
            .expect("code");
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let session = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("__Host-clipcart_session="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_string();
        format!("{csrf_cookie}; __Host-clipcart_session={session}")
    };
    assert_eq!(
        page_get_status(&app, &again, "/account/security").await,
        StatusCode::OK
    );
    next_step(&app);
    let res = page_post(
        &app,
        &here,
        "/account/security/totp/disable",
        &[("code", &code_at(&secret, app.now_ms()))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page_get_status(&app, &here, "/account/security").await,
        StatusCode::OK
    );
    assert_eq!(
        page_get_status(&app, &again, "/account/security").await,
        StatusCode::SEE_OTHER,
        "the other session ended"
    );
    // Through the API there is no session in use: every browser session ends.
    let (secret, _) = enrol(&app, &ann).await;
    assert_eq!(
        page_get_status(&app, &here, "/account/security").await,
        StatusCode::SEE_OTHER,
        "an API change ends the browser sessions"
    );
    let (status, _) = del(&app, &ann, json!(code_at(&secret, app.now_ms()))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
