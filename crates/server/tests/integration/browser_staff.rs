//! Staff through the pages in headless Chromium: the owner invites someone, the invitee
//! creates an account from the link (a weak password refused beside its field), works within
//! the role, and the owner, outside the step-up window, is sent to confirm it is them before
//! changing the role. Screenshots: `target/screenshots/sec-staff-NN-name.png`.

use crate::browser_security::{Shots, sign_in_with_password, sign_out, tools};
use crate::support::{Backend, PASSWORD, TestApp};
use crate::webdriver::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owner_invites_staff_through_the_pages() {
    let Some(tools) = tools() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin().await;
    let owner = app.active_seller(&admin, "Kite and Loom").await;
    let b = Browser::launch(&tools, &app.base).await;
    let mut shots = Shots::new("staff");

    sign_in_with_password(&b, &owner.email).await;
    b.wait_for("#signout").await;
    // The security page points owners to their staff, too.
    b.goto("/account/security").await;
    b.click("#manage-staff").await;
    b.wait_for("#no-staff").await;
    shots.take(&b, "no-staff").await;

    // A bad address is reported beside its field; then the invitation goes out.
    b.fill("#invite-email", "not-an-address").await;
    b.click("#send-invitation").await;
    b.wait_for("#email-error").await;
    shots.take(&b, "invite-bad-email").await;
    b.fill("#invite-email", "packer@example.test").await;
    b.click("#invite-role option[value='fulfilment']").await;
    b.click("#send-invitation").await;
    b.wait_for_text("#staff-notice", "packer@example.test")
        .await;
    b.wait_for_text("#invitation-list", "Fulfilment").await;
    shots.take(&b, "invited").await;

    // The invitee opens the link from the mail and creates an account.
    let token = crate::staff::invitation_token(&app, "packer@example.test").await;
    sign_out(&b).await;
    b.goto(&format!("/staff/invitation?token={token}")).await;
    b.wait_for_text("#invitation-summary", "Kite and Loom")
        .await;
    shots.take(&b, "invitation").await;
    b.fill("#display_name", "Pat Packer").await;
    b.fill("#password", "kite and loom").await;
    b.click("#accept").await;
    b.wait_for("#password-error").await;
    shots.take(&b, "invitation-weak-password").await;
    b.fill("#password", PASSWORD).await;
    b.click("#accept").await;
    b.wait_for_path("/signin").await;
    sign_in_with_password(&b, "packer@example.test").await;
    b.wait_for("#signout").await;
    b.goto("/seller/orders").await;
    b.wait_for("#signout").await;
    assert!(
        b.find("#nav-staff").await.is_none(),
        "staff do not manage staff"
    );
    b.goto("/seller/staff").await;
    b.wait_for_text("main", "only the shop's owner may do this")
        .await;
    shots.take(&b, "staff-cannot-manage-staff").await;
    b.goto("/seller/orders").await;
    sign_out(&b).await;

    // Back as the owner, long after signing in: the role change asks to confirm first.
    sign_in_with_password(&b, &owner.email).await;
    b.wait_for("#signout").await;
    app.clock.advance_ms(6 * 60 * 1000);
    b.goto("/seller/staff").await;
    b.wait_for("#step-up-hint").await;
    b.wait_for("#member-list tbody tr").await;
    b.click("#member-list tbody tr select option[value='catalogue']")
        .await;
    b.click("#member-list tbody tr button[type='submit']").await;
    b.wait_for_path("/account/confirm").await;
    b.fill("#current_password", "wrong password entirely").await;
    b.click("#confirm-submit").await;
    b.wait_for("#current_password-error").await;
    shots.take(&b, "confirm-wrong-password").await;
    b.fill("#current_password", PASSWORD).await;
    b.click("#confirm-submit").await;
    b.wait_for_path("/seller/staff").await;
    assert!(
        b.find("#step-up-hint").await.is_none(),
        "confirmed for a while"
    );
    b.click("#member-list tbody tr select option[value='catalogue']")
        .await;
    b.click("#member-list tbody tr button[type='submit']").await;
    b.wait_for_text("#staff-notice", "Catalogue manager").await;
    shots.take(&b, "role-changed").await;
    b.quit().await;
}
