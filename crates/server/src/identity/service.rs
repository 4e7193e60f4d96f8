//! Identity use cases. Sign-in answers the same for a wrong password and an unknown email, and
//! takes the same time (the hasher verifies against a dummy hash).

use super::store::{self, UserRow};
use crate::platform::audit::{self, Entry, action};
use crate::platform::http::auth::{Credential, Principal};
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use clipcart_domain::DomainError;
use clipcart_domain::identity::{Email, Role, check_new_password};
use clipcart_domain::ids;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A session ends after this long without use...
pub const SESSION_IDLE_MS: i64 = 12 * 60 * 60 * 1000;
/// ...and this long after sign-in, whatever happens.
pub const SESSION_ABSOLUTE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
pub const TOKEN_LIFETIME_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// `last_seen_at` is refreshed at most this often, to keep reads from turning into writes.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

pub struct SignUp {
    pub email: String,
    pub password: SecretString,
    pub display_name: String,
    pub role: Role,
}

pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub async fn sign_up(state: &AppState, input: SignUp) -> AppResult<UserRow> {
    let user = new_account(state, input).await?;
    if !store::insert_user(&state.db.write, &user).await? {
        return Err(DomainError::invalid(
            "email",
            "an account with this email already exists; sign in instead",
        )
        .into());
    }
    tracing::info!(user_id = %user.id, role = %user.role, "account created");
    Ok(user)
}

/// Checks a sign-up (email, name, password policy) and hashes its password: the account's
/// row, not stored yet. The public sign-up (`email::sign_up`) stores it without telling
/// whether the address was taken.
pub async fn new_account(state: &AppState, input: SignUp) -> AppResult<UserRow> {
    let mut errors = clipcart_domain::error::Errors::new();
    let email = errors.check(Email::parse(&input.email));
    let name = input.display_name.trim().to_string();
    errors.check(clipcart_domain::identity::check_display_name(&name));
    // No second factor can be enrolled before the account exists: the 15-character minimum.
    let context = clipcart_domain::identity::PasswordContext::new()
        .email(&input.email)
        .name(&name);
    errors.check(check_new_password(
        input.password.expose_secret(),
        &context,
        false,
    ));
    errors.finish()?;
    let email = email.ok_or_else(|| DomainError::invalid("email", "invalid"))?;
    let password_hash = state.hasher.hash(input.password).await?;
    let user = UserRow {
        id: ids::new_id(ids::USER),
        email: email.as_str().to_string(),
        password_hash,
        display_name: name,
        role: input.role.as_str().to_string(),
        created_at: state.now_ms(),
    };
    Ok(user)
}

/// Checks an email and password; the same error whatever was wrong. Throttled first (rules in
/// `clipcart_domain::identity::throttle`): per account — named by a keyed hash of the
/// normalised email, so an email without an account is throttled exactly like one with an
/// account — and per client address, both in the database so that every node sees the same
/// counts. A refusal answers 429 with Retry-After at once, without hashing. Every attempt goes
/// into the sign-in history and the log (never the password).
///
/// With a second factor: a right password without `otp` settles nothing (neither a success,
/// which would reset the failure count, nor a failure) and answers `SecondFactorRequired`; a
/// wrong `otp` counts as a failure exactly like a wrong password and answers the same.
pub async fn check_password(
    state: &AppState,
    email: &str,
    password: SecretString,
    otp: Option<SecretString>,
    client: &ClientInfo,
) -> AppResult<SignIn> {
    let user = match Email::parse(email) {
        Ok(e) => store::user_by_email(&state.db.read, e.as_str()).await?,
        Err(_) => None,
    };
    throttled_attempt(
        state,
        email,
        user,
        Attempt::Password {
            password,
            otp,
            passkey: None,
        },
        client,
    )
    .await
}

/// What a password (and maybe code) proved.
pub enum SignIn {
    /// Signed in; `second_factor` when a second factor was proved too.
    Complete { user: UserRow, second_factor: bool },
    /// The password was right, and the account needs its second factor before anything starts.
    SecondFactorRequired(UserRow),
}

enum Attempt {
    Password {
        password: SecretString,
        otp: Option<SecretString>,
        /// A passkey assertion as the second factor, instead of `otp`.
        passkey: Option<super::passkey::Assertion>,
    },
    /// The second step of a page sign-in: the code alone, the password having been proved.
    Code(SecretString),
    /// The same second step with a passkey instead of a code.
    Passkey(super::passkey::Assertion),
}

/// `check_password` with a passkey assertion as the second factor instead of a code (API
/// clients: the ceremony comes from `passkey::start_sign_in`). Throttled and counted the same:
/// a refused assertion is a failure like a wrong code.
pub async fn check_password_with_passkey(
    state: &AppState,
    email: &str,
    password: SecretString,
    passkey: super::passkey::Assertion,
    client: &ClientInfo,
) -> AppResult<SignIn> {
    let user = match Email::parse(email) {
        Ok(e) => store::user_by_email(&state.db.read, e.as_str()).await?,
        Err(_) => None,
    };
    let attempt = Attempt::Password {
        password,
        otp: None,
        passkey: Some(passkey),
    };
    throttled_attempt(state, email, user, attempt, client).await
}

/// The second step of a page sign-in with a passkey (see `check_pending_code`).
pub async fn check_pending_passkey(
    state: &AppState,
    pending_id: &str,
    passkey: super::passkey::Assertion,
    client: &ClientInfo,
) -> AppResult<Option<UserRow>> {
    let hash = digest(pending_id);
    let Some(user_id) = sf_store::pending_user(&state.db.write, &hash, state.now_ms()).await?
    else {
        return Ok(None);
    };
    let Some(user) = store::user_by_id(&state.db.write, &user_id).await? else {
        return Ok(None);
    };
    let email = user.email.clone();
    let attempt = Attempt::Passkey(passkey);
    match throttled_attempt(state, &email, Some(user), attempt, client).await? {
        SignIn::Complete { user, .. } => {
            sf_store::delete_pending(&state.db.write, &hash).await?;
            audit_sign_in(state, &user.id, "password", Some(true)).await?;
            Ok(Some(user))
        }
        SignIn::SecondFactorRequired(_) => Ok(None),
    }
}

/// Records a passwordless passkey sign-in in the sign-in history.
pub(crate) async fn record_passkey_sign_in(
    state: &AppState,
    user_id: &str,
    client: &ClientInfo,
) -> AppResult<()> {
    record_sign_in(
        state,
        Some(user_id),
        SignInOutcome::Success,
        client,
        state.now_ms(),
    )
    .await?;
    audit_sign_in(state, user_id, "passkey", None).await
}

/// Records a completed sign-in (a session or an API token follows) in the audit log: the
/// user id, the method (`password`, `passkey`) and, after a password, whether a second factor
/// was proved. Not for a password proved again for step-up or a password change.
pub(crate) async fn audit_sign_in(
    state: &AppState,
    user_id: &str,
    method: &'static str,
    second_factor: Option<bool>,
) -> AppResult<()> {
    let mut entry =
        Entry::new(state.now_ms(), user_id, action::SIGN_IN, user_id).with("method", method);
    if let Some(second_factor) = second_factor {
        entry = entry.with("second_factor", second_factor);
    }
    audit::record_alone(&state.db, entry).await?;
    Ok(())
}

/// The second step of a page sign-in: a code for the sign-in pending under `pending_id`
/// (opaque, from a hidden field). Throttled and counted like a password. `Ok(None)` when the
/// pending sign-in is unknown or expired (start again).
pub async fn check_pending_code(
    state: &AppState,
    pending_id: &str,
    code: SecretString,
    client: &ClientInfo,
) -> AppResult<Option<UserRow>> {
    let hash = digest(pending_id);
    let Some(user_id) = sf_store::pending_user(&state.db.write, &hash, state.now_ms()).await?
    else {
        return Ok(None);
    };
    let Some(user) = store::user_by_id(&state.db.write, &user_id).await? else {
        return Ok(None);
    };
    let email = user.email.clone();
    match throttled_attempt(state, &email, Some(user), Attempt::Code(code), client).await? {
        SignIn::Complete { user, .. } => {
            sf_store::delete_pending(&state.db.write, &hash).await?;
            audit_sign_in(state, &user.id, "password", Some(true)).await?;
            Ok(Some(user))
        }
        SignIn::SecondFactorRequired(_) => Ok(None),
    }
}

/// Remembers a page sign-in whose password was right; returns the opaque id for the code form.
pub async fn start_pending_second_factor(state: &AppState, user_id: &str) -> AppResult<String> {
    let id = ids::random_secret(20);
    let now = state.now_ms();
    sf_store::insert_pending(
        &state.db.write,
        &digest(&id),
        user_id,
        now,
        now + clipcart_domain::identity::second_factor::PENDING_SECOND_FACTOR_MS,
    )
    .await?;
    Ok(id)
}

async fn throttled_attempt(
    state: &AppState,
    email: &str,
    user: Option<UserRow>,
    attempt: Attempt,
    client: &ClientInfo,
) -> AppResult<SignIn> {
    let now = state.now_ms();
    let key = sign_in_account_key(state, email);
    let address = throttle_rules::address_bucket(client.ip);
    if let Some(refusal) = stored_refusal(state, &key, &address, now).await? {
        return Err(refuse_sign_in(
            state,
            refusal,
            user.as_ref().map(|u| u.id.as_str()),
            client,
            now,
        )
        .await);
    }
    // Reserve, verify and settle in a task of its own: a client that disconnects cannot leave
    // its reservation counted until the lease runs out.
    let task = tokio::spawn(verify_reserved(
        state.clone(),
        key,
        address,
        user,
        attempt,
        client.clone(),
        now,
    ));
    task.await.map_err(|e| AppError::Internal(e.into()))?
}

/// Starts a session; `previous` (the old cookie, if any) is ended so the id is always fresh.
pub async fn start_session(
    state: &AppState,
    user_id: &str,
    user_agent: &str,
    previous: Option<&str>,
) -> AppResult<String> {
    if let Some(old) = previous {
        store::delete_session(&state.db.write, &digest(old)).await?;
    }
    let token = ids::random_secret(20);
    let now = state.now_ms();
    let ua: String = user_agent.chars().take(200).collect();
    store::insert_session(
        &state.db.write,
        &digest(&token),
        user_id,
        now,
        now + SESSION_ABSOLUTE_MS,
        &ua,
    )
    .await?;
    Ok(token)
}

pub async fn end_session(state: &AppState, token: &str) -> AppResult<()> {
    store::delete_session(&state.db.write, &digest(token)).await?;
    Ok(())
}

/// Gives the session behind `token` a new id after a step-up, as a sign-in does: the old
/// cookie value stops working at once, so whoever may have learned it does not hold the raised
/// session. Everything else stays (public id, start, expiry, the step-up time). Returns the new
/// cookie value, or `None` when the session no longer exists.
pub async fn rotate_session(state: &AppState, token: &str) -> AppResult<Option<String>> {
    let fresh = ids::random_secret(20);
    let moved = store::rekey_session(&state.db.write, &digest(token), &digest(&fresh)).await?;
    Ok(moved.then_some(fresh))
}

pub async fn principal_from_session(state: &AppState, token: &str) -> AppResult<Option<Principal>> {
    let hash = digest(token);
    let Some(row) = store::session_principal(&state.db.read, &hash).await? else {
        return Ok(None);
    };
    let now = state.now_ms();
    if now >= row.expires_at || now - row.last_seen_at >= SESSION_IDLE_MS {
        store::delete_session(&state.db.write, &hash).await?;
        return Ok(None);
    }
    if now - row.last_seen_at >= TOUCH_EVERY_MS {
        store::touch_session(&state.db.write, &hash, now).await?;
    }
    Ok(row.into_principal(Credential::Session { id_hash: hash }))
}

pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

/// API tokens look like `cc_<52 base32 chars>` so secret scanners can recognise them.
pub async fn issue_token(state: &AppState, user_id: &str) -> AppResult<IssuedToken> {
    let token = format!("cc_{}", ids::random_secret(32));
    let now = state.now_ms();
    let expires_at = now + TOKEN_LIFETIME_MS;
    store::insert_token(
        &state.db.write,
        &ids::new_id("tkn"),
        &digest(&token),
        user_id,
        now,
        expires_at,
    )
    .await?;
    Ok(IssuedToken { token, expires_at })
}

pub async fn principal_from_token(state: &AppState, token: &str) -> AppResult<Option<Principal>> {
    if !token.starts_with("cc_") || token.len() > 100 {
        return Ok(None);
    }
    let hash = digest(token);
    let Some(row) = store::token_principal(&state.db.read, &hash).await? else {
        return Ok(None);
    };
    if state.now_ms() >= row.expires_at {
        return Ok(None);
    }
    Ok(row.into_principal(Credential::Token { id_hash: hash }))
}

pub async fn revoke_token(state: &AppState, token: &str) -> AppResult<()> {
    store::delete_token(&state.db.write, &digest(token)).await?;
    Ok(())
}

/// Creates an account from the command line (the first admin, demo users). The operator
/// vouches for the address, so it counts as verified (no mail is sent).
pub async fn create_account(
    state: &AppState,
    email: &str,
    password: &str,
    name: &str,
    role: Role,
) -> Result<UserRow, AppError> {
    let user = sign_up(
        state,
        SignUp {
            email: email.into(),
            password: SecretString::from(password.to_string()),
            display_name: name.into(),
            role,
        },
    )
    .await?;
    super::email::mark_verified_by_operator(state, &user.id).await?;
    Ok(user)
}

// ---- Sign-in security: throttling, the sign-in history, sessions people can see and end ----

use super::second_factor;
use super::second_factor_store as sf_store;
use super::throttle as throttle_store;
use crate::platform::http::client::ClientInfo;
use clipcart_domain::identity::device;
use clipcart_domain::identity::throttle::{
    self as throttle_rules, POLICY as THROTTLE, Refusal, SignInOutcome,
};
use clipcart_domain::page::{Cursor, PageRequest};
use hmac::{KeyInit, Mac};

const SIGN_IN_EVENT_PREFIX: &str = "sgn";

/// What the throttle calls an email: HMAC-SHA256, under the platform's sign-in key, of the
/// email trimmed and lower-cased as `Email::parse` does (valid or not).
fn sign_in_account_key(state: &AppState, email: &str) -> String {
    let normalised = Email::parse(email)
        .map(|e| e.as_str().to_string())
        .unwrap_or_else(|_| email.trim().to_ascii_lowercase());
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(state.sign_in_key.expose_secret())
        .expect("HMAC takes any key length");
    mac.update(b"sign-in account\0");
    mac.update(normalised.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn record_sign_in(
    state: &AppState,
    user_id: Option<&str>,
    outcome: SignInOutcome,
    client: &ClientInfo,
    now: i64,
) -> AppResult<()> {
    throttle_store::insert_event(
        &state.db.write,
        &throttle_store::EventRow {
            id: ids::new_id(SIGN_IN_EVENT_PREFIX),
            user_id: user_id.map(str::to_string),
            at: now,
            outcome: outcome.as_str().to_string(),
            address: client.ip.to_string(),
            user_agent: client.user_agent.clone(),
        },
    )
    .await?;
    Ok(())
}

/// Records and logs a refusal; the 429 to answer with (or the error that stopped recording it).
async fn refuse_sign_in(
    state: &AppState,
    refusal: Refusal,
    user_id: Option<&str>,
    client: &ClientInfo,
    now: i64,
) -> AppError {
    let outcome = refusal.outcome();
    if let Err(e) = record_sign_in(state, user_id, outcome, client, now).await {
        return e;
    }
    let retry_after_secs = refusal.retry_after_secs(&THROTTLE, now);
    tracing::warn!(
        user_id = user_id.unwrap_or("-"),
        outcome = outcome.as_str(),
        reason = refusal.reason(),
        client_ip = %client.ip,
        retry_after_secs,
        "sign-in refused by the throttle"
    );
    AppError::TooManyRequests { retry_after_secs }
}

/// The part of `check_password` after the quick refusal: reserve the attempt on the account and
/// a ticket of the address budget, verify, settle both, record.
async fn verify_reserved(
    state: AppState,
    key: String,
    address: String,
    user: Option<UserRow>,
    attempt: Attempt,
    client: ClientInfo,
    now: i64,
) -> AppResult<SignIn> {
    let db = &state.db.write;
    if !throttle_store::reserve_account(db, &key, now, &THROTTLE).await? {
        // Another node or request got there first; say why from the fresh state.
        let account = throttle_store::account(db, &key).await?.unwrap_or_default();
        let refusal = THROTTLE
            .check_account(&account, now)
            .err()
            .unwrap_or(Refusal::AccountBusy);
        return Err(refuse_sign_in(
            &state,
            refusal,
            user.as_ref().map(|u| u.id.as_str()),
            &client,
            now,
        )
        .await);
    }
    let ticket = match throttle_store::take_address_ticket(db, &address, now, &THROTTLE).await {
        Ok(t) => t,
        Err(e) => {
            throttle_store::release_account(db, &key).await?;
            return Err(e.into());
        }
    };
    if let Err(refusal) = THROTTLE.check_address_ticket(&ticket, now) {
        throttle_store::release_account(db, &key).await?;
        return Err(refuse_sign_in(
            &state,
            refusal,
            user.as_ref().map(|u| u.id.as_str()),
            &client,
            now,
        )
        .await);
    }
    let (password, otp, passkey) = match attempt {
        Attempt::Password {
            password,
            otp,
            passkey,
        } => (Some(password), otp, passkey),
        Attempt::Code(code) => (None, Some(code), None),
        Attempt::Passkey(assertion) => (None, None, Some(assertion)),
    };
    let proof_given = otp.is_some() || passkey.is_some();
    let verified = match password {
        Some(password) => {
            state
                .hasher
                .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
                .await
        }
        // Only reached with the user of a pending sign-in whose password was proved.
        None => Ok(user.is_some()),
    };
    let ok = match verified {
        Ok(ok) => ok,
        Err(e) => {
            // The hashing pool was full (or failed): not an attempt, give both back.
            throttle_store::release_account(db, &key).await?;
            throttle_store::return_address_ticket(db, &address, ticket.window_start).await?;
            if let AppError::TooManyRequests { retry_after_secs } = e {
                let user_id = user.as_ref().map(|u| u.id.as_str());
                record_sign_in(&state, user_id, SignInOutcome::Throttled, &client, now).await?;
                tracing::warn!(
                    user_id = user_id.unwrap_or("-"),
                    outcome = "throttled",
                    reason = "hashing_pool_full",
                    client_ip = %client.ip,
                    retry_after_secs,
                    "sign-in refused"
                );
            }
            return Err(e);
        }
    };
    // The second factor, once the password is right: none needed, missing, right or wrong.
    let second = match &user {
        Some(u) if ok && super::passkey::second_factor_on(&state, &u.id).await? => {
            match (&otp, passkey) {
                (Some(code), _) => {
                    Some(second_factor::verify_code(&state, &u.id, code.expose_secret()).await?)
                }
                (None, Some(assertion)) => {
                    Some(super::passkey::verify_second_factor(&state, &u.id, assertion).await?)
                }
                (None, None) => Some(false),
            }
        }
        _ => None,
    };
    if second == Some(false)
        && !proof_given
        && let Some(u) = user
    {
        // Neither a success nor a failure: give the reservation and the ticket back.
        throttle_store::release_account(db, &key).await?;
        throttle_store::return_address_ticket(db, &address, ticket.window_start).await?;
        tracing::info!(user_id = %u.id, outcome = "second_factor_required", client_ip = %client.ip, "sign-in");
        return Ok(SignIn::SecondFactorRequired(u));
    }
    let ok = ok && second != Some(false);
    match user {
        Some(u) if ok => {
            // Read before the success resets it: many failures before a success get an alert.
            let failures_before = throttle_store::account(db, &key)
                .await?
                .map_or(0, |a| a.failures);
            throttle_store::settle_success(db, &key).await?;
            if failures_before >= super::alerts::FAILURES_WORTH_AN_ALERT {
                super::alerts::send(
                    &state,
                    &u.id,
                    super::alerts::AlertKind::SignInAfterFailures {
                        failures: failures_before,
                    },
                    &client,
                )
                .await?;
            }
            throttle_store::return_address_ticket(db, &address, ticket.window_start).await?;
            record_sign_in(&state, Some(&u.id), SignInOutcome::Success, &client, now).await?;
            tracing::info!(user_id = %u.id, outcome = "success", second_factor = second.is_some(), client_ip = %client.ip, "sign-in");
            Ok(SignIn::Complete {
                user: u,
                second_factor: second.is_some(),
            })
        }
        user => {
            let failures = throttle_store::record_failure(db, &key, now, |n| {
                let after = THROTTLE.after_failure(n, now);
                (after.blocked_until, after.locked)
            })
            .await?;
            let user_id = user.as_ref().map(|u| u.id.as_str());
            // A wrong second-factor code is recorded as a wrong password: the same answer,
            // the same count (the history's outcomes are fixed by 0002's CHECK constraint).
            record_sign_in(&state, user_id, SignInOutcome::WrongPassword, &client, now).await?;
            tracing::info!(
                user_id = user_id.unwrap_or("-"),
                outcome = "wrong_password",
                second_factor_failed = second == Some(false),
                consecutive_failures = failures,
                client_ip = %client.ip,
                "sign-in"
            );
            if THROTTLE.after_failure(failures, now).locked {
                tracing::warn!(
                    user_id = user_id.unwrap_or("-"),
                    consecutive_failures = failures,
                    "password sign-in locked after too many consecutive failures; a platform admin can unlock it"
                );
            }
            Err(DomainError::invalid("password", "the email or password is wrong").into())
        }
    }
}

/// Runs `check` — a second-factor management action (confirming an enrolment, turning the
/// factor off, new recovery codes) that proves a code — under the caller's sign-in throttle, so
/// a stolen session cannot guess codes without limit. `check` answers `Ok(None)` for a wrong
/// code: that counts as a sign-in failure of the account (the back-off, the lock, the history,
/// recorded as a wrong password as on the sign-in code form) and answers the wrong-code error.
/// A right code settles like a successful sign-in; any other error gives the attempt back.
/// Refused attempts answer 429 with Retry-After before `check` runs.
pub async fn throttled_code_check<T: Send + 'static>(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    check: impl Future<Output = AppResult<Option<T>>> + Send + 'static,
) -> AppResult<T> {
    let now = state.now_ms();
    let key = sign_in_account_key(state, &p.email);
    let address = throttle_rules::address_bucket(client.ip);
    if let Some(refusal) = stored_refusal(state, &key, &address, now).await? {
        return Err(refuse_sign_in(state, refusal, Some(&p.user_id), client, now).await);
    }
    // In a task of its own, as for sign-in: a disconnect cannot leave the reservation counted.
    let task = tokio::spawn(code_check_reserved(
        state.clone(),
        key,
        address,
        p.user_id.clone(),
        check,
        client.clone(),
        now,
    ));
    task.await.map_err(|e| AppError::Internal(e.into()))?
}

/// `throttled_code_check` for an account named by id and email rather than a principal: the
/// code a password reset asks for (nobody is signed in then). The same throttle, the same
/// counting.
pub async fn throttled_code_check_for<T: Send + 'static>(
    state: &AppState,
    user_id: &str,
    email: &str,
    client: &ClientInfo,
    check: impl Future<Output = AppResult<Option<T>>> + Send + 'static,
) -> AppResult<T> {
    let now = state.now_ms();
    let key = sign_in_account_key(state, email);
    let address = throttle_rules::address_bucket(client.ip);
    if let Some(refusal) = stored_refusal(state, &key, &address, now).await? {
        return Err(refuse_sign_in(state, refusal, Some(user_id), client, now).await);
    }
    let task = tokio::spawn(code_check_reserved(
        state.clone(),
        key,
        address,
        user_id.to_string(),
        check,
        client.clone(),
        now,
    ));
    task.await.map_err(|e| AppError::Internal(e.into()))?
}

/// Clears the sign-in back-off, lock and failure count of an email: after a completed password
/// reset (a mailed link and, with 2FA, a code) the old password's guessers have nothing left
/// to guess.
pub async fn clear_sign_in_throttle(state: &AppState, email: &str) -> AppResult<()> {
    let key = sign_in_account_key(state, email);
    throttle_store::unlock(&state.db.write, &key).await?;
    Ok(())
}

async fn code_check_reserved<T>(
    state: AppState,
    key: String,
    address: String,
    user_id: String,
    check: impl Future<Output = AppResult<Option<T>>>,
    client: ClientInfo,
    now: i64,
) -> AppResult<T> {
    let db = &state.db.write;
    if !throttle_store::reserve_account(db, &key, now, &THROTTLE).await? {
        let account = throttle_store::account(db, &key).await?.unwrap_or_default();
        let refusal = THROTTLE
            .check_account(&account, now)
            .err()
            .unwrap_or(Refusal::AccountBusy);
        return Err(refuse_sign_in(&state, refusal, Some(&user_id), &client, now).await);
    }
    let ticket = match throttle_store::take_address_ticket(db, &address, now, &THROTTLE).await {
        Ok(t) => t,
        Err(e) => {
            throttle_store::release_account(db, &key).await?;
            return Err(e.into());
        }
    };
    if let Err(refusal) = THROTTLE.check_address_ticket(&ticket, now) {
        throttle_store::release_account(db, &key).await?;
        return Err(refuse_sign_in(&state, refusal, Some(&user_id), &client, now).await);
    }
    match check.await {
        Ok(Some(done)) => {
            throttle_store::settle_success(db, &key).await?;
            throttle_store::return_address_ticket(db, &address, ticket.window_start).await?;
            Ok(done)
        }
        Ok(None) => {
            let failures = throttle_store::record_failure(db, &key, now, |n| {
                let after = THROTTLE.after_failure(n, now);
                (after.blocked_until, after.locked)
            })
            .await?;
            record_sign_in(
                &state,
                Some(&user_id),
                SignInOutcome::WrongPassword,
                &client,
                now,
            )
            .await?;
            tracing::info!(
                user_id,
                outcome = "wrong_password",
                second_factor_failed = true,
                consecutive_failures = failures,
                client_ip = %client.ip,
                "second-factor code refused on a security action"
            );
            Err(second_factor::wrong_code())
        }
        Err(e) => {
            throttle_store::release_account(db, &key).await?;
            throttle_store::return_address_ticket(db, &address, ticket.window_start).await?;
            Err(e)
        }
    }
}

/// Ends every session of a user except the one behind `current_token` (all of them when there
/// is none); after a second factor is turned on or off. Returns how many ended.
pub async fn end_other_sessions_of(
    state: &AppState,
    user_id: &str,
    current_token: Option<&str>,
) -> AppResult<u64> {
    let keep = current_token.map(digest).unwrap_or_default();
    let ended = store::delete_other_sessions(&state.db.write, user_id, &keep).await?;
    Ok(ended)
}

/// Clears the sign-in lock, back-off and failure count of an email (known or not); platform
/// admins only. Until password reset exists this is the way out of the 100-failure lock.
/// Returns whether it was locked.
pub async fn unlock_sign_in(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    email: &str,
) -> AppResult<bool> {
    crate::identity::passkey::require_admin(state, p).await?;
    super::step_up::require(state, p, super::step_up::StepUpProof::default(), client).await?;
    let key = sign_in_account_key(state, email);
    let was = throttle_store::account(&state.db.write, &key)
        .await?
        .unwrap_or_default();
    throttle_store::unlock(&state.db.write, &key).await?;
    crate::platform::audit::record_alone(
        &state.db,
        crate::platform::audit::Entry::new(
            state.now_ms(),
            &p.user_id,
            crate::platform::audit::action::SIGN_IN_UNLOCK,
            &key,
        )
        .with("was_locked", was.locked),
    )
    .await?;
    tracing::warn!(
        admin_id = %p.user_id,
        was_locked = was.locked,
        consecutive_failures = was.failures,
        "sign-in unlocked by an admin"
    );
    Ok(was.locked)
}

/// Starts a session as `start_session` does, remembering the client's address and user agent
/// and giving the session its public id. A complete sign-in is the strongest proof the
/// account has (its second factor, or its password when it has none), so the session starts
/// inside the step-up window (`second_factor_at`, see `step_up`).
pub async fn start_session_for(
    state: &AppState,
    user_id: &str,
    client: &ClientInfo,
    previous: Option<&str>,
) -> AppResult<String> {
    if let Some(old) = previous {
        store::delete_session(&state.db.write, &digest(old)).await?;
    }
    let token = ids::random_secret(20);
    let now = state.now_ms();
    let address = client.ip.to_string();
    store::insert_session_from(
        &state.db.write,
        &store::NewSession {
            id_hash: &digest(&token),
            public_id: &ids::new_id(store::SESSION_ID_PREFIX),
            user_id,
            now,
            expires_at: now + SESSION_ABSOLUTE_MS,
            user_agent: &client.user_agent,
            address: &address,
            second_factor_at: now,
        },
    )
    .await?;
    Ok(token)
}

/// One page of a list and the cursor of the next.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

fn listed<R, T>(
    mut rows: Vec<R>,
    page: &PageRequest,
    cursor: impl Fn(&R) -> Cursor,
    view: impl FnMut(R) -> T,
) -> Listed<T> {
    let next_cursor = if rows.len() > page.limit as usize {
        rows.truncate(page.limit as usize);
        rows.last().map(|r| cursor(r).encode())
    } else {
        None
    };
    Listed {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

pub struct SessionView {
    pub id: String,
    /// "Firefox on Linux": from the user agent, a hint only.
    pub device: String,
    pub user_agent: String,
    /// Empty when not known (sessions started before addresses were kept).
    pub address: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    /// The session the request was made with.
    pub current: bool,
}

/// The caller's live sessions, newest first; `current_token` (the cookie of this request, if
/// any) marks the session in use.
pub async fn list_sessions(
    state: &AppState,
    p: &Principal,
    current_token: Option<&str>,
    page: &PageRequest,
) -> AppResult<Listed<SessionView>> {
    let now = state.now_ms();
    let current = match current_token {
        Some(t) => store::session_public_id(&state.db.read, &digest(t)).await?,
        None => None,
    };
    let rows =
        store::list_sessions(&state.db.read, &p.user_id, now, now - SESSION_IDLE_MS, page).await?;
    Ok(listed(
        rows,
        page,
        |r| Cursor {
            key: r.created_at,
            id: r.public_id.clone(),
        },
        |r| SessionView {
            current: current.as_deref() == Some(r.public_id.as_str()),
            device: device::describe(&r.user_agent),
            id: r.public_id,
            user_agent: r.user_agent,
            address: r.address,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
        },
    ))
}

/// The public id of the session behind a cookie value, if it exists.
pub async fn session_id_of(state: &AppState, token: &str) -> AppResult<Option<String>> {
    Ok(store::session_public_id(&state.db.read, &digest(token)).await?)
}

/// Ends one of the caller's sessions; another user's (or no) session is "not found".
pub async fn revoke_session(state: &AppState, p: &Principal, session_id: &str) -> AppResult<()> {
    if !store::delete_user_session(&state.db.write, &p.user_id, session_id).await? {
        return Err(DomainError::NotFound.into());
    }
    tracing::info!(user_id = %p.user_id, session_id, "session revoked by its owner");
    Ok(())
}

/// Ends every session of the caller except the one behind `current_token` (all of them when
/// there is none, e.g. from the API); returns how many ended.
pub async fn revoke_other_sessions(
    state: &AppState,
    p: &Principal,
    current_token: Option<&str>,
) -> AppResult<u64> {
    let keep = current_token.map(digest).unwrap_or_default();
    let ended = store::delete_other_sessions(&state.db.write, &p.user_id, &keep).await?;
    tracing::info!(user_id = %p.user_id, ended, "other sessions revoked by their owner");
    Ok(ended)
}

pub struct SignInView {
    pub id: String,
    pub at: i64,
    pub outcome: SignInOutcome,
    pub address: String,
    pub device: String,
    pub user_agent: String,
}

/// The caller's own sign-in attempts, newest first.
pub async fn sign_in_history(
    state: &AppState,
    p: &Principal,
    page: &PageRequest,
) -> AppResult<Listed<SignInView>> {
    let rows = throttle_store::list_events(&state.db.read, &p.user_id, page).await?;
    Ok(listed(
        rows,
        page,
        |r| Cursor {
            key: r.at,
            id: r.id.clone(),
        },
        |r| SignInView {
            outcome: SignInOutcome::parse(&r.outcome).unwrap_or(SignInOutcome::WrongPassword),
            device: device::describe(&r.user_agent),
            id: r.id,
            at: r.at,
            address: r.address,
            user_agent: r.user_agent,
        },
    ))
}

/// Judges a new password (blocklist, context words, zxcvbn) on the password pool: zxcvbn costs
/// milliseconds of CPU and the live meter and the check endpoint answer anyone.
pub async fn assess_new_password(
    state: &AppState,
    password: SecretString,
    context: clipcart_domain::identity::PasswordContext,
) -> AppResult<clipcart_domain::identity::PasswordAssessment> {
    state
        .hasher
        .run(move || {
            clipcart_domain::identity::assess_password(password.expose_secret(), &context, false)
        })
        .await
}

// ---- Changing the password (with step-up) ----

pub struct PasswordChange {
    pub current_password: SecretString,
    pub new_password: SecretString,
    /// With two-factor authentication on: a current code or an unused recovery code.
    pub otp: Option<SecretString>,
}

/// What stays signed in after a password change: the session and the API token the change
/// was made with (`None`: keep none of that kind).
#[derive(Default, Clone, Copy)]
pub struct KeepSignedIn<'a> {
    pub session: Option<&'a str>,
    pub token: Option<&'a str>,
}

pub struct PasswordChanged {
    pub ended_sessions: u64,
    pub revoked_tokens: u64,
}

/// Changes the caller's password. The new one must pass the policy (8 characters suffice with
/// a second factor — TOTP or a passkey — 15 otherwise; no words of the email or name). The
/// current password is proved through the throttled sign-in check (`check_password`), so a
/// wrong one counts as a sign-in failure of the account, and — step-up — an account with a
/// second factor also proves it: within the step-up window nothing more is needed, otherwise
/// a current code (`SecondFactorRequired` without one; a wrong one counts as a failure too),
/// or, for a passkey, a passkey step-up first. Afterwards every other session and API token of
/// the user ends, except those in `keep`.
pub async fn change_password(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    change: PasswordChange,
    keep: KeepSignedIn<'_>,
) -> AppResult<PasswordChanged> {
    let Some(user) = store::user_by_id(&state.db.write, &p.user_id).await? else {
        return Err(DomainError::Unauthenticated.into());
    };
    let has_second_factor = super::passkey::second_factor_on(state, &user.id).await?;
    let otp = change.otp.filter(|c| !c.expose_secret().trim().is_empty());
    // The new password first: a refused one costs neither an attempt nor a code.
    let mut errors = clipcart_domain::error::Errors::new();
    if change.current_password.expose_secret().is_empty() {
        errors.add("current_password", "enter your current password");
    }
    let mut context = clipcart_domain::identity::PasswordContext::new()
        .email(&user.email)
        .name(&user.display_name);
    // The shop the seller owns or works for is a context word too (security.md).
    if let Some(shop_name) =
        super::staff_store::shop_name_of_user(&state.db.read, &p.user_id).await?
    {
        context = context.name(&shop_name);
    }
    if let Err(DomainError::Invalid(refusals)) = check_new_password(
        change.new_password.expose_secret(),
        &context,
        has_second_factor,
    ) {
        for r in refusals {
            errors.add("new_password", r.message);
        }
    }
    errors.finish()?;
    let code_given = otp.is_some();
    let proved =
        match check_password(state, &user.email, change.current_password, otp, client).await {
            Ok(SignIn::Complete { user: u, .. }) => u,
            // The password was right, and the second factor was proved within the step-up
            // window (a sign-in with it, or a step-up: the only way for a passkey, which cannot
            // come as a code).
            Ok(SignIn::SecondFactorRequired(u))
                if !code_given && super::step_up::is_fresh(state, p) =>
            {
                u
            }
            Ok(SignIn::SecondFactorRequired(_)) => return Err(AppError::SecondFactorRequired),
            Err(AppError::Domain(DomainError::Invalid(_))) => {
                let message = if code_given {
                    "the current password or the code is wrong"
                } else {
                    "the current password is wrong"
                };
                return Err(DomainError::invalid("current_password", message).into());
            }
            Err(e) => return Err(e),
        };
    if proved.id != user.id {
        return Err(DomainError::Unauthenticated.into());
    }
    let hash = state.hasher.hash(change.new_password).await?;
    let keep_session = keep.session.map(digest).unwrap_or_default();
    let keep_token = keep.token.map(digest).unwrap_or_default();
    // One transaction: the new password never takes effect while the old sessions live on.
    let mut tx = state.db.write.begin().await?;
    if !store::update_password_hash(&mut *tx, &user.id, &hash).await? {
        tx.rollback().await?;
        return Err(DomainError::Unauthenticated.into());
    }
    let ended_sessions = store::delete_other_sessions(&mut *tx, &user.id, &keep_session).await?;
    let revoked_tokens = store::delete_other_tokens(&mut *tx, &user.id, &keep_token).await?;
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
        Entry::new(state.now_ms(), &user.id, action::PASSWORD_CHANGE, &user.id)
            .with("ended_sessions", ended_sessions)
            .with("revoked_tokens", revoked_tokens),
    )
    .await?;
    tx.commit().await?;
    state.mail.wake();
    tracing::info!(
        user_id = %user.id,
        second_factor = has_second_factor,
        ended_sessions,
        revoked_tokens,
        client_ip = %client.ip,
        "password changed; other sessions and API tokens ended"
    );
    Ok(PasswordChanged {
        ended_sessions,
        revoked_tokens,
    })
}

/// Refuses from what is stored, with reads only, so a flood of refused attempts costs no
/// reservation writes; `None` when the account and the address may try.
async fn stored_refusal(
    state: &AppState,
    key: &str,
    address: &str,
    now: i64,
) -> AppResult<Option<Refusal>> {
    let account = throttle_store::account(&state.db.read, key)
        .await?
        .unwrap_or_default();
    let budget = throttle_store::address(&state.db.read, address)
        .await?
        .unwrap_or_default();
    Ok(THROTTLE
        .check_account(&account, now)
        .and_then(|()| THROTTLE.check_address(&budget, now))
        .err())
}
