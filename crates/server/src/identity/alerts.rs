//! Security alerts by email: a sign-in from a new device, a sign-in after many failures, and
//! changes to the email address, password, second factors, anti-phishing code and payout bank
//! account. Each names the time, the device and the client address, and says what to do if it
//! was not the account's owner.
//!
//! Other code calls `security_change` inside the transaction of the change (then
//! `state.mail.wake()` after the commit) or `send` when there is no transaction.
//!
//! Devices: a browser is recognised by a long-lived random cookie (`state.device_cookie`,
//! `__Host-cc_device` where cookies can be Secure), stored per account only as a digest in
//! `known_devices`; an API-token sign-in by its device label (from the user agent) and client
//! network (IPv4 /24, IPv6 /64). The first device an account ever signs in from is recorded
//! without an alert — there is nothing to compare it with, and the owner just signed up.

use super::email_store as store;
use super::service::digest;
use crate::platform::clock::human;
use crate::platform::http::auth::cookie;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::platform::mail::{self, Action, Mail};
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use clipcart_domain::identity::device;
use sqlx::AnyConnection;
use std::net::IpAddr;

/// A sign-in after at least this many consecutive failures is reported (the throttle's free
/// failures: from here on the account was being guessed at, or its owner struggled).
pub const FAILURES_WORTH_AN_ALERT: i64 = 5;
/// How long a browser's device cookie lives: 400 days, the most browsers keep a cookie.
const DEVICE_COOKIE_MAX_AGE_SECS: i64 = 400 * 24 * 60 * 60;

/// What happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertKind {
    NewDeviceSignIn,
    /// A successful sign-in after this many consecutive failures.
    SignInAfterFailures {
        failures: i64,
    },
    PasswordChanged,
    /// Sent to the current address when a change to `new_email` is asked for.
    EmailChangeRequested {
        new_email: String,
    },
    /// Sent to the old address once the change is confirmed.
    EmailChanged {
        old_email: String,
        new_email: String,
    },
    AntiPhishingCodeChanged,
    TwoFactorEnabled,
    TwoFactorDisabled,
    RecoveryCodesRegenerated,
    PasskeyAdded,
    PasskeyRemoved,
    /// The payout bank account of the user's shop was changed (issue 4 calls this).
    BankAccountChanged,
}

impl AlertKind {
    /// The outbox's name for this kind of mail.
    pub fn kind(&self) -> &'static str {
        match self {
            AlertKind::NewDeviceSignIn => "alert_new_device",
            AlertKind::SignInAfterFailures { .. } => "alert_sign_in_after_failures",
            AlertKind::PasswordChanged => "alert_password_changed",
            AlertKind::EmailChangeRequested { .. } => "alert_email_change_requested",
            AlertKind::EmailChanged { .. } => "alert_email_changed",
            AlertKind::AntiPhishingCodeChanged => "alert_anti_phishing_code_changed",
            AlertKind::TwoFactorEnabled => "alert_two_factor_enabled",
            AlertKind::TwoFactorDisabled => "alert_two_factor_disabled",
            AlertKind::RecoveryCodesRegenerated => "alert_recovery_codes_regenerated",
            AlertKind::PasskeyAdded => "alert_passkey_added",
            AlertKind::PasskeyRemoved => "alert_passkey_removed",
            AlertKind::BankAccountChanged => "alert_bank_account_changed",
        }
    }

    /// The subject, and what happened in one sentence.
    fn wording(&self) -> (String, String) {
        let (subject, what): (&str, String) = match self {
            AlertKind::NewDeviceSignIn => (
                "New sign-in to your Clipcart account",
                "Your Clipcart account was signed in to from a device it has not been used on before.".into(),
            ),
            AlertKind::SignInAfterFailures { failures } => (
                "Sign-in to your Clipcart account after failed attempts",
                format!(
                    "Your Clipcart account was signed in to after {failures} failed sign-in attempts in a row."
                ),
            ),
            AlertKind::PasswordChanged => (
                "Your Clipcart password was changed",
                "The password of your Clipcart account was changed. Every other session and API token of the account was signed out.".into(),
            ),
            AlertKind::EmailChangeRequested { new_email } => (
                "A change of your Clipcart email address was requested",
                format!(
                    "Someone signed in to your Clipcart account asked to change its email address from this one to {new_email}. The change happens only once the link sent to {new_email} is opened."
                ),
            ),
            AlertKind::EmailChanged { new_email, .. } => (
                "Your Clipcart email address was changed",
                format!(
                    "The email address of your Clipcart account was changed from this address to {new_email}. Mail about the account now goes there."
                ),
            ),
            AlertKind::AntiPhishingCodeChanged => (
                "Your Clipcart anti-phishing code was changed",
                "The anti-phishing code of your Clipcart account was changed. Genuine Clipcart emails now show the new code, as this one does at the top.".into(),
            ),
            AlertKind::TwoFactorEnabled => (
                "Two-factor authentication is on",
                "Two-factor authentication was turned on for your Clipcart account: signing in now also asks for a code from an authenticator app.".into(),
            ),
            AlertKind::TwoFactorDisabled => (
                "Two-factor authentication was turned off",
                "Two-factor authentication was turned off for your Clipcart account: a password alone now signs in.".into(),
            ),
            AlertKind::RecoveryCodesRegenerated => (
                "New recovery codes for your Clipcart account",
                "New recovery codes were made for your Clipcart account; the old ones no longer work.".into(),
            ),
            AlertKind::PasskeyAdded => (
                "A passkey was added to your Clipcart account",
                "A passkey was added to your Clipcart account: it can now be used to sign in.".into(),
            ),
            AlertKind::PasskeyRemoved => (
                "A passkey was removed from your Clipcart account",
                "A passkey was removed from your Clipcart account.".into(),
            ),
            AlertKind::BankAccountChanged => (
                "The payout bank account of your shop was changed",
                "The bank account your Clipcart shop is paid out to was changed.".into(),
            ),
        };
        (subject.to_string(), what)
    }

    /// What to do if it was not the owner, and where.
    fn if_not_you(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            AlertKind::PasswordChanged | AlertKind::EmailChanged { .. } => (
                "If this was not you, someone else controls your account: reset your password at once with the link below, then turn on two-factor authentication and contact Clipcart support.",
                "Reset your password",
                "/forgot-password",
            ),
            _ => (
                "If this was not you, change your password at once on your security page, sign out the sessions you do not recognise and turn on two-factor authentication. If you cannot sign in any more, reset your password from the sign-in page.",
                "Review your account security",
                "/account/security",
            ),
        }
    }
}

/// Queues the alert for `user_id` on `conn` — the transaction of the change. Call
/// `state.mail.wake()` after the commit. The alert goes to the account's current address,
/// except `EmailChanged`, which goes to the old one.
pub async fn security_change(
    conn: &mut AnyConnection,
    state: &AppState,
    user_id: &str,
    kind: AlertKind,
    client: &ClientInfo,
) -> AppResult<()> {
    let Some(user) = store::email_state(&mut *conn, user_id).await? else {
        return Ok(()); // the account is gone or disabled: nobody to tell
    };
    let to = match &kind {
        AlertKind::EmailChanged { old_email, .. } => old_email.clone(),
        _ => user.email.clone(),
    };
    let (subject, what) = kind.wording();
    let (advice, label, path) = kind.if_not_you();
    let device = device::describe(&client.user_agent);
    mail::enqueue(
        conn,
        state,
        Mail {
            to,
            user_id: Some(user_id.to_string()),
            kind: kind.kind(),
            subject,
            greeting: format!("Hello {},", user.display_name),
            paragraphs: vec![
                what,
                format!("When: {}", human(state.now_ms())),
                format!("Device: {device}"),
                format!("Address: {}", client.ip),
                "If this was you, there is nothing to do.".into(),
                advice.into(),
            ],
            action: Some(Action {
                label: label.into(),
                url: state.mail.link(path),
            }),
            after: vec![],
        },
    )
    .await?;
    tracing::info!(user_id, alert = kind.kind(), "security alert queued");
    Ok(())
}

/// `security_change` in a transaction of its own, then wakes the mail delivery.
pub async fn send(
    state: &AppState,
    user_id: &str,
    kind: AlertKind,
    client: &ClientInfo,
) -> AppResult<()> {
    let mut tx = state.db.write.begin().await?;
    security_change(&mut tx, state, user_id, kind, client).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}

// ---- Recognising devices ----

/// After a page sign-in: recognises the browser by its device cookie (giving it one if it has
/// none) and alerts the owner when the account has been used on other devices but not this
/// one. Returns `response` with the device cookie added when it was new.
pub async fn page_signed_in(
    state: &AppState,
    user_id: &str,
    client: &ClientInfo,
    headers: &HeaderMap,
    mut response: Response,
) -> AppResult<Response> {
    let existing = cookie(headers, state.device_cookie)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string);
    let (value, fresh) = match existing {
        Some(v) => (v, false),
        None => (clipcart_domain::ids::random_secret(20), true),
    };
    let hash = digest(&format!("browser\0{value}"));
    note_sign_in(
        state,
        user_id,
        &hash,
        &device::describe(&client.user_agent),
        client,
    )
    .await?;
    if fresh {
        let secure = if state.secure_cookies { "; Secure" } else { "" };
        let set = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={DEVICE_COOKIE_MAX_AGE_SECS}{secure}",
            state.device_cookie
        );
        let v = HeaderValue::from_str(&set).map_err(|e| AppError::Internal(e.into()))?;
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// After an API-token sign-in: the device is its label and client network.
pub async fn api_signed_in(state: &AppState, user_id: &str, client: &ClientInfo) -> AppResult<()> {
    let label = device::describe(&client.user_agent);
    let hash = digest(&format!("api\0{label}\0{}", network(client.ip)));
    note_sign_in(state, user_id, &hash, &label, client).await
}

async fn note_sign_in(
    state: &AppState,
    user_id: &str,
    device_hash: &str,
    label: &str,
    client: &ClientInfo,
) -> AppResult<()> {
    let mut tx = state.db.write.begin().await?;
    let (known, others) =
        store::note_device(&mut tx, user_id, device_hash, label, state.now_ms()).await?;
    let alert = !known && others > 0;
    if alert {
        security_change(&mut tx, state, user_id, AlertKind::NewDeviceSignIn, client).await?;
    }
    tx.commit().await?;
    if alert {
        state.mail.wake();
    }
    Ok(())
}

/// The network of a client address: IPv4 /24, IPv6 /64 (one home or office, roughly).
fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_group_nearby_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(network(ip("203.0.113.9")), "203.0.113.0/24");
        assert_eq!(network(ip("203.0.113.200")), network(ip("203.0.113.9")));
        assert_ne!(network(ip("203.0.114.9")), network(ip("203.0.113.9")));
        assert_eq!(network(ip("::ffff:203.0.113.9")), "203.0.113.0/24");
        assert_eq!(network(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
    }

    #[test]
    fn every_alert_says_what_to_do() {
        for kind in [
            AlertKind::NewDeviceSignIn,
            AlertKind::PasswordChanged,
            AlertKind::BankAccountChanged,
        ] {
            let (subject, what) = kind.wording();
            assert!(!subject.is_empty() && !what.is_empty());
            assert!(kind.if_not_you().0.starts_with("If this was not you"));
        }
    }
}
