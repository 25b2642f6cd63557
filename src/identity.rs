//! Long-term RSA identities and their binding to a per-process Noise static key.
//!
//! RSA keys only *sign* (SPEC.md §4.3): a process generates one X25519 static key at start-up
//! and signs it once, so RSA private-key operations never run in response to network input
//! (the `rsa` crate's private-key operations have a timing side channel, RUSTSEC-2023-0071).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use bytes::Bytes;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::pss::SigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::limits::{RSA_MAX_BITS, RSA_MIN_BITS};

/// The bytes signed before the X25519 static key (SPEC.md §4.3).
pub const SIGNATURE_CONTEXT: &[u8] = b"peerchat-noise-static-key:";

/// Why an identity key or signature was rejected, or a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not a DER SubjectPublicKeyInfo holding an RSA key.
    #[error("identity key is not an RSA SubjectPublicKeyInfo: {0}")]
    NotRsaSpki(String),
    /// The modulus is outside 2048..=4096 bits.
    #[error("identity key has {0} bits; SPEC.md §4.3 allows {RSA_MIN_BITS}..={RSA_MAX_BITS}")]
    BadKeySize(usize),
    /// The public exponent is not 65537.
    #[error("identity key exponent must be 65537")]
    BadExponent,
    /// The signature over the Noise static key does not verify.
    #[error("identity signature over the Noise static key does not verify")]
    BadSignature,
    /// A private key file could not be read, parsed or written.
    #[error("identity key file {path}: {detail}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Key generation failed.
    #[error("RSA key generation failed: {0}")]
    Generate(String),
}

/// An RSA public identity key, kept together with its canonical DER encoding.
#[derive(Clone)]
pub struct IdentityKey {
    key: RsaPublicKey,
    der: Bytes,
}

impl IdentityKey {
    /// Parses and checks a DER SubjectPublicKeyInfo (SPEC.md §4.3).
    ///
    /// # Errors
    /// [`IdentityError::NotRsaSpki`], [`IdentityError::BadKeySize`], [`IdentityError::BadExponent`].
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let key = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| IdentityError::NotRsaSpki(e.to_string()))?;
        Self::from_public(key)
    }

    fn from_public(key: RsaPublicKey) -> Result<Self, IdentityError> {
        let bits = key.n().bits();
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(IdentityError::BadKeySize(bits));
        }
        if key.e() != &BigUint::from(65_537u32) {
            return Err(IdentityError::BadExponent);
        }
        // Re-encode so that equality and fingerprints use one canonical form.
        let der = key
            .to_public_key_der()
            .map_err(|e| IdentityError::NotRsaSpki(e.to_string()))?;
        Ok(Self {
            key,
            der: Bytes::copy_from_slice(der.as_bytes()),
        })
    }

    /// The canonical DER SubjectPublicKeyInfo, as sent on the wire.
    pub fn to_der(&self) -> Bytes {
        self.der.clone()
    }

    /// Heap bytes this value holds beyond its own size: the DER buffer and the modulus digits
    /// (the exponent 65537 fits inline), plus the shared header a cloned `Bytes` allocates.
    ///
    /// Why: the server caches parsed friend keys ([`IdentityKey`] clones share the DER but
    /// not the modulus), and its cache bound counts bytes, so it needs this figure rather than
    /// the DER length alone.
    pub fn heap_bytes(&self) -> usize {
        // num-bigint-dig keeps up to 8 (64-bit platforms) or 4 digits inline; more go to the
        // heap, as every allowed modulus (2048..=4096 bits) does.
        const BYTES_SHARED_HEADER: usize = 32;
        let modulus_digits = self.key.n().bits().div_ceil(64);
        self.der.len() + modulus_digits * 8 + BYTES_SHARED_HEADER
    }

    /// The key's fingerprint, shown to users and pinned by clients.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(Sha256::digest(&self.der).into())
    }

    /// Checks `sig` over [`SIGNATURE_CONTEXT`] ‖ `static_key` (SPEC.md §4.3).
    ///
    /// # Errors
    /// [`IdentityError::BadSignature`] if it does not verify.
    pub fn verify_static_key(&self, static_key: &[u8], sig: &[u8]) -> Result<(), IdentityError> {
        // ring's RSA-PSS verification (SHA-256, MGF1-SHA-256, salt = digest length) is the
        // same check as the rsa crate's and ~9x faster; it is the largest cost of a
        // handshake (docs/PERFORMANCE.md). The modulus range was checked at parse time.
        let n = self.key.n().to_bytes_be();
        let e = self.key.e().to_bytes_be();
        ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(
                &ring::signature::RSA_PSS_2048_8192_SHA256,
                &signed_bytes(static_key),
                sig,
            )
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl PartialEq for IdentityKey {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for IdentityKey {}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint())
    }
}

/// The exact bytes an identity signs (SPEC.md §4.3).
pub fn signed_bytes(static_key: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + static_key.len());
    msg.extend_from_slice(SIGNATURE_CONTEXT);
    msg.extend_from_slice(static_key);
    msg
}

/// SHA-256 of an identity key's DER, displayed as `SHA256:<base64 without padding>` like OpenSSH.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0)
        )
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not a `SHA256:…` fingerprint.
#[derive(Debug, thiserror::Error)]
#[error("not a fingerprint (expected SHA256:<43 base64 characters>): {0:?}")]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s
            .trim()
            .strip_prefix("SHA256:")
            .ok_or_else(|| BadFingerprint(s.into()))?;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| BadFingerprint(s.into()))?;
        let arr: [u8; 32] = raw.try_into().map_err(|_| BadFingerprint(s.into()))?;
        Ok(Fingerprint(arr))
    }
}

/// An RSA identity key pair: who a user or server *is*.
pub struct IdentityKeyPair {
    private: RsaPrivateKey,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// Generates a new key pair. Slow (seconds for 3072 bits): do it once per profile.
    ///
    /// # Errors
    /// [`IdentityError::Generate`] if the RNG or prime search fails.
    pub fn generate(bits: usize) -> Result<Self, IdentityError> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), bits)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Self::from_private(private)
    }

    fn from_private(private: RsaPrivateKey) -> Result<Self, IdentityError> {
        let public = IdentityKey::from_public(private.to_public_key())?;
        Ok(Self { private, public })
    }

    /// Parses a PKCS#8 PEM private key.
    ///
    /// # Errors
    /// [`IdentityError::KeyFile`] if it does not parse, or the key is out of range.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, IdentityError> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| IdentityError::KeyFile {
            path: "<pem>".into(),
            detail: e.to_string(),
        })?;
        Self::from_private(private)
    }

    /// The key pair as PKCS#8 PEM.
    ///
    /// # Errors
    /// [`IdentityError::KeyFile`] if encoding fails.
    pub fn to_pkcs8_pem(&self) -> Result<String, IdentityError> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|e| IdentityError::KeyFile {
                path: "<pem>".into(),
                detail: e.to_string(),
            })
    }

    /// Loads the key at `path`, or generates one of `bits` bits and writes it there with
    /// mode 0600 (the directory is created). Returns the pair and whether it was created.
    ///
    /// # Errors
    /// [`IdentityError::KeyFile`] on I/O or parse errors; an existing unreadable key is never
    /// overwritten.
    pub fn load_or_generate(path: &Path, bits: usize) -> Result<(Self, bool), IdentityError> {
        let file_err = |detail: String| IdentityError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let pair = Self::from_pkcs8_pem(&pem).map_err(|e| file_err(e.to_string()))?;
                Ok((pair, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = Self::generate(bits)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| file_err(e.to_string()))?;
                }
                write_private_file(path, pair.to_pkcs8_pem()?.as_bytes())
                    .map_err(|e| file_err(e.to_string()))?;
                Ok((pair, true))
            }
            Err(e) => Err(file_err(e.to_string())),
        }
    }

    /// The public half.
    pub fn public(&self) -> &IdentityKey {
        &self.public
    }

    /// Signs [`SIGNATURE_CONTEXT`] ‖ `static_key` with RSA-PSS-SHA256 (salt 32).
    ///
    /// Called once per process for its Noise static key, never per connection.
    pub fn sign_static_key(&self, static_key: &[u8]) -> Vec<u8> {
        let signer = SigningKey::<Sha256>::new(self.private.clone());
        signer
            .sign_with_rng(&mut rand::thread_rng(), &signed_bytes(static_key))
            .to_vec()
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKeyPair({})", self.public.fingerprint())
    }
}

/// Writes a secret file readable only by its owner, atomically (temp file + rename).
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_text() {
        let fp = Fingerprint([7u8; 32]);
        let s = fp.to_string();
        assert!(s.starts_with("SHA256:"));
        assert_eq!(s.parse::<Fingerprint>().ok(), Some(fp));
        assert!("MD5:abc".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn signature_binds_the_static_key() {
        let pair = crate::test_keys::identity(0);
        let sig = pair.sign_static_key(&[1u8; 32]);
        assert!(pair.public().verify_static_key(&[1u8; 32], &sig).is_ok());
        assert!(matches!(
            pair.public().verify_static_key(&[2u8; 32], &sig),
            Err(IdentityError::BadSignature)
        ));
        let other = crate::test_keys::identity(1);
        assert!(other.public().verify_static_key(&[1u8; 32], &sig).is_err());
    }

    #[test]
    fn heap_bytes_counts_der_and_modulus() {
        let key = crate::test_keys::identity(0).public().clone();
        let modulus_bytes = key.key.n().bits().div_ceil(64) * 8;
        assert_eq!(key.heap_bytes(), key.to_der().len() + modulus_bytes + 32);
        if key.key.n().bits() == 2048 {
            assert_eq!(key.heap_bytes(), 294 + 256 + 32);
        }
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(matches!(
            IdentityKey::from_der(b"nope"),
            Err(IdentityError::NotRsaSpki(_))
        ));
    }
}
