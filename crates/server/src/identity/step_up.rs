//! Step-up: before a sensitive change (email, password, second factors, passkeys, the payout
//! bank account, API credentials, staff, admin actions) the caller proves it is really them,
//! now — a stolen session or token alone is not enough.
//!
//! The proof is a second factor (a TOTP code or recovery code here; a passkey assertion in
//! `passkey`, which calls `record`), or — for an account without any second factor — the
//! password. It holds for `STEP_UP_WINDOW_MS` on the session or API token it was given on
//! (`sessions.second_factor_at`, `api_tokens.stepped_up_at`), so a person changing several
//! settings proves it once. Every code or password goes through the sign-in throttle.

use super::second_factor;
use super::service::{self, SignIn};
use super::store;
use crate::platform::http::auth::{Credential, Principal};
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use clipcart_domain::DomainError;
use secrecy::{ExposeSecret, SecretString};

/// A proof of a second factor lasts this long on its session or token.
pub const STEP_UP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// What a request may carry to step up on the spot.
#[derive(Default)]
pub struct StepUpProof {
    /// A current code from the authenticator app, or an unused recovery code.
    pub otp: Option<SecretString>,
    /// The password, accepted only from accounts without a second factor.
    pub password: Option<SecretString>,
}

impl StepUpProof {
    pub fn new(otp: Option<SecretString>, password: Option<SecretString>) -> Self {
        let given = |s: Option<SecretString>| s.filter(|v| !v.expose_secret().trim().is_empty());
        Self {
            otp: given(otp),
            password: given(password),
        }
    }

    fn is_empty(&self) -> bool {
        self.otp.is_none() && self.password.is_none()
    }
}

/// Whether the caller proved a second factor within the window on this session or token.
pub fn is_fresh(state: &AppState, p: &Principal) -> bool {
    p.stepped_up_at > 0 && state.now_ms() - p.stepped_up_at < STEP_UP_WINDOW_MS
}

/// Passes when the caller is within the step-up window, or when `proof` proves it now (and
/// then opens the window on the caller's session or token). Without a usable proof: 403
/// `step-up-required`. A wrong code or password counts as a sign-in failure of the account.
pub async fn require(
    state: &AppState,
    p: &Principal,
    proof: StepUpProof,
    client: &ClientInfo,
) -> AppResult<()> {
    // Code acting for someone (the demo loader, the command line) is already trusted.
    if is_fresh(state, p) || p.credential == Credential::Internal {
        return Ok(());
    }
    if proof.is_empty() {
        return Err(AppError::StepUpRequired);
    }
    if has_second_factor(state, &p.user_id).await? {
        let Some(code) = proof.otp else {
            // A password does not step up an account that has a second factor.
            return Err(AppError::StepUpRequired);
        };
        let user_id = p.user_id.clone();
        let checker = state.clone();
        service::throttled_code_check(state, p, client, async move {
            Ok(
                second_factor::verify_code(&checker, &user_id, code.expose_secret())
                    .await?
                    .then_some(()),
            )
        })
        .await?;
    } else {
        let Some(password) = proof.password else {
            return Err(AppError::StepUpRequired);
        };
        match service::check_password(state, &p.email, password, None, client).await {
            Ok(SignIn::Complete { user, .. }) if user.id == p.user_id => {}
            Ok(_) => return Err(AppError::StepUpRequired),
            Err(AppError::Domain(DomainError::Invalid(_))) => {
                return Err(
                    DomainError::invalid("current_password", "the password is wrong").into(),
                );
            }
            Err(e) => return Err(e),
        }
    }
    record(state, p).await
}

/// Opens the step-up window on the caller's session or token (after a proof made elsewhere,
/// such as a passkey assertion).
pub async fn record(state: &AppState, p: &Principal) -> AppResult<()> {
    store::record_step_up(&state.db.write, &p.credential, state.now_ms()).await?;
    tracing::info!(user_id = %p.user_id, via = credential_kind(&p.credential), "stepped up");
    Ok(())
}

fn credential_kind(c: &Credential) -> &'static str {
    match c {
        Credential::Session { .. } => "session",
        Credential::Token { .. } => "token",
        Credential::Internal => "internal",
    }
}

/// Any second factor: TOTP or a passkey. An account with only passkeys steps up with an
/// assertion (`passkey::finish_step_up`, which calls `record`), not with a code.
async fn has_second_factor(state: &AppState, user_id: &str) -> AppResult<bool> {
    super::passkey::second_factor_on(state, user_id).await
}
