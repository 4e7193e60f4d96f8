//! Accounts, API tokens, sessions and the CSRF protection of the pages.

use crate::on_both_databases;
use crate::support::{PASSWORD, TestApp};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    sign_up_and_tokens,
    sign_in_failures_look_the_same,
    page_sessions_rotate_and_end_on_the_server,
    forms_need_a_csrf_token
);

async fn sign_up_and_tokens(app: TestApp) {
    let (s, body) = app.post("/api/v1/auth/signup", None, json!({"email": "not-an-email", "password": "short", "display_name": "", "account_type": "buyer"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["email", "display_name", "password"], "{body}");
    let (s, _) = app.post("/api/v1/auth/signup", None, json!({"email": "a@b.test", "password": PASSWORD, "display_name": "A", "account_type": "admin"})).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nobody signs up as an admin"
    );
    // Passwords are not truncated or case-folded and allow 64+ characters.
    let long = "a very long passphrase that keeps going well past sixty-four characters in all";
    let created = app
        .post_ok("/api/v1/auth/signup", None, json!({"email": "Long@Example.test", "password": long, "display_name": "Lon", "account_type": "buyer"}), StatusCode::ACCEPTED)
        .await;
    assert_eq!(created["email"], "long@example.test");
    assert_eq!(created["status"], "verification_sent");
    let (s, _) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": "long@example.test", "password": long.to_uppercase()}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": "long@example.test", "password": &long[..64]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no truncation");
    let t = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": "long@example.test", "password": long}),
            StatusCode::CREATED,
        )
        .await;
    let token = t["token"].as_str().expect("token");
    assert!(token.starts_with("cc_"));
    let me = app.get_ok("/api/v1/me", Some(token)).await;
    assert_eq!(me["role"], "buyer");
    let (s, _) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/auth/tokens/current",
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get("/api/v1/me", Some(token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked token is dead");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(&app.state.db.read)
        .await
        .expect("count");
    assert_eq!(stored, 0);
    // Tokens expire.
    let t = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": "long@example.test", "password": long}),
            StatusCode::CREATED,
        )
        .await;
    app.clock
        .advance_ms(clipcart_server::identity::service::TOKEN_LIFETIME_MS);
    let (s, _) = app.get("/api/v1/me", t["token"].as_str()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Duplicate email: the same answer as a new one (no enumeration), and no second account.
    let (s, body) = app.post("/api/v1/auth/signup", None, json!({"email": "long@example.test", "password": PASSWORD, "display_name": "B", "account_type": "seller"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(body, created);
    let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind("long@example.test")
        .fetch_one(&app.state.db.read)
        .await
        .expect("count");
    assert_eq!(accounts, 1);
}

async fn sign_in_failures_look_the_same(app: TestApp) {
    let buyer = app.buyer().await;
    let (s1, wrong_password) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": buyer.email, "password": "wrong password, long enough"}),
        )
        .await;
    let (s2, unknown_email) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": "nobody@example.test", "password": "wrong password, long enough"}),
        )
        .await;
    assert_eq!(s1, s2);
    assert_eq!(wrong_password, unknown_email, "no user enumeration");
    // Stored as an argon2id PHC string with at least the NIST/OWASP parameters.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
        .bind(&buyer.email)
        .fetch_one(&app.state.db.read)
        .await
        .expect("hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

/// Extracts `name=value` of a Set-Cookie header, with its attributes.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn value(cookie: &str) -> String {
    cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

async fn page_sessions_rotate_and_end_on_the_server(app: TestApp) {
    let buyer = app.buyer().await;
    let form = app.http.get(app.url("/signin")).send().await.expect("get");
    let csrf_cookie = set_cookie(&form, "__Host-clipcart_csrf").expect("csrf cookie");
    assert!(
        csrf_cookie.contains("Secure")
            && csrf_cookie.contains("HttpOnly")
            && csrf_cookie.contains("SameSite=Lax"),
        "{csrf_cookie}"
    );
    let csrf = value(&csrf_cookie);
    let sign_in = |old_session: Option<String>| {
        let mut cookies = format!("__Host-clipcart_csrf={csrf}");
        if let Some(s) = old_session {
            cookies.push_str(&format!("; __Host-clipcart_session={s}"));
        }
        app.http
            .post(app.url("/signin"))
            .header("cookie", cookies)
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", buyer.email.as_str()),
                ("password", PASSWORD),
                ("next", ""),
            ])
            .send()
    };
    let res = sign_in(None).await.expect("sign in");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session_cookie = set_cookie(&res, "__Host-clipcart_session").expect("session cookie");
    assert!(
        session_cookie.contains("Secure")
            && session_cookie.contains("HttpOnly")
            && session_cookie.contains("Path=/"),
        "{session_cookie}"
    );
    let first = value(&session_cookie);
    assert!(first.len() >= 26, "at least 128 bits");
    // Signing in again rotates the id, and the old one stops working.
    let res = sign_in(Some(first.clone())).await.expect("sign in again");
    let second = value(&set_cookie(&res, "__Host-clipcart_session").expect("cookie"));
    assert_ne!(first, second);
    let page = |session: String| {
        app.http
            .get(app.url("/orders"))
            .header("cookie", format!("__Host-clipcart_session={session}"))
            .send()
    };
    assert_eq!(
        page(first.clone()).await.expect("get").status(),
        StatusCode::SEE_OTHER,
        "old session ended"
    );
    let ok = page(second.clone()).await.expect("get");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    // Idle timeout.
    app.clock
        .advance_ms(clipcart_server::identity::service::SESSION_IDLE_MS + 1);
    assert_eq!(
        page(second.clone()).await.expect("get").status(),
        StatusCode::SEE_OTHER,
        "idle session ended"
    );
    // Sign-out ends the session on the server, not just in the browser.
    let res = sign_in(None).await.expect("sign in");
    let third = value(&set_cookie(&res, "__Host-clipcart_session").expect("cookie"));
    let out = app
        .http
        .post(app.url("/signout"))
        .header(
            "cookie",
            format!("__Host-clipcart_csrf={csrf}; __Host-clipcart_session={third}"),
        )
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sign out");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page(third).await.expect("get").status(),
        StatusCode::SEE_OTHER
    );
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&app.state.db.read)
        .await
        .expect("count");
    assert_eq!(sessions, 0, "{sessions} sessions left on the server");
}

async fn forms_need_a_csrf_token(app: TestApp) {
    let buyer = app.buyer().await;
    let form = [
        ("csrf", "forged"),
        ("email", buyer.email.as_str()),
        ("password", PASSWORD),
    ];
    let res = app
        .http
        .post(app.url("/signin"))
        .header(
            "cookie",
            "__Host-clipcart_csrf=abcdefghijklmnopqrstuvwxyz234567",
        )
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "token does not match the cookie"
    );
    let res = app
        .http
        .post(app.url("/signin"))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no cookie at all");
    let csrf = "abcdefghijklmnopqrstuvwxyz234567";
    let good = [
        ("csrf", csrf),
        ("email", buyer.email.as_str()),
        ("password", PASSWORD),
    ];
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={csrf}"))
        .header("origin", "https://evil.example")
        .form(&good)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "another site's origin");
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={csrf}"))
        .header("sec-fetch-site", "cross-site")
        .form(&good)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a cross-site fetch");
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={csrf}"))
        .header("origin", app.base.clone())
        .form(&good)
        .send()
        .await
        .expect("post");
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "our own origin with the token works"
    );
    // Open redirects are refused after sign-in.
    let evil = [
        ("csrf", csrf),
        ("email", buyer.email.as_str()),
        ("password", PASSWORD),
        ("next", "//evil.example/"),
    ];
    let res = app
        .http
        .post(app.url("/signin"))
        .header("cookie", format!("__Host-clipcart_csrf={csrf}"))
        .form(&evil)
        .send()
        .await
        .expect("post");
    assert_eq!(res.headers()["location"], "/");
}
