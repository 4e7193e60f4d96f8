//! Identity use cases. Sign-in answers the same for a wrong password and an unknown email, and
//! takes the same time (the hasher verifies against a dummy hash).

use super::store::{self, UserRow};
use crate::platform::http::auth::Principal;
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
    let mut errors = clipcart_domain::error::Errors::new();
    let email = errors.check(Email::parse(&input.email));
    let name = input.display_name.trim().to_string();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        errors.add("display_name", "enter a name of 1 to 80 characters");
    }
    let local = email
        .as_ref()
        .map(|e| e.as_str().split('@').next().unwrap_or("").to_string())
        .unwrap_or_default();
    errors.check(check_new_password(
        input.password.expose_secret(),
        &[&local, &name],
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

/// Checks an email and password; the same error whatever was wrong.
pub async fn check_password(
    state: &AppState,
    email: &str,
    password: SecretString,
) -> AppResult<UserRow> {
    let user = match Email::parse(email) {
        Ok(e) => store::user_by_email(&state.db.read, e.as_str()).await?,
        Err(_) => None,
    };
    let ok = state
        .hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    match user {
        Some(u) if ok => {
            tracing::info!(user_id = %u.id, outcome = "success", "sign-in");
            Ok(u)
        }
        _ => {
            tracing::info!(outcome = "failure", "sign-in");
            Err(DomainError::invalid("password", "the email or password is wrong").into())
        }
    }
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
    Ok(row.into_principal())
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
    let Some(row) = store::token_principal(&state.db.read, &digest(token)).await? else {
        return Ok(None);
    };
    if state.now_ms() >= row.expires_at {
        return Ok(None);
    }
    Ok(row.into_principal())
}

pub async fn revoke_token(state: &AppState, token: &str) -> AppResult<()> {
    store::delete_token(&state.db.write, &digest(token)).await?;
    Ok(())
}

/// Creates an account from the command line (the first admin, demo users).
pub async fn create_account(
    state: &AppState,
    email: &str,
    password: &str,
    name: &str,
    role: Role,
) -> Result<UserRow, AppError> {
    sign_up(
        state,
        SignUp {
            email: email.into(),
            password: SecretString::from(password.to_string()),
            display_name: name.into(),
            role,
        },
    )
    .await
}
