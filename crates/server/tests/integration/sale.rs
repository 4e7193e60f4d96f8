//! The first end-to-end sale through the API, and the refusals around it.

use crate::on_both_databases;
use crate::support::{TestApp, application, checkout_body, variant_id};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    a_complete_sale,
    sellers_only_see_their_own_shop,
    buyers_cannot_reach_seller_or_admin_operations,
    an_unapproved_shop_cannot_sell,
    a_rejected_application_carries_the_reason,
    declined_cards_order_nothing,
    idempotent_checkout_charges_once,
    seller_order_list_pages_without_gaps,
    out_of_order_steps_are_refused,
    card_numbers_are_never_stored,
    a_cart_is_bought_once,
);

async fn a_complete_sale(app: TestApp) {
    let admin = app.admin().await;
    // 1. A seller signs up and applies; the admin approves.
    let seller = app.applied_seller("Kite & Loom").await;
    let shop_id = seller.shop_id.clone().expect("shop");
    let queue = app
        .get_ok("/api/v1/admin/shops?status=submitted", Some(&admin.token))
        .await;
    assert!(
        queue["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|s| s["id"] == shop_id.as_str())
    );
    assert_eq!(
        queue["items"][0]["tax_id"], "DE123456789",
        "admins see the full tax id"
    );
    let mine = app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await;
    assert_eq!(mine["status"], "submitted");
    assert_eq!(mine["tax_id"], "••••6789", "the seller sees it masked");
    app.post_ok(
        &format!("/api/v1/admin/shops/{shop_id}/approve"),
        Some(&admin.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await["status"],
        "active"
    );

    // 2. The seller creates a product with variants and publishes it.
    let product = app
        .post_ok(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({
                "title": "Linen overshirt", "description": "Washed linen.", "options": ["Colour", "Size"],
                "variants": [
                    {"option_values": ["Sand", "M"], "price": 6900, "stock": 3, "sku": "LO-S-M"},
                    {"option_values": ["Ink", "L"], "price": 7400, "stock": 5, "sku": "LO-I-L"}
                ]
            }),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(product["status"], "draft");
    let product_id = product["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .get(&format!("/api/v1/products/{product_id}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "drafts are invisible to buyers"
    );
    app.post_ok(
        &format!("/api/v1/seller/products/{product_id}/publish"),
        Some(&seller.token),
        json!({}),
        StatusCode::OK,
    )
    .await;

    // 3. A buyer browses, adds to the cart and checks out with a test card.
    let buyer = app.buyer().await;
    let listing = app.get_ok("/api/v1/products?q=linen", None).await;
    assert_eq!(listing["items"][0]["id"], product_id.as_str());
    assert_eq!(listing["items"][0]["from_price"], 6900);
    let page = app
        .get_ok(&format!("/api/v1/products/{product_id}"), None)
        .await;
    let sand = variant_id(&page, 0);
    let ink = variant_id(&page, 1);
    app.add_to_cart(&buyer, &sand, 2).await;
    app.add_to_cart(&buyer, &ink, 1).await;
    let cart = app.get_ok("/api/v1/cart", Some(&buyer.token)).await;
    assert_eq!(cart["total"], 2 * 6900 + 7400);
    let token = app.card_token("4242 4242 4242 4242").await;
    let (status, placed) = app.checkout(&buyer, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["total"], 21200);
    let orders = placed["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 1, "one shop, one order");
    let order_id = orders[0]["id"].as_str().expect("order id").to_string();
    assert!(order_id.starts_with("ord_"));
    assert_eq!(orders[0]["status"], "AWAITING_SHIPMENT");
    assert_eq!(
        app.get_ok("/api/v1/cart", Some(&buyer.token)).await["lines"],
        json!([]),
        "the cart is emptied"
    );

    // 4. Stock went down; the seller sees and ships the order; the buyer confirms receipt.
    assert_eq!(app.stock_of(&seller, &product_id, &sand).await, 1);
    assert_eq!(app.stock_of(&seller, &product_id, &ink).await, 4);
    let list = app
        .get_ok(
            "/api/v1/seller/orders?limit=10&status=AWAITING_SHIPMENT",
            Some(&seller.token),
        )
        .await;
    assert_eq!(list["items"][0]["id"], order_id.as_str());
    let detail = app
        .get_ok(
            &format!("/api/v1/seller/orders/{order_id}"),
            Some(&seller.token),
        )
        .await;
    assert_eq!(detail["lines"].as_array().expect("lines").len(), 2);
    assert_eq!(detail["shipping_address"]["city"], "Hamburg");
    let (status, bad) = app
        .post(
            &format!("/api/v1/seller/orders/{order_id}/ship"),
            Some(&seller.token),
            json!({"carrier": "", "tracking_number": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["errors"].as_array().expect("errors").len(), 2, "{bad}");
    app.clock.advance_ms(3_600_000);
    let shipped = app
        .post_ok(
            &format!("/api/v1/seller/orders/{order_id}/ship"),
            Some(&seller.token),
            json!({"carrier": "DHL", "tracking_number": "JJD0001234"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(shipped["status"], "IN_TRANSIT");
    assert_eq!(shipped["tracking_number"], "JJD0001234");
    assert_eq!(
        shipped["shipped_at"], "2026-11-25T01:00:00Z",
        "times come from the injected clock"
    );
    let done = app
        .post_ok(
            &format!("/api/v1/orders/{order_id}/confirm-receipt"),
            Some(&buyer.token),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(done["status"], "COMPLETED");

    // The money moved through the ledger: the shop's funds are available, every transaction balances.
    let db = &app.state.db;
    let available = clipcart_server::finance::ledger::balance(
        &db.read,
        &format!("shop:{shop_id}:available"),
        "EUR",
    )
    .await
    .expect("balance");
    let pending = clipcart_server::finance::ledger::balance(
        &db.read,
        &format!("shop:{shop_id}:pending"),
        "EUR",
    )
    .await
    .expect("balance");
    assert_eq!(
        (available, pending),
        (-21200, 0),
        "credit balances are negative"
    );
    assert!(
        clipcart_server::finance::ledger::unbalanced(&db.read)
            .await
            .expect("check")
            .is_empty()
    );
}

async fn sellers_only_see_their_own_shop(app: TestApp) {
    let admin = app.admin().await;
    let a = app.active_seller(&admin, "Shop A").await;
    let b = app.active_seller(&admin, "Shop B").await;
    let product = app.live_product(&a, "Mug", &[(&[], 1200, 5)]).await;
    let pid = product["id"].as_str().expect("id");
    let buyer = app.buyer().await;
    let placed = app.buy(&buyer, &variant_id(&product, 0), 1).await;
    let oid = placed["orders"][0]["id"].as_str().expect("order");

    let (foreign, foreign_body) = app
        .get(&format!("/api/v1/seller/products/{pid}"), Some(&b.token))
        .await;
    let (missing, missing_body) = app
        .get(
            "/api/v1/seller/products/prd_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            Some(&b.token),
        )
        .await;
    assert_eq!(
        (foreign, missing),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(
        foreign_body, missing_body,
        "another shop's product looks exactly like a missing one"
    );
    for path in [format!("/api/v1/seller/orders/{oid}")] {
        let (s, _) = app.get(&path, Some(&b.token)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _) = app
        .post(
            &format!("/api/v1/seller/orders/{oid}/ship"),
            Some(&b.token),
            json!({"carrier": "DHL", "tracking_number": "ABCD1234"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .post(
            &format!("/api/v1/seller/products/{pid}/publish"),
            Some(&b.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .request(
            reqwest::Method::PUT,
            &format!(
                "/api/v1/seller/products/{pid}/variants/{}/stock",
                variant_id(&product, 0)
            ),
            Some(&b.token),
            Some(&json!({"stock": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_ok("/api/v1/seller/orders", Some(&b.token)).await["items"],
        json!([])
    );
    assert_eq!(
        app.get_ok("/api/v1/seller/products", Some(&b.token)).await["items"],
        json!([])
    );
    // Another buyer cannot see the order either.
    let other = app.buyer().await;
    let (s, _) = app
        .get(&format!("/api/v1/orders/{oid}"), Some(&other.token))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn buyers_cannot_reach_seller_or_admin_operations(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Shop").await;
    let buyer = app.buyer().await;
    for path in [
        "/api/v1/seller/orders",
        "/api/v1/seller/products",
        "/api/v1/seller/shop",
        "/api/v1/admin/shops",
    ] {
        let (s, body) = app.get(path, Some(&buyer.token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["type"], "/docs/problems#forbidden");
    }
    let (s, _) = app
        .post(
            "/api/v1/seller/products",
            Some(&buyer.token),
            json!({"title": "x", "variants": []}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .post(
            "/api/v1/seller/application",
            Some(&buyer.token),
            application("Nope"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Sellers cannot approve shops or buy; nobody anonymous reaches anything private.
    let (s, _) = app
        .post(
            &format!(
                "/api/v1/admin/shops/{}/approve",
                seller.shop_id.as_deref().expect("shop")
            ),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get("/api/v1/cart", Some(&seller.token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for path in [
        "/api/v1/cart",
        "/api/v1/orders",
        "/api/v1/seller/orders",
        "/api/v1/me",
    ] {
        let (s, body) = app.get(path, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["status"], 401);
    }
}

async fn an_unapproved_shop_cannot_sell(app: TestApp) {
    let seller = app.applied_seller("Pending Shop").await;
    let p = app
        .post_ok(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": "Vase", "variants": [{"price": 900, "stock": 3}]}),
            StatusCode::CREATED,
        )
        .await;
    let pid = p["id"].as_str().expect("id");
    let (s, body) = app
        .post(
            &format!("/api/v1/seller/products/{pid}/publish"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("not active")
    );
    assert_eq!(
        app.get_ok("/api/v1/products", None).await["items"],
        json!([])
    );
    // A buyer cannot put its variant in a cart.
    let buyer = app.buyer().await;
    let (s, _) = app
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"variant_id": variant_id(&p, 0), "quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn a_rejected_application_carries_the_reason(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.applied_seller("Sketchy").await;
    let shop = seller.shop_id.as_deref().expect("shop");
    let (s, body) = app
        .post(
            &format!("/api/v1/admin/shops/{shop}/reject"),
            Some(&admin.token),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "reason");
    app.post_ok(
        &format!("/api/v1/admin/shops/{shop}/reject"),
        Some(&admin.token),
        json!({"reason": "The tax id does not match the business name."}),
        StatusCode::OK,
    )
    .await;
    let mine = app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await;
    assert_eq!(mine["status"], "rejected");
    assert_eq!(
        mine["decision_reason"],
        "The tax id does not match the business name."
    );
    let (s, _) = app
        .post(
            &format!("/api/v1/admin/shops/{shop}/approve"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a decided application is not decided twice"
    );
    // A bad application reports every bad field at once.
    let other = app.sign_up("seller", "Other").await;
    let (s, body) = app
        .post("/api/v1/seller/application", Some(&other.token), json!({"business_name": "", "seller_type": "pirate", "address": {"line1": "", "city": "", "postal_code": "", "country": "Germany"}, "tax_id": "?", "currency": "XYZ"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"].as_array().expect("errors").len() >= 7,
        "{body}"
    );
}

async fn declined_cards_order_nothing(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Shop").await;
    let product = app.live_product(&seller, "Lamp", &[(&[], 5000, 2)]).await;
    let vid = variant_id(&product, 0);
    let buyer = app.buyer().await;
    app.add_to_cart(&buyer, &vid, 1).await;
    for (card, detail) in [
        ("4000000000000002", "declined"),
        ("4000000000009995", "insufficient funds"),
        ("4000000000000069", "expired"),
    ] {
        let token = app.card_token(card).await;
        let (s, body) = app.checkout(&buyer, &token).await;
        assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{body}");
        assert!(
            body["detail"].as_str().expect("detail").contains(detail),
            "{body}"
        );
    }
    assert_eq!(
        app.get_ok("/api/v1/orders", Some(&buyer.token)).await["items"],
        json!([])
    );
    assert_eq!(
        app.stock_of(&seller, product["id"].as_str().expect("id"), &vid)
            .await,
        2
    );
    // A token pays once.
    let token = app.card_token("4242424242424242").await;
    let (s, _) = app.checkout(&buyer, &token).await;
    assert_eq!(s, StatusCode::CREATED);
    app.add_to_cart(&buyer, &vid, 1).await;
    let (s, body) = app.checkout(&buyer, &token).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{body}");
    // Bad card input never echoes the number.
    let (s, body) = app.post("/testpay/v1/tokens", None, json!({"number": "4242424242424241", "exp_month": "13", "exp_year": "2020", "cvc": "1"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"].as_array().expect("errors").len(),
        3,
        "{body}"
    );
    assert!(!body.to_string().contains("4242424242424241"));
}

async fn idempotent_checkout_charges_once(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Shop").await;
    let product = app
        .live_product(&seller, "Kettle", &[(&[], 3000, 10)])
        .await;
    let buyer = app.buyer().await;
    app.add_to_cart(&buyer, &variant_id(&product, 0), 2).await;
    let token = app.card_token("4242424242424242").await;
    let send = |key: &'static str, body: serde_json::Value| {
        let req = app
            .http
            .post(app.url("/api/v1/checkout"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let res = req.send().await.expect("sent");
            let replayed = res.headers().get("idempotent-replayed").is_some();
            (
                res.status(),
                replayed,
                res.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };
    let (s1, r1, first) = send("checkout-1", checkout_body(&token)).await;
    let (s2, r2, second) = send("checkout-1", checkout_body(&token)).await;
    assert_eq!((s1, r1), (StatusCode::CREATED, false), "{first}");
    assert_eq!((s2, r2), (StatusCode::CREATED, true));
    assert_eq!(first, second, "the retry replays the stored response");
    let (s3, _, body) = send("checkout-1", checkout_body("tok_other")).await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["type"], "/docs/problems#idempotency-key-reused");
    let orders = app.get_ok("/api/v1/orders", Some(&buyer.token)).await;
    assert_eq!(
        orders["items"].as_array().expect("items").len(),
        1,
        "one order"
    );
    assert_eq!(
        app.stock_of(
            &seller,
            product["id"].as_str().expect("id"),
            &variant_id(&product, 0)
        )
        .await,
        8,
        "stock taken once"
    );
    let charges: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM testpay_authorizations WHERE status = 'captured'")
            .fetch_one(&app.state.db.read)
            .await
            .expect("count");
    assert_eq!(charges, 1, "one charge");
}

async fn seller_order_list_pages_without_gaps(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Busy Shop").await;
    let product = app
        .live_product(&seller, "Sticker", &[(&[], 100, 1000)])
        .await;
    let vid = variant_id(&product, 0);
    let buyer = app.buyer().await;
    let mut placed = Vec::new();
    for i in 0..23 {
        if i % 5 == 0 {
            app.clock.advance_ms(1000); // some orders share a timestamp, some don't
        }
        placed.push(
            app.buy(&buyer, &vid, 1).await["orders"][0]["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/seller/orders?limit=10&cursor={c}"),
            None => "/api/v1/seller/orders?limit=10".into(),
        };
        let page = app.get_ok(&path, Some(&seller.token)).await;
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|o| o["id"].as_str().expect("id").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = placed.clone();
    expected.reverse();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    seen_sorted.dedup();
    assert_eq!(seen_sorted.len(), 23, "no duplicates");
    let mut placed_sorted = placed;
    placed_sorted.sort();
    assert_eq!(seen_sorted, placed_sorted, "no gaps");
    let (s, body) = app
        .get(
            "/api/v1/seller/orders?cursor=not-a-cursor",
            Some(&seller.token),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "cursor");
    let (s, _) = app
        .get("/api/v1/seller/orders?limit=1000", Some(&seller.token))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn out_of_order_steps_are_refused(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Shop").await;
    let product = app.live_product(&seller, "Bowl", &[(&[], 1500, 4)]).await;
    let buyer = app.buyer().await;
    let placed = app.buy(&buyer, &variant_id(&product, 0), 1).await;
    let oid = placed["orders"][0]["id"].as_str().expect("id");
    let (s, _) = app
        .post(
            &format!("/api/v1/orders/{oid}/confirm-receipt"),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "cannot confirm before shipping");
    app.post_ok(
        &format!("/api/v1/seller/orders/{oid}/ship"),
        Some(&seller.token),
        json!({"carrier": "UPS", "tracking_number": "1Z999AA1"}),
        StatusCode::OK,
    )
    .await;
    let (s, _) = app
        .post(
            &format!("/api/v1/seller/orders/{oid}/ship"),
            Some(&seller.token),
            json!({"carrier": "UPS", "tracking_number": "1Z999AA2"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "cannot ship twice");
    app.post_ok(
        &format!("/api/v1/orders/{oid}/confirm-receipt"),
        Some(&buyer.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    let (s, _) = app
        .post(
            &format!("/api/v1/orders/{oid}/confirm-receipt"),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "cannot complete twice");
    // Unknown fields are refused: a buyer cannot set a price or a status.
    let (s, body) = app
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"variant_id": variant_id(&product, 0), "quantity": 1, "price": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("unknown field"),
        "{body}"
    );
    let (s, _) = app
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"variant_id": variant_id(&product, 0), "quantity": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"variant_id": variant_id(&product, 0), "quantity": 50}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "more than the stock");
}

async fn card_numbers_are_never_stored(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Shop").await;
    let product = app.live_product(&seller, "Clock", &[(&[], 2500, 3)]).await;
    let buyer = app.buyer().await;
    app.add_to_cart(&buyer, &variant_id(&product, 0), 1).await;
    let token = app.card_token("5555 5555 5555 4444").await;
    let (s, _) = app.checkout(&buyer, &token).await;
    assert_eq!(s, StatusCode::CREATED);
    let dump = crate::support_dump::database_text(&app).await;
    assert!(
        dump.contains("4444"),
        "the last four digits are kept: the dump is real"
    );
    for needle in ["5555555555554444", "5555 5555 5555 4444", "555555555555"] {
        assert!(!dump.contains(needle), "card number found in the database");
    }
}

async fn a_cart_is_bought_once(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Shop").await;
    let a = app.live_product(&seller, "Pen", &[(&[], 300, 50)]).await;
    let b = app.live_product(&seller, "Ink", &[(&[], 700, 50)]).await;
    let buyer = app.buyer().await;
    app.add_to_cart(&buyer, &variant_id(&a, 0), 2).await;
    app.add_to_cart(&buyer, &variant_id(&b, 0), 1).await;
    // Two tabs pay for the same cart at once, each with its own card token and no key.
    let t1 = app.card_token("4242424242424242").await;
    let t2 = app.card_token("4242424242424242").await;
    let (r1, r2) = tokio::join!(app.checkout(&buyer, &t1), app.checkout(&buyer, &t2));
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    // The loser sees "your cart changed" (it priced the cart before the winner committed) or
    // "the cart is empty" (it read the cart after).
    assert_eq!(statuses[0], StatusCode::CREATED, "{} / {}", r1.1, r2.1);
    assert!(
        matches!(
            statuses[1],
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
        ),
        "{} / {}",
        r1.1,
        r2.1
    );
    let captured: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM testpay_authorizations WHERE status = 'captured'")
            .fetch_one(&app.state.db.read)
            .await
            .expect("count");
    let hanging: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM testpay_authorizations WHERE status = 'authorized'",
    )
    .fetch_one(&app.state.db.read)
    .await
    .expect("count");
    assert_eq!(
        (captured, hanging),
        (1, 0),
        "one charge; the loser's authorisation is voided"
    );
    let status: String = sqlx::query_scalar("SELECT payment_status FROM checkouts")
        .fetch_one(&app.state.db.read)
        .await
        .expect("status");
    assert_eq!(status, "captured");
    // Concurrent adds to a cart line both count.
    let pen = variant_id(&a, 0);
    tokio::join!(
        app.add_to_cart(&buyer, &pen, 2),
        app.add_to_cart(&buyer, &pen, 3)
    );
    assert_eq!(
        app.get_ok("/api/v1/cart", Some(&buyer.token)).await["lines"][0]["quantity"],
        5
    );
    // Credential-issuing calls are never stored by the idempotency layer.
    let res = app
        .http
        .post(app.url("/api/v1/auth/tokens"))
        .header("Idempotency-Key", "login-1")
        .json(&json!({"email": buyer.email, "password": crate::support::PASSWORD}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM idempotency_keys WHERE response_body LIKE '%cc_%'",
    )
    .fetch_one(&app.state.db.read)
    .await
    .expect("count");
    assert_eq!(
        stored, 0,
        "no bearer token is kept in the idempotency records"
    );
}
