//! Data protection: the vault (binding, tamper evidence, what the database holds), the sweep of
//! pre-vault plaintext, key rotation interrupted and resumed, and the hash-chained audit log
//! with its admin page, on both databases.

use crate::on_both_databases;
use crate::support::{Actor, Backend, PAGE_CSRF, PASSWORD, TestApp, variant_id};
use crate::support_passkey::{Authenticator, passkey_sign_in, register_passkey};
use clipcart_server::platform::audit::{self, Entry, action};
use clipcart_server::platform::crypto::{ENCRYPTED_COLUMNS, VaultError, columns};
use clipcart_server::platform::keys::{self, Quiet, RotateOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

on_both_databases!(
    ciphertexts_are_bound_and_tamper_evident,
    personal_columns_hold_only_ciphertexts,
    plaintext_from_before_the_vault_is_encrypted_once,
    rotation_resumes_after_an_interruption,
    the_audit_chain_finds_edits_and_deletions,
    concurrent_appends_keep_one_chain,
    the_audit_page_lists_and_filters,
    staff_changes_and_unlocks_are_audited,
    security_events_are_audited,
);

/// Distinctive values: a search for them in the database must find nothing.
const TAX_ID: &str = "DE998877665";
const STREET: &str = "7 Canaryvogel Lane";
const BUYER_NAME: &str = "Wilhelmina Kanarienvogel";
const BUYER_STREET: &str = "9 Leuchtturmweg";
const BUYER_POSTCODE: &str = "25813";
const ANTI_PHISHING_CODE: &str = "kingfisher-31";

fn distinctive_application(name: &str) -> Value {
    json!({
        "business_name": name,
        "seller_type": "company",
        "address": {"line1": STREET, "city": "Kiel", "postal_code": "24103", "country": "DE"},
        "tax_id": TAX_ID,
        "currency": "EUR"
    })
}

async fn raw(app: &TestApp, sql: &str, id: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id)
        .fetch_one(&app.state.db.read)
        .await
        .expect("raw value")
}

async fn set_raw(app: &TestApp, sql: &str, value: &str, id: &str) {
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(value)
        .bind(id)
        .execute(&app.state.db.write)
        .await
        .expect("raw update")
        .rows_affected();
    assert_eq!(n, 1);
}

async fn ciphertexts_are_bound_and_tamper_evident(app: TestApp) {
    let vault = &app.state.vault;
    let aad = columns::SHOP_TAX_ID.aad("shp_test");
    let stored = vault.encrypt(&aad, "DE123456789").await.expect("encrypt");
    assert!(stored.starts_with("enc:v1:1:"), "{stored}");
    assert!(!stored.contains("DE123456789"));
    assert_eq!(
        vault.decrypt(&aad, &stored).await.expect("decrypt"),
        "DE123456789"
    );
    assert_ne!(
        stored,
        vault.encrypt(&aad, "DE123456789").await.expect("again"),
        "a fresh nonce each time"
    );

    // Any changed byte — prefix, key version, nonce, ciphertext or tag — is an error naming
    // the place, never the value, and never other data.
    for i in 0..stored.len() {
        let mut bytes = stored.clone().into_bytes();
        bytes[i] ^= 0x01;
        let tampered = String::from_utf8(bytes).expect("ASCII stays ASCII");
        match vault.decrypt(&aad, &tampered).await {
            Ok(v) => panic!("byte {i} changed, yet it decrypted to {v:?}"),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.contains("shops.tax_id") && message.contains("shp_test"),
                    "{message}"
                );
                assert!(!message.contains("DE123456789"));
            }
        }
    }
    assert!(matches!(
        vault.decrypt(&aad, &stored[..stored.len() - 4]).await,
        Err(VaultError::Malformed { .. } | VaultError::Tampered { .. })
    ));

    // Copied to another row or another column, it does not decrypt.
    assert!(matches!(
        vault
            .decrypt(&columns::SHOP_TAX_ID.aad("shp_other"), &stored)
            .await,
        Err(VaultError::Tampered { .. })
    ));
    assert!(matches!(
        vault
            .decrypt(&columns::SHOP_ADDRESS.aad("shp_test"), &stored)
            .await,
        Err(VaultError::Tampered { .. })
    ));
    assert!(matches!(
        vault.decrypt(&aad, "DE123456789").await,
        Err(VaultError::NotEncrypted { .. })
    ));
    assert!(matches!(
        vault.decrypt(&aad, &stored.replacen(":1:", ":7:", 1)).await,
        Err(VaultError::UnknownKey { version: 7, .. })
    ));

    // Through the application: a flipped byte in a stored tax id is a clear server error,
    // never a wrong tax id.
    let seller = app.applied_seller("Flip Shop").await;
    let shop_id = seller.shop_id.clone().expect("shop");
    let good = raw(&app, "SELECT tax_id FROM shops WHERE id = $1", &shop_id).await;
    let mut bytes = good.clone().into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(bytes).expect("ASCII");
    set_raw(
        &app,
        "UPDATE shops SET tax_id = $1 WHERE id = $2",
        &flipped,
        &shop_id,
    )
    .await;
    let (status, v) = app.get("/api/v1/seller/shop", Some(&seller.token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("6789"), "{v}");
    // Moved to another shop's row, it does not decrypt either.
    let other = app.applied_seller("Other Shop").await;
    let other_id = other.shop_id.clone().expect("shop");
    set_raw(
        &app,
        "UPDATE shops SET tax_id = $1 WHERE id = $2",
        &good,
        &other_id,
    )
    .await;
    let (status, _) = app.get("/api/v1/seller/shop", Some(&other.token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    set_raw(
        &app,
        "UPDATE shops SET tax_id = $1 WHERE id = $2",
        &good,
        &shop_id,
    )
    .await;
    assert_eq!(
        app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await["tax_id"],
        "••••6789"
    );
}

/// Applies with the distinctive values, is approved, sells one item to a buyer who ships to the
/// distinctive address. Returns (admin, seller, buyer, order id).
async fn distinctive_sale(app: &TestApp) -> (Actor, Actor, Actor, String) {
    let admin = app.admin().await;
    let mut seller = app.sign_up("seller", "Canary Goods").await;
    let shop = app
        .post_ok(
            "/api/v1/seller/application",
            Some(&seller.token),
            distinctive_application("Canary Goods"),
            StatusCode::CREATED,
        )
        .await;
    let shop_id = shop["id"].as_str().expect("shop id").to_string();
    seller.shop_id = Some(shop_id.clone());
    app.post_ok(
        &format!("/api/v1/admin/shops/{shop_id}/approve"),
        Some(&admin.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    let product = app
        .live_product(&seller, "Bird seed", &[(&[], 500, 10)])
        .await;
    let buyer = app.buyer().await;
    app.add_to_cart(&buyer, &variant_id(&product, 0), 1).await;
    let token = app.card_token("4242424242424242").await;
    let placed = app
        .post_ok(
            "/api/v1/checkout",
            Some(&buyer.token),
            json!({
                "payment_token": token,
                "shipping_address": {"name": BUYER_NAME, "line1": BUYER_STREET, "line2": "Hinterhaus",
                                     "city": "Husum", "postal_code": BUYER_POSTCODE, "country": "DE"}
            }),
            StatusCode::CREATED,
        )
        .await;
    let order_id = placed["orders"][0]["id"]
        .as_str()
        .expect("order id")
        .to_string();
    (admin, seller, buyer, order_id)
}

async fn personal_columns_hold_only_ciphertexts(app: TestApp) {
    let (admin, seller, buyer, order_id) = distinctive_sale(&app).await;
    // A TOTP seed and an anti-phishing code, through the API; both keep working.
    let seed = enrol_totp(&app, &buyer).await;
    let (status, v) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": buyer.email, "password": PASSWORD,
                   "otp": crate::second_factor::code_at(&seed, app.now_ms())}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/me/anti-phishing-code",
            Some(&seller.token),
            Some(&json!({"anti_phishing_code": ANTI_PHISHING_CODE, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let status = app.get_ok("/api/v1/me/email", Some(&seller.token)).await;
    assert_eq!(status["anti_phishing_code"], ANTI_PHISHING_CODE);
    let stored = raw(
        &app,
        "SELECT anti_phishing_code FROM users WHERE id = $1",
        &seller.user_id,
    )
    .await;
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    let stored = raw(
        &app,
        "SELECT secret FROM totp_factors WHERE user_id = $1",
        &buyer.user_id,
    )
    .await;
    assert!(stored.starts_with("enc:v1:"), "{stored}");

    // What people see is unchanged: admins the full tax id, sellers and staff the last 4,
    // the buyer and the seller the shipping address.
    let _ = admin;
    let mine = app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await;
    assert_eq!(mine["tax_id"], "••••7665");
    let order = app
        .get_ok(&format!("/api/v1/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(order["shipping_address"]["name"], BUYER_NAME);
    assert_eq!(order["shipping_address"]["line2"], "Hinterhaus");
    let seen = app
        .get_ok(
            &format!("/api/v1/seller/orders/{order_id}"),
            Some(&seller.token),
        )
        .await;
    assert_eq!(seen["shipping_address"]["line1"], BUYER_STREET);
    assert_eq!(seen["shipping_address"]["country"], "DE");

    // What the database holds: every registered column is a ciphertext that decrypts, and none
    // holds the values in plain text.
    for col in ENCRYPTED_COLUMNS {
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {}, {} FROM {}",
            col.id_column, col.column, col.table
        )))
        .fetch_all(&app.state.db.read)
        .await
        .expect("rows");
        let rows: Vec<(String, String)> = rows
            .into_iter()
            .filter(|(_, v)| !(col.empty_is_none && v.is_empty()))
            .collect();
        assert!(!rows.is_empty(), "{} has rows", col.name());
        for (id, value) in rows {
            assert!(value.starts_with("enc:v1:"), "{}: {value}", col.name());
            for plain in [
                TAX_ID,
                STREET,
                BUYER_NAME,
                BUYER_STREET,
                BUYER_POSTCODE,
                &seed,
                ANTI_PHISHING_CODE,
            ] {
                assert!(!value.contains(plain));
            }
            app.state
                .vault
                .decrypt(&col.aad(&id), &value)
                .await
                .expect("decrypts");
        }
    }

    // On SQLite, the files themselves (the database and its write-ahead log). The
    // anti-phishing code is not searched for here: every mail carries it, and a mail's body
    // waits in plain text in `outbox_mail` until it is sent (this app has no SMTP server).
    if app.backend == Backend::Sqlite {
        let path = app
            .state
            .config
            .database_url
            .trim_start_matches("sqlite://")
            .to_string();
        for file in [path.clone(), format!("{path}-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for plain in [TAX_ID, STREET, BUYER_NAME, BUYER_STREET, seed.as_str()] {
                assert!(
                    !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
                    "{plain} found in plain text in {file}"
                );
            }
        }
    }
}

async fn plaintext_from_before_the_vault_is_encrypted_once(app: TestApp) {
    let seller = app.applied_seller("Old Shop").await;
    let shop_id = seller.shop_id.clone().expect("shop");
    // A row as written before the vault existed, and a column not yet swept.
    set_raw(
        &app,
        "UPDATE shops SET tax_id = $1 WHERE id = $2",
        "DE111222333",
        &shop_id,
    )
    .await;
    sqlx::query("DELETE FROM vault_sweeps WHERE column_name = 'shops.tax_id'")
        .execute(&app.state.db.write)
        .await
        .expect("unswept");
    let n = keys::sweep_legacy(&app.state.db, &app.state.vault)
        .await
        .expect("sweep");
    assert_eq!(n, 1);
    let stored = raw(&app, "SELECT tax_id FROM shops WHERE id = $1", &shop_id).await;
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert_eq!(
        app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await["tax_id"],
        "••••2333"
    );
    assert_eq!(
        keys::sweep_legacy(&app.state.db, &app.state.vault)
            .await
            .expect("sweep again"),
        0
    );
    // Once swept, a value that is not a ciphertext is refused, never served as plaintext.
    set_raw(
        &app,
        "UPDATE shops SET tax_id = $1 WHERE id = $2",
        "DE444555666",
        &shop_id,
    )
    .await;
    let (status, _) = app.get("/api/v1/seller/shop", Some(&seller.token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        keys::sweep_legacy(&app.state.db, &app.state.vault)
            .await
            .expect("sweep"),
        0,
        "a swept column is not swept again"
    );
}

/// Inserts `n` shops (with owners) straight into the database, their vault columns encrypted
/// under the current key. Returns id → (tax id, address) in plain text.
async fn many_shops(app: &TestApp, n: usize) -> HashMap<String, (String, String)> {
    let vault = &app.state.vault;
    let mut plain = HashMap::new();
    let mut tx = app.state.db.write.begin().await.expect("tx");
    for i in 0..n {
        let user_id = format!("usr_bulk{i:05}");
        let shop_id = format!("shp_bulk{i:05}");
        let tax_id = format!("DE{:09}", 100_000_000 + i);
        let address = format!(r#"{{"line1":"{i} Bulk Street","city":"Bonn"}}"#);
        sqlx::query("INSERT INTO users (id, email, password_hash, display_name, role, created_at) VALUES ($1, $2, 'x', 'Bulk', 'seller', 0)")
            .bind(&user_id)
            .bind(format!("bulk{i}@example.test"))
            .execute(&mut *tx)
            .await
            .expect("user");
        sqlx::query("INSERT INTO shops (id, owner_user_id, name, seller_type, status, currency, tax_id, address_json, created_at) \
                     VALUES ($1, $2, 'Bulk', 'company', 'submitted', 'EUR', $3, $4, 0)")
            .bind(&shop_id)
            .bind(&user_id)
            .bind(vault.encrypt(&columns::SHOP_TAX_ID.aad(&shop_id), &tax_id).await.expect("enc"))
            .bind(vault.encrypt(&columns::SHOP_ADDRESS.aad(&shop_id), &address).await.expect("enc"))
            .execute(&mut *tx)
            .await
            .expect("shop");
        plain.insert(shop_id, (tax_id, address));
    }
    tx.commit().await.expect("commit");
    plain
}

/// Every ciphertext of every registered column decrypts; returns how many there are per key
/// version (0: plaintext from before the vault).
async fn all_decrypt(app: &TestApp) -> HashMap<u32, usize> {
    let mut per_version = HashMap::new();
    for col in ENCRYPTED_COLUMNS {
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {}, {} FROM {}",
            col.id_column, col.column, col.table
        )))
        .fetch_all(&app.state.db.read)
        .await
        .expect("rows");
        for (id, value) in rows {
            if col.empty_is_none && value.is_empty() {
                continue;
            }
            if !value.starts_with("enc:") {
                *per_version.entry(0).or_default() += 1;
                continue;
            }
            app.state
                .vault
                .decrypt(&col.aad(&id), &value)
                .await
                .unwrap_or_else(|e| panic!("{} {id}: {e}", col.name()));
            let v = clipcart_server::platform::crypto::key_version(&value).expect("version");
            *per_version.entry(v).or_default() += 1;
        }
    }
    per_version
}

async fn rotation_resumes_after_an_interruption(app: TestApp) {
    let db = &app.state.db;
    let vault = &app.state.vault;
    let (_, seller, buyer, order_id) = distinctive_sale(&app).await;
    let plain = many_shops(&app, 300).await;
    // Ten values still in plain text from before the vault, in a column not yet swept.
    for i in (0..300).step_by(30) {
        let id = format!("shp_bulk{i:05}");
        set_raw(
            &app,
            "UPDATE shops SET tax_id = $1 WHERE id = $2",
            &plain[&id].0,
            &id,
        )
        .await;
    }
    sqlx::query("DELETE FROM vault_sweeps WHERE column_name = 'shops.tax_id'")
        .execute(&db.write)
        .await
        .expect("unswept");
    let old_copy = raw(
        &app,
        "SELECT address_json FROM shops WHERE id = $1",
        "shp_bulk00001",
    )
    .await;
    let values = 2 * 301 + 5; // two shop columns (300 bulk + 1 real shop), five order columns

    // 1. Interrupted after 5 batches of 50: the first column is half done.
    let opts = RotateOptions {
        batch_size: 50,
        grace: Duration::ZERO,
        max_batches: Some(5),
        stop: None,
    };
    let first = keys::rotate(db, vault, &opts, &mut Quiet)
        .await
        .expect("rotate");
    assert!(first.interrupted && first.new_key);
    assert_eq!(first.target, 2);
    assert_eq!(first.moved, 250);
    assert!(first.retired.is_empty());
    let per_version = all_decrypt(&app).await;
    assert_eq!(per_version.get(&2), Some(&250), "{per_version:?}");
    let status = keys::status(db, vault).await.expect("status");
    let tax = status
        .columns
        .iter()
        .find(|c| c.name == "shops.tax_id")
        .expect("tax ids");
    assert!(tax.plaintext > 0 && !tax.swept, "{tax:?}");
    // The application keeps reading mid-rotation, old key and new.
    assert_eq!(
        app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await["tax_id"],
        "••••7665"
    );

    // 2. Run again: it continues (no new key), skips what is done, and retires v1.
    let opts = RotateOptions {
        max_batches: None,
        ..opts
    };
    let second = keys::rotate(db, vault, &opts, &mut Quiet)
        .await
        .expect("rotate again");
    assert!(!second.interrupted && !second.new_key);
    assert_eq!(second.target, 2);
    assert_eq!(first.moved + second.moved, values as u64);
    assert_eq!(first.legacy + second.legacy, 10);
    assert_eq!(second.retired, vec![1]);
    assert!(second.still_used.is_empty());
    assert_eq!(
        all_decrypt(&app).await,
        HashMap::from([(2, values)]),
        "everything is under v2"
    );
    for (id, (tax_id, address)) in &plain {
        let stored = raw(&app, "SELECT tax_id FROM shops WHERE id = $1", id).await;
        assert_eq!(
            &vault
                .decrypt(&columns::SHOP_TAX_ID.aad(id), &stored)
                .await
                .expect("tax id"),
            tax_id
        );
        let stored = raw(&app, "SELECT address_json FROM shops WHERE id = $1", id).await;
        assert_eq!(
            &vault
                .decrypt(&columns::SHOP_ADDRESS.aad(id), &stored)
                .await
                .expect("address"),
            address
        );
    }
    let status = keys::status(db, vault).await.expect("status");
    assert_eq!(
        status
            .keys
            .iter()
            .map(|k| (k.version, k.status.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "current"), (1, "retired")]
    );
    assert!(status.columns.iter().all(|c| c.plaintext == 0 && c.swept));
    let wrapped: String =
        sqlx::query_scalar("SELECT wrapped_key FROM vault_keys WHERE version = 1")
            .fetch_one(&db.read)
            .await
            .expect("v1");
    assert!(wrapped.is_empty(), "a retired key is erased");
    assert!(matches!(
        vault
            .decrypt(&columns::SHOP_ADDRESS.aad("shp_bulk00001"), &old_copy)
            .await,
        Err(VaultError::RetiredKey { version: 1, .. })
    ));
    let order = app
        .get_ok(&format!("/api/v1/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(order["shipping_address"]["name"], BUYER_NAME);

    // 3. The next rotation makes v3; with a grace period v2 waits until it has passed.
    let graced = RotateOptions {
        grace: Duration::from_secs(60),
        ..opts
    };
    let third = keys::rotate(db, vault, &graced, &mut Quiet)
        .await
        .expect("rotate to v3");
    assert!(third.new_key && third.target == 3 && third.moved == values as u64);
    assert!(third.retired.is_empty());
    assert_eq!(third.retire_after, Some(Duration::from_secs(60)));
    app.clock.advance_ms(60_000);
    let fourth = keys::rotate(db, vault, &graced, &mut Quiet)
        .await
        .expect("finish v3");
    assert!(!fourth.new_key && fourth.moved == 0);
    assert_eq!(fourth.retired, vec![2]);
    assert_eq!(all_decrypt(&app).await, HashMap::from([(3, values)]));
}

async fn entries(app: &TestApp) -> Vec<audit::AuditRow> {
    sqlx::query_as("SELECT seq, at, actor, action, subject, details_json, prev_hash, hash FROM audit_log ORDER BY seq")
        .fetch_all(&app.state.db.read)
        .await
        .expect("entries")
}

async fn the_audit_chain_finds_edits_and_deletions(app: TestApp) {
    let db = &app.state.db;
    let (admin, seller, buyer, _) = distinctive_sale(&app).await;
    for i in 0..3 {
        audit::record_alone(
            db,
            Entry::new(
                app.now_ms(),
                audit::SYSTEM,
                action::STAFF_ROLE_DEFINE,
                format!("rol_{i}"),
            )
            .with("n", i),
        )
        .await
        .expect("recorded");
    }
    let rows = entries(&app).await;
    let shop_id = seller.shop_id.clone().expect("shop");
    assert!(
        rows.iter().any(|r| r.action == action::SHOP_DECISION
            && r.actor == admin.user_id
            && r.subject == shop_id
            && r.details_json.contains("\"to\":\"active\"")),
        "the approval is recorded"
    );
    assert!(
        rows.iter()
            .any(|r| r.action == action::LEDGER_TRANSACTION && r.actor == buyer.user_id),
        "the payment's ledger transaction is recorded"
    );
    for r in &rows {
        for personal in [TAX_ID, STREET, BUYER_NAME, BUYER_STREET, "example.test"] {
            assert!(!r.details_json.contains(personal), "{}", r.details_json);
            assert!(!r.subject.contains(personal));
        }
    }
    let n = i64::try_from(rows.len()).expect("count");
    assert!(n >= 5);
    let intact = audit::verify(db).await.expect("verify").expect("intact");
    assert_eq!(intact.entries, n);
    assert_eq!(intact.head_hash, rows[rows.len() - 1].hash);

    // An edited row.
    let second = rows[1].clone();
    sqlx::query("UPDATE audit_log SET subject = 'forged' WHERE seq = 2")
        .execute(&db.write)
        .await
        .expect("edit");
    let broken = audit::verify(db)
        .await
        .expect("verify")
        .expect_err("edit found");
    assert_eq!(broken.seq, 2, "{broken}");
    assert!(broken.reason.starts_with("edited"), "{broken}");
    // Edited with its hash recomputed: the next link breaks.
    let forged_hash = audit::chain_hash(
        2,
        second.at,
        &second.actor,
        &second.action,
        "forged",
        &second.details_json,
        &second.prev_hash,
    );
    sqlx::query("UPDATE audit_log SET hash = $1 WHERE seq = 2")
        .bind(&forged_hash)
        .execute(&db.write)
        .await
        .expect("rehash");
    let broken = audit::verify(db).await.expect("verify").expect_err("found");
    assert_eq!(broken.seq, 3, "{broken}");
    assert!(broken.reason.starts_with("does not follow"), "{broken}");
    sqlx::query("UPDATE audit_log SET subject = $1, hash = $2 WHERE seq = 2")
        .bind(&second.subject)
        .bind(&second.hash)
        .execute(&db.write)
        .await
        .expect("restore");
    assert!(audit::verify(db).await.expect("verify").is_ok());

    // Two rows swapped.
    for (from, to) in [(2, -2), (3, 2), (-2, 3)] {
        sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
            .bind(to)
            .bind(from)
            .execute(&db.write)
            .await
            .expect("swap");
    }
    let broken = audit::verify(db).await.expect("verify").expect_err("found");
    assert_eq!(broken.seq, 2, "{broken}");
    for (from, to) in [(2, -2), (3, 2), (-2, 3)] {
        sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
            .bind(to)
            .bind(from)
            .execute(&db.write)
            .await
            .expect("swap back");
    }
    assert!(audit::verify(db).await.expect("verify").is_ok());

    // A deleted row, in the middle and at the end.
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&db.write)
        .await
        .expect("delete");
    let broken = audit::verify(db).await.expect("verify").expect_err("found");
    assert_eq!(broken.seq, 3, "{broken}");
    assert!(broken.reason.starts_with("missing"), "{broken}");
    sqlx::query("DELETE FROM audit_log WHERE seq = $1")
        .bind(n)
        .execute(&db.write)
        .await
        .expect("delete last");
    sqlx::query("DELETE FROM audit_log WHERE seq > 3")
        .execute(&db.write)
        .await
        .expect("delete the rest");
    let r = &rows[2];
    sqlx::query("INSERT INTO audit_log (seq, at, actor, action, subject, details_json, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(r.seq).bind(r.at).bind(&r.actor).bind(&r.action).bind(&r.subject).bind(&r.details_json).bind(&r.prev_hash).bind(&r.hash)
        .execute(&db.write)
        .await
        .expect("put back");
    let broken = audit::verify(db).await.expect("verify").expect_err("found");
    assert_eq!(broken.seq, 4, "{broken}");
    assert!(broken.reason.contains("chain head says"), "{broken}");
}

async fn concurrent_appends_keep_one_chain(app: TestApp) {
    let mut tasks = Vec::new();
    for i in 0..24 {
        let state = app.state.clone();
        let at = app.now_ms();
        tasks.push(tokio::spawn(async move {
            audit::record_alone(
                &state.db,
                Entry::new(
                    at,
                    audit::SYSTEM,
                    action::STAFF_ROLE_DEFINE,
                    format!("rol_{i}"),
                ),
            )
            .await
            .expect("appended")
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.expect("task"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=24).collect::<Vec<i64>>());
    let intact = audit::verify(&app.state.db)
        .await
        .expect("verify")
        .expect("one chain");
    assert_eq!(intact.entries, 24);
}

async fn page(app: &TestApp, cookies: &str, path: &str) -> (StatusCode, String) {
    let res = app
        .http
        .get(app.url(path))
        .header("cookie", cookies)
        .send()
        .await
        .expect("page");
    let status = res.status();
    (status, res.text().await.expect("html"))
}

async fn the_audit_page_lists_and_filters(app: TestApp) {
    // An admin with a page session and a passkey.
    let admin = app.admin_without_passkey().await;
    let cookies = app.page_cookies(&admin).await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &admin, &mut auth).await;
    let seller = app.active_seller(&admin, "Audit Shop").await;
    for i in 0..55 {
        audit::record_alone(
            &app.state.db,
            Entry::new(
                app.now_ms(),
                audit::SYSTEM,
                action::STAFF_ROLE_DEFINE,
                format!("rol_{i:02}"),
            ),
        )
        .await
        .expect("recorded");
    }

    let (status, html) = page(&app, &cookies, "/admin/audit").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("rol_54"), "newest first");
    assert!(!html.contains("<td>shop.decision</td>"), "only 50 per page");
    let older = html
        .split("id=\"audit-older\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to older entries")
        .replace("&amp;", "&");
    let (status, html) = page(&app, &cookies, &older).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<td>shop.decision</td>") && html.contains("rol_00"));
    assert!(!html.contains("rol_54"));

    let (status, html) = page(&app, &cookies, "/admin/audit?action=shop.decision").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(seller.shop_id.as_deref().expect("shop")));
    assert!(!html.contains("rol_"), "filtered by action");
    assert!(!html.contains("audit-older"));
    let (status, _) = page(&app, &cookies, "/admin/audit?action=nonsense").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Not for sellers, nor anonymous visitors.
    let seller_cookies = app.page_cookies(&seller).await;
    let (status, _) = page(&app, &seller_cookies, "/admin/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = page(
        &app,
        &format!("__Host-clipcart_csrf={PAGE_CSRF}"),
        "/admin/audit",
    )
    .await;
    assert!(status.is_redirection() || status == StatusCode::UNAUTHORIZED);
}

async fn staff_changes_and_unlocks_are_audited(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Crew Shop").await;
    let invitation = app
        .post_ok(
            "/api/v1/seller/staff/invitations",
            Some(&owner.token),
            json!({"email": "crew@example.test", "role": "analyst", "current_password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    let invitation_id = invitation["id"].as_str().expect("invitation id");
    app.post_ok(
        "/api/v1/admin/sign-in-locks/unlock",
        Some(&admin.token),
        json!({"email": "locked@example.test"}),
        StatusCode::OK,
    )
    .await;
    let rows = entries(&app).await;
    let invited = rows
        .iter()
        .find(|r| r.action == action::STAFF_INVITE)
        .expect("the invitation is recorded");
    assert_eq!(invited.actor, owner.user_id);
    assert_eq!(invited.subject, invitation_id);
    assert!(invited.details_json.contains("\"role\":\"analyst\""));
    let unlocked = rows
        .iter()
        .find(|r| r.action == action::SIGN_IN_UNLOCK)
        .expect("the unlock is recorded");
    assert_eq!(unlocked.actor, admin.user_id);
    for r in &rows {
        assert!(
            !r.subject.contains("example.test") && !r.details_json.contains("example.test"),
            "no email addresses in the log: {r:?}"
        );
    }
    assert!(audit::verify(&app.state.db).await.expect("verify").is_ok());
}

/// Enrols `actor` in TOTP through the API; returns the seed. Leaves the clock on a fresh step.
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

async fn token_for(app: &TestApp, email: &str, password: &str) -> String {
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

async fn security_events_are_audited(app: TestApp) {
    const NEW_PASSWORD: &str = "velvet lantern orbit meadow";
    let mut user = app.buyer().await;
    let id = user.user_id.clone();

    // The password changed, then reset through the mailed link.
    app.post_ok(
        "/api/v1/me/password",
        Some(&user.token),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        StatusCode::OK,
    )
    .await;
    let (status, _) = app
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": user.email}),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let reset = crate::support_smtp::outbox_token(&app, &user.email, "password_reset").await;
    let (status, v) = app
        .post(
            "/api/v1/auth/password-reset/complete",
            None,
            json!({"token": reset, "new_password": PASSWORD}),
        )
        .await;
    assert!(status.is_success(), "{status} {v}");
    user.token = token_for(&app, &user.email, PASSWORD).await;

    // The address changed.
    let new_email = format!("moved{}@example.test", app.unique());
    app.post_ok(
        "/api/v1/me/email",
        Some(&user.token),
        json!({"new_email": new_email, "current_password": PASSWORD}),
        StatusCode::ACCEPTED,
    )
    .await;
    let link = crate::support_smtp::outbox_token(&app, &new_email, "email_change_confirm").await;
    let (status, v) = app
        .post(
            "/api/v1/auth/email-change/confirm",
            None,
            json!({"token": link}),
        )
        .await;
    assert!(status.is_success(), "{status} {v}");
    user.email = new_email;

    // TOTP on, new recovery codes, TOTP off.
    let seed = enrol_totp(&app, &user).await;
    app.post_ok(
        "/api/v1/me/recovery-codes",
        Some(&user.token),
        json!({"code": crate::second_factor::code_at(&seed, app.now_ms())}),
        StatusCode::CREATED,
    )
    .await;
    app.clock.advance_ms(30_000);
    let (status, v) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/me/totp",
            Some(&user.token),
            Some(&json!({"code": crate::second_factor::code_at(&seed, app.now_ms())})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");

    // A passkey added, used to sign in, and removed.
    user.token = token_for(&app, &user.email, PASSWORD).await;
    let mut auth = Authenticator::for_app(&app);
    let passkey = register_passkey(&app, &user, &mut auth).await;
    let passkey_id = passkey["id"].as_str().expect("passkey id").to_string();
    let (status, v) = passkey_sign_in(&app, &mut auth).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/me/passkeys/{passkey_id}"),
            Some(&user.token),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");

    let rows = entries(&app).await;
    let mine: Vec<&audit::AuditRow> = rows.iter().filter(|r| r.actor == id).collect();
    let count = |a: &str| mine.iter().filter(|r| r.action == a).count();
    for a in [
        action::PASSWORD_CHANGE,
        action::PASSWORD_RESET,
        action::EMAIL_CHANGE,
        action::TWO_FACTOR_ENABLE,
        action::RECOVERY_CODES_REGENERATE,
        action::TWO_FACTOR_DISABLE,
        action::PASSKEY_ADD,
        action::PASSKEY_REMOVE,
    ] {
        assert_eq!(count(a), 1, "{a} recorded once: {mine:?}");
    }
    // Sign-ins: the one at sign-up, two with the password afterwards, one with the passkey.
    let sign_ins: Vec<&&audit::AuditRow> = mine
        .iter()
        .filter(|r| r.action == action::SIGN_IN)
        .collect();
    assert_eq!(
        sign_ins
            .iter()
            .filter(|r| r.details_json.contains("\"method\":\"password\""))
            .count(),
        3,
        "{sign_ins:?}"
    );
    assert_eq!(
        sign_ins
            .iter()
            .filter(|r| r.details_json.contains("\"method\":\"passkey\""))
            .count(),
        1,
        "{sign_ins:?}"
    );
    for r in &mine {
        if r.action == action::PASSKEY_ADD || r.action == action::PASSKEY_REMOVE {
            assert_eq!(r.subject, passkey_id);
        } else {
            assert_eq!(r.subject, id);
        }
    }
    // Ids only: no address, password, seed or name.
    for r in &rows {
        for personal in [
            "example.test",
            PASSWORD,
            NEW_PASSWORD,
            seed.as_str(),
            "Bea Buyer",
        ] {
            assert!(
                !r.subject.contains(personal) && !r.details_json.contains(personal),
                "{r:?}"
            );
        }
    }
    assert!(audit::verify(&app.state.db).await.expect("verify").is_ok());
}
