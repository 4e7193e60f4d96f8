//! Email use cases: verification at sign-up, password reset, changing the address, and the
//! anti-phishing code. Mails go through the outbox (`platform::mail`), written in the same
//! transaction as the change they report.
//!
//! Links are single use: a random 256-bit token travels only in the mail, its SHA-256 digest
//! is stored, and using it is one conditional UPDATE. A newer link of the same purpose retires
//! the older ones. Verification and email-change links last 24 hours, reset links one hour.
//!
//! No enumeration: sign-up answers the same whether or not the address has an account (it then
//! mails the owner instead); a reset request always answers 202 at once and does its work in
//! the background; an email change answers the same whether or not the new address is taken.
//!
//! What an unverified account cannot do (`require_verified`): apply to sell, and check out.
//! It can sign in, browse, fill its cart, set up security, and ask for a new link.

use super::email_store::{self as store, NewToken, Purpose};
use super::service::{self, SignUp, digest};
use super::step_up::{self, StepUpProof};
use super::store as users;
use crate::platform::audit::{self, Entry, action};
use crate::platform::clock::human;
use crate::platform::http::auth::Principal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::platform::mail::{self, Action, Mail};
use crate::state::AppState;
use clipcart_domain::DomainError;
use clipcart_domain::identity::{Email, check_new_password};
use clipcart_domain::ids;
use secrecy::{ExposeSecret, SecretString};

pub const VERIFY_LINK_MS: i64 = 24 * 60 * 60 * 1000;
pub const RESET_LINK_MS: i64 = 60 * 60 * 1000;
pub const EMAIL_CHANGE_LINK_MS: i64 = 24 * 60 * 60 * 1000;
/// A new verification or reset link at most this often per account (mail bombing).
pub const RESEND_EVERY_MS: i64 = 60 * 1000;
/// "Someone tried to use your address" notices at most this often per address.
const NOTICE_EVERY_MS: i64 = 60 * 60 * 1000;
pub const ANTI_PHISHING_MIN: usize = 4;
pub const ANTI_PHISHING_MAX: usize = 32;

fn new_link_token() -> String {
    ids::random_secret(32)
}

fn bad_link() -> AppError {
    DomainError::invalid(
        "token",
        "this link is not valid: it was already used, a newer one was sent, or it expired",
    )
    .into()
}

// ---- Sign-up and verification ----

/// Signs up without saying whether the address already has an account: both cases check the
/// input and hash the password (the slow part), then either create the account and mail a
/// verification link, or mail the address's owner that someone tried. The caller answers the
/// same either way.
pub async fn sign_up(state: &AppState, input: SignUp) -> AppResult<()> {
    let user = service::new_account(state, input).await?;
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    if users::insert_user(&mut *tx, &user).await? {
        let token = new_link_token();
        store::replace_token(
            &mut tx,
            &NewToken {
                token_hash: &digest(&token),
                user_id: &user.id,
                purpose: Purpose::VerifyEmail,
                email: &user.email,
                now,
                expires_at: now + VERIFY_LINK_MS,
            },
        )
        .await?;
        mail::enqueue(
            &mut tx,
            state,
            verification_mail(state, &user.id, &user.email, &user.display_name, &token),
        )
        .await?;
        tx.commit().await?;
        state.mail.wake();
        tracing::info!(user_id = %user.id, role = %user.role, "account created; verification mail queued");
        return Ok(());
    }
    tx.rollback().await?;
    // Taken. Tell the owner (at most hourly), and nobody else.
    let Some(owner) = users::user_by_email(&state.db.write, &user.email).await? else {
        return Ok(()); // a disabled account: nothing to say
    };
    let recent = mail::count_recent(
        state,
        &owner.email,
        "signup_existing",
        now - NOTICE_EVERY_MS,
    )
    .await?;
    if recent == 0 {
        mail::send(
            state,
            Mail {
                to: owner.email.clone(),
                user_id: Some(owner.id.clone()),
                kind: "signup_existing",
                subject: "Someone tried to create a Clipcart account with your address".into(),
                greeting: format!("Hello {},", owner.display_name),
                paragraphs: vec![
                    format!(
                        "Someone — perhaps you — tried to create a new Clipcart account with {}. This address already belongs to your account, so nothing was created and nothing changed.",
                        owner.email
                    ),
                    "If it was you and you have forgotten your password, you can choose a new one:".into(),
                ],
                action: Some(Action {
                    label: "Reset your password".into(),
                    url: state.mail.link("/forgot-password"),
                }),
                after: vec!["If it was not you, you can ignore this email.".into()],
            },
        )
        .await?;
    }
    tracing::info!(user_id = %owner.id, "sign-up with an address already in use; owner notified");
    Ok(())
}

fn verification_mail(
    state: &AppState,
    user_id: &str,
    email: &str,
    name: &str,
    token: &str,
) -> Mail {
    Mail {
        to: email.to_string(),
        user_id: Some(user_id.to_string()),
        kind: "verify_email",
        subject: "Confirm your email address for Clipcart".into(),
        greeting: format!("Hello {name},"),
        paragraphs: vec![format!(
            "Please confirm that {email} is your address, so that your Clipcart account can sell and check out, and so that we can reach you about your account."
        )],
        action: Some(Action {
            label: "Confirm my email address".into(),
            url: state.mail.link(&format!("/verify-email?token={token}")),
        }),
        after: vec![
            "The link works once and expires in 24 hours.".into(),
            "If you did not create a Clipcart account, ignore this email: nothing happens without the link.".into(),
        ],
    }
}

/// Uses a verification link; returns the address it verified.
pub async fn verify_email(state: &AppState, token: &str) -> AppResult<String> {
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    let Some(row) = store::use_token(&mut tx, &digest(token), Purpose::VerifyEmail, now).await?
    else {
        tx.rollback().await?;
        return Err(bad_link());
    };
    // Refused when the account moved to another address since the link was sent.
    let verified = store::mark_verified(&mut *tx, &row.user_id, &row.email, now).await?;
    let current = store::email_state(&mut *tx, &row.user_id).await?;
    if !verified && current.as_ref().is_none_or(|u| u.email != row.email) {
        tx.rollback().await?;
        return Err(bad_link());
    }
    tx.commit().await?;
    tracing::info!(user_id = %row.user_id, "email address verified");
    Ok(row.email)
}

/// Sends a new verification link to the caller (the old one stops working). 409 when the
/// address is already verified; 429 when the last link is less than a minute old.
pub async fn resend_verification(state: &AppState, p: &Principal) -> AppResult<()> {
    let Some(user) = store::email_state(&state.db.write, &p.user_id).await? else {
        return Err(DomainError::Unauthenticated.into());
    };
    if user.email_verified_at > 0 {
        return Err(DomainError::Conflict("your email address is already verified".into()).into());
    }
    let now = state.now_ms();
    if let Some(last) =
        store::latest_token_at(&state.db.write, &p.user_id, Purpose::VerifyEmail).await?
        && now - last < RESEND_EVERY_MS
    {
        let wait_ms = RESEND_EVERY_MS - (now - last);
        return Err(AppError::TooManyRequests {
            retry_after_secs: u64::try_from(wait_ms.div_euclid(1000) + 1).unwrap_or(60),
        });
    }
    let token = new_link_token();
    let mut tx = state.db.write.begin().await?;
    store::replace_token(
        &mut tx,
        &NewToken {
            token_hash: &digest(&token),
            user_id: &p.user_id,
            purpose: Purpose::VerifyEmail,
            email: &user.email,
            now,
            expires_at: now + VERIFY_LINK_MS,
        },
    )
    .await?;
    mail::enqueue(
        &mut tx,
        state,
        verification_mail(state, &p.user_id, &user.email, &user.display_name, &token),
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}

/// Refuses what an unverified account may not do (apply to sell, check out).
pub async fn require_verified(state: &AppState, user_id: &str) -> AppResult<()> {
    match store::email_state(&state.db.read, user_id).await? {
        Some(u) if u.email_verified_at > 0 => Ok(()),
        Some(_) => Err(AppError::EmailNotVerified),
        None => Err(DomainError::Unauthenticated.into()),
    }
}

/// For accounts an operator creates (`clipcart admin create`, the demo): the operator vouches
/// for the address.
pub async fn mark_verified_by_operator(state: &AppState, user_id: &str) -> AppResult<()> {
    sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at = 0")
        .bind(state.now_ms())
        .bind(user_id)
        .execute(&state.db.write)
        .await?;
    Ok(())
}

/// The caller's address and what the security page and `GET /me/email` show about it.
pub struct EmailStatus {
    pub email: String,
    /// When it was verified; `None` while not.
    pub verified_at: Option<i64>,
    /// The anti-phishing code; empty when not chosen.
    pub anti_phishing_code: String,
    /// The address a change waits to be confirmed for.
    pub pending_email: Option<String>,
}

pub async fn status(state: &AppState, p: &Principal) -> AppResult<EmailStatus> {
    let Some(user) = store::email_state(&state.db.read, &p.user_id).await? else {
        return Err(DomainError::Unauthenticated.into());
    };
    let pending_email = store::pending_change(&state.db.read, &p.user_id, state.now_ms()).await?;
    let anti_phishing_code = store::anti_phishing_code(&state.db.read, &state.vault, &p.user_id)
        .await?
        .unwrap_or_default();
    Ok(EmailStatus {
        email: user.email,
        verified_at: (user.email_verified_at > 0).then_some(user.email_verified_at),
        anti_phishing_code,
        pending_email,
    })
}

// ---- The anti-phishing code ----

/// Checks a chosen code: 4 to 32 printable characters once trimmed. Control characters and
/// invisible formatting characters (zero-width, bidirectional overrides) are refused: the code
/// must look in a mail exactly as it looks on the page.
pub fn parse_anti_phishing_code(raw: &str) -> Result<String, DomainError> {
    let code = raw.trim();
    let n = code.chars().count();
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{00AD}')
    };
    if !(ANTI_PHISHING_MIN..=ANTI_PHISHING_MAX).contains(&n) {
        return Err(DomainError::invalid(
            "anti_phishing_code",
            "use 4 to 32 characters",
        ));
    }
    if code.chars().any(invisible) {
        return Err(DomainError::invalid(
            "anti_phishing_code",
            "use visible characters only",
        ));
    }
    Ok(code.to_string())
}

/// Sets the caller's anti-phishing code (with step-up); the confirmation mail shows it.
pub async fn set_anti_phishing_code(
    state: &AppState,
    p: &Principal,
    raw: &str,
    proof: StepUpProof,
    client: &ClientInfo,
) -> AppResult<String> {
    let code = parse_anti_phishing_code(raw)?;
    step_up::require(state, p, proof, client).await?;
    if !store::set_anti_phishing_code(&state.db.write, &state.vault, &p.user_id, &code).await? {
        return Err(DomainError::Unauthenticated.into());
    }
    super::alerts::send(
        state,
        &p.user_id,
        super::alerts::AlertKind::AntiPhishingCodeChanged,
        client,
    )
    .await?;
    tracing::info!(user_id = %p.user_id, "anti-phishing code changed");
    Ok(code)
}

// ---- Password reset ----

/// Asks for a reset link. Answers at once and the same for every address: the work (a link
/// and a mail when the address has an account, at most one a minute) happens in a task of its
/// own, so neither the answer nor its timing says whether the account exists.
pub fn request_password_reset(state: &AppState, email: &str, client: &ClientInfo) {
    let (state, email, client) = (state.clone(), email.to_string(), client.clone());
    tokio::spawn(async move {
        if let Err(e) = send_reset_link(&state, &email, &client).await {
            tracing::error!(error = %e, "password reset request failed");
        }
    });
}

async fn send_reset_link(state: &AppState, email: &str, client: &ClientInfo) -> AppResult<()> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let Some(user) = users::user_by_email(&state.db.write, email.as_str()).await? else {
        tracing::info!(client_ip = %client.ip, "password reset asked for an address without an account");
        return Ok(());
    };
    let now = state.now_ms();
    if let Some(last) =
        store::latest_token_at(&state.db.write, &user.id, Purpose::PasswordReset).await?
        && now - last < RESEND_EVERY_MS
    {
        tracing::info!(user_id = %user.id, "password reset asked again within a minute; no new mail");
        return Ok(());
    }
    let token = new_link_token();
    let mut tx = state.db.write.begin().await?;
    store::replace_token(
        &mut tx,
        &NewToken {
            token_hash: &digest(&token),
            user_id: &user.id,
            purpose: Purpose::PasswordReset,
            email: &user.email,
            now,
            expires_at: now + RESET_LINK_MS,
        },
    )
    .await?;
    mail::enqueue(
        &mut tx,
        state,
        Mail {
            to: user.email.clone(),
            user_id: Some(user.id.clone()),
            kind: "password_reset",
            subject: "Reset your Clipcart password".into(),
            greeting: format!("Hello {},", user.display_name),
            paragraphs: vec![
                "Someone — hopefully you — asked to reset the password of your Clipcart account. Choose a new password here:".into(),
            ],
            action: Some(Action {
                label: "Choose a new password".into(),
                url: state.mail.link(&format!("/reset-password?token={token}")),
            }),
            after: vec![
                "The link works once and expires in one hour. With two-factor authentication on, you will also need a code from your authenticator app (or a recovery code), or your passkey.".into(),
                format!(
                    "Asked for on {} from the address {}. If it was not you, ignore this email: your password stays as it is.",
                    human(now),
                    client.ip
                ),
            ],
        },
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::info!(user_id = %user.id, client_ip = %client.ip, "password reset link queued");
    Ok(())
}

/// The account of a usable reset link (unused, unexpired, the newest, and the account still at
/// the address it was sent to).
async fn reset_account(state: &AppState, token_hash: &str) -> AppResult<users::UserRow> {
    let row = store::usable_token(
        &state.db.write,
        token_hash,
        Purpose::PasswordReset,
        state.now_ms(),
    )
    .await?
    .ok_or_else(bad_link)?;
    users::user_by_id(&state.db.write, &row.user_id)
        .await?
        .filter(|u| u.email == row.email)
        .ok_or_else(bad_link)
}

/// Whether a reset link is usable, and which second factor finishing it needs.
pub async fn reset_link(state: &AppState, token: &str) -> AppResult<ResetLink> {
    let user = reset_account(state, &digest(token)).await?;
    Ok(ResetLink {
        code: super::second_factor::is_active(state, &user.id).await?,
        passkey: super::passkey::has_passkey(state, &user.id).await?,
        email: user.email,
    })
}

pub struct ResetLink {
    pub email: String,
    /// The account has TOTP: a code (or a recovery code) completes the reset.
    pub code: bool,
    /// The account has passkeys: an assertion completes the reset.
    pub passkey: bool,
}

impl ResetLink {
    /// Whether finishing needs a second factor (and the 8-character minimum applies).
    pub fn second_factor(&self) -> bool {
        self.code || self.passkey
    }
}

/// Starts the passkey check of a reset: a ceremony for the account of the link, bound to the
/// link (single use, five minutes; a newer one retires the previous). A bad link is 422
/// `token`; an account without a passkey is 409.
pub async fn start_reset_passkey(
    state: &AppState,
    token: &str,
) -> AppResult<super::passkey::Challenge> {
    let token_hash = digest(token);
    let user = reset_account(state, &token_hash).await?;
    super::passkey::start_password_reset(state, &user.id, &token_hash).await
}

pub struct PasswordReset {
    pub token: String,
    pub new_password: SecretString,
    /// With TOTP on: a current code or an unused recovery code.
    pub otp: Option<SecretString>,
    /// With a passkey: an answer to a ceremony from `start_reset_passkey` for this link.
    pub passkey: Option<super::passkey::Assertion>,
}

/// Finishes a reset. Never skips the second factor: an account with TOTP or a passkey needs a
/// code (or recovery code) or an assertion of one of its passkeys answering a ceremony started
/// for this link — `SecondFactorRequired` without either, and a wrong one counts as a sign-in
/// failure in the throttle. The link stays usable until a reset succeeds (or it expires). The
/// new password passes the same policy as a change (8 characters suffice with a second
/// factor). In one transaction: the link is used, the password replaced, every session and API
/// token ended, the address marked verified (the link proved the mailbox) and the "password
/// changed" alert queued. The sign-in back-off and lock of the address are cleared.
pub async fn complete_password_reset(
    state: &AppState,
    reset: PasswordReset,
    client: &ClientInfo,
) -> AppResult<()> {
    let hash_of_token = digest(&reset.token);
    let user = reset_account(state, &hash_of_token).await?;
    let has_code = super::second_factor::is_active(state, &user.id).await?;
    let has_passkey = super::passkey::has_passkey(state, &user.id).await?;
    let has_second_factor = has_code || has_passkey;
    let mut context = clipcart_domain::identity::PasswordContext::new()
        .email(&user.email)
        .name(&user.display_name);
    // The shop the seller owns or works for is a context word too (security.md).
    if let Some(shop_name) = super::staff_store::shop_name_of_user(&state.db.read, &user.id).await?
    {
        context = context.name(&shop_name);
    }
    if let Err(DomainError::Invalid(refusals)) = check_new_password(
        reset.new_password.expose_secret(),
        &context,
        has_second_factor,
    ) {
        let mut errors = clipcart_domain::error::Errors::new();
        for r in refusals {
            errors.add("new_password", r.message);
        }
        errors.finish()?;
    }
    if has_second_factor {
        let otp = reset.otp.filter(|c| !c.expose_secret().trim().is_empty());
        let (st, user_id) = (state.clone(), user.id.clone());
        // A code when the account has TOTP, else a passkey assertion; each through the
        // sign-in throttle, a wrong one counted like a wrong password.
        let (checked, field, message) = match (otp, reset.passkey) {
            (Some(code), _) if has_code => (
                service::throttled_code_check_for(
                    state,
                    &user.id,
                    &user.email,
                    client,
                    async move {
                        let ok =
                            super::second_factor::verify_code(&st, &user_id, code.expose_secret())
                                .await?;
                        Ok(ok.then_some(()))
                    },
                )
                .await,
                "otp",
                "the code is wrong, expired or was already used",
            ),
            (_, Some(assertion)) if has_passkey => {
                let token_hash = hash_of_token.clone();
                (
                    service::throttled_code_check_for(
                        state,
                        &user.id,
                        &user.email,
                        client,
                        async move {
                            let ok = super::passkey::verify_password_reset(
                                &st,
                                &user_id,
                                &token_hash,
                                assertion,
                            )
                            .await?;
                            Ok(ok.then_some(()))
                        },
                    )
                    .await,
                    "credential",
                    "the passkey was not accepted: the request expired or was already used, or this passkey is not registered to this account; start again",
                )
            }
            _ => return Err(AppError::SecondFactorRequired),
        };
        match checked {
            Ok(()) => {}
            Err(AppError::Domain(DomainError::Invalid(_))) => {
                return Err(DomainError::invalid(field, message).into());
            }
            Err(e) => return Err(e),
        }
    }
    let password_hash = state.hasher.hash(reset.new_password).await?;
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    // Used here, atomically: a link raced by another tab works once.
    if store::use_token(&mut tx, &hash_of_token, Purpose::PasswordReset, now)
        .await?
        .is_none()
    {
        tx.rollback().await?;
        return Err(bad_link());
    }
    if !users::update_password_hash(&mut *tx, &user.id, &password_hash).await? {
        tx.rollback().await?;
        return Err(bad_link());
    }
    let ended_sessions = users::delete_other_sessions(&mut *tx, &user.id, "").await?;
    let revoked_tokens = users::delete_other_tokens(&mut *tx, &user.id, "").await?;
    store::retire_tokens(&mut tx, &user.id, Some(Purpose::PasswordReset), now).await?;
    store::mark_verified(&mut *tx, &user.id, &user.email, now).await?;
    super::alerts::security_change(
        &mut tx,
        state,
        &user.id,
        super::alerts::AlertKind::PasswordChanged,
        client,
    )
    .await?;
    audit::record(
        &mut tx,
        Entry::new(now, &user.id, action::PASSWORD_RESET, &user.id)
            .with("ended_sessions", ended_sessions)
            .with("revoked_tokens", revoked_tokens),
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    service::clear_sign_in_throttle(state, &user.email).await?;
    tracing::info!(
        user_id = %user.id,
        second_factor = has_second_factor,
        ended_sessions,
        revoked_tokens,
        client_ip = %client.ip,
        "password reset; every session and API token ended"
    );
    Ok(())
}

// ---- Changing the email address ----

/// Asks to move the caller's account to `new_email` (with step-up). A confirmation link goes
/// to the new address and a notice to the current one. When the new address already has an
/// account, the answer is the same; its owner gets a short notice naming nobody, and the
/// current address the same notice as always. Returns the normalised new address.
pub async fn request_email_change(
    state: &AppState,
    p: &Principal,
    new_email: &str,
    proof: StepUpProof,
    client: &ClientInfo,
) -> AppResult<String> {
    let new_email = Email::parse(new_email)
        .map_err(|_| {
            DomainError::invalid(
                "new_email",
                "enter an email address such as name@example.com",
            )
        })?
        .as_str()
        .to_string();
    let Some(user) = store::email_state(&state.db.write, &p.user_id).await? else {
        return Err(DomainError::Unauthenticated.into());
    };
    if new_email == user.email {
        return Err(DomainError::invalid("new_email", "this is already your email address").into());
    }
    step_up::require(state, p, proof, client).await?;
    let now = state.now_ms();
    // Read before the transaction: on SQLite the write pool's one connection is the
    // transaction's.
    let taken = store::email_taken(&state.db.write, &new_email).await?;
    let recent =
        mail::count_recent(state, &new_email, "email_in_use", now - NOTICE_EVERY_MS).await?;
    let mut tx = state.db.write.begin().await?;
    store::retire_tokens(&mut tx, &p.user_id, Some(Purpose::EmailChange), now).await?;
    if taken {
        if recent == 0 {
            mail::enqueue(
                &mut tx,
                state,
                Mail {
                    to: new_email.clone(),
                    user_id: None,
                    kind: "email_in_use",
                    subject: "Your address was offered for another Clipcart account".into(),
                    greeting: "Hello,".into(),
                    paragraphs: vec![
                        format!(
                            "Someone asked to move another Clipcart account to {new_email}. This address already belongs to your account, so nothing changed and there is nothing to do."
                        ),
                    ],
                    action: None,
                    after: vec!["If you wanted to merge two accounts, contact Clipcart support.".into()],
                },
            )
            .await?;
        }
    } else {
        let token = new_link_token();
        store::replace_token(
            &mut tx,
            &NewToken {
                token_hash: &digest(&token),
                user_id: &p.user_id,
                purpose: Purpose::EmailChange,
                email: &new_email,
                now,
                expires_at: now + EMAIL_CHANGE_LINK_MS,
            },
        )
        .await?;
        mail::enqueue(
            &mut tx,
            state,
            Mail {
                to: new_email.clone(),
                // The asking account's code: this mail is for them.
                user_id: Some(p.user_id.clone()),
                kind: "email_change_confirm",
                subject: "Confirm your new email address for Clipcart".into(),
                greeting: format!("Hello {},", user.display_name),
                paragraphs: vec![format!(
                    "You asked to use {new_email} for your Clipcart account instead of {}. Confirm the change here:",
                    user.email
                )],
                action: Some(Action {
                    label: "Confirm my new email address".into(),
                    url: state.mail.link(&format!("/confirm-email?token={token}")),
                }),
                after: vec![
                    "The link works once and expires in 24 hours. Until then your account keeps its current address.".into(),
                    "If you did not ask for this, ignore this email.".into(),
                ],
            },
        )
        .await?;
    }
    super::alerts::security_change(
        &mut tx,
        state,
        &p.user_id,
        super::alerts::AlertKind::EmailChangeRequested {
            new_email: new_email.clone(),
        },
        client,
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::info!(user_id = %p.user_id, "email change requested");
    Ok(new_email)
}

/// What an email-change link would do, for the confirmation page.
pub async fn email_change_link(state: &AppState, token: &str) -> AppResult<String> {
    let row = store::usable_token(
        &state.db.write,
        &digest(token),
        Purpose::EmailChange,
        state.now_ms(),
    )
    .await?
    .ok_or_else(bad_link)?;
    Ok(row.email)
}

/// Uses an email-change link: the account moves to the new (now verified) address, every other
/// link of the account stops working, and the old address is told. Returns the new address.
pub async fn confirm_email_change(
    state: &AppState,
    token: &str,
    client: &ClientInfo,
) -> AppResult<String> {
    let now = state.now_ms();
    let mut tx = state.db.write.begin().await?;
    let Some(row) = store::use_token(&mut tx, &digest(token), Purpose::EmailChange, now).await?
    else {
        tx.rollback().await?;
        return Err(bad_link());
    };
    let Some(user) = store::email_state(&mut *tx, &row.user_id).await? else {
        tx.rollback().await?;
        return Err(bad_link());
    };
    // Taken since the link was sent: only the holder of the new mailbox learns it.
    if store::email_taken(&mut *tx, &row.email).await? {
        tx.rollback().await?;
        return Err(DomainError::Conflict(
            "another account uses this address now, so the change cannot be made".into(),
        )
        .into());
    }
    if !store::change_email(&mut tx, &row.user_id, &row.email, now).await? {
        tx.rollback().await?;
        return Err(bad_link());
    }
    // Links sent to the old address (verification, reset) must not work any more.
    store::retire_tokens(&mut tx, &row.user_id, None, now).await?;
    super::alerts::security_change(
        &mut tx,
        state,
        &row.user_id,
        super::alerts::AlertKind::EmailChanged {
            old_email: user.email.clone(),
            new_email: row.email.clone(),
        },
        client,
    )
    .await?;
    audit::record(
        &mut tx,
        Entry::new(now, &row.user_id, action::EMAIL_CHANGE, &row.user_id),
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::info!(user_id = %row.user_id, "email address changed");
    Ok(row.email)
}
