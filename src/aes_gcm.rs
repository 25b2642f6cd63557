//! The optional AES-256-GCM record cipher of peer connections (SPEC.md §3.2.1, feature
//! `aes-gcm`): its key schedule, its nonce, and whether this machine should offer it.
//!
//! Every connection starts with Noise's ChaChaPoly. When both PeerHellos name `aes-gcm`, each
//! direction switches to AES-256-GCM right after its sender's hello; the new keys are derived
//! from the Noise Split() keys and the handshake hash, so they are as secret and as bound to
//! the handshake as the ChaChaPoly keys, yet never the same key under two ciphers. With AES
//! hardware AES-256-GCM is ~3.5x ChaCha20-Poly1305 per core (docs/PERFORMANCE.md); without
//! it, it is slower, so a machine without it does not name the feature.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;

use crate::error::FrameError;
use crate::limits::NOISE_TAG_LEN;

/// HKDF `info` of the initiator-to-responder key (SPEC.md §3.2.1 rule 3).
pub const LABEL_I2R: &[u8] = b"peerchat v1 aes-256-gcm initiator to responder";
/// HKDF `info` of the responder-to-initiator key (SPEC.md §3.2.1 rule 3).
pub const LABEL_R2I: &[u8] = b"peerchat v1 aes-256-gcm responder to initiator";
/// AES-256 key length.
pub const KEY_LEN: usize = 32;

/// The two AES-256-GCM keys of a connection, kept from the end of the handshake until the
/// hellos say whether they are used.
#[derive(Clone)]
pub struct AesKeys {
    /// Initiator-to-responder key.
    pub i2r: [u8; KEY_LEN],
    /// Responder-to-initiator key.
    pub r2i: [u8; KEY_LEN],
}

impl std::fmt::Debug for AesKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKeys(..)")
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

/// `HKDF-SHA256(salt = handshake_hash, IKM = split_key, info = label)`, 32 bytes (RFC 5869).
fn derive(handshake_hash: &[u8], split_key: &[u8; KEY_LEN], label: &[u8]) -> [u8; KEY_LEN] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, handshake_hash).extract(split_key);
    let mut out = [0u8; KEY_LEN];
    let info = [label];
    // Cannot fail: 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
    if let Ok(okm) = prk.expand(&info, Len32) {
        let _ = okm.fill(&mut out);
    }
    out
}

impl AesKeys {
    /// Derives both keys from Noise's Split() output (`k1` initiator-to-responder, `k2`
    /// responder-to-initiator) and the final handshake hash `h` (SPEC.md §3.2.1 rule 3).
    pub fn derive(k1: &[u8; KEY_LEN], k2: &[u8; KEY_LEN], h: &[u8]) -> Self {
        Self {
            i2r: derive(h, k1, LABEL_I2R),
            r2i: derive(h, k2, LABEL_R2I),
        }
    }
}

/// True if this machine has AES and carry-less multiply instructions, so AES-256-GCM beats
/// ChaCha20-Poly1305 here (SPEC.md §3.2.1 rule 1: a client names `aes-gcm` only then).
pub fn hardware_available() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
    {
        false
    }
}

/// One direction's AES-256-GCM state: key and the record counter.
pub(crate) struct AesGcm {
    key: LessSafeKey,
}

impl AesGcm {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        // Cannot fail: the key has AES-256's length.
        let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Noise's AESGCM nonce: 32 zero bits, then `n` as 64-bit big-endian (SPEC.md §3.2.1 r4).
    fn nonce(n: u64) -> Nonce {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_be_bytes());
        Nonce::assume_unique_for_key(b)
    }

    /// Encrypts `buf[..len - 16]` in place and writes the tag into the last 16 bytes.
    pub(crate) fn seal(&self, n: u64, buf: &mut [u8]) -> Result<(), FrameError> {
        let split = buf
            .len()
            .checked_sub(NOISE_TAG_LEN)
            .ok_or(FrameError::NonceExhausted)?;
        if n == u64::MAX {
            return Err(FrameError::NonceExhausted);
        }
        let (plain, tag_out) = buf.split_at_mut(split);
        let tag = self
            .key
            .seal_in_place_separate_tag(Self::nonce(n), Aad::empty(), plain)
            .map_err(|_| FrameError::NonceExhausted)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts a record body (ciphertext ‖ tag) in place; returns the plaintext length.
    pub(crate) fn open(&self, n: u64, buf: &mut [u8]) -> Result<usize, FrameError> {
        if n == u64::MAX {
            return Err(FrameError::Decrypt);
        }
        self.key
            .open_in_place(Self::nonce(n), Aad::empty(), buf)
            .map(|p| p.len())
            .map_err(|_| FrameError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_direction_and_from_the_split_keys() {
        let k = AesKeys::derive(&[1; 32], &[1; 32], &[9; 32]);
        assert_ne!(k.i2r, k.r2i, "the labels separate the directions");
        assert_ne!(k.i2r, [1; 32]);
        let other_h = AesKeys::derive(&[1; 32], &[1; 32], &[8; 32]);
        assert_ne!(k.i2r, other_h.i2r, "the handshake hash is bound in");
    }

    #[test]
    fn seal_then_open_round_trips_and_a_wrong_nonce_fails() {
        let c = AesGcm::new(&[7; 32]);
        let mut buf = b"hello, world".to_vec();
        buf.extend_from_slice(&[0; 16]);
        c.seal(3, &mut buf).unwrap();
        let mut wrong = buf.clone();
        assert!(c.open(4, &mut wrong).is_err());
        let n = c.open(3, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello, world");
    }
}
