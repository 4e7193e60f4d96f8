//! Every API operation × every kind of caller, against an expected table.
//!
//! The operations are read from the served OpenAPI document, so a new operation is covered the
//! moment it exists: until it has a row in `EXPECTED` (and, if it takes a body, a sample in
//! `body_for`), this test fails and says so. Each call is classified as `401`, `403`, `404`
//! (refused) or `ok` (let through: any other status, such as 2xx, 409 or 422 — the caller got
//! past authorisation and met the business rules). A 5xx always fails.
//!
//! Objects named in paths belong to shop A (its product, variant, order, staff, invitation,
//! custom role), so the other shop's owner must meet 404 where the operation is about them.

use crate::on_both_databases;
use crate::support::{Actor, PASSWORD, TestApp, checkout_body, variant_id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;

on_both_databases!(every_operation_answers_each_role_as_expected);

/// Columns of `EXPECTED`, in order.
const CALLERS: [&str; 11] = [
    "anonymous",
    "buyer",
    "owner",
    "staff_admin",
    "staff_catalogue",
    "staff_fulfilment",
    "staff_customer_service",
    "staff_finance",
    "staff_analyst",
    "other_owner",
    "admin",
];

/// One row per operation: `METHOD /path`, then one outcome per caller in `CALLERS` order.
const EXPECTED: &str = "
# operation                                                       anon  buyer owner s.adm s.cat s.ful s.cs  s.fin s.ana other admin
# Identity: public operations, then the caller's own account.
POST   /auth/signup                                               ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/password-check                                       ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/tokens                                               ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
DELETE /auth/tokens/current                                       401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /me                                                        401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/password                                               401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/step-up                                                401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /me/sessions                                               401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
DELETE /me/sessions                                               401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
DELETE /me/sessions/{session_id}                                  401   404   404   404   404   404   404   404   404   404   404
GET    /me/sign-ins                                               401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/totp                                                   401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
DELETE /me/totp                                                   401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/totp/confirm                                           401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/recovery-codes                                         401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
# Email: links work for whoever holds them; the rest is the caller's own account.
POST   /auth/verify-email                                         ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/email-change/confirm                                 ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/password-reset                                       ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/password-reset/complete                              ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/password-reset/passkey/challenges                    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /me/email                                                  401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/email                                                  401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/verification-email                                     401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
PUT    /me/anti-phishing-code                                     401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
# Passkeys: sign-in is public; the rest is the caller's own ({passkey_id} is the admin's).
POST   /auth/passkey/challenges                                   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /auth/passkey/tokens                                       ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /me/passkeys                                               401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/passkeys/registrations                                 401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/passkeys                                               401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
PATCH  /me/passkeys/{passkey_id}                                  401   404   404   404   404   404   404   404   404   404   ok
DELETE /me/passkeys/{passkey_id}                                  401   404   404   404   404   404   404   404   404   404   ok
POST   /me/step-up/passkey/challenges                             401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /me/step-up/passkey                                        401   ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /admin/sign-in-locks/unlock                                401   403   403   403   403   403   403   403   403   403   ok
# Staff: the owner's alone.
GET    /seller/staff                                              401   403   ok    403   403   403   403   403   403   ok    403
POST   /seller/staff/invitations                                  401   403   ok    403   403   403   403   403   403   ok    403
DELETE /seller/staff/invitations/{invitation_id}                  401   403   ok    403   403   403   403   403   403   404   403
PUT    /seller/staff/{user_id}                                    401   403   ok    403   403   403   403   403   403   404   403
DELETE /seller/staff/{user_id}                                    401   403   ok    403   403   403   403   403   403   404   403
GET    /seller/roles                                              401   403   ok    403   403   403   403   403   403   ok    403
POST   /seller/roles                                              401   403   ok    403   403   403   403   403   403   ok    403
PUT    /seller/roles/{role_id}                                    401   403   ok    403   403   403   403   403   403   404   403
DELETE /seller/roles/{role_id}                                    401   403   ok    403   403   403   403   403   403   404   403
POST   /staff-invitations/accept                                  ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
# Onboarding.
POST   /seller/application                                        401   403   ok    ok    ok    ok    ok    ok    ok    ok    403
GET    /seller/shop                                               401   403   ok    ok    ok    ok    ok    ok    ok    ok    403
GET    /admin/shops                                               401   403   403   403   403   403   403   403   403   403   ok
POST   /admin/shops/{shop_id}/approve                             401   403   403   403   403   403   403   403   403   403   ok
POST   /admin/shops/{shop_id}/reject                              401   403   403   403   403   403   403   403   403   403   ok
# Catalogue.
GET    /products                                                  ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /products/{product_id}                                     ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /seller/products                                           401   403   ok    ok    ok    ok    ok    403   ok    ok    403
POST   /seller/products                                           401   403   ok    ok    ok    403   403   403   403   ok    403
GET    /seller/products/{product_id}                              401   403   ok    ok    ok    ok    ok    403   ok    404   403
POST   /seller/products/{product_id}/publish                      401   403   ok    ok    ok    403   403   403   403   404   403
PUT    /seller/products/{product_id}/variants/{variant_id}/stock  401   403   ok    ok    ok    403   403   403   403   404   403
# Cart, checkout, orders.
GET    /cart                                                      401   ok    403   403   403   403   403   403   403   403   403
POST   /cart/items                                                401   ok    403   403   403   403   403   403   403   403   403
PUT    /cart/items/{variant_id}                                   401   ok    403   403   403   403   403   403   403   403   403
DELETE /cart/items/{variant_id}                                   401   ok    403   403   403   403   403   403   403   403   403
POST   /checkout                                                  401   ok    403   403   403   403   403   403   403   403   403
GET    /orders                                                    401   ok    403   403   403   403   403   403   403   403   403
GET    /orders/{order_id}                                         401   ok    403   403   403   403   403   403   403   403   403
POST   /orders/{order_id}/confirm-receipt                         401   ok    403   403   403   403   403   403   403   403   403
GET    /seller/orders                                             401   403   ok    ok    403   ok    ok    ok    ok    ok    403
GET    /seller/orders/{order_id}                                  401   403   ok    ok    403   ok    ok    ok    ok    404   403
POST   /seller/orders/{order_id}/ship                             401   403   ok    ok    403   ok    403   403   403   404   403
";

/// The world the calls run in: shop A with staff in every preset role, a custom role, a
/// pending invitation, a live product and a paid order; shop B; a buyer; an admin.
struct World {
    callers: Vec<(&'static str, Option<Actor>)>,
    /// A second token per caller, for operations that end the token they are made with.
    spare_tokens: BTreeMap<&'static str, String>,
    params: BTreeMap<&'static str, String>,
    /// A checkout with a real card token (the buyer's cart is empty by then: a 409, let in).
    checkout: Value,
}

async fn world(app: &TestApp) -> World {
    let (admin, mut authenticator) = app.admin_with_authenticator().await;
    let admin_token = admin.token.clone();
    let owner = app.active_seller(&admin, "Shop A").await;
    let other = app.active_seller(&admin, "Shop B").await;
    let buyer = app.buyer().await;
    let product = app
        .live_product(&owner, "Wool socks", &[(&["M"], 1500, 50)])
        .await;
    let variant = variant_id(&product, 0);
    let order = app.buy(&buyer, &variant, 1).await;

    let mut callers: Vec<(&'static str, Option<Actor>)> = vec![
        ("anonymous", None),
        ("buyer", Some(buyer)),
        ("owner", Some(owner.clone())),
    ];
    for (caller, role) in [
        ("staff_admin", "admin"),
        ("staff_catalogue", "catalogue"),
        ("staff_fulfilment", "fulfilment"),
        ("staff_customer_service", "customer_service"),
        ("staff_finance", "finance"),
        ("staff_analyst", "analyst"),
    ] {
        callers.push((
            caller,
            Some(crate::staff::staff_member(app, &owner, role).await),
        ));
    }
    callers.push(("other_owner", Some(other)));
    callers.push(("admin", Some(admin)));

    // Objects of shop A the paths name.
    let victim = crate::staff::staff_member(app, &owner, "analyst").await;
    let role = app
        .post_ok(
            "/api/v1/seller/roles",
            Some(&owner.token),
            json!({"name": "Packers", "permissions": {"fulfilment": "edit"}}),
            StatusCode::CREATED,
        )
        .await;
    let invitation = app
        .post_ok(
            "/api/v1/seller/staff/invitations",
            Some(&owner.token),
            json!({"email": "pending@example.test", "role": "analyst"}),
            StatusCode::CREATED,
        )
        .await;
    let mut params = BTreeMap::new();
    params.insert("product_id", str_of(&product["id"]));
    params.insert("variant_id", variant);
    params.insert("order_id", str_of(&order["orders"][0]["id"]));
    params.insert("shop_id", owner.shop_id.clone().expect("shop"));
    params.insert("user_id", victim.user_id.clone());
    params.insert("role_id", str_of(&role["key"]));
    params.insert("invitation_id", str_of(&invitation["id"]));
    let passkeys = app.get_ok("/api/v1/me/passkeys", Some(&admin_token)).await;
    params.insert("passkey_id", str_of(&passkeys["items"][0]["id"]));
    // A session of someone else: nobody may end it through their own account.
    params.insert("session_id", "ses_notyours0000000000000000".into());

    let mut spare_tokens = BTreeMap::new();
    // The admin signs in with the passkey an admin must have; everyone else with a password.
    let (status, t) = crate::support_passkey::passkey_sign_in(app, &mut authenticator).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    spare_tokens.insert("admin", str_of(&t["token"]));
    for (name, actor) in &callers {
        if let Some(a) = actor.as_ref().filter(|_| *name != "admin") {
            let t = app
                .post_ok(
                    "/api/v1/auth/tokens",
                    None,
                    json!({"email": a.email, "password": PASSWORD}),
                    StatusCode::CREATED,
                )
                .await;
            spare_tokens.insert(*name, str_of(&t["token"]));
        }
    }
    let checkout = checkout_body(&app.card_token("4242424242424242").await);
    World {
        callers,
        spare_tokens,
        params,
        checkout,
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("a string, not {v}"))
        .to_string()
}

/// A valid body for each operation that takes one, so that what is tested is who may call
/// it, not how the body is read.
fn body_for(op: &str, app: &TestApp, world: &World) -> Option<Value> {
    let n = app.unique();
    Some(match op {
        "POST /auth/signup" => {
            json!({"email": format!("new{n}@example.test"), "password": PASSWORD, "display_name": "New Person", "account_type": "buyer"})
        }
        "POST /auth/password-check" => json!({"password": "a long and unusual passphrase"}),
        "POST /auth/tokens" => {
            json!({"email": "nobody@example.test", "password": "not the password"})
        }
        "POST /me/password" => json!({"current_password": PASSWORD, "new_password": PASSWORD}),
        "POST /me/step-up" => json!({"current_password": PASSWORD}),
        "DELETE /me/totp" | "POST /me/totp/confirm" | "POST /me/recovery-codes" => {
            json!({"code": "000000"})
        }
        "POST /auth/verify-email"
        | "POST /auth/email-change/confirm"
        | "POST /auth/password-reset/passkey/challenges" => {
            json!({"token": "notavalidtoken"})
        }
        "POST /auth/password-reset" => json!({"email": "someone@example.test"}),
        "POST /auth/password-reset/complete" => {
            json!({"token": "notavalidtoken", "new_password": PASSWORD})
        }
        "POST /me/email" => {
            json!({"new_email": format!("moved{n}@example.test"), "current_password": PASSWORD})
        }
        "PUT /me/anti-phishing-code" => {
            json!({"anti_phishing_code": "blue heron", "current_password": PASSWORD})
        }
        "POST /me/passkeys/registrations" | "DELETE /me/passkeys/{passkey_id}" => {
            json!({"current_password": PASSWORD})
        }
        "POST /me/passkeys" | "POST /auth/passkey/tokens" | "POST /me/step-up/passkey" => {
            json!({"ceremony_id": "cer_unknown", "credential": {}})
        }
        "PATCH /me/passkeys/{passkey_id}" => json!({"name": "Work laptop"}),
        "POST /admin/sign-in-locks/unlock" => json!({"email": "someone@example.test"}),
        "POST /seller/staff/invitations" => {
            json!({"email": format!("invitee{n}@example.test"), "role": "analyst"})
        }
        "PUT /seller/staff/{user_id}" => json!({"role": "analyst"}),
        "POST /seller/roles" => {
            json!({"name": format!("Role {n}"), "permissions": {"analytics": "view"}})
        }
        "PUT /seller/roles/{role_id}" => {
            json!({"name": "Packers", "permissions": {"fulfilment": "view"}})
        }
        "POST /staff-invitations/accept" => {
            json!({"token": "notavalidtoken", "display_name": "X", "password": PASSWORD})
        }
        "POST /seller/application" => crate::support::application("Another shop"),
        "POST /admin/shops/{shop_id}/approve" => json!({}),
        "POST /admin/shops/{shop_id}/reject" => json!({"reason": "Documents missing"}),
        "POST /seller/products" => {
            json!({"title": "Cap", "description": "A cap.", "options": [], "variants": [{"option_values": [], "price": 900, "stock": 2}]})
        }
        "POST /seller/products/{product_id}/publish" => json!({}),
        "PUT /seller/products/{product_id}/variants/{variant_id}/stock" => json!({"stock": 40}),
        "POST /cart/items" => json!({"variant_id": world.params["variant_id"], "quantity": 1}),
        "PUT /cart/items/{variant_id}" => json!({"quantity": 1}),
        "POST /checkout" => world.checkout.clone(),
        "POST /orders/{order_id}/confirm-receipt" => json!({}),
        "POST /seller/orders/{order_id}/ship" => {
            json!({"carrier": "DHL", "tracking_number": "JD014600003SE"})
        }
        _ => return None,
    })
}

/// Asking for more proof (a second factor, a step-up) is not a refusal: the caller may do
/// this once they prove it is them.
fn classify(status: StatusCode, answer: &Value) -> &'static str {
    let kind = answer["type"].as_str().unwrap_or_default();
    if kind.ends_with("#second-factor-required") || kind.ends_with("#step-up-required") {
        return "ok";
    }
    match status.as_u16() {
        401 => "401",
        403 => "403",
        404 => "404",
        _ => "ok",
    }
}

/// Every `METHOD /path` in the served OpenAPI document, and those that take a request body.
async fn operations(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let doc = app.get_ok("/api/openapi.json", None).await;
    let (mut ops, mut with_body) = (Vec::new(), Vec::new());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                let name = format!("{} {path}", method.to_uppercase());
                if op.get("requestBody").is_some() {
                    with_body.push(name.clone());
                }
                ops.push(name);
            }
        }
    }
    (ops, with_body)
}

async fn every_operation_answers_each_role_as_expected(app: TestApp) {
    let expected: BTreeMap<String, Vec<&str>> = EXPECTED
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut cells = l.split_whitespace();
            let op = format!(
                "{} {}",
                cells.next().unwrap_or(""),
                cells.next().unwrap_or("")
            );
            (op, cells.collect())
        })
        .collect();
    for (op, row) in &expected {
        assert_eq!(row.len(), CALLERS.len(), "{op}: one outcome per caller");
    }
    let (ops, with_body) = operations(&app).await;
    let missing: Vec<&String> = ops
        .iter()
        .filter(|o| !expected.contains_key(o.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "operations without a row in EXPECTED (add one, and a body in body_for): {missing:#?}"
    );
    let stale: Vec<&String> = expected
        .keys()
        .filter(|o| !ops.iter().any(|x| x == *o))
        .collect();
    assert!(
        stale.is_empty(),
        "rows for operations that no longer exist: {stale:#?}"
    );

    let world = world(&app).await;
    let mut mismatches = Vec::new();
    for op in &ops {
        let (method, template) = op.split_once(' ').expect("METHOD path");
        let mut path = template.to_string();
        for (name, value) in &world.params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !path.contains('{'),
            "{op}: no sample value for a path parameter"
        );
        let body = body_for(op, &app, &world);
        assert!(
            !with_body.contains(op) || body.is_some(),
            "{op}: add a sample body to body_for"
        );
        for (i, (caller, actor)) in world.callers.iter().enumerate() {
            let token = match (op.as_str(), actor) {
                ("DELETE /auth/tokens/current", Some(_)) => world.spare_tokens.get(caller).cloned(),
                (_, Some(a)) => Some(a.token.clone()),
                (_, None) => None,
            };
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let (status, answer) = app
                .request(
                    method,
                    &format!("/api/v1{path}"),
                    token.as_deref(),
                    body.as_ref(),
                )
                .await;
            assert!(
                !status.is_server_error(),
                "{op} as {caller}: {status} {answer}"
            );
            let want = expected[op.as_str()][i];
            let got = classify(status, &answer);
            if got != want {
                mismatches.push(format!(
                    "{op} as {caller}: expected {want}, got {status} {answer}"
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
