//! Races: many buyers for the last units. Exactly the stock is sold, never more.

use crate::on_both_databases;
use crate::support::{TestApp, checkout_body, variant_id};
use reqwest::StatusCode;

on_both_databases!(fifty_buyers_race_for_the_last_ten_units);

async fn fifty_buyers_race_for_the_last_ten_units(app: TestApp) {
    let admin = app.admin().await;
    let seller = app.active_seller(&admin, "Flash Shop").await;
    let product = app
        .live_product(&seller, "Limited sneaker", &[(&[], 9900, 10)])
        .await;
    let pid = product["id"].as_str().expect("id").to_string();
    let vid = variant_id(&product, 0);

    // Everyone gets ready first (account, cart, card), so the checkouts really race.
    let mut ready = Vec::new();
    for _ in 0..50 {
        let buyer = app.buyer().await;
        app.add_to_cart(&buyer, &vid, 1).await;
        let token = app.card_token("4242424242424242").await;
        ready.push((buyer, token));
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(ready.len()));
    let mut tasks = Vec::new();
    for (buyer, token) in ready {
        let http = app.http.clone();
        let url = app.url("/api/v1/checkout");
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            http.post(url)
                .bearer_auth(&buyer.token)
                .json(&checkout_body(&token))
                .send()
                .await
                .expect("sent")
                .status()
        }));
    }
    let mut created = 0;
    let mut sold_out = 0;
    for t in tasks {
        match t.await.expect("task") {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => sold_out += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, sold_out), (10, 40));
    assert_eq!(app.stock_of(&seller, &pid, &vid).await, 0);
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE shop_id = $1")
        .bind(seller.shop_id.as_deref().expect("shop"))
        .fetch_one(&app.state.db.read)
        .await
        .expect("count");
    assert_eq!(orders, 10);
    let sold: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM order_lines WHERE variant_id = $1",
    )
    .bind(&vid)
    .fetch_one(&app.state.db.read)
    .await
    .expect("sum");
    assert_eq!(sold, 10, "units sold equal the stock there was");
    let captured: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM testpay_authorizations WHERE status = 'captured'")
            .fetch_one(&app.state.db.read)
            .await
            .expect("count");
    // Losers either saw "sold out" before paying or had their authorisation voided: none is left
    // holding money on a card.
    let hanging: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM testpay_authorizations WHERE status = 'authorized'",
    )
    .fetch_one(&app.state.db.read)
    .await
    .expect("count");
    assert_eq!((captured, hanging), (10, 0), "only winners are charged");
    assert!(
        clipcart_server::finance::ledger::unbalanced(&app.state.db.read)
            .await
            .expect("check")
            .is_empty()
    );
}
