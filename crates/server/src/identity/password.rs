//! argon2id hashing (the crate's defaults: m=19456 KiB, t=2, p=1, PHC strings) on a bounded
//! pool: at most one hash per core runs at once and a caller waits briefly for a slot, so a
//! flood of sign-ins is refused quickly (429) instead of exhausting memory and CPU. The same
//! pool runs the other CPU-heavy password work (zxcvbn strength estimation).

use crate::platform::http::AppError;
use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    wait: Duration,
    /// A real hash of a random password, verified against when the account does not exist so
    /// that unknown and known emails take the same time.
    dummy: Arc<String>,
    buffers: BlockBuffers,
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
            buffers: BlockBuffers::default(),
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
        let buffers = self.buffers.clone();
        self.run(move || {
            let mut blocks = buffers.take();
            let result = hash_with(&mut blocks, password.expose_secret().as_bytes());
            buffers.give_back(blocks);
            result.map_err(|e| AppError::Internal(anyhow::anyhow!("hashing: {e}")))
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
        let buffers = self.buffers.clone();
        let ok = self
            .run(move || {
                let mut blocks = buffers.take();
                let ok = verify_with(&mut blocks, password.expose_secret().as_bytes(), &phc);
                buffers.give_back(blocks);
                ok
            })
            .await?;
        Ok(ok && real)
    }
}

/// Argon2's working memory (19 MiB at the default parameters), kept between hashes. Allocating
/// it per hash from the worker threads left every thread's malloc arena holding its own 19 MiB
/// after the first sign-ins (idle RSS ~91 MB, see docs/benchmarks.md); reusing at most one
/// buffer per pool slot keeps the total at slots × 19 MiB.
#[derive(Clone, Default)]
struct BlockBuffers(Arc<Mutex<Vec<Vec<Block>>>>);

impl BlockBuffers {
    fn take(&self) -> Vec<Block> {
        self.0
            .lock()
            .map(|mut v| v.pop())
            .unwrap_or(None)
            .unwrap_or_default()
    }

    fn give_back(&self, blocks: Vec<Block>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(blocks);
        }
    }
}

/// Sizes `blocks` for `params`, reusing its allocation when it is already large enough.
fn sized(blocks: &mut Vec<Block>, params: &Params) -> usize {
    let n = params.block_count();
    if blocks.len() < n {
        blocks.resize(n, Block::default());
    }
    n
}

fn hash_with(
    blocks: &mut Vec<Block>,
    password: &[u8],
) -> Result<String, argon2::password_hash::Error> {
    let params = Params::default();
    let salt_bytes: [u8; 16] = rand::random();
    let salt = Salt::new(&salt_bytes)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let n = sized(blocks, &params);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, &mut blocks[..n])?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Recomputes the hash with the parameters stored in `phc` and compares in constant time.
fn verify_with(blocks: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let mut check = || -> Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::new(parsed.algorithm.as_str())?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let mut out = vec![0u8; expected.len()];
        let n = sized(blocks, &params);
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut blocks[..n],
        )?;
        Ok(Output::new(&out)? == *expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier as _;

    #[test]
    fn hashes_verify_and_interoperate_with_the_crate() {
        let mut blocks = Vec::new();
        let phc = hash_with(&mut blocks, b"correct horse battery staple").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_with(
            &mut blocks,
            b"correct horse battery staple",
            &phc
        ));
        assert!(!verify_with(
            &mut blocks,
            b"correct horse battery stapl",
            &phc
        ));
        // A hash made by the crate's own API verifies with ours, and ours with the crate's.
        let theirs = Argon2::default()
            .hash_password(b"another passphrase here")
            .expect("hash")
            .to_string();
        assert!(verify_with(
            &mut blocks,
            b"another passphrase here",
            &theirs
        ));
        let parsed = PasswordHash::new(&phc).expect("parse");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok()
        );
        assert!(!verify_with(&mut blocks, b"x", "not a phc string"));
    }
}
