//! Passkeys through the API with the software authenticator of `support_passkey`: registering,
//! listing, renaming and removing them; signing in without a password; a passkey as the second
//! factor after a password; step-up with a passkey; platform admins needing one; and the
//! refusals: replayed and forged assertions, wrong origin or RP id, a challenge answered twice,
//! an expired ceremony, another account's passkey, a cloned authenticator's counter. Also the
//! pages of accounts whose second factor is a passkey: "Confirm it is you" with a passkey, the
//! security page's forms without a code field, and the 8-character password minimum.

use crate::on_both_databases;
use crate::support::{Actor, PAGE_CSRF, PASSWORD, TestApp};
use crate::support_passkey::{
    Authenticator, b64, passkey_sign_in, register_passkey, sign_in_challenge,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_databases!(
    register_list_rename_and_remove,
    passwordless_sign_in,
    passkey_as_the_second_factor_after_the_password,
    assertions_that_must_be_refused,
    registrations_that_must_be_refused,
    step_up_with_a_passkey,
    password_change_with_only_a_passkey,
    admins_need_a_passkey,
    pages_sign_in_with_a_passkey,
    confirm_page_offers_what_the_account_has,
    security_forms_for_an_account_with_only_a_passkey,
    eight_characters_suffice_with_a_passkey,
);

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    app.get_ok("/api/v1/me/passkeys", Some(token)).await["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.request(reqwest::Method::PATCH, path, Some(token), Some(&body))
        .await
}

async fn delete(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.request(reqwest::Method::DELETE, path, Some(token), Some(&body))
        .await
}

async fn register_list_rename_and_remove(app: TestApp) {
    let ann = app.buyer().await;
    let bob = app.buyer().await;
    assert!(list(&app, &ann.token).await.is_empty());
    let mut auth = Authenticator::for_app(&app);
    let key = register_passkey(&app, &ann, &mut auth).await;
    assert_eq!(key["name"], "Test key");
    assert_eq!(key["last_used_at"], Value::Null);
    let id = key["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("pky_"), "{id}");

    let items = list(&app, &ann.token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(
        list(&app, &bob.token).await.is_empty(),
        "Bob sees none of Ann's"
    );

    // A second passkey on another authenticator; the same authenticator is excluded.
    let mut phone = Authenticator::for_app(&app);
    let second = register_passkey(&app, &ann, &mut phone).await;
    assert_eq!(list(&app, &ann.token).await.len(), 2);
    let started = app
        .post_ok(
            "/api/v1/me/passkeys/registrations",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let excluded = started["public_key"]["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials")
        .len();
    assert_eq!(excluded, 2, "both registered passkeys are excluded");
    assert_eq!(
        started["public_key"]["authenticatorSelection"]["residentKey"], "required",
        "passkeys are discoverable"
    );
    assert_eq!(
        started["public_key"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(started["public_key"]["rp"]["id"], "localhost");

    // Rename: trimmed, 1 to 60 characters; Bob cannot rename Ann's.
    let path = format!("/api/v1/me/passkeys/{id}");
    let (status, _) = patch(&app, &path, &ann.token, json!({"name": "  Work laptop "})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let renamed = list(&app, &ann.token).await;
    let renamed = renamed
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed");
    assert_eq!(renamed["name"], "Work laptop");
    for bad in ["", "   ", &"x".repeat(61), "tab\there"] {
        let (status, v) = patch(&app, &path, &ann.token, json!({"name": bad})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {v}");
        assert_eq!(v["errors"][0]["field"], "name");
    }
    let (status, v) = patch(&app, &path, &bob.token, json!({"name": "Mine now"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, _) = delete(&app, &path, &bob.token, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "Bob cannot remove Ann's");

    // Remove one; the other still signs in.
    let (status, v) = delete(&app, &path, &ann.token, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let items = list(&app, &ann.token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], second["id"]);
    let (status, v) = passkey_sign_in(&app, &mut auth).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a removed passkey no longer signs in: {v}"
    );
    let (status, v) = passkey_sign_in(&app, &mut phone).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

async fn passwordless_sign_in(app: TestApp) {
    let ann = app.buyer().await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    let (status, v) = passkey_sign_in(&app, &mut auth).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["user_id"], ann.user_id.as_str());
    let token = v["token"].as_str().expect("token");
    let me = app.get_ok("/api/v1/me", Some(token)).await;
    assert_eq!(me["email"], ann.email.as_str());
    let items = list(&app, token).await;
    assert!(
        items[0]["last_used_at"].is_string(),
        "the list shows when it was used: {items:?}"
    );
    // The sign-in history has the success.
    let history = app.get_ok("/api/v1/me/sign-ins", Some(token)).await;
    assert_eq!(history["items"][0]["outcome"], "success");
    // Each sign-in moves the counter on: a second one works too.
    let (status, v) = passkey_sign_in(&app, &mut auth).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

async fn passkey_as_the_second_factor_after_the_password(app: TestApp) {
    let ann = app.buyer().await;
    let bob = app.buyer().await;
    let mut ann_key = Authenticator::for_app(&app);
    let mut bob_key = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut ann_key).await;
    register_passkey(&app, &bob, &mut bob_key).await;

    // With a passkey, the password alone is not enough.
    let (status, v) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["type"], "/docs/problems#second-factor-required");
    assert!(v["detail"].as_str().expect("detail").contains("passkey"));

    // Password and an assertion of Ann's passkey: a token.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let credential = ann_key.assert(&options);
    let (status, v) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": PASSWORD, "passkey": {"ceremony_id": ceremony, "credential": credential}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["user_id"], ann.user_id.as_str());

    // Ann's password with Bob's passkey: refused like a wrong password.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let credential = bob_key.assert(&options);
    let (status, v) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": PASSWORD, "passkey": {"ceremony_id": ceremony, "credential": credential}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["message"], "the email or password is wrong");

    // A wrong password with Ann's own passkey: refused the same.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let credential = ann_key.assert(&options);
    let (status, v) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": "not the password at all", "passkey": {"ceremony_id": ceremony, "credential": credential}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Both failures count in the sign-in history.
    let token = passkey_sign_in(&app, &mut ann_key).await.1["token"]
        .as_str()
        .expect("token")
        .to_string();
    let history = app.get_ok("/api/v1/me/sign-ins", Some(&token)).await;
    let outcomes: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "wrong_password").count(),
        2,
        "{outcomes:?}"
    );
}

/// Answers a sign-in ceremony with `credential`; the status.
async fn answer(app: &TestApp, ceremony: &str, credential: &Value) -> (StatusCode, Value) {
    app.post(
        "/api/v1/auth/passkey/tokens",
        None,
        json!({"ceremony_id": ceremony, "credential": credential}),
    )
    .await
}

async fn assertions_that_must_be_refused(app: TestApp) {
    let ann = app.buyer().await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    let refused = |what: &str, (status, v): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_eq!(v["errors"][0]["field"], "credential", "{what}: {v}");
    };

    // A replayed assertion: the challenge was used up by the first answer.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let credential = auth.assert(&options);
    assert_eq!(
        answer(&app, &ceremony, &credential).await.0,
        StatusCode::CREATED
    );
    refused("replay", answer(&app, &ceremony, &credential).await);
    // The same assertion against a fresh challenge: it signed another one.
    let (other, _) = sign_in_challenge(&app).await;
    refused(
        "replay on a new challenge",
        answer(&app, &other, &credential).await,
    );

    // A challenge answered twice by fresh assertions: only the first counts.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let first = auth.assert(&options);
    let second = auth.assert(&options);
    assert_eq!(answer(&app, &ceremony, &first).await.0, StatusCode::CREATED);
    refused(
        "challenge used twice",
        answer(&app, &ceremony, &second).await,
    );

    // A forged signature.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let mut forged = auth.assert(&options);
    let mut sig =
        crate::support_passkey::unb64(forged["response"]["signature"].as_str().expect("sig"));
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    forged["response"]["signature"] = json!(b64(&sig));
    refused("forged signature", answer(&app, &ceremony, &forged).await);
    // A wrong answer burns the challenge: the genuine one is refused after it.
    let genuine = auth.assert(&options);
    refused("burnt challenge", answer(&app, &ceremony, &genuine).await);

    // Another origin (a phishing site relaying the challenge) and another RP id.
    let mut phisher = auth.clone();
    phisher.origin = format!(
        "http://localhost.evil.example:{}",
        app.base.rsplit(':').next().expect("port")
    );
    let (ceremony, options) = sign_in_challenge(&app).await;
    refused(
        "wrong origin",
        answer(&app, &ceremony, &phisher.assert(&options)).await,
    );
    let mut other_port = auth.clone();
    other_port.origin = "http://localhost:1".into();
    let (ceremony, options) = sign_in_challenge(&app).await;
    refused(
        "other port",
        answer(&app, &ceremony, &other_port.assert(&options)).await,
    );
    let mut wrong_rp = auth.clone();
    wrong_rp.rp_id = "evil.example".into();
    // The cloned credential is bound to localhost; sign for evil.example with it anyway.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let challenge = options["challenge"]
        .as_str()
        .expect("challenge")
        .to_string();
    refused(
        "wrong RP id",
        answer(&app, &ceremony, &wrong_rp.assert_with(0, &challenge)).await,
    );

    // Without user verification.
    let mut no_uv = auth.clone();
    no_uv.user_verified = false;
    let (ceremony, options) = sign_in_challenge(&app).await;
    refused(
        "no user verification",
        answer(&app, &ceremony, &no_uv.assert(&options)).await,
    );

    // An expired ceremony.
    let (ceremony, options) = sign_in_challenge(&app).await;
    let credential = auth.assert(&options);
    app.clock.advance_ms(5 * 60 * 1000 + 1);
    refused("expired", answer(&app, &ceremony, &credential).await);

    // A cloned authenticator whose counter is behind the original's.
    let mut clone = Authenticator::for_app(&app);
    clone.add_credential(auth.clone_credential(0));
    clone.set_counter(0, 1);
    let (ceremony, options) = sign_in_challenge(&app).await;
    refused(
        "counter went back",
        answer(&app, &ceremony, &clone.assert(&options)).await,
    );

    // An unknown credential (never registered here).
    let mut stranger = Authenticator::for_app(&app);
    let throwaway = app.buyer().await;
    register_passkey(&app, &throwaway, &mut stranger).await;
    let (status, _) = delete(
        &app,
        &format!(
            "/api/v1/me/passkeys/{}",
            list(&app, &throwaway.token).await[0]["id"]
                .as_str()
                .expect("id")
        ),
        &throwaway.token,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (ceremony, options) = sign_in_challenge(&app).await;
    refused(
        "unregistered passkey",
        answer(&app, &ceremony, &stranger.assert(&options)).await,
    );

    // After all that, the genuine authenticator still signs in.
    let (status, v) = passkey_sign_in(&app, &mut auth).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

async fn registrations_that_must_be_refused(app: TestApp) {
    let ann = app.buyer().await;
    let bob = app.buyer().await;
    let start = |token: String| {
        let app = &app;
        async move {
            app.post_ok(
                "/api/v1/me/passkeys/registrations",
                Some(&token),
                json!({}),
                StatusCode::CREATED,
            )
            .await
        }
    };
    let finish = |token: String, ceremony: Value, credential: Value| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/me/passkeys",
                Some(&token),
                json!({"ceremony_id": ceremony, "credential": credential}),
            )
            .await
        }
    };

    // Bob cannot finish a registration Ann started.
    let started = start(ann.token.clone()).await;
    let mut auth = Authenticator::for_app(&app);
    let credential = auth.register(&started["public_key"]);
    let (status, v) = finish(
        bob.token.clone(),
        started["ceremony_id"].clone(),
        credential.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // ...and the attempt burnt it for Ann too.
    let (status, _) = finish(
        ann.token.clone(),
        started["ceremony_id"].clone(),
        credential,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Claiming another account's credential id in the answer's `id` changes nothing: the
    // id attested in authenticatorData is what is stored, so this registers Bob's own key.
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    let started = start(bob.token.clone()).await;
    let mut bobs = Authenticator::for_app(&app);
    let mut credential = bobs.register(&started["public_key"]);
    credential["id"] = json!(auth.last_credential_id());
    let (status, v) = finish(
        bob.token.clone(),
        started["ceremony_id"].clone(),
        credential,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // A credential id that is already registered (a cloned authenticator) is refused.
    bobs.add_credential(auth.clone_credential(0));
    let started = start(bob.token.clone()).await;
    let index = bobs.credentials().len() - 1;
    let credential = bobs.reregister(index, &started["public_key"]);
    let (status, v) = finish(
        bob.token.clone(),
        started["ceremony_id"].clone(),
        credential,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(list(&app, &ann.token).await.len(), 1);
    assert_eq!(list(&app, &bob.token).await.len(), 1);

    // Wrong origin, wrong RP id, no user verification, expired.
    for case in ["origin", "rp_id", "uv", "expired"] {
        let started = start(ann.token.clone()).await;
        let mut auth = Authenticator::for_app(&app);
        match case {
            "origin" => auth.origin = "http://evil.example".into(),
            "rp_id" => auth.rp_id = "evil.example".into(),
            "uv" => auth.user_verified = false,
            _ => {}
        }
        let credential = auth.register(&started["public_key"]);
        if case == "expired" {
            app.clock.advance_ms(5 * 60 * 1000 + 1);
        }
        let (status, v) = finish(
            ann.token.clone(),
            started["ceremony_id"].clone(),
            credential,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {v}");
        assert_eq!(v["errors"][0]["field"], "credential", "{case}: {v}");
    }
    assert_eq!(
        list(&app, &ann.token).await.len(),
        1,
        "nothing more was registered"
    );
}

async fn step_up_with_a_passkey(app: TestApp) {
    let ann = app.buyer().await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    // The token's step-up window (from its sign-in) closes.
    app.clock.advance_ms(6 * 60 * 1000);
    let (status, v) = app
        .post(
            "/api/v1/me/passkeys/registrations",
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["type"], "/docs/problems#step-up-required");
    // With a second factor, the password no longer steps up.
    let (status, v) = app
        .post(
            "/api/v1/me/passkeys/registrations",
            Some(&ann.token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    // A passkey assertion steps up.
    let c = app
        .post_ok(
            "/api/v1/me/step-up/passkey/challenges",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let allowed = c["public_key"]["allowCredentials"]
        .as_array()
        .expect("allowed");
    assert_eq!(allowed.len(), 1, "Ann's passkey is named");
    let credential = auth.assert(&c["public_key"]);
    let (status, v) = app
        .post(
            "/api/v1/me/step-up/passkey",
            Some(&ann.token),
            json!({"ceremony_id": c["ceremony_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    app.post_ok(
        "/api/v1/me/passkeys/registrations",
        Some(&ann.token),
        json!({}),
        StatusCode::CREATED,
    )
    .await;

    // Bob cannot step up Ann's token with his passkey, nor answer Ann's step-up challenge.
    let bob = app.buyer().await;
    let mut bob_key = Authenticator::for_app(&app);
    register_passkey(&app, &bob, &mut bob_key).await;
    let c = app
        .post_ok(
            "/api/v1/me/step-up/passkey/challenges",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let challenge = c["public_key"]["challenge"].as_str().expect("challenge");
    let credential = bob_key.assert_with(0, challenge);
    let (status, v) = app
        .post(
            "/api/v1/me/step-up/passkey",
            Some(&ann.token),
            json!({"ceremony_id": c["ceremony_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

/// An account whose only second factor is a passkey changes its password with the current
/// password and a fresh passkey step-up (it has no code to send).
async fn password_change_with_only_a_passkey(app: TestApp) {
    let ann = app.buyer().await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    let change = |new: &str| json!({"current_password": PASSWORD, "new_password": format!("{PASSWORD} {new}")});
    app.clock.advance_ms(6 * 60 * 1000);
    let (status, v) = app
        .post("/api/v1/me/password", Some(&ann.token), change("one"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["type"], "/docs/problems#second-factor-required");
    let c = app
        .post_ok(
            "/api/v1/me/step-up/passkey/challenges",
            Some(&ann.token),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    let credential = auth.assert(&c["public_key"]);
    let (status, v) = app
        .post(
            "/api/v1/me/step-up/passkey",
            Some(&ann.token),
            json!({"ceremony_id": c["ceremony_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let (status, v) = app
        .post("/api/v1/me/password", Some(&ann.token), change("two"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

async fn admins_need_a_passkey(app: TestApp) {
    let admin = app.admin_without_passkey().await;
    let seller = app.applied_seller("Kite & Loom").await;
    let shop = seller.shop_id.clone().expect("shop");
    // Every admin operation answers passkey-required until the admin has one.
    let (status, v) = app
        .get("/api/v1/admin/shops?status=submitted", Some(&admin.token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["type"], "/docs/problems#passkey-required");
    assert_eq!(v["title"], "Passkey required");
    let (status, v) = app
        .post(
            &format!("/api/v1/admin/shops/{shop}/approve"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["type"], "/docs/problems#passkey-required");
    let (status, v) = app
        .post(
            "/api/v1/admin/sign-in-locks/unlock",
            Some(&admin.token),
            json!({"email": "someone@example.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["type"], "/docs/problems#passkey-required");
    // The admin pages send the admin to add one.
    let cookies = app.page_cookies(&admin).await;
    let res = app
        .http
        .get(app.url("/admin"))
        .header("cookie", &cookies)
        .send()
        .await
        .expect("admin page");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/account/security#passkeys")
    );
    let page = app
        .http
        .get(app.url("/account/security"))
        .header("cookie", &cookies)
        .send()
        .await
        .expect("security page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("id=\"passkey-required\""),
        "the page says why"
    );

    // With a passkey, they work.
    let mut auth = Authenticator::for_app(&app);
    let key = register_passkey(&app, &admin, &mut auth).await;
    let v = app
        .get_ok("/api/v1/admin/shops?status=submitted", Some(&admin.token))
        .await;
    assert_eq!(v["items"].as_array().expect("items").len(), 1);
    app.post_ok(
        &format!("/api/v1/admin/shops/{shop}/approve"),
        Some(&admin.token),
        json!({}),
        StatusCode::OK,
    )
    .await;
    // An admin keeps at least one passkey.
    let (status, v) = delete(
        &app,
        &format!("/api/v1/me/passkeys/{}", key["id"].as_str().expect("id")),
        &admin.token,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(list(&app, &admin.token).await.len(), 1);
    // Signing in with the password now also needs the passkey.
    let (status, v) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": admin.email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // The helper's admins come with a passkey.
    let ready = app.admin().await;
    app.get_ok("/api/v1/admin/shops?status=submitted", Some(&ready.token))
        .await;
}

/// Page sign-in with a passkey, as the browser's script does it: options by a form post,
/// then the answer in a form.
async fn pages_sign_in_with_a_passkey(app: TestApp) {
    let ann = app.buyer().await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    let csrf = crate::support::PAGE_CSRF;
    let cookie = format!("__Host-clipcart_csrf={csrf}");
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        let app = &app;
        let cookie = cookie.clone();
        async move {
            let mut form = form;
            form.push(("csrf", csrf.to_string()));
            app.http
                .post(app.url(path))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("form post")
        }
    };
    let session_of = |res: &reqwest::Response| {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("__Host-clipcart_session="))
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    };

    // Passwordless.
    let options: Value = post("/signin/passkey/options", vec![])
        .await
        .json()
        .await
        .expect("options JSON");
    let credential = auth.assert(&options["public_key"]);
    let res = post(
        "/signin/passkey",
        vec![
            (
                "ceremony",
                options["ceremony_id"].as_str().expect("id").to_string(),
            ),
            ("credential", credential.to_string()),
            ("next", "/account/security".into()),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/account/security")
    );
    assert!(session_of(&res).is_some(), "signed in");

    // A refused answer shows the sign-in page with the reason, no session.
    let options: Value = post("/signin/passkey/options", vec![])
        .await
        .json()
        .await
        .expect("options JSON");
    let mut wrong = auth.clone();
    wrong.origin = "http://evil.example".into();
    let res = post(
        "/signin/passkey",
        vec![
            (
                "ceremony",
                options["ceremony_id"].as_str().expect("id").to_string(),
            ),
            (
                "credential",
                wrong.assert(&options["public_key"]).to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(session_of(&res).is_none());
    let html = res.text().await.expect("html");
    assert!(
        html.contains("id=\"signin-error\"") && html.contains("Passkey sign-in failed"),
        "{html}"
    );

    // The second step after the password: the code page offers the passkey.
    let res = post(
        "/signin",
        vec![("email", ann.email.clone()), ("password", PASSWORD.into())],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "the second step is asked for");
    let html = res.text().await.expect("html");
    assert!(html.contains("id=\"use-passkey\""), "offers the passkey");
    assert!(!html.contains("id=\"code\""), "no TOTP: no code field");
    let pending = html
        .split("name=\"pending\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("pending id")
        .to_string();
    let options: Value = post(
        "/signin/passkey/second-factor/options",
        vec![("pending", pending.clone())],
    )
    .await
    .json()
    .await
    .expect("options JSON");
    assert_eq!(
        options["public_key"]["allowCredentials"]
            .as_array()
            .expect("allowed")
            .len(),
        1
    );
    let res = post(
        "/signin/passkey/second-factor",
        vec![
            ("pending", pending),
            (
                "ceremony",
                options["ceremony_id"].as_str().expect("id").to_string(),
            ),
            (
                "credential",
                auth.assert(&options["public_key"]).to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        session_of(&res).is_some(),
        "signed in after the second step"
    );
}

// ---- Pages for accounts whose second factor is a passkey ----

const AFTER_THE_WINDOW_MS: i64 = clipcart_server::identity::step_up::STEP_UP_WINDOW_MS + 1;

/// A page form post with `cookies` (the session and the CSRF cookie) and the CSRF field.
async fn page_post(
    app: &TestApp,
    cookies: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf", PAGE_CSRF)];
    form.extend_from_slice(fields);
    app.http
        .post(app.url(path))
        .header("cookie", cookies)
        .form(&form)
        .send()
        .await
        .expect("form post")
}

async fn page_get(app: &TestApp, cookies: &str, path: &str) -> (StatusCode, String) {
    let res = app
        .http
        .get(app.url(path))
        .header("cookie", cookies)
        .send()
        .await
        .expect("page");
    (res.status(), res.text().await.expect("html"))
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The options of a page step-up with a passkey, as `passkey.js` asks for them.
async fn page_step_up_options(app: &TestApp, cookies: &str) -> Value {
    page_post(
        app,
        cookies,
        "/account/security/step-up/passkey/options",
        &[],
    )
    .await
    .json()
    .await
    .expect("options JSON")
}

/// Answers page step-up options with `credential`, from the confirm page (`next`).
async fn page_step_up_answer(
    app: &TestApp,
    cookies: &str,
    options: &Value,
    credential: &Value,
    next: &str,
) -> reqwest::Response {
    page_post(
        app,
        cookies,
        "/account/security/step-up/passkey",
        &[
            ("ceremony", options["ceremony_id"].as_str().expect("id")),
            ("credential", &credential.to_string()),
            ("next", next),
        ],
    )
    .await
}

/// `cookies` with the session cookie a step-up rotated to (the old id ended).
fn rotated(cookies: &str, res: &reqwest::Response) -> String {
    let new = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-clipcart_session="))
        .and_then(|c| c.split(';').next())
        .expect("a step-up gives the session a new id");
    cookies
        .split("; ")
        .map(|c| {
            if c.starts_with("__Host-clipcart_session=") {
                format!("__Host-clipcart_session={new}")
            } else {
                c.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A buyer with a page session (signed in with the password before the passkey existed) and
/// a passkey registered through the API.
async fn buyer_with_passkey(app: &TestApp) -> (Actor, String, Authenticator) {
    let ann = app.buyer().await;
    let cookies = app.page_cookies(&ann).await;
    let mut auth = Authenticator::for_app(app);
    register_passkey(app, &ann, &mut auth).await;
    (ann, cookies, auth)
}

/// A buyer with TOTP and a passkey (both through the API), and a page session signed in with
/// the passkey (turning TOTP on ends the account's other sessions).
async fn buyer_with_totp_and_passkey(app: &TestApp) -> String {
    let bob = app.buyer().await;
    enrol_totp(app, &bob).await;
    let mut auth = Authenticator::for_app(app);
    register_passkey(app, &bob, &mut auth).await;
    let csrf = format!("__Host-clipcart_csrf={PAGE_CSRF}");
    let options: Value = page_post(app, &csrf, "/signin/passkey/options", &[])
        .await
        .json()
        .await
        .expect("options JSON");
    let credential = auth.assert(&options["public_key"]);
    let res = page_post(
        app,
        &csrf,
        "/signin/passkey",
        &[
            ("ceremony", options["ceremony_id"].as_str().expect("id")),
            ("credential", &credential.to_string()),
        ],
    )
    .await;
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
    format!("{csrf}; __Host-clipcart_session={session}")
}

/// Turns TOTP on through the API; answers the secret.
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
    secret
}

async fn confirm_page_offers_what_the_account_has(app: TestApp) {
    // Without a second factor: the password, and no passkey.
    let cy = app.buyer().await;
    let cy_cookies = app.page_cookies(&cy).await;
    let (status, html) = page_get(&app, &cy_cookies, "/account/confirm?next=/seller/staff").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"current_password\""), "{html}");
    assert!(!html.contains("name=\"otp\""));
    assert!(!html.contains("id=\"confirm-with-passkey\""));

    // Only a passkey: the passkey, never the password.
    let (ann, mut cookies, mut auth) = buyer_with_passkey(&app).await;
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    let (status, html) = page_get(
        &app,
        &cookies,
        "/account/confirm?next=/account/security%23email",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"confirm-with-passkey\""), "{html}");
    assert!(
        html.contains("action=\"/account/security/step-up/passkey\" data-passkey-get=\"/account/security/step-up/passkey/options\""),
        "{html}"
    );
    assert!(
        html.contains("name=\"next\" value=\"/account/security#email\""),
        "{html}"
    );
    assert!(!html.contains("name=\"current_password\""), "{html}");
    assert!(!html.contains("name=\"otp\""), "{html}");
    // A password posted anyway does not confirm it.
    let res = page_post(
        &app,
        &cookies,
        "/account/confirm",
        &[
            ("next", "/account/security#email"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(html.contains("Confirm with one of your passkeys"), "{html}");
    let (_, html) = page_get(&app, &cookies, "/account/security").await;
    assert!(
        html.contains("id=\"email-confirm-passkey\""),
        "not confirmed"
    );

    // Refused answers show the confirm page again, with `next` kept, and confirm nothing.
    let mut phisher = auth.clone();
    phisher.origin = "http://evil.example".into();
    let options = page_step_up_options(&app, &cookies).await;
    let res = page_step_up_answer(
        &app,
        &cookies,
        &options,
        &phisher.assert(&options["public_key"]),
        "/account/security#email",
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(html.contains("That passkey was not accepted"), "{html}");
    assert!(html.contains("id=\"confirm-with-passkey\""), "{html}");
    assert!(
        html.contains("name=\"next\" value=\"/account/security#email\""),
        "{html}"
    );
    let bob = app.buyer().await;
    let mut bob_key = Authenticator::for_app(&app);
    register_passkey(&app, &bob, &mut bob_key).await;
    let options = page_step_up_options(&app, &cookies).await;
    let challenge = options["public_key"]["challenge"]
        .as_str()
        .expect("challenge");
    let res = page_step_up_answer(
        &app,
        &cookies,
        &options,
        &bob_key.assert_with(0, challenge),
        "/account/security#email",
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "another account's passkey"
    );
    let (_, html) = page_get(&app, &cookies, "/account/security").await;
    assert!(
        html.contains("id=\"email-confirm-passkey\""),
        "still not confirmed"
    );

    // The passkey confirms it, and the page goes back to `next`.
    let options = page_step_up_options(&app, &cookies).await;
    let credential = auth.assert(&options["public_key"]);
    let res = page_step_up_answer(
        &app,
        &cookies,
        &options,
        &credential,
        "/account/security#email",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/account/security#email");
    let before = cookies.clone();
    cookies = rotated(&cookies, &res);
    let (status, _) = page_get(&app, &before, "/account/security").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the old session id ended");
    let (_, html) = page_get(&app, &cookies, "/account/security").await;
    assert!(!html.contains("id=\"email-confirm-passkey\""), "confirmed");
    // The same answer again: refused (the challenge was used).
    let res = page_step_up_answer(
        &app,
        &cookies,
        &options,
        &credential,
        "/account/security#email",
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "a replay");

    // `next` is a local path only.
    for (next, lands) in [
        ("https://evil.example/steal", "/"),
        ("//evil.example", "/"),
        ("/admin", "/admin"),
    ] {
        let options = page_step_up_options(&app, &cookies).await;
        let credential = auth.assert(&options["public_key"]);
        let res = page_step_up_answer(&app, &cookies, &options, &credential, next).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(location(&res), lands, "{next}");
        cookies = rotated(&cookies, &res);
    }
    // The API token of the same account was not stepped up by the page.
    let (status, v) = app
        .post(
            "/api/v1/me/passkeys/registrations",
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    // TOTP and a passkey: both are offered, the password is not.
    let dee_cookies = buyer_with_totp_and_passkey(&app).await;
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    let (_, html) = page_get(&app, &dee_cookies, "/account/confirm?next=/admin").await;
    assert!(html.contains("name=\"otp\""), "{html}");
    assert!(html.contains("id=\"confirm-with-passkey\""), "{html}");
    assert!(!html.contains("name=\"current_password\""), "{html}");
}

async fn security_forms_for_an_account_with_only_a_passkey(app: TestApp) {
    let (ann, mut cookies, mut auth) = buyer_with_passkey(&app).await;
    let proof_fields = [
        "id=\"email-otp\"",
        "id=\"email-current-password\"",
        "id=\"anti-phishing-otp\"",
        "id=\"anti-phishing-current-password\"",
        "id=\"password-otp\"",
    ];
    // Within the step-up window of the sign-in: no proof field and no link at all.
    let (status, html) = page_get(&app, &cookies, "/account/security").await;
    assert_eq!(status, StatusCode::OK);
    for f in proof_fields {
        assert!(!html.contains(f), "{f} within the window");
    }
    assert!(!html.contains("confirm-passkey\""), "{html}");
    assert!(
        html.contains("At least 8 characters, as two-factor authentication"),
        "the passkey counts for the password minimum"
    );
    let res = page_post(
        &app,
        &cookies,
        "/account/security/anti-phishing-code",
        &[("anti_phishing_code", "heron")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .expect("html")
            .contains("id=\"anti-phishing-current\">heron<")
    );

    // Outside it: a link to confirm with the passkey under each form, still no field to fill.
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    let (_, html) = page_get(&app, &cookies, "/account/security").await;
    for f in proof_fields {
        assert!(!html.contains(f), "{f}: a passkey cannot be typed in");
    }
    for section in ["email", "anti-phishing", "password"] {
        let link = format!(
            "href=\"/account/confirm?next=/account/security%23{section}\" id=\"{section}-confirm-passkey\""
        );
        assert!(html.contains(&link), "{section}: {html}");
    }
    // Sent anyway (a password does not stand in for the passkey): what was typed is kept.
    let res = page_post(
        &app,
        &cookies,
        "/account/security/email",
        &[
            ("new_email", "ann.new@example.test"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(
        html.contains("id=\"email-change-error\">Confirm it is you with a passkey first"),
        "{html}"
    );
    assert!(
        html.contains("value=\"ann.new@example.test\""),
        "kept: {html}"
    );
    let res = page_post(
        &app,
        &cookies,
        "/account/security/anti-phishing-code",
        &[("anti_phishing_code", "kingfisher")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(html.contains("id=\"anti-phishing-error\""), "{html}");
    assert!(html.contains("value=\"kingfisher\""), "kept: {html}");
    const EIGHT: &str = "Qv7#mZ2k";
    let res = page_post(
        &app,
        &cookies,
        "/account/security/password",
        &[("current_password", PASSWORD), ("new_password", EIGHT)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(
        html.contains("id=\"password-form-error\">Confirm it is you with a passkey first"),
        "{html}"
    );
    assert!(html.contains("id=\"password-confirm-passkey\""), "{html}");

    // Confirmed with the passkey (as the confirm page does it): the forms work without more.
    let options = page_step_up_options(&app, &cookies).await;
    let credential = auth.assert(&options["public_key"]);
    let res = page_step_up_answer(
        &app,
        &cookies,
        &options,
        &credential,
        "/account/security#password",
    )
    .await;
    assert_eq!(location(&res), "/account/security#password");
    cookies = rotated(&cookies, &res);
    let (_, html) = page_get(&app, &cookies, "/account/security").await;
    for f in proof_fields {
        assert!(!html.contains(f), "{f} after the step-up");
    }
    assert!(!html.contains("confirm-passkey\""));
    let res = page_post(
        &app,
        &cookies,
        "/account/security/password",
        &[("current_password", PASSWORD), ("new_password", EIGHT)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .expect("html")
            .contains("id=\"password-changed\"")
    );
    let res = page_post(
        &app,
        &cookies,
        "/account/security/email",
        &[("new_email", "ann.new@example.test")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // The password sign-in still needs the passkey.
    let (status, _) = app
        .post(
            "/api/v1/auth/tokens",
            None,
            json!({"email": ann.email, "password": EIGHT}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // With TOTP as well: the code field, and the passkey link beside it.
    let bob_cookies = buyer_with_totp_and_passkey(&app).await;
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    let (_, html) = page_get(&app, &bob_cookies, "/account/security").await;
    for f in [
        "id=\"email-otp\"",
        "id=\"anti-phishing-otp\"",
        "id=\"password-otp\"",
        "id=\"email-confirm-passkey\"",
        "id=\"password-confirm-passkey\"",
    ] {
        assert!(html.contains(f), "{f}: {html}");
    }
    assert!(!html.contains("id=\"email-current-password\""));
    // Without any second factor: the password, and no passkey link.
    let cy = app.buyer().await;
    let cy_cookies = app.page_cookies(&cy).await;
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    let (_, html) = page_get(&app, &cy_cookies, "/account/security").await;
    assert!(html.contains("id=\"email-current-password\""));
    assert!(!html.contains("confirm-passkey\""));
    assert!(html.contains("At least 15 characters"));
}

async fn eight_characters_suffice_with_a_passkey(app: TestApp) {
    const EIGHT: &str = "Qv7#mZ2k";
    // Without a second factor, 8 characters are refused.
    let cy = app.buyer().await;
    let (status, v) = app
        .post(
            "/api/v1/me/password",
            Some(&cy.token),
            json!({"current_password": PASSWORD, "new_password": EIGHT}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "new_password");
    // With only a passkey (within the window of the token's sign-in), they suffice.
    let ann = app.buyer().await;
    let mut auth = Authenticator::for_app(&app);
    register_passkey(&app, &ann, &mut auth).await;
    let (status, v) = app
        .post(
            "/api/v1/me/password",
            Some(&ann.token),
            json!({"current_password": PASSWORD, "new_password": EIGHT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Seven do not.
    let token = passkey_sign_in(&app, &mut auth).await.1["token"]
        .as_str()
        .expect("token")
        .to_string();
    let (status, v) = app
        .post(
            "/api/v1/me/password",
            Some(&token),
            json!({"current_password": EIGHT, "new_password": "Qv7#mZ2"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "new_password");
}
