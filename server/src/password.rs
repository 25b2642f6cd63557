//! Password and recovery-code hashing with argon2id (SPEC.md §5.1, §12).
//!
//! Hashing is deliberately slow (m = 19456 KiB, t = 2, p = 1: OWASP's minimum), so it runs on
//! tokio's blocking pool behind a semaphore as wide as the machine has cores: a flood of
//! logins then queues here instead of starving the async runtime that serves everyone else.
//! Verification against an unknown account still spends one full hash on a dummy verifier,
//! so response time does not reveal whether a userid exists.

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use peerchat_proto::message::Secret;
use tokio::sync::{OnceCell, Semaphore};

/// argon2id memory cost in KiB (SPEC.md §5.1).
pub const ARGON2_M_KIB: u32 = 19_456;
/// argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// argon2id parallelism.
pub const ARGON2_P: u32 = 1;
/// argon2id output length in bytes.
pub const ARGON2_OUTPUT: usize = 32;

/// Hashing failed (never because of user input: the parameters are constants).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// argon2 rejected the parameters or the input.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The blocking task panicked or was cancelled.
    #[error("hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The semaphore was closed (server shutting down).
    #[error("hasher is shut down")]
    Closed,
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(ARGON2_OUTPUT))
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(secret: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

fn verify_blocking(secret: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match argon2() {
        Ok(a) => a.verify_password(secret, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Runs argon2id off the async runtime, at most one hash per core at a time.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<OnceCell<String>>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    /// A hasher allowing as many concurrent hashes as the machine has cores.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        Ok(tokio::task::spawn_blocking(f).await?)
    }

    /// The argon2id PHC string of `secret` with a fresh random salt.
    ///
    /// # Errors
    /// [`HashError`] if argon2 or the blocking pool fails.
    pub async fn hash(&self, secret: &Secret) -> Result<String, HashError> {
        let bytes = secret.expose().as_bytes().to_vec();
        self.run(move || hash_blocking(&bytes)).await?
    }

    /// Whether `secret` matches `phc`. With `phc = None` (unknown account) it verifies against
    /// a dummy hash and returns false, taking the same time as a real check.
    ///
    /// # Errors
    /// [`HashError`] if the dummy hash cannot be made or the blocking pool fails.
    pub async fn verify(&self, secret: &Secret, phc: Option<&str>) -> Result<bool, HashError> {
        let (phc, real) = match phc {
            Some(p) => (p.to_owned(), true),
            None => (self.dummy().await?, false),
        };
        let bytes = secret.expose().as_bytes().to_vec();
        let ok = self.run(move || verify_blocking(&bytes, &phc)).await?;
        Ok(ok && real)
    }

    async fn dummy(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| async {
                let random = Secret(crate::recovery::generate());
                self.hash(&random).await
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = Hasher::new();
        let phc = h
            .hash(&Secret("correct horse battery".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h
            .verify(&Secret("correct horse battery".into()), Some(&phc))
            .await
            .unwrap());
        assert!(!h
            .verify(&Secret("wrong horse battery".into()), Some(&phc))
            .await
            .unwrap());
        assert!(!h
            .verify(&Secret("correct horse battery".into()), None)
            .await
            .unwrap());
        assert!(!h
            .verify(&Secret("x".into()), Some("not a phc string"))
            .await
            .unwrap());
    }
}
