//! Password and recovery-code hashing with argon2id (SPEC.md §5.1, §12).
//!
//! Hashing is deliberately slow (m = 19456 KiB, t = 2, p = 1: OWASP's minimum), so it runs on
//! tokio's blocking pool behind a semaphore as wide as the machine has cores: a flood of
//! logins then queues here instead of starving the async runtime that serves everyone else.
//! Verification against an unknown account still spends one full hash on a dummy verifier,
//! so response time does not reveal whether a userid exists.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use peerchat_proto::message::Secret;
use tokio::sync::{OnceCell, Semaphore};

/// argon2id memory cost in KiB (SPEC.md §5.1.5).
pub const ARGON2_M_KIB: u32 = 19_456;
/// argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// argon2id parallelism.
pub const ARGON2_P: u32 = 1;
/// argon2id output length in bytes.
pub const ARGON2_OUTPUT: usize = 32;
/// Largest memory cost accepted from a stored hash (a corrupt row must not make the server
/// allocate gigabytes): 16 times ours.
const MAX_STORED_M_KIB: u32 = 16 * ARGON2_M_KIB;

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

impl From<argon2::Error> for HashError {
    fn from(e: argon2::Error) -> Self {
        HashError::Argon2(e.to_string())
    }
}

impl From<argon2::password_hash::Error> for HashError {
    fn from(e: argon2::password_hash::Error) -> Self {
        HashError::Argon2(e.to_string())
    }
}

fn params() -> Result<Params, HashError> {
    Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(ARGON2_OUTPUT))
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Runs argon2 in the caller's reusable `memory` (grown to the size `params` needs).
fn compute(
    params: &Params,
    algorithm: Algorithm,
    version: Version,
    secret: &[u8],
    salt: &[u8],
    out_len: usize,
    memory: &mut Vec<Block>,
) -> Result<Output, HashError> {
    let need = params.block_count();
    if memory.len() < need {
        memory.resize(need, Block::new());
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    Ok(Output::init_with(out_len, |out| {
        argon
            .hash_password_into_with_memory(secret, salt, out, &mut memory[..need])
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })?)
}

fn hash_blocking(secret: &[u8], memory: &mut Vec<Block>) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; 64];
    let raw = salt.decode_b64(&mut raw)?;
    let params = params()?;
    let output = compute(
        &params,
        Algorithm::Argon2id,
        Version::V0x13,
        secret,
        raw,
        ARGON2_OUTPUT,
        memory,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_blocking(secret: &[u8], phc: &str, memory: &mut Vec<Block>) -> bool {
    let mut check = || -> Result<bool, HashError> {
        let parsed = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        if params.m_cost() > MAX_STORED_M_KIB {
            return Ok(false);
        }
        let mut raw = [0u8; 64];
        let raw = salt.decode_b64(&mut raw)?;
        // Output's equality is constant-time.
        Ok(compute(
            &params,
            algorithm,
            version,
            secret,
            raw,
            expected.len(),
            memory,
        )? == expected)
    };
    check().unwrap_or(false)
}

/// Runs argon2id off the async runtime, at most one hash per core at a time.
///
/// Each running hash needs 19 MiB. The hasher keeps one reusable buffer per permit instead
/// of allocating per hash: per-thread malloc arenas of the blocking pool otherwise keep tens
/// of MiB each resident after the first few logins.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
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
            buffers: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        let buffers = Arc::clone(&self.buffers);
        Ok(tokio::task::spawn_blocking(move || {
            let lock = |b: &Mutex<Vec<Vec<Block>>>| {
                b.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop()
            };
            let mut memory = lock(&buffers).unwrap_or_default();
            let out = f(&mut memory);
            buffers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(memory);
            out
        })
        .await?)
    }

    /// The argon2id PHC string of `secret` with a fresh random salt.
    ///
    /// # Errors
    /// [`HashError`] if argon2 or the blocking pool fails.
    pub async fn hash(&self, secret: &Secret) -> Result<String, HashError> {
        let bytes = secret.expose().as_bytes().to_vec();
        self.run(move |mem| hash_blocking(&bytes, mem)).await?
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
        let ok = self
            .run(move |mem| verify_blocking(&bytes, &phc, mem))
            .await?;
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
