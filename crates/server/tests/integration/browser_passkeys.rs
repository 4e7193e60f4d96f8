//! Passkeys walked through the web pages in a headless Chromium with a virtual authenticator
//! (WebDriver's WebAuthn extension: CTAP2, internal transport, resident keys, user verification
//! always succeeding): a buyer adds a passkey on the security page, signs out, signs in without
//! a password, then signs in with the password and uses the passkey as the second step; an
//! admin past the step-up window confirms with the passkey to approve a shop; a buyer whose
//! only second factor is a passkey changes their address after "Confirm with a passkey first"
//! and resets their password with the passkey. Screenshots go to
//! `target/screenshots/sec-passkeys-NN-name.png` and `sec-passkey-admin-…`, `sec-passkey-only-…`.
//!
//! The browser opens the app at its public URL, `http://localhost:<port>`: the WebAuthn relying
//! party must be a domain, and localhost is a secure context over plain HTTP.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is skipped on a laptop
//! and fails when `CI=true`. SQLite only: the pages are the same on both databases.

use crate::browser_security::{Shots, sign_in_with_password, sign_out, tools};
use crate::support::{Backend, TestApp};
use crate::webdriver::{Browser, xpath};

/// Past the step-up window a sign-in or a confirmation opens.
const AFTER_THE_WINDOW_MS: i64 = 6 * 60 * 1000;

/// Adds a passkey named `name` on the security page (inside the step-up window).
async fn add_passkey_on_the_page(b: &Browser, name: &str) {
    b.goto("/account/security#passkeys").await;
    b.fill("#passkey-name", name).await;
    b.click("#add-passkey").await;
    b.wait_for_text("#passkey-list tbody tr", name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkey_registration_and_passwordless_sign_in_through_the_pages() {
    let Some(tools) = tools() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ann = app.buyer().await;
    let b = Browser::launch(&tools, &app.state.config.public_url).await;
    let authenticator = b.add_virtual_authenticator().await;
    let mut shots = Shots::new("passkeys");

    // Signed in with the password; the security page has no passkey yet.
    sign_in_with_password(&b, &ann.email).await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    b.goto("/account/security#passkeys").await;
    b.wait_for_text("#passkeys-status", "no passkeys").await;
    // Just signed in: inside the step-up window, so no password is asked for.
    assert!(b.find("#passkey-password").await.is_none());
    b.fill("#passkey-name", "Chromium virtual key").await;
    shots.take(&b, "security-no-passkey").await;

    // Add one: the script runs navigator.credentials.create() against the virtual authenticator.
    b.click("#add-passkey").await;
    let row = b
        .wait_for_text("#passkey-list tbody tr", "Chromium virtual key")
        .await;
    assert!(row.contains("never"), "not used yet: {row}");
    assert!(b.find("#passkey-error").await.is_none());
    let creds = b.virtual_credentials(&authenticator).await;
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(
        creds[0]["isResidentCredential"], true,
        "a discoverable passkey"
    );
    assert_eq!(creds[0]["rpId"], "localhost");
    shots.take(&b, "security-passkey-added").await;

    // Passwordless: sign out, then "Sign in with a passkey" without typing anything.
    sign_out(&b).await;
    b.goto("/signin").await;
    b.wait_for("#passkey-signin-button").await;
    shots.take(&b, "signin-with-passkey-button").await;
    b.click("#passkey-signin-button").await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    b.goto("/account/security#passkeys").await;
    let row = b
        .wait_for_text("#passkey-list tbody tr", "Chromium virtual key")
        .await;
    assert!(!row.contains("never"), "the sign-in used it: {row}");
    shots.take(&b, "signed-in-with-passkey").await;

    // With a passkey, the password alone is not enough: the second step offers the passkey.
    sign_out(&b).await;
    sign_in_with_password(&b, &ann.email).await;
    b.wait_for("#use-passkey").await;
    assert!(
        b.find("#signout").await.is_none(),
        "not signed in before the second step"
    );
    assert!(
        b.find("#code").await.is_none(),
        "no authenticator app: no code field"
    );
    shots.take(&b, "signin-second-step-passkey").await;
    b.click("#use-passkey").await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    let creds = b.virtual_credentials(&authenticator).await;
    assert!(
        creds[0]["signCount"].as_u64().unwrap_or(0) >= 2,
        "two assertions: {creds:?}"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_confirms_with_a_passkey_before_approving_a_shop() {
    let Some(tools) = tools() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin_without_passkey().await;
    let seller = app.applied_seller("Kite & Loom").await;
    let shop = seller.shop_id.clone().expect("shop");
    let b = Browser::launch(&tools, &app.state.config.public_url).await;
    let authenticator = b.add_virtual_authenticator().await;
    let mut shots = Shots::new("passkey-admin");

    // An admin without a passkey lands on the security page to add one.
    sign_in_with_password(&b, &admin.email).await;
    b.wait_for_path_where("/account/security", |p| p.starts_with("/account/security"))
        .await;
    b.wait_for("#passkey-required").await;
    add_passkey_on_the_page(&b, "Admin laptop").await;
    b.goto("/admin").await;
    let row = format!("#application-{shop}");
    b.wait_for(row.as_str()).await;
    shots.take(&b, "admin-queue").await;

    // Past the step-up window of the sign-in, approving asks to confirm it is them.
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    let approve = xpath(format!(
        "//tr[@id='application-{shop}']//button[contains(@class, 'approve')]"
    ));
    b.click(approve.clone()).await;
    let at = b.wait_for_path("/account/confirm").await;
    assert_eq!(at, "/account/confirm?next=/admin");
    b.wait_for("#confirm-with-passkey").await;
    assert!(
        b.find("#current_password").await.is_none(),
        "an account with a passkey is never asked for its password"
    );
    assert!(
        b.find("#otp").await.is_none(),
        "no authenticator app: no code field"
    );
    shots.take(&b, "confirm-with-passkey").await;

    // The passkey confirms it; back on the queue, approving works.
    b.click("#confirm-with-passkey").await;
    b.wait_for_path("/admin").await;
    b.wait_for(row.as_str()).await;
    shots.take(&b, "back-on-the-queue").await;
    b.click(approve).await;
    b.wait_for_path("/admin").await;
    b.wait_for("#queue-empty").await;
    shots.take(&b, "approved").await;
    let shop_now = app.get_ok("/api/v1/seller/shop", Some(&seller.token)).await;
    assert_eq!(shop_now["status"], "active", "{shop_now}");
    let creds = b.virtual_credentials(&authenticator).await;
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert!(
        creds[0]["signCount"].as_u64().unwrap_or(0) >= 1,
        "the confirmation used it: {creds:?}"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_with_only_a_passkey_confirms_with_it_and_resets_with_it() {
    let Some(tools) = tools() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ann = app.buyer().await;
    let b = Browser::launch(&tools, &app.state.config.public_url).await;
    b.add_virtual_authenticator().await;
    let mut shots = Shots::new("passkey-only");
    sign_in_with_password(&b, &ann.email).await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    add_passkey_on_the_page(&b, "Phone").await;

    // Past the window: no field to fill, a link to confirm with the passkey instead.
    app.clock.advance_ms(AFTER_THE_WINDOW_MS);
    // (A fragment alone would not load the page again.)
    b.goto("/account/security?reload=1#email").await;
    b.wait_for("#email-confirm-passkey").await;
    for field in [
        "#email-otp",
        "#email-current-password",
        "#anti-phishing-otp",
        "#anti-phishing-current-password",
        "#password-otp",
    ] {
        assert!(b.find(field).await.is_none(), "{field}");
    }
    assert!(b.find("#anti-phishing-confirm-passkey").await.is_some());
    assert!(b.find("#password-confirm-passkey").await.is_some());
    let hint = b.text("#new_password-hint").await;
    assert!(hint.contains("At least 8 characters"), "{hint}");
    shots.take(&b, "security-confirm-first").await;

    // Sent anyway: the form says so and keeps the address typed.
    let moved = format!("ann{}@example.test", app.unique());
    b.fill("#email-new", &moved).await;
    b.click("#change-email").await;
    b.wait_for_text("#email-change-error", "passkey first")
        .await;
    assert_eq!(b.value("#email-new").await, moved);
    shots.take(&b, "email-change-needs-passkey").await;

    // Confirm with the passkey, back to the email section, and the change goes through.
    b.click("#email-confirm-passkey").await;
    let at = b.wait_for_path("/account/confirm").await;
    assert_eq!(at, "/account/confirm?next=/account/security%23email");
    b.wait_for("#confirm-with-passkey").await;
    assert!(b.find("#current_password").await.is_none());
    shots.take(&b, "confirm-page").await;
    b.click("#confirm-with-passkey").await;
    b.wait_for_path_where("/account/security#email", |p| {
        p == "/account/security#email"
    })
    .await;
    b.wait_for("#email-new").await;
    assert!(b.find("#email-confirm-passkey").await.is_none());
    b.fill("#email-new", &moved).await;
    b.click("#change-email").await;
    b.wait_for_text("#email-notice", "We sent a link").await;
    shots.take(&b, "email-change-sent").await;

    // Forgotten password: the link alone is not enough, the passkey completes it.
    sign_out(&b).await;
    b.goto("/forgot-password").await;
    b.fill("#email", &ann.email).await;
    b.click("#forgot-submit").await;
    b.wait_for_text("h1", "Check your inbox").await;
    let token = crate::support_smtp::outbox_token(&app, &ann.email, "password_reset").await;
    let link = format!("/reset-password?token={token}");
    b.goto(&link).await;
    b.wait_for("#reset-with-passkey").await;
    assert!(b.find("#otp").await.is_none(), "no code field");
    assert!(
        b.find("#reset-submit").await.is_none(),
        "no way around the passkey"
    );
    b.fill("#new_password", "Qv7#mZ2k").await;
    shots.take(&b, "reset-with-passkey").await;
    b.click("#reset-with-passkey").await;
    b.wait_for_text("h1", "Password changed").await;
    shots.take(&b, "reset-done").await;

    // The new password, then the passkey as the second step.
    b.goto("/signin").await;
    b.fill("#email", &ann.email).await;
    b.fill("#password", "Qv7#mZ2k").await;
    b.click("#signin-submit").await;
    b.click("#use-passkey").await;
    b.wait_for_path("/").await;
    b.wait_for("#signout").await;
    b.quit().await;
}
