//! Cross-cutting behaviour: health, headers, problem JSON, limits, the OpenAPI document, pages.

use crate::on_both_databases;
use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    health_and_headers,
    problems_and_limits,
    openapi_describes_every_route,
    pages_render
);

async fn health_and_headers(app: TestApp) {
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/products",
        "/",
        "/signin",
        "/api/v1/nope",
        "/nope",
    ] {
        let res = app.http.get(app.url(path)).send().await.expect("get");
        let h = res.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .expect("hsts")
                .contains("max-age="),
            "{path}"
        );
        assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert!(h["x-request-id"].to_str().expect("id").starts_with("req_"));
    }
    let assets = app
        .http
        .get(app.url(clipcart_server::platform::assets::css()))
        .send()
        .await
        .expect("get");
    assert!(
        assets.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("immutable")
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("get")
            .status(),
        StatusCode::OK
    );
}

async fn problems_and_limits(app: TestApp) {
    let res = app
        .http
        .get(app.url("/api/v1/does-not-exist"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "/docs/problems#not-found");
    // Malformed JSON, wrong content type, oversize bodies: each a clear problem.
    let res = app
        .http
        .post(app.url("/api/v1/auth/tokens"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.expect("json")["type"],
        "/docs/problems#malformed-request"
    );
    let res = app
        .http
        .post(app.url("/api/v1/auth/tokens"))
        .body("email=x")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"email": "x".repeat(2 * 1024 * 1024), "password": "y"});
    // The server answers 413 without reading the rest of the body and closes the connection, so
    // a client still writing may see the reset before the answer (more likely on a loaded
    // machine). Each attempt uses a fresh client; one of three must read the 413 problem.
    let mut answered = None;
    for _ in 0..3 {
        match reqwest::Client::new()
            .post(app.url("/api/v1/auth/tokens"))
            .json(&huge)
            .send()
            .await
        {
            Ok(res) => {
                answered = Some((res.status(), res.json::<Value>().await.expect("json")));
                break;
            }
            Err(e) => eprintln!("oversize request: transport error, retrying: {e}"),
        }
    }
    let (status, body) = answered.expect("one of three oversize requests read its answer");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["type"], "/docs/problems#payload-too-large");
    let buyer = app.buyer().await;
    let res = app
        .http
        .post(app.url("/api/v1/cart/items"))
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"variant_id": "var_x", "quantity": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        res.json::<Value>().await.expect("json")["errors"][0]["field"],
        "Idempotency-Key"
    );
    // Deeply nested JSON is refused by the parser's depth limit, not by a crash.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let res = app
        .http
        .post(app.url("/api/v1/auth/tokens"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .expect("post");
    assert!(res.status().is_client_error());
}

async fn openapi_describes_every_route(app: TestApp) {
    let doc = app.get_ok("/api/openapi.json", None).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/auth/signup", "post"),
        ("/auth/tokens", "post"),
        ("/seller/application", "post"),
        ("/admin/shops/{shop_id}/approve", "post"),
        ("/seller/products", "post"),
        ("/seller/products/{product_id}/publish", "post"),
        ("/products", "get"),
        ("/cart/items", "post"),
        ("/checkout", "post"),
        ("/seller/orders", "get"),
        ("/seller/orders/{order_id}/ship", "post"),
        ("/orders/{order_id}/confirm-receipt", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let docs = app
        .http
        .get(app.url("/docs/api"))
        .send()
        .await
        .expect("get");
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("/api/v1/checkout") && html.contains("Idempotency-Key"));
}

async fn pages_render(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Page Shop").await;
    let product = app
        .live_product(&seller, "Teapot <b>bold</b>", &[(&[], 4200, 2)])
        .await;
    let pid = product["id"].as_str().expect("id");
    let home = app
        .http
        .get(app.url("/"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(
        home.contains("Teapot &#60;b&#62;bold&#60;/b&#62;")
            || home.contains("Teapot &lt;b&gt;bold&lt;/b&gt;"),
        "titles are escaped"
    );
    assert!(!home.contains("<b>bold</b>"));
    let page = app
        .http
        .get(app.url(&format!("/products/{pid}")))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("42.00 EUR"));
    let missing = app
        .http
        .get(app.url("/products/prd_aaaaaaaaaaaaaaaaaaaaaaaaaa"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.expect("html").contains("Not found"));
    let private = app
        .http
        .get(app.url("/seller/orders"))
        .send()
        .await
        .expect("get");
    assert_eq!(private.status(), StatusCode::SEE_OTHER);
    assert_eq!(private.headers()["location"], "/signin?next=/seller/orders");
    for path in [
        "/signup",
        "/signin",
        "/testpay/pay?return_to=/checkout/review",
        "/docs/problems",
    ] {
        assert_eq!(
            app.http
                .get(app.url(path))
                .send()
                .await
                .expect("get")
                .status(),
            StatusCode::OK,
            "{path}"
        );
    }
}
