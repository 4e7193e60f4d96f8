//! Second-factor use cases: TOTP enrolment (a seed, an otpauth:// URI shown as a QR code, then a
//! confirming code), single-use recovery codes, checking a code at sign-in, turning it off.
//! The rules (time steps, skew, single use, code shapes) are in
//! `clipcart_domain::identity::second_factor`; the HMAC is `totp-rs`'s. Time comes from the
//! injected clock only.
//!
//! TOTP seeds are vault ciphertexts in the database (see `second_factor_store`). In memory a
//! seed stays inside a `SecretString`; a `totp_rs::Totp` (whose
//! `Debug` prints the seed) only lives for the length of one check and is never logged.
//!
//! Recovery codes: 10 random base32 characters (50 bits) each, stored as the SHA-256 digest
//! of the normalised code. A fast digest is enough for a random 50-bit value tried through the
//! throttled sign-in.

use super::second_factor_store as store;
use super::service::{self, digest};
use crate::platform::audit::{self, Entry, action};
use crate::platform::http::auth::Principal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use clipcart_domain::DomainError;
use clipcart_domain::identity::second_factor::{
    self as rules, CodeKind, RECOVERY_CODE_COUNT, TOTP_DIGITS, TOTP_SECRET_BYTES, TOTP_STEP_SECS,
};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};

const ISSUER: &str = "Clipcart";

/// A started enrolment: what the authenticator app needs. Both fields carry the seed.
pub struct Enrolment {
    /// The seed in base32 (RFC 4648, no padding), for typing in by hand.
    pub secret: SecretString,
    /// `otpauth://totp/Clipcart:<email>?secret=…&issuer=Clipcart`.
    pub uri: SecretString,
}

impl Enrolment {
    /// The URI as an inline SVG QR code.
    pub fn qr_svg(&self) -> AppResult<String> {
        qr_svg(self.uri.expose_secret())
    }
}

pub struct Status {
    pub active: bool,
    /// An enrolment was started and waits for its confirming code.
    pub pending: bool,
    pub recovery_codes_left: i64,
}

fn totp(secret: &SecretString, account: &str) -> AppResult<totp_rs::Totp> {
    let bytes = totp_rs::Secret::try_from_base32(secret.expose_secret())
        .map_err(|_| AppError::Internal(anyhow::anyhow!("a stored TOTP seed is not base32")))?;
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS as u8)
        .with_step_duration(TOTP_STEP_SECS as u64)
        .with_skew(0) // the window is the domain's (`candidate_steps`)
        .with_secret(bytes)
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', "_"))
        .build()
        // Not `{e:?}`: keep anything seed-related out of the message.
        .map_err(|_| AppError::Internal(anyhow::anyhow!("could not build the TOTP parameters")))
}

/// The oldest acceptable step a TOTP code matches at `now`, if any.
fn matching_step(
    secret: &SecretString,
    code: &str,
    last_step: i64,
    now: i64,
) -> AppResult<Option<i64>> {
    let t = totp(secret, "x")?;
    let last = (last_step >= 0).then_some(last_step);
    Ok(rules::candidate_steps(now).find(|&step| {
        rules::accepts_step(step, last, now)
            && u64::try_from(step * TOTP_STEP_SECS).is_ok_and(|secs| t.check(code, secs).is_some())
    }))
}

/// Draws `text` as a QR code in inline SVG (dark modules as one path; no script, no image).
pub fn qr_svg(text: &str) -> AppResult<String> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|_| AppError::Internal(anyhow::anyhow!("the QR code data is too long")))?;
    let border = 4;
    let size = qr.size();
    let dim = size + border * 2;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                if !path.is_empty() {
                    path.push(' ');
                }
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" width=\"220\" height=\"220\" \
         role=\"img\" aria-label=\"QR code for your authenticator app\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/><path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

pub async fn status(state: &AppState, user_id: &str) -> AppResult<Status> {
    let row = store::totp(&state.db.read, &state.vault, user_id).await?;
    let left = store::unused_recovery_codes(&state.db.read, user_id).await?;
    Ok(Status {
        active: row.as_ref().is_some_and(store::TotpRow::active),
        pending: row.as_ref().is_some_and(|r| !r.active()),
        recovery_codes_left: left,
    })
}

/// Whether the user has a confirmed TOTP factor (sign-in then needs a code).
pub async fn is_active(state: &AppState, user_id: &str) -> AppResult<bool> {
    // The write pool: read right after a confirm, and sign-in must not miss a fresh factor.
    Ok(store::totp(&state.db.write, &state.vault, user_id)
        .await?
        .is_some_and(|r| r.active()))
}

/// Starts an enrolment with a fresh 160-bit seed (a restart replaces an unconfirmed one).
/// Conflict when a factor is already active: turn it off first. Needs step-up: whoever holds a
/// session for a moment must not be able to tie the account to their own authenticator.
pub async fn start_enrolment(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
) -> AppResult<Enrolment> {
    super::step_up::require(state, p, super::step_up::StepUpProof::default(), client).await?;
    let mut bytes = [0u8; TOTP_SECRET_BYTES];
    rand::rng().fill(&mut bytes[..]);
    let secret = SecretString::from(totp_rs::Secret::from(bytes).to_base32());
    if !store::start_totp(
        &state.db.write,
        &state.vault,
        &p.user_id,
        &secret,
        state.now_ms(),
    )
    .await?
    {
        return Err(DomainError::Conflict(
            "two-factor authentication is already on; turn it off before enrolling again".into(),
        )
        .into());
    }
    tracing::info!(user_id = %p.user_id, "TOTP enrolment started");
    enrolment_of(secret, &p.email)
}

fn enrolment_of(secret: SecretString, email: &str) -> AppResult<Enrolment> {
    let uri = totp(&secret, email)?
        .to_url()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("could not build the otpauth URI")))?;
    Ok(Enrolment {
        secret,
        uri: SecretString::from(uri),
    })
}

/// The enrolment waiting for its confirming code, if one was started.
pub async fn pending_enrolment(state: &AppState, p: &Principal) -> AppResult<Option<Enrolment>> {
    match store::totp(&state.db.read, &state.vault, &p.user_id).await? {
        Some(row) if !row.active() => Ok(Some(enrolment_of(row.secret, &p.email)?)),
        _ => Ok(None),
    }
}

pub(crate) fn wrong_code() -> AppError {
    DomainError::invalid("code", "the code is wrong, expired or was already used").into()
}

/// Confirms an enrolment with a current code; the factor is active from now on. Returns the
/// new recovery codes, shown once. A wrong code counts against the sign-in throttle; on success
/// every other session of the user ends (`current_token`, the cookie in use, is kept).
pub async fn confirm_enrolment(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    current_token: Option<&str>,
    code: &str,
) -> AppResult<Vec<String>> {
    let (st, user_id, code) = (state.clone(), p.user_id.clone(), code.to_string());
    let codes = service::throttled_code_check(state, p, client, async move {
        confirm_checked(&st, &user_id, &code).await
    })
    .await?;
    let ended = service::end_other_sessions_of(state, &p.user_id, current_token).await?;
    audit::record_alone(
        &state.db,
        Entry::new(
            state.now_ms(),
            &p.user_id,
            action::TWO_FACTOR_ENABLE,
            &p.user_id,
        )
        .with("ended_sessions", ended),
    )
    .await?;
    tracing::info!(user_id = %p.user_id, ended_sessions = ended, "TOTP enrolment confirmed; two-factor authentication on");
    super::alerts::send(
        state,
        &p.user_id,
        super::alerts::AlertKind::TwoFactorEnabled,
        client,
    )
    .await?;
    Ok(codes)
}

async fn confirm_checked(
    state: &AppState,
    user_id: &str,
    code: &str,
) -> AppResult<Option<Vec<String>>> {
    let now = state.now_ms();
    let Some(row) = store::totp(&state.db.write, &state.vault, user_id).await? else {
        return Err(DomainError::Conflict("start the enrolment first".into()).into());
    };
    if row.active() {
        return Err(DomainError::Conflict("two-factor authentication is already on".into()).into());
    }
    let Some(CodeKind::Totp(code)) = rules::parse_code(code) else {
        return Ok(None);
    };
    let Some(step) = matching_step(&row.secret, &code, row.last_step, now)? else {
        return Ok(None);
    };
    if !store::accept_step(&state.db.write, user_id, step, Some(now)).await? {
        return Ok(None);
    }
    Ok(Some(new_recovery_codes(state, user_id, now).await?))
}

async fn new_recovery_codes(state: &AppState, user_id: &str, now: i64) -> AppResult<Vec<String>> {
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| rules::new_recovery_code())
        .collect();
    let digests: Vec<String> = codes.iter().map(|c| digest(c)).collect();
    store::replace_recovery_codes(&state.db.write, user_id, &digests, now).await?;
    Ok(codes
        .iter()
        .map(|c| rules::display_recovery_code(c))
        .collect())
}

/// Checks and consumes a second-factor code of an active factor: a TOTP code (its step is
/// then used up) or an unused recovery code (then used up). False for anything else.
pub async fn verify_code(state: &AppState, user_id: &str, code: &str) -> AppResult<bool> {
    let now = state.now_ms();
    let Some(row) = store::totp(&state.db.write, &state.vault, user_id).await? else {
        return Ok(false);
    };
    if !row.active() {
        return Ok(false);
    }
    match rules::parse_code(code) {
        Some(CodeKind::Totp(code)) => {
            match matching_step(&row.secret, &code, row.last_step, now)? {
                Some(step) => Ok(store::accept_step(&state.db.write, user_id, step, None).await?),
                None => Ok(false),
            }
        }
        Some(CodeKind::Recovery(code)) => {
            let used =
                store::use_recovery_code(&state.db.write, user_id, &digest(&code), now).await?;
            if used {
                tracing::info!(user_id, "recovery code used");
            }
            Ok(used)
        }
        None => Ok(false),
    }
}

/// Turns two-factor authentication off; needs a current code (TOTP or recovery). A wrong code
/// counts against the sign-in throttle; on success every other session of the user ends
/// (`current_token`, the cookie in use, is kept).
pub async fn disable(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    current_token: Option<&str>,
    code: &str,
) -> AppResult<()> {
    if !is_active(state, &p.user_id).await? {
        return Err(DomainError::Conflict("two-factor authentication is not on".into()).into());
    }
    let (st, user_id, code) = (state.clone(), p.user_id.clone(), code.to_string());
    service::throttled_code_check(state, p, client, async move {
        if !verify_code(&st, &user_id, &code).await? {
            return Ok(None);
        }
        store::delete_second_factors(&st.db.write, &user_id).await?;
        Ok(Some(()))
    })
    .await?;
    let ended = service::end_other_sessions_of(state, &p.user_id, current_token).await?;
    audit::record_alone(
        &state.db,
        Entry::new(
            state.now_ms(),
            &p.user_id,
            action::TWO_FACTOR_DISABLE,
            &p.user_id,
        )
        .with("ended_sessions", ended),
    )
    .await?;
    tracing::info!(user_id = %p.user_id, ended_sessions = ended, "two-factor authentication turned off");
    super::alerts::send(
        state,
        &p.user_id,
        super::alerts::AlertKind::TwoFactorDisabled,
        client,
    )
    .await?;
    Ok(())
}

/// A new set of recovery codes (the old set stops working); needs a current code, and a wrong
/// one counts against the sign-in throttle.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    code: &str,
) -> AppResult<Vec<String>> {
    if !is_active(state, &p.user_id).await? {
        return Err(DomainError::Conflict("two-factor authentication is not on".into()).into());
    }
    let (st, user_id, code) = (state.clone(), p.user_id.clone(), code.to_string());
    let codes = service::throttled_code_check(state, p, client, async move {
        if !verify_code(&st, &user_id, &code).await? {
            return Ok(None);
        }
        let now = st.now_ms();
        Ok(Some(new_recovery_codes(&st, &user_id, now).await?))
    })
    .await?;
    audit::record_alone(
        &state.db,
        Entry::new(
            state.now_ms(),
            &p.user_id,
            action::RECOVERY_CODES_REGENERATE,
            &p.user_id,
        ),
    )
    .await?;
    tracing::info!(user_id = %p.user_id, "recovery codes regenerated");
    super::alerts::send(
        state,
        &p.user_id,
        super::alerts::AlertKind::RecoveryCodesRegenerated,
        client,
    )
    .await?;
    Ok(codes)
}
