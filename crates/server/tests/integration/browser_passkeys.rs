//! Passkeys walked through the web pages in a headless Chromium with a virtual authenticator
//! (WebDriver's WebAuthn extension: CTAP2, internal transport, resident keys, user verification
//! always succeeding): a buyer adds a passkey on the security page, signs out, signs in without
//! a password, then signs in with the password and uses the passkey as the second step.
//! Screenshots go to `target/screenshots/sec-passkeys-NN-name.png`.
//!
//! The browser opens the app at its public URL, `http://localhost:<port>`: the WebAuthn relying
//! party must be a domain, and localhost is a secure context over plain HTTP.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is skipped on a laptop
//! and fails when `CI=true`. SQLite only: the pages are the same on both databases.

use crate::browser_security::{Shots, sign_in_with_password, sign_out, tools};
use crate::support::{Backend, TestApp};
use crate::webdriver::Browser;

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
