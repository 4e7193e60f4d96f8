//! The password policy through the real server: the shipped list of common passwords, the
//! length rules without truncation, the password-check API and the sign-up page's live meter
//! (as HTML, and typed into in a headless Chromium: skipped without Chromium on a laptop,
//! failing when `CI=true`).

use crate::on_both_databases;
use crate::support::{Backend, TestApp, in_ci};
use crate::webdriver::{Browser, Tools};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    sign_up_refuses_common_passwords_with_a_reason,
    sign_up_accepts_a_long_passphrase,
    passwords_of_64_and_more_characters_are_accepted_whole,
    the_password_check_endpoint_answers,
    the_strength_fragment_renders,
);

const CSRF: &str = "abcdefghijklmnopqrstuvwxyz234567";
/// A passphrase of unrelated words: long, not on the list, not from anyone's name.
const PASSPHRASE: &str = "vivid otter lantern quay marmalade";

/// POSTs a form to a page with a valid CSRF cookie and token; returns status, headers, body.
async fn post_form(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut form = vec![("csrf", CSRF)];
    form.extend_from_slice(fields);
    let res = app
        .http
        .post(app.url(path))
        .header("cookie", format!("__Host-clipcart_csrf={CSRF}"))
        .form(&form)
        .send()
        .await
        .expect("post");
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.expect("body"))
}

fn field_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field").to_string(),
                e["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

async fn token_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    app.post(
        "/api/v1/auth/tokens",
        None,
        json!({"email": email, "password": password}),
    )
    .await
    .0
}

async fn sign_up_refuses_common_passwords_with_a_reason(app: TestApp) {
    // On the page: a listed password (16 characters, so length is not the reason), any casing.
    let (status, _, html) = post_form(
        &app,
        "/signup",
        &[
            ("account_type", "buyer"),
            ("display_name", "Cora Common"),
            ("email", "cora@example.test"),
            ("password", "PasswordPassword"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains(r#"<p class="field-error" id="password-error">this password is on a list of common and breached passwords; choose another</p>"#),
        "the reason is shown beside the password field: {html}"
    );
    assert!(
        html.contains(r#"value="cora@example.test""#) && html.contains(r#"value="Cora Common""#),
        "what was typed is kept"
    );
    assert!(
        !html.contains("PasswordPassword"),
        "the password is not echoed"
    );

    // Through the API: a listed password with digits and symbols added.
    let (status, body) = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "cora@example.test", "password": "Password1234567!", "display_name": "Cora Common", "account_type": "buyer"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        field_errors(&body),
        [(
            "password".to_string(),
            "this is a common password with digits or symbols added; choose another".to_string()
        )]
    );
    // Built from the person's own email and name.
    let (status, body) = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "cora.common@example.test", "password": "CoraCommon-cora.common", "display_name": "Cora Common", "account_type": "buyer"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        field_errors(&body),
        [(
            "password".to_string(),
            "the password is too close to your email, your name or the site name".to_string()
        )]
    );
    // Nothing was created: the address is still free, and a good password is taken.
    assert_eq!(
        token_status(&app, "cora@example.test", "PasswordPassword").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    app.post_ok(
        "/api/v1/auth/signup",
        None,
        json!({"email": "cora@example.test", "password": PASSPHRASE, "display_name": "Cora Common", "account_type": "buyer"}),
        StatusCode::ACCEPTED,
    )
    .await;
}

async fn sign_up_accepts_a_long_passphrase(app: TestApp) {
    let (status, headers, body) = post_form(
        &app,
        "/signup",
        &[
            ("account_type", "seller"),
            ("display_name", "Pia Phrase"),
            ("email", "pia@example.test"),
            ("password", PASSPHRASE),
        ],
    )
    .await;
    // Accepted: "check your inbox", and no session — the same page an address that already
    // had an account gets (see email.rs), so the page cannot tell who has an account.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("Check your inbox") && body.contains("pia@example.test"),
        "{body}"
    );
    assert!(
        !headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.starts_with("__Host-clipcart_session=")),
        "no session from the sign-up form"
    );
    // The password works exactly as typed, and only so: no case folding.
    assert_eq!(
        token_status(&app, "pia@example.test", PASSPHRASE).await,
        StatusCode::CREATED
    );
    assert_eq!(
        token_status(&app, "pia@example.test", &PASSPHRASE.to_uppercase()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // All lower-case letters and spaces: no composition rules.
    app.post_ok(
        "/api/v1/auth/signup",
        None,
        json!({"email": "pia2@example.test", "password": "thisisalongpassphrase", "display_name": "Pia Two", "account_type": "buyer"}),
        StatusCode::ACCEPTED,
    )
    .await;
}

async fn passwords_of_64_and_more_characters_are_accepted_whole(app: TestApp) {
    let words = "otter lantern quay marmalade vivid fern harbour ";
    for (i, n) in [64usize, 100, 256].into_iter().enumerate() {
        let password: String = words.chars().cycle().skip(i).take(n).collect();
        let email = format!("long{n}@example.test");
        app.post_ok(
            "/api/v1/auth/signup",
            None,
            json!({"email": email, "password": password, "display_name": "Lou Long", "account_type": "buyer"}),
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(
            token_status(&app, &email, &password).await,
            StatusCode::CREATED,
            "{n} characters"
        );
        // No truncation: the first 63 characters (or bcrypt's 72 bytes) are not the password.
        let head: String = password.chars().take(63.min(n - 1)).collect();
        assert_eq!(
            token_status(&app, &email, &head).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        if n > 72 {
            assert_eq!(
                token_status(&app, &email, &password[..72]).await,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }
    // Characters are counted, not bytes: 15 three-byte characters are enough.
    app.post_ok(
        "/api/v1/auth/signup",
        None,
        json!({"email": "kana@example.test", "password": "日本語のパスワードはとても長いです", "display_name": "Kana", "account_type": "buyer"}),
        StatusCode::ACCEPTED,
    )
    .await;
    // 14 characters are too few; 257 too many.
    let (status, body) = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "short@example.test", "password": "otter lantern!", "display_name": "Sho", "account_type": "buyer"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_errors(&body),
        [(
            "password".to_string(),
            "use at least 15 characters; a few unrelated words work well".to_string()
        )]
    );
    let too_long: String = words.chars().cycle().take(257).collect();
    let (status, body) = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "toolong@example.test", "password": too_long, "display_name": "Tom", "account_type": "buyer"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_errors(&body),
        [(
            "password".to_string(),
            "use at most 256 characters".to_string()
        )]
    );
}

async fn the_password_check_endpoint_answers(app: TestApp) {
    let weak = app
        .post_ok(
            "/api/v1/auth/password-check",
            None,
            json!({"password": "password"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(weak["accepted"], false);
    assert_eq!(weak["score"], 0);
    assert_eq!(
        weak["refusals"],
        json!([
            "use at least 15 characters; a few unrelated words work well",
            "this password is on a list of common and breached passwords; choose another"
        ])
    );
    assert!(
        !weak["warnings"].as_array().expect("warnings").is_empty(),
        "zxcvbn warns about a top password: {weak}"
    );

    let strong = app
        .post_ok(
            "/api/v1/auth/password-check",
            None,
            json!({"password": PASSPHRASE, "email": "pia@example.test", "display_name": "Pia Phrase"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        strong,
        json!({"accepted": true, "score": 4, "warnings": [], "suggestions": [], "refusals": []})
    );

    // Context words come from the optional email and name; the first refusal is exactly what
    // sign-up answers for the same password.
    let password = "Ann.Lee-ann.lee-2026";
    let mine = app
        .post_ok(
            "/api/v1/auth/password-check",
            None,
            json!({"password": password, "email": "ann.lee@example.test", "display_name": "Ann Lee"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(mine["accepted"], false);
    let (_, signup) = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "ann.lee@example.test", "password": password, "display_name": "Ann Lee", "account_type": "buyer"}),
        )
        .await;
    assert_eq!(
        mine["refusals"][0], signup["errors"][0]["message"],
        "{signup}"
    );
    assert_eq!(
        mine["refusals"][0],
        "the password is too close to your email, your name or the site name"
    );
    // Without that context the same password is fine.
    let theirs = app
        .post_ok(
            "/api/v1/auth/password-check",
            None,
            json!({"password": password}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(theirs["accepted"], true, "{theirs}");
    assert!(
        !mine.to_string().contains(password) && !theirs.to_string().contains(password),
        "the password is never echoed"
    );

    // Unknown fields and missing passwords are problems, not guesses.
    let (status, _) = app
        .post(
            "/api/v1/auth/password-check",
            None,
            json!({"password": PASSPHRASE, "shop": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .post(
            "/api/v1/auth/password-check",
            None,
            json!({"email": "a@b.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // It is part of the documented API.
    let doc = app.get_ok("/api/openapi.json", None).await;
    let op = &doc["paths"]["/auth/password-check"]["post"];
    assert!(op.is_object(), "missing from the OpenAPI document");
    assert_eq!(op["tags"][0], "identity");
}

async fn the_strength_fragment_renders(app: TestApp) {
    // The sign-up page asks for the fragment as the person types.
    let page = app
        .http
        .get(app.url("/signup"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(r#"hx-post="/signup/password-strength""#)
            && page.contains(r#"hx-trigger="input changed delay:300ms""#)
            && page.contains(r##"hx-target="#password-strength""##)
            && page.contains(r#"<div id="password-strength""#),
        "{page}"
    );

    let weak = "Sunshine2024!";
    let (status, headers, html) = post_form(
        &app,
        "/signup/password-strength",
        &[
            ("account_type", "buyer"),
            ("display_name", ""),
            ("email", ""),
            ("password", weak),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    assert!(!html.contains("<html"), "a fragment, not a page: {html}");
    assert!(html.contains(r#"<meter id="password-meter""#), "{html}");
    assert!(
        ["0", "1", "2"]
            .iter()
            .any(|n| html.contains(&format!(r#"data-score="{n}""#))),
        "a weak score: {html}"
    );
    assert!(html.contains("use at least 15 characters"), "{html}");
    assert!(
        html.contains("this is a common password with digits or symbols added"),
        "{html}"
    );
    assert!(!html.contains("meets the rules"));
    assert!(!html.contains(weak), "the password is not echoed");

    let (status, _, html) = post_form(
        &app,
        "/signup/password-strength",
        &[
            ("display_name", "Pia Phrase"),
            ("email", "pia@example.test"),
            ("password", PASSPHRASE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"value="4""#) && html.contains("very strong"),
        "{html}"
    );
    assert!(html.contains("meets the rules"), "{html}");
    assert!(!html.contains("field-error"), "{html}");

    // An empty field shows nothing.
    let (status, _, html) = post_form(&app, "/signup/password-strength", &[("password", "")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.trim(), "");

    // The CSRF token is required, like every other form post.
    let res = app
        .http
        .post(app.url("/signup/password-strength"))
        .header("cookie", format!("__Host-clipcart_csrf={CSRF}"))
        .form(&[
            ("csrf", "wrong-token-wrong-token-wrong-tok"),
            ("password", weak),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .http
        .post(app.url("/signup/password-strength"))
        .header("origin", "https://evil.example")
        .header("cookie", format!("__Host-clipcart_csrf={CSRF}"))
        .form(&[("csrf", CSRF), ("password", weak)])
        .send()
        .await
        .expect("post");
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "cross-site posts are refused"
    );
}

/// The meter really updates as someone types: htmx posts the form (CSRF token included) and
/// swaps the fragment in. SQLite only: the page does not touch the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_meter_updates_while_typing() {
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(why) if in_ci() => panic!("CI=true but the browser test cannot run: {why}"),
        Err(why) => {
            eprintln!("skipping browser test: {why}");
            return;
        }
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let b = Browser::launch(&tools, &app.base).await;
    b.goto("/signup").await;
    b.fill("#display_name", "Mia Meter").await;
    b.fill("#email", "mia@example.test").await;
    b.fill("#password", "Sunshine2024!").await;
    b.wait_for_text(
        "#password-strength",
        "this is a common password with digits or symbols added",
    )
    .await;
    b.wait_for("#password-meter").await;
    b.fill("#password", PASSPHRASE).await;
    let text = b
        .wait_for_text("#password-strength", "meets the rules")
        .await;
    assert!(text.contains("very strong"), "{text}");
    // Submitting still runs the full check and signs the person up; the address is verified
    // next (browser.rs walks that).
    b.click("#signup-submit").await;
    b.wait_for_text("h1", "Check your inbox").await;
    b.quit().await;
}
