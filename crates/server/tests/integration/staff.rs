//! Staff sub-accounts: invitations by email, preset and custom roles enforced on every seller
//! operation, owner-only areas, removal ending sessions, and step-up before staff changes.

use crate::on_both_databases;
use crate::support::{Actor, PASSWORD, TestApp, application};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    invited_staff_work_within_their_role,
    invitations_work_once_and_expire,
    custom_roles_grant_exactly_their_areas,
    removed_staff_lose_access_at_once,
    staff_changes_need_step_up,
    staff_are_the_owners_business_only,
);

const STEP_UP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The token in the newest invitation mail to `email` (no SMTP server is configured in these
/// tests, so mail stays in the outbox).
pub async fn invitation_token(app: &TestApp, email: &str) -> String {
    crate::support_smtp::outbox_token(app, email, "staff_invitation").await
}

async fn invite(app: &TestApp, owner: &Actor, email: &str, role: &str) -> Value {
    app.post_ok(
        "/api/v1/seller/staff/invitations",
        Some(&owner.token),
        json!({"email": email, "role": role}),
        StatusCode::CREATED,
    )
    .await
}

/// Invites a new address into `role`, accepts with a new account and signs in as it.
pub async fn staff_member(app: &TestApp, owner: &Actor, role: &str) -> Actor {
    let email = format!("staff{}@example.test", app.unique());
    invite(app, owner, &email, role).await;
    let token = invitation_token(app, &email).await;
    let joined = app
        .post_ok(
            "/api/v1/staff-invitations/accept",
            None,
            json!({"token": token, "display_name": "Sam Staff", "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(joined["shop_id"].as_str(), owner.shop_id.as_deref());
    assert_eq!(joined["new_account"], true);
    let t = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": email, "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    Actor {
        token: t["token"].as_str().expect("token").into(),
        user_id: joined["user_id"].as_str().expect("user id").into(),
        email,
        shop_id: owner.shop_id.clone(),
    }
}

fn product() -> Value {
    json!({"title": "Linen scarf", "description": "Soft.", "options": [], "variants": [{"option_values": [], "price": 2500, "stock": 3}]})
}

async fn status_of(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    actor: &Actor,
    body: Option<Value>,
) -> StatusCode {
    app.request(method, path, Some(&actor.token), body.as_ref())
        .await
        .0
}

async fn invited_staff_work_within_their_role(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Kite Loom").await;
    let packer = staff_member(&app, &owner, "fulfilment").await;

    // The shop is theirs to see, and orders theirs to handle...
    let me = app.get_ok("/api/v1/me", Some(&packer.token)).await;
    assert_eq!(me["shop_id"].as_str(), owner.shop_id.as_deref());
    let shop = app.get_ok("/api/v1/seller/shop", Some(&packer.token)).await;
    assert_eq!(shop["id"].as_str(), owner.shop_id.as_deref());
    app.get_ok("/api/v1/seller/orders", Some(&packer.token))
        .await;
    app.get_ok("/api/v1/seller/products", Some(&packer.token))
        .await;
    // ...but the catalogue is view-only for fulfilment, and staff are the owner's business.
    let (status, problem) = app
        .post("/api/v1/seller/products", Some(&packer.token), product())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#forbidden");
    assert_eq!(
        status_of(
            &app,
            reqwest::Method::GET,
            "/api/v1/seller/staff",
            &packer,
            None
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // Staff cannot apply for a shop of their own with this account.
    let (status, _) = app
        .post(
            "/api/v1/seller/application",
            Some(&packer.token),
            application("Side Hustle"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The owner sees them, and a role change applies from the next request.
    let staff = app.get_ok("/api/v1/seller/staff", Some(&owner.token)).await;
    assert_eq!(staff["members"][0]["user_id"], packer.user_id.as_str());
    assert_eq!(staff["members"][0]["role"], "fulfilment");
    assert_eq!(staff["invitations"].as_array().map(Vec::len), Some(0));
    let (status, role) = app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/seller/staff/{}", packer.user_id),
            Some(&owner.token),
            Some(&json!({"role": "catalogue"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    app.post_ok(
        "/api/v1/seller/products",
        Some(&packer.token),
        product(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        status_of(
            &app,
            reqwest::Method::GET,
            "/api/v1/seller/orders",
            &packer,
            None
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // The owner was told when they joined.
    let joined_mails: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_mail WHERE to_address = $1 AND kind = 'staff_joined'",
    )
    .bind(&owner.email)
    .fetch_one(&app.state.db.read)
    .await
    .expect("count");
    assert_eq!(joined_mails, 1);
}

async fn invitations_work_once_and_expire(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Northwind").await;
    let accept =
        |token: String| json!({"token": token, "display_name": "Sam Staff", "password": PASSWORD});

    // Used once, then refused.
    invite(&app, &owner, "once@example.test", "analyst").await;
    let token = invitation_token(&app, "once@example.test").await;
    app.post_ok(
        "/api/v1/staff-invitations/accept",
        None,
        accept(token.clone()),
        StatusCode::CREATED,
    )
    .await;
    let (status, problem) = app
        .post("/api/v1/staff-invitations/accept", None, accept(token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // Inviting again replaces the earlier link; revoking kills a link.
    invite(&app, &owner, "twice@example.test", "analyst").await;
    let first = invitation_token(&app, "twice@example.test").await;
    let second = invite(&app, &owner, "twice@example.test", "finance").await;
    let (status, _) = app
        .post("/api/v1/staff-invitations/accept", None, accept(first))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let token = invitation_token(&app, "twice@example.test").await;
    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            &format!(
                "/api/v1/seller/staff/invitations/{}",
                second["id"].as_str().expect("id")
            ),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post("/api/v1/staff-invitations/accept", None, accept(token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // 120 hours: fine just before, refused after.
    let late = invite(&app, &owner, "late@example.test", "analyst").await;
    let token = invitation_token(&app, "late@example.test").await;
    assert!(late["expires_at"].as_str().is_some());
    app.clock.advance_ms(120 * 60 * 60 * 1000);
    let (status, _) = app
        .post("/api/v1/staff-invitations/accept", None, accept(token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A bad password is a field error, and the invitation stays usable. (A new token: the
    // owner's old one is far outside the step-up window now.)
    let owner_token = app
        .post_ok(
            "/api/v1/auth/tokens",
            None,
            json!({"email": owner.email, "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    let owner = Actor {
        token: owner_token["token"].as_str().expect("token").into(),
        ..owner
    };
    invite(&app, &owner, "weak@example.test", "analyst").await;
    let token = invitation_token(&app, "weak@example.test").await;
    let (status, problem) = app
        .post(
            "/api/v1/staff-invitations/accept",
            None,
            json!({"token": token, "display_name": "Wes", "password": "password1234567"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "password");
    app.post_ok(
        "/api/v1/staff-invitations/accept",
        None,
        accept(token),
        StatusCode::CREATED,
    )
    .await;

    // An existing seller account accepts by signing in; a buyer account cannot join.
    let existing = app.sign_up("seller", "Existing Seller").await;
    invite(&app, &owner, &existing.email, "analyst").await;
    let token = invitation_token(&app, &existing.email).await;
    let (status, problem) = app
        .post(
            "/api/v1/staff-invitations/accept",
            None,
            accept(token.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let joined = app
        .post_ok(
            "/api/v1/staff-invitations/accept",
            Some(&existing.token),
            json!({"token": token}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(joined["new_account"], false);
    let buyer = app.buyer().await;
    invite(&app, &owner, &buyer.email, "analyst").await;
    let token = invitation_token(&app, &buyer.email).await;
    let (status, _) = app
        .post(
            "/api/v1/staff-invitations/accept",
            Some(&buyer.token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn custom_roles_grant_exactly_their_areas(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Tiny Forest").await;
    let roles = app.get_ok("/api/v1/seller/roles", Some(&owner.token)).await;
    assert_eq!(roles.as_array().map(Vec::len), Some(6), "the six presets");

    let viewer = app
        .post_ok(
            "/api/v1/seller/roles",
            Some(&owner.token),
            json!({"name": "Catalogue viewer", "permissions": {"catalogue": "view"}}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(viewer["permissions"]["catalogue"], "view");
    assert_eq!(viewer["permissions"]["finance"], "none");
    let key = viewer["key"].as_str().expect("key").to_string();

    // Refusals are field errors: a preset's name, an unknown area, nothing granted.
    for (body, field) in [
        (
            json!({"name": "Analyst", "permissions": {"catalogue": "view"}}),
            "name",
        ),
        (
            json!({"name": "Odd", "permissions": {"vault": "edit"}}),
            "permissions",
        ),
        (
            json!({"name": "Empty", "permissions": {"catalogue": "none"}}),
            "permissions",
        ),
    ] {
        let (status, problem) = app
            .post("/api/v1/seller/roles", Some(&owner.token), body)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    let member = staff_member(&app, &owner, &key).await;
    app.get_ok("/api/v1/seller/products", Some(&member.token))
        .await;
    let (status, _) = app
        .post("/api/v1/seller/products", Some(&member.token), product())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        status_of(
            &app,
            reqwest::Method::GET,
            "/api/v1/seller/orders",
            &member,
            None
        )
        .await,
        StatusCode::FORBIDDEN
    );

    // Widening the role widens what its members may do, from their next request.
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/seller/roles/{key}"),
            Some(&owner.token),
            Some(&json!({"name": "Catalogue editor", "permissions": {"catalogue": "edit"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.post_ok(
        "/api/v1/seller/products",
        Some(&member.token),
        product(),
        StatusCode::CREATED,
    )
    .await;

    // A role in use cannot be deleted; once unused it can.
    let path = format!("/api/v1/seller/roles/{key}");
    let (status, _) = app
        .request(reqwest::Method::DELETE, &path, Some(&owner.token), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/seller/staff/{}", member.user_id),
            Some(&owner.token),
            Some(&json!({"role": "analyst"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .request(reqwest::Method::DELETE, &path, Some(&owner.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn removed_staff_lose_access_at_once(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Harbour Tea").await;
    let member = staff_member(&app, &owner, "admin").await;
    let cookies = app.page_cookies(&member).await;
    let page = app
        .http
        .get(app.url("/seller/orders"))
        .header("cookie", &cookies)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);

    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/seller/staff/{}", member.user_id),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/seller/orders", Some(&member.token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token was revoked");
    let page = app
        .http
        .get(app.url("/seller/orders"))
        .header("cookie", &cookies)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "the session ended");
    let staff = app.get_ok("/api/v1/seller/staff", Some(&owner.token)).await;
    assert_eq!(staff["members"].as_array().map(Vec::len), Some(0));
}

async fn staff_changes_need_step_up(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Step Up Shop").await;
    // A new token is a fresh sign-in: inside the window.
    invite(&app, &owner, "first@example.test", "analyst").await;

    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    let (status, problem) = app
        .post(
            "/api/v1/seller/staff/invitations",
            Some(&owner.token),
            json!({"email": "second@example.test", "role": "analyst"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/docs/problems#step-up-required");

    // A wrong password is a field error (and a counted failure); the right one steps up.
    let (status, problem) = app
        .post(
            "/api/v1/seller/staff/invitations",
            Some(&owner.token),
            json!({"email": "second@example.test", "role": "analyst", "current_password": "not the password at all"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "current_password");
    app.post_ok(
        "/api/v1/seller/staff/invitations",
        Some(&owner.token),
        json!({"email": "second@example.test", "role": "analyst", "current_password": PASSWORD}),
        StatusCode::CREATED,
    )
    .await;
    // ...and the window then covers the next changes, including a body-less DELETE.
    invite(&app, &owner, "third@example.test", "analyst").await;

    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    let staff = app.get_ok("/api/v1/seller/staff", Some(&owner.token)).await;
    let id = staff["invitations"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let role = app
        .post_ok(
            "/api/v1/seller/roles",
            Some(&owner.token),
            json!({"name": "Helpers", "permissions": {"analytics": "view"}, "current_password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    let delete_role = format!(
        "/api/v1/seller/roles/{}",
        role["key"].as_str().expect("key")
    );
    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            &delete_role,
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/api/v1/me/step-up",
            Some(&owner.token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            &delete_role,
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Revoking an invitation only closes a door: no step-up needed.
    app.clock.advance_ms(STEP_UP_WINDOW_MS + 1);
    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/seller/staff/invitations/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn staff_are_the_owners_business_only(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Owner One").await;
    let other = app.active_seller(&admin, "Owner Two").await;
    let member = staff_member(&app, &owner, "admin").await;
    let inv = invite(&app, &owner, "pending@example.test", "analyst").await;

    // Another shop's owner finds nothing of this shop's staff.
    let theirs = app.get_ok("/api/v1/seller/staff", Some(&other.token)).await;
    assert_eq!(theirs["members"].as_array().map(Vec::len), Some(0));
    assert_eq!(theirs["invitations"].as_array().map(Vec::len), Some(0));
    for (method, path, body) in [
        (
            reqwest::Method::PUT,
            format!("/api/v1/seller/staff/{}", member.user_id),
            Some(json!({"role": "analyst"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/seller/staff/{}", member.user_id),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!(
                "/api/v1/seller/staff/invitations/{}",
                inv["id"].as_str().expect("id")
            ),
            None,
        ),
    ] {
        let (status, problem) = app
            .request(method, &path, Some(&other.token), body.as_ref())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
    }

    // Even a staff "admin" cannot manage staff: an owner-only area.
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/seller/staff".to_string()),
        (reqwest::Method::GET, "/api/v1/seller/roles".to_string()),
    ] {
        assert_eq!(
            status_of(&app, method, &path, &member, None).await,
            StatusCode::FORBIDDEN
        );
    }
    let (status, _) = app
        .post(
            "/api/v1/seller/staff/invitations",
            Some(&member.token),
            json!({"email": "friend@example.test", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Buyers and anonymous callers: not their business at all.
    let buyer = app.buyer().await;
    assert_eq!(
        status_of(
            &app,
            reqwest::Method::GET,
            "/api/v1/seller/staff",
            &buyer,
            None
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/api/v1/seller/staff", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
