//! Passkeys (WebAuthn): registering them, listing, renaming and removing them, and using them
//! to sign in without a password, as the second factor after a password, and for step-up.
//!
//! The relying-party checks (challenge, origin, RP id hash, user presence and verification,
//! signature, counter, backup flags) are `webauthn-rs`'s; this module keeps the state around
//! them. The relying party is Clipcart's public URL: its host is the RP id and its origin the
//! only accepted origin, so passkeys need a domain name (`localhost` in development; an IP
//! address is not a valid RP id).
//!
//! Ceremonies: every `start_*` stores the library's state in `passkey_ceremonies` under the
//! digest of a random id handed to the client, with the account it is for, a kind and a
//! five-minute expiry (the injected clock). Answering takes the row out first (a `DELETE …
//! RETURNING`), so each challenge is answered at most once even by concurrent requests, and a
//! wrong answer burns it.
//!
//! Every passkey is registered as a discoverable credential (`residentKey: required`) with user
//! verification required, so one passkey serves passwordless sign-in and, after a password, as
//! the second factor. A passkey sign-in therefore counts as a proved second factor.

use super::passkey_store::{self as store, PasskeyRow};
use super::service::digest;
use super::step_up::{self, StepUpProof};
use super::store::UserRow;
use crate::platform::audit::{self, Entry, action};
use crate::platform::http::auth::Principal;
use crate::platform::http::client::ClientInfo;
use crate::platform::http::{AppError, AppResult};
use crate::state::AppState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clipcart_domain::DomainError;
use clipcart_domain::identity::Role;
use clipcart_domain::ids;
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

/// What a registration ceremony keeps: the library's state and the user handle the options
/// carried (the state does not expose it; the stored passkey needs it).
#[derive(serde::Serialize, serde::Deserialize)]
struct RegistrationCeremony {
    user_handle: String,
    registration: PasskeyRegistration,
}

/// What a password-reset ceremony keeps: the library's state and the digest of the reset
/// link's token it was started for, so the answer completes that link only.
#[derive(serde::Serialize, serde::Deserialize)]
struct ResetCeremony {
    token_hash: String,
    authentication: PasskeyAuthentication,
}

/// How long a ceremony may take, start to answer. Also the timeout the browser is given.
pub const CEREMONY_MS: i64 = 5 * 60 * 1000;
/// Passkeys one account may register: enough for every device, bounded for the list and the
/// `allowCredentials` of a sign-in.
pub const MAX_PASSKEYS: i64 = 20;
/// Live anonymous sign-in ceremonies, all accounts together: anyone may start one, so their
/// number is bounded (each lives five minutes).
const MAX_LIVE_SIGN_IN_CEREMONIES: i64 = 10_000;
const PASSKEY_ID_PREFIX: &str = "pky";
const NAME_MAX_CHARS: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    SignIn,
    SecondFactor,
    StepUp,
    PasswordReset,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::SignIn => "sign_in",
            Kind::SecondFactor => "second_factor",
            Kind::StepUp => "step_up",
            Kind::PasswordReset => "password_reset",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Register,
            Kind::SignIn,
            Kind::SecondFactor,
            Kind::StepUp,
            Kind::PasswordReset,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A started ceremony: the id to send back with the answer, and the options for
/// `navigator.credentials.create()` / `.get()` (binary fields in base64url).
pub struct Challenge {
    pub ceremony_id: String,
    pub public_key: serde_json::Value,
}

/// An answer to an authentication ceremony: the id `start_*` gave, and what
/// `navigator.credentials.get()` returned.
pub struct Assertion {
    pub ceremony_id: String,
    pub credential: Box<PublicKeyCredential>,
}

pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// 0 when never used to sign in.
    pub last_used_at: i64,
    /// Whether the authenticator says the passkey is backed up (synced between devices).
    pub synced: bool,
}

impl From<PasskeyRow> for PasskeyView {
    fn from(r: PasskeyRow) -> Self {
        PasskeyView {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            synced: r.backed_up != 0,
        }
    }
}

fn not_accepted() -> AppError {
    DomainError::invalid(
        "credential",
        "the passkey was not accepted: the request expired or was already used, or this passkey is not registered here; start again",
    )
    .into()
}

/// The relying party for the configured public URL.
fn relying_party(state: &AppState) -> AppResult<Webauthn> {
    let unavailable = || {
        AppError::Domain(DomainError::Conflict(
            "passkeys need Clipcart's public URL to name a domain (an IP address cannot be a WebAuthn relying party); use http://localhost:<port> in development".into(),
        ))
    };
    let url = Url::parse(&state.config.public_url).map_err(|_| unavailable())?;
    let rp_id = url.domain().ok_or_else(unavailable)?.to_string();
    let origin = Url::parse(&url.origin().ascii_serialization()).map_err(|_| unavailable())?;
    let timeout = std::time::Duration::from_millis(CEREMONY_MS.unsigned_abs());
    WebauthnBuilder::new(&rp_id, &origin)
        .map_err(|_| unavailable())?
        .rp_name("Clipcart")
        .timeout(timeout)
        .build()
        .map_err(|_| unavailable())
}

fn internal(what: &'static str) -> impl FnOnce(serde_json::Error) -> AppError {
    move |e| AppError::Internal(anyhow::anyhow!("{what}: {e}"))
}

async fn store_ceremony<S: serde::Serialize>(
    state: &AppState,
    kind: Kind,
    user_id: Option<&str>,
    ceremony: &S,
    public_key: serde_json::Value,
) -> AppResult<Challenge> {
    let id = ids::random_secret(20);
    let now = state.now_ms();
    let json = serde_json::to_string(ceremony).map_err(internal("ceremony state"))?;
    store::insert_ceremony(
        &state.db.write,
        &digest(&id),
        kind.as_str(),
        user_id,
        &json,
        now,
        now + CEREMONY_MS,
    )
    .await?;
    Ok(Challenge {
        ceremony_id: id,
        public_key,
    })
}

/// Takes a ceremony out (single use) if it is of one of `kinds`, unexpired, and — when it was
/// started for an account — for `user_id` (when given).
async fn take_ceremony(
    state: &AppState,
    ceremony_id: &str,
    kinds: &[Kind],
    user_id: Option<&str>,
) -> AppResult<Option<(Kind, Option<String>, String)>> {
    if ceremony_id.is_empty() || ceremony_id.len() > 100 {
        return Ok(None);
    }
    let Some(row) = store::take_ceremony(&state.db.write, &digest(ceremony_id)).await? else {
        return Ok(None);
    };
    let Some(kind) = Kind::parse(&row.kind) else {
        return Ok(None);
    };
    if !kinds.contains(&kind) || row.expires_at <= state.now_ms() {
        return Ok(None);
    }
    if let (Some(bound), Some(user)) = (row.user_id.as_deref(), user_id)
        && bound != user
    {
        return Ok(None);
    }
    Ok(Some((kind, row.user_id, row.state)))
}

pub async fn has_passkey(state: &AppState, user_id: &str) -> AppResult<bool> {
    // The write pool: read right after a registration, and sign-in must not miss a fresh one.
    Ok(store::count_for_user(&state.db.write, user_id).await? > 0)
}

/// Whether signing in with the password also needs a second factor: a TOTP factor or a
/// passkey.
pub async fn second_factor_on(state: &AppState, user_id: &str) -> AppResult<bool> {
    Ok(super::second_factor::is_active(state, user_id).await?
        || has_passkey(state, user_id).await?)
}

/// For admin operations: the caller is a platform admin with a passkey. Admins must use a
/// passkey (security baseline); until they register one, every admin operation answers
/// `passkey-required` (pages send them to the security page to add one). Code acting inside
/// the server (the demo loader) has no sign-in and is not asked.
pub async fn require_admin(state: &AppState, p: &Principal) -> AppResult<()> {
    p.require(Role::Admin)?;
    if matches!(
        p.credential,
        crate::platform::http::auth::Credential::Internal
    ) {
        return Ok(());
    }
    if !has_passkey(state, &p.user_id).await? {
        tracing::warn!(user_id = %p.user_id, "admin operation refused: the admin has no passkey yet");
        return Err(AppError::PasskeyRequired);
    }
    Ok(())
}

// ---- registering, listing, renaming, removing ----

/// Starts registering a passkey for the caller (after step-up). The options exclude the
/// passkeys already registered, so one authenticator is not added twice.
pub async fn start_registration(
    state: &AppState,
    p: &Principal,
    proof: StepUpProof,
    client: &ClientInfo,
) -> AppResult<Challenge> {
    let rp = relying_party(state)?;
    let existing = store::list_for_user(&state.db.write, &p.user_id).await?;
    if existing.len() as i64 >= MAX_PASSKEYS {
        return Err(DomainError::Conflict(format!(
            "an account can have at most {MAX_PASSKEYS} passkeys; remove one first"
        ))
        .into());
    }
    step_up::require(state, p, proof, client).await?;
    let handle = match existing.first() {
        Some(row) => row.user_handle.clone(),
        None => B64.encode(Uuid::new_v4().as_bytes()),
    };
    let uuid = B64
        .decode(&handle)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a stored user handle is not a UUID")))?;
    let exclude = existing
        .iter()
        .filter_map(|r| B64.decode(&r.credential_id).ok())
        .collect::<Vec<_>>();
    let (options, registration) = rp
        .start_passkey_registration(uuid, &p.email, &p.display_name, Some(exclude))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("starting a registration: {e}")))?;
    let mut public_key =
        serde_json::to_value(&options.public_key).map_err(internal("registration options"))?;
    // Discoverable, so the same passkey also signs in without an email. The library asks for
    // "discouraged" (it fears filling small security keys) and does not re-export the option's
    // type; browsers and platform authenticators handle "required" well, and the server cannot
    // check residency either way.
    if let Some(sel) = public_key
        .get_mut("authenticatorSelection")
        .and_then(serde_json::Value::as_object_mut)
    {
        sel.insert("residentKey".into(), "required".into());
        sel.insert("requireResidentKey".into(), true.into());
    }
    let ceremony = RegistrationCeremony {
        user_handle: handle,
        registration,
    };
    store_ceremony(
        state,
        Kind::Register,
        Some(&p.user_id),
        &ceremony,
        public_key,
    )
    .await
}

/// A passkey name: trimmed, 1 to 60 characters, no control characters. Empty: named after the
/// device it was added from.
fn passkey_name(name: Option<&str>, client: &ClientInfo) -> AppResult<String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        let device = clipcart_domain::identity::device::describe(&client.user_agent);
        return Ok(device.chars().take(NAME_MAX_CHARS).collect());
    }
    checked_name(name)
}

fn checked_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > NAME_MAX_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(DomainError::invalid(
            "name",
            "enter a name of 1 to 60 characters, e.g. the device it is on",
        )
        .into());
    }
    Ok(name.to_string())
}

/// Finishes a registration the caller started: verifies the authenticator's answer and stores
/// the passkey. From now on signing in with the password also asks for a second factor.
pub async fn finish_registration(
    state: &AppState,
    p: &Principal,
    ceremony_id: &str,
    name: Option<&str>,
    credential: &RegisterPublicKeyCredential,
    client: &ClientInfo,
) -> AppResult<PasskeyView> {
    let name = passkey_name(name, client)?;
    let rp = relying_party(state)?;
    let Some((_, _, json)) =
        take_ceremony(state, ceremony_id, &[Kind::Register], Some(&p.user_id)).await?
    else {
        return Err(not_accepted());
    };
    let ceremony: RegistrationCeremony =
        serde_json::from_str(&json).map_err(internal("registration state"))?;
    let passkey = match rp.finish_passkey_registration(credential, &ceremony.registration) {
        Ok(k) => k,
        Err(e) => {
            tracing::info!(user_id = %p.user_id, error = %e, "passkey registration refused");
            return Err(DomainError::invalid(
                "credential",
                "the passkey could not be verified; start again",
            )
            .into());
        }
    };
    let internals: Credential = passkey.clone().into();
    let now = state.now_ms();
    let row = PasskeyRow {
        id: ids::new_id(PASSKEY_ID_PREFIX),
        user_id: p.user_id.clone(),
        credential_id: B64.encode(passkey.cred_id()),
        user_handle: ceremony.user_handle,
        credential: serde_json::to_string(&passkey).map_err(internal("passkey"))?,
        name,
        sign_count: i64::from(internals.counter),
        backup_eligible: i32::from(internals.backup_eligible),
        backed_up: i32::from(internals.backup_state),
        created_at: now,
        last_used_at: 0,
    };
    if store::count_for_user(&state.db.write, &p.user_id).await? >= MAX_PASSKEYS {
        return Err(DomainError::Conflict(format!(
            "an account can have at most {MAX_PASSKEYS} passkeys; remove one first"
        ))
        .into());
    }
    if !store::insert(&state.db.write, &row).await? {
        return Err(DomainError::Conflict("this passkey is already registered".into()).into());
    }
    audit::record_alone(
        &state.db,
        Entry::new(now, &p.user_id, action::PASSKEY_ADD, &row.id)
            .with("synced", row.backed_up != 0),
    )
    .await?;
    tracing::info!(user_id = %p.user_id, passkey_id = %row.id, synced = row.backed_up != 0, client_ip = %client.ip, "passkey registered");
    super::alerts::send(
        state,
        &p.user_id,
        super::alerts::AlertKind::PasskeyAdded,
        client,
    )
    .await?;
    Ok(row.into())
}

/// The caller's passkeys, oldest first.
pub async fn list(state: &AppState, p: &Principal) -> AppResult<Vec<PasskeyView>> {
    Ok(store::list_for_user(&state.db.read, &p.user_id)
        .await?
        .into_iter()
        .map(PasskeyView::from)
        .collect())
}

/// Renames one of the caller's passkeys; another account's answers 404.
pub async fn rename(state: &AppState, p: &Principal, id: &str, name: &str) -> AppResult<()> {
    let name = checked_name(name)?;
    if !store::rename(&state.db.write, &p.user_id, id, &name).await? {
        return Err(DomainError::NotFound.into());
    }
    tracing::info!(user_id = %p.user_id, passkey_id = id, "passkey renamed");
    Ok(())
}

/// Removes one of the caller's passkeys (after step-up). A platform admin cannot remove their
/// last passkey: admins must keep one.
pub async fn delete(
    state: &AppState,
    p: &Principal,
    id: &str,
    proof: StepUpProof,
    client: &ClientInfo,
) -> AppResult<()> {
    if !store::exists(&state.db.write, &p.user_id, id).await? {
        return Err(DomainError::NotFound.into());
    }
    step_up::require(state, p, proof, client).await?;
    let keep_one = p.role == Role::Admin;
    if !store::delete(&state.db.write, &p.user_id, id, keep_one).await? {
        if keep_one && store::exists(&state.db.write, &p.user_id, id).await? {
            return Err(DomainError::Conflict(
                "platform admins must keep a passkey: add another one before removing this one"
                    .into(),
            )
            .into());
        }
        return Err(DomainError::NotFound.into());
    }
    audit::record_alone(
        &state.db,
        Entry::new(state.now_ms(), &p.user_id, action::PASSKEY_REMOVE, id),
    )
    .await?;
    tracing::info!(user_id = %p.user_id, passkey_id = id, client_ip = %client.ip, "passkey removed");
    super::alerts::send(
        state,
        &p.user_id,
        super::alerts::AlertKind::PasskeyRemoved,
        client,
    )
    .await?;
    Ok(())
}

// ---- using a passkey ----

/// Starts a passwordless sign-in: no account named, the authenticator offers its discoverable
/// passkeys for this site.
pub async fn start_sign_in(state: &AppState) -> AppResult<Challenge> {
    let rp = relying_party(state)?;
    let live =
        store::live_ceremonies(&state.db.read, Kind::SignIn.as_str(), state.now_ms()).await?;
    if live >= MAX_LIVE_SIGN_IN_CEREMONIES {
        tracing::warn!(
            live,
            "passkey sign-in refused: too many ceremonies in progress"
        );
        return Err(AppError::TooManyRequests {
            retry_after_secs: 60,
        });
    }
    let (options, auth) = rp
        .start_discoverable_authentication()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("starting a sign-in: {e}")))?;
    // Only the public key options go out: the library marks this for conditional mediation
    // (autofill), and the pages ask with a button instead.
    let public_key = serde_json::to_value(&options.public_key).map_err(internal("options"))?;
    store_ceremony(state, Kind::SignIn, None, &auth, public_key).await
}

/// Starts an assertion by one of `user_id`'s passkeys (their ids in `allowCredentials`, so
/// passkeys that are not discoverable work too).
async fn start_for_user(state: &AppState, user_id: &str, kind: Kind) -> AppResult<Challenge> {
    let (public_key, auth) = options_for_user(state, user_id).await?;
    store_ceremony(state, kind, Some(user_id), &auth, public_key).await
}

/// The options of an assertion by one of `user_id`'s passkeys, and the library's state.
async fn options_for_user(
    state: &AppState,
    user_id: &str,
) -> AppResult<(serde_json::Value, PasskeyAuthentication)> {
    let rp = relying_party(state)?;
    let keys = store::list_for_user(&state.db.write, user_id)
        .await?
        .iter()
        .filter_map(|r| serde_json::from_str::<Passkey>(&r.credential).ok())
        .collect::<Vec<_>>();
    if keys.is_empty() {
        return Err(
            DomainError::Conflict("no passkey is registered for this account".into()).into(),
        );
    }
    let (options, auth) = rp
        .start_passkey_authentication(&keys)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("starting an assertion: {e}")))?;
    let public_key = serde_json::to_value(&options.public_key).map_err(internal("options"))?;
    Ok((public_key, auth))
}

/// Starts the passkey second step of a page sign-in whose password was right (`pending_id`
/// from its form). `None` when the pending sign-in is unknown or expired.
pub async fn start_second_factor(
    state: &AppState,
    pending_id: &str,
) -> AppResult<Option<Challenge>> {
    let Some(user_id) = super::second_factor_store::pending_user(
        &state.db.write,
        &digest(pending_id),
        state.now_ms(),
    )
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(
        start_for_user(state, &user_id, Kind::SecondFactor).await?,
    ))
}

/// Checks an assertion: the ceremony (taken out, single use) must be of one of `kinds` and,
/// when bound to an account, `user_id`'s (a password-reset ceremony also to the digest of the
/// reset link's token, `reset_token_hash`); the credential must be registered (to `user_id`,
/// when given); then the library verifies challenge, origin, RP id, flags and signature, and
/// the stored counter must advance. `None` for any failure, which is logged, not explained.
async fn verify(
    state: &AppState,
    assertion: Assertion,
    kinds: &[Kind],
    user_id: Option<&str>,
    reset_token_hash: Option<&str>,
) -> AppResult<Option<PasskeyRow>> {
    let Some((kind, bound, json)) =
        take_ceremony(state, &assertion.ceremony_id, kinds, user_id).await?
    else {
        tracing::info!(
            user_id = user_id.unwrap_or("-"),
            "passkey assertion refused: unknown, used, expired or foreign ceremony"
        );
        return Ok(None);
    };
    let credential = &*assertion.credential;
    let cred_id = B64.encode(&credential.raw_id);
    let Some(row) = store::by_credential_id(&state.db.write, &cred_id).await? else {
        tracing::info!(
            user_id = user_id.unwrap_or("-"),
            "passkey assertion refused: credential not registered"
        );
        return Ok(None);
    };
    let owner_ok = user_id.is_none_or(|u| u == row.user_id)
        && bound.as_deref().is_none_or(|b| b == row.user_id);
    // The spec's check for discoverable sign-in: the user handle returned names the owner.
    let handle_ok = credential
        .response
        .user_handle
        .as_ref()
        .is_none_or(|h| B64.encode(h) == row.user_handle);
    if !owner_ok || !handle_ok {
        tracing::warn!(
            user_id = user_id.unwrap_or("-"),
            passkey_owner = %row.user_id,
            "passkey assertion refused: the credential belongs to another account"
        );
        return Ok(None);
    }
    let mut passkey: Passkey =
        serde_json::from_str(&row.credential).map_err(internal("stored passkey"))?;
    let rp = relying_party(state)?;
    let result = match kind {
        Kind::SignIn => {
            let auth: DiscoverableAuthentication =
                serde_json::from_str(&json).map_err(internal("sign-in state"))?;
            rp.finish_discoverable_authentication_v2(credential, auth, &passkey)
        }
        Kind::SecondFactor | Kind::StepUp => {
            let auth: PasskeyAuthentication =
                serde_json::from_str(&json).map_err(internal("assertion state"))?;
            rp.finish_passkey_authentication(credential, &auth)
        }
        Kind::PasswordReset => {
            let ceremony: ResetCeremony =
                serde_json::from_str(&json).map_err(internal("reset assertion state"))?;
            if reset_token_hash != Some(ceremony.token_hash.as_str()) {
                tracing::info!(user_id = %row.user_id, "passkey assertion refused: the ceremony was started for another reset link");
                return Ok(None);
            }
            rp.finish_passkey_authentication(credential, &ceremony.authentication)
        }
        Kind::Register => return Ok(None),
    };
    let result = match result {
        Ok(r) if r.user_verified() => r,
        Ok(_) => return Ok(None),
        Err(e) => {
            tracing::info!(user_id = %row.user_id, passkey_id = %row.id, error = %e, "passkey assertion refused");
            return Ok(None);
        }
    };
    passkey.update_credential(&result);
    let json = serde_json::to_string(&passkey).map_err(internal("passkey"))?;
    if !store::record_use(
        &state.db.write,
        &row.id,
        &json,
        i64::from(result.counter()),
        result.backup_state(),
        state.now_ms(),
    )
    .await?
    {
        tracing::warn!(user_id = %row.user_id, passkey_id = %row.id, "passkey assertion refused: its counter did not advance (a cloned authenticator or a concurrent use)");
        return Ok(None);
    }
    Ok(Some(row))
}

/// Finishes a passwordless sign-in. The account must exist and not be disabled. A passkey
/// verifies the user itself (UV), so this is a sign-in with a second factor.
pub async fn finish_sign_in(
    state: &AppState,
    assertion: Assertion,
    client: &ClientInfo,
) -> AppResult<UserRow> {
    let Some(row) = verify(state, assertion, &[Kind::SignIn], None, None).await? else {
        return Err(not_accepted());
    };
    let Some(user) = super::store::user_by_id(&state.db.write, &row.user_id).await? else {
        return Err(not_accepted());
    };
    super::service::record_passkey_sign_in(state, &user.id, client).await?;
    tracing::info!(user_id = %user.id, passkey_id = %row.id, outcome = "success", method = "passkey", client_ip = %client.ip, "sign-in");
    Ok(user)
}

/// A passkey as the second factor of `user_id`, whose password was just proved (inside the
/// throttled sign-in attempt). Accepts the page's second-step ceremony and, for API clients,
/// a plain sign-in ceremony; the passkey must be `user_id`'s.
pub(crate) async fn verify_second_factor(
    state: &AppState,
    user_id: &str,
    assertion: Assertion,
) -> AppResult<bool> {
    Ok(verify(
        state,
        assertion,
        &[Kind::SecondFactor, Kind::SignIn],
        Some(user_id),
        None,
    )
    .await?
    .is_some())
}

/// Starts a step-up with one of the caller's passkeys.
pub async fn start_step_up(state: &AppState, p: &Principal) -> AppResult<Challenge> {
    start_for_user(state, &p.user_id, Kind::StepUp).await
}

/// Finishes a step-up: a fresh passkey assertion by the caller proves a second factor now.
pub async fn finish_step_up(
    state: &AppState,
    p: &Principal,
    assertion: Assertion,
) -> AppResult<()> {
    if verify(state, assertion, &[Kind::StepUp], Some(&p.user_id), None)
        .await?
        .is_none()
    {
        return Err(not_accepted());
    }
    tracing::info!(user_id = %p.user_id, "step-up proved with a passkey");
    step_up::record(state, p).await
}

/// Starts the passkey check of a password reset for `user_id`, the account of the reset link
/// whose token digest is `token_hash` (the caller has checked the link). A newer one retires
/// the account's earlier reset ceremonies, so holding a link cannot pile them up.
pub(crate) async fn start_password_reset(
    state: &AppState,
    user_id: &str,
    token_hash: &str,
) -> AppResult<Challenge> {
    let (public_key, authentication) = options_for_user(state, user_id).await?;
    store::delete_ceremonies_of(&state.db.write, Kind::PasswordReset.as_str(), user_id).await?;
    let ceremony = ResetCeremony {
        token_hash: token_hash.to_string(),
        authentication,
    };
    store_ceremony(
        state,
        Kind::PasswordReset,
        Some(user_id),
        &ceremony,
        public_key,
    )
    .await
}

/// A passkey as the second factor of a password reset: an answer to a ceremony from
/// `start_password_reset` for the same account and the same reset link, by one of the
/// account's passkeys. The caller runs it inside the sign-in throttle.
pub(crate) async fn verify_password_reset(
    state: &AppState,
    user_id: &str,
    token_hash: &str,
    assertion: Assertion,
) -> AppResult<bool> {
    Ok(verify(
        state,
        assertion,
        &[Kind::PasswordReset],
        Some(user_id),
        Some(token_hash),
    )
    .await?
    .is_some())
}
