//! Changing the password with step-up: the current password through the throttled sign-in
//! check, a code when two-factor authentication is on (unless within the step-up window), the
//! 15/8 length rule, and every other session and API token ended afterwards.

use crate::on_both_databases;
use crate::second_factor::code_at;
use crate::support::{Actor, PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    a_wrong_current_password_is_refused_and_counted,
    the_new_password_replaces_the_old_and_ends_other_sign_ins,
    the_page_form_keeps_this_session_and_shows_errors,
    with_two_factor_a_code_is_required_and_eight_characters_suffice
);

const NEW_PASSWORD: &str = "velvet lantern orbit meadow";
/// Eight characters: enough only with a second factor.
const SHORT_PASSWORD: &str = "Qv7#mZ2k";
const CSRF: &str = "abcdefghijklmnopqrstuvwxyz234567";

async fn change(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/api/v1/me/password", Some(token), body).await
}

async fn new_token(app: &TestApp, actor: &Actor, password: &str, otp: Option<&str>) -> StatusCode {
    let mut body = json!({"email": actor.email, "password": password});
    if let Some(otp) = otp {
        body["otp"] = json!(otp);
    }
    app.post("/api/v1/auth/tokens", None, body).await.0
}

fn field_errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn page_status(app: &TestApp, cookie: &str) -> StatusCode {
    no_redirects()
        .get(app.url("/account/security"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page")
        .status()
}

async fn page_change(app: &TestApp, cookie: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("csrf", CSRF)];
    form.extend_from_slice(fields);
    no_redirects()
        .post(app.url("/account/security/password"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .expect("form post")
}

async fn wrong_password_count(app: &TestApp, token: &str) -> usize {
    let history = app.get_ok("/api/v1/me/sign-ins", Some(token)).await;
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "wrong_password")
        .count()
}

async fn a_wrong_current_password_is_refused_and_counted(app: TestApp) {
    let ann = app.buyer().await;
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": "not the password at all", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_errors(&body), vec!["current_password"], "{body}");
    assert_eq!(wrong_password_count(&app, &ann.token).await, 1);
    // The old password still works; the new one does not.
    app.clock.advance_ms(10 * 60 * 1000);
    assert_eq!(
        new_token(&app, &ann, PASSWORD, None).await,
        StatusCode::CREATED
    );
    assert_eq!(
        new_token(&app, &ann, NEW_PASSWORD, None).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Without a second factor, eight characters are too few: refused before anything is
    // checked or counted.
    app.clock.advance_ms(10 * 60 * 1000);
    let before = wrong_password_count(&app, &ann.token).await;
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": PASSWORD, "new_password": SHORT_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_errors(&body), vec!["new_password"], "{body}");
    assert_eq!(wrong_password_count(&app, &ann.token).await, before);
    // Words of the email or name are refused too.
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": PASSWORD, "new_password": "bea buyer bea buyer bea buyer"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(field_errors(&body), vec!["new_password"], "{body}");
}

async fn the_new_password_replaces_the_old_and_ends_other_sign_ins(app: TestApp) {
    let ann = app.buyer().await;
    let other_token = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let browser = app.page_cookies(&ann).await;
    assert_eq!(page_status(&app, &browser).await, StatusCode::OK);
    let bob = app.buyer().await;
    let bobs_browser = app.page_cookies(&bob).await;

    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ended_sessions"], 1, "{body}");
    assert_eq!(body["revoked_tokens"], 1, "{body}");
    // The old password fails, the new one works.
    assert_eq!(
        new_token(&app, &ann, PASSWORD, None).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        new_token(&app, &ann, NEW_PASSWORD, None).await,
        StatusCode::CREATED
    );
    // The token that made the change keeps working; the other one and the browser do not.
    app.get_ok("/api/v1/me", Some(&ann.token)).await;
    assert_eq!(
        app.get("/api/v1/me", Some(&other_token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(page_status(&app, &browser).await, StatusCode::SEE_OTHER);
    // Nobody else is touched.
    app.get_ok("/api/v1/me", Some(&bob.token)).await;
    assert_eq!(page_status(&app, &bobs_browser).await, StatusCode::OK);
}

async fn the_page_form_keeps_this_session_and_shows_errors(app: TestApp) {
    let ann = app.buyer().await;
    let here = app.page_cookies(&ann).await;
    let elsewhere = app.page_cookies(&ann).await;
    let page = no_redirects()
        .get(app.url("/account/security"))
        .header("cookie", &here)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("id=\"change-password\""), "{page}");
    // A wrong current password: shown beside its field, counted, nothing typed back.
    let res = page_change(
        &app,
        &here,
        &[
            ("current_password", "not the password at all"),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = res.text().await.expect("text");
    assert!(text.contains("id=\"current_password-error\""), "{text}");
    assert!(!text.contains("not the password at all"));
    assert!(!text.contains(NEW_PASSWORD));
    assert_eq!(wrong_password_count(&app, &ann.token).await, 1);
    app.clock.advance_ms(10 * 60 * 1000);
    // A refused new password: beside the new password field.
    let res = page_change(
        &app,
        &here,
        &[
            ("current_password", PASSWORD),
            ("new_password", SHORT_PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = res.text().await.expect("text");
    assert!(text.contains("id=\"new_password-error\""), "{text}");
    // Success: this session stays, the other one and every API token end.
    let res = page_change(
        &app,
        &here,
        &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("text");
    assert!(text.contains("id=\"password-changed\""), "{text}");
    assert_eq!(page_status(&app, &here).await, StatusCode::OK);
    assert_eq!(page_status(&app, &elsewhere).await, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/api/v1/me", Some(&ann.token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        new_token(&app, &ann, NEW_PASSWORD, None).await,
        StatusCode::CREATED
    );
}

async fn with_two_factor_a_code_is_required_and_eight_characters_suffice(app: TestApp) {
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
    let codes = app
        .post_ok(
            "/api/v1/me/totp/confirm",
            Some(&ann.token),
            json!({"code": code_at(&secret, app.now_ms())}),
            StatusCode::OK,
        )
        .await;
    let recovery = codes["recovery_codes"][0]
        .as_str()
        .expect("code")
        .to_string();
    // Outside the step-up window the token's sign-in opened.
    app.clock
        .advance_ms(clipcart_server::identity::step_up::STEP_UP_WINDOW_MS);
    // Without a code: 401 second-factor-required, nothing changed, nothing counted.
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": PASSWORD, "new_password": SHORT_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["type"], "/docs/problems#second-factor-required");
    assert_eq!(wrong_password_count(&app, &ann.token).await, 0);
    // A wrong code: refused and counted.
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": PASSWORD, "new_password": SHORT_PASSWORD, "otp": "000000"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(wrong_password_count(&app, &ann.token).await, 1);
    app.clock.advance_ms(10 * 60 * 1000);
    // With a current code, eight characters are enough.
    let code = code_at(&secret, app.now_ms());
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": PASSWORD, "new_password": SHORT_PASSWORD, "otp": code}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        new_token(&app, &ann, PASSWORD, Some(&recovery)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the old password no longer works"
    );
    app.clock.advance_ms(10 * 60 * 1000);
    // A recovery code also works for step-up.
    let recovery2 = codes["recovery_codes"][1].as_str().expect("code");
    let (status, body) = change(
        &app,
        &ann.token,
        json!({"current_password": SHORT_PASSWORD, "new_password": NEW_PASSWORD, "otp": recovery2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.clock.advance_ms(30_000);
    let fresh = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": NEW_PASSWORD, "otp": code_at(&secret, app.now_ms())}),
            StatusCode::CREATED,
        )
        .await;
    let fresh = fresh["token"].as_str().expect("token");
    // Within the step-up window of a sign-in with the code, the code is not asked again.
    let (status, body) = change(
        &app,
        fresh,
        json!({"current_password": NEW_PASSWORD, "new_password": SHORT_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
