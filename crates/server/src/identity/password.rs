//! argon2id hashing (the crate's defaults: m=19456 KiB, t=2, p=1, PHC strings) on a bounded
//! pool: at most one hash per core runs at once and a caller waits briefly for a slot, so a
//! flood of sign-ins is refused quickly (429) instead of exhausting memory and CPU. The same
//! pool runs the other CPU-heavy password work (zxcvbn strength estimation).

use crate::platform::http::AppError;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    wait: Duration,
    /// A real hash of a random password, verified against when the account does not exist so
    /// that unknown and known emails take the same time.
    dummy: Arc<String>,
}

impl PasswordHasher {
    pub fn new(parallelism: usize, wait: Duration) -> anyhow::Result<Self> {
        let random = clipcart_domain::ids::random_secret(16);
        let dummy = Argon2::default()
            .hash_password(random.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
            .to_string();
        Ok(Self {
            slots: Arc::new(Semaphore::new(parallelism.max(1))),
            wait,
            dummy: Arc::new(dummy),
        })
    }

    /// Runs CPU-heavy password work off the async workers, within the pool's bound.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                tracing::warn!("password pool saturated; request refused");
                AppError::TooManyRequests {
                    retry_after_secs: 1,
                }
            })?
            .map_err(|e| AppError::Internal(e.into()))?;
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
        Ok(out)
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, AppError> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing: {e}")))
        })
        .await?
    }

    /// Verifies against `phc`, or against the dummy hash when there is no account.
    pub async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<bool, AppError> {
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.as_ref().clone());
        let ok = self
            .run(move || {
                PasswordHash::new(&phc)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.expose_secret().as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && real)
    }
}
