//! A bounded memory of identity bindings this process has already verified (SPEC.md §4.3,
//! "Remembering verified bindings").
//!
//! Why: a process signs its Noise static key once and sends the same `identity_key`,
//! `identity_sig` and static key on every connection it makes (§4.3). A server therefore
//! sees the same three values each time a client process reconnects, and a client sees the
//! server's and its friends' again on every reconnect. Parsing the key (DER, num-bigint)
//! and verifying the RSA-PSS signature again gives the same answer for the same bytes;
//! remembering the answer takes both off every handshake after the first, which is what
//! reconnect storms are made of (issue #14: RSA was ~7 % of a handshake's CPU after X25519).
//!
//! Only successes are remembered, keyed by SHA-256 over the three values with their
//! lengths, so a different key, signature or static key is a different entry and is
//! verified in full. The memory is bounded ([`VERIFIED_BINDINGS_MAX`]) and forgets the
//! oldest entry first: a storm of distinct identities costs what it cost before, plus one
//! hash of under 1.2 KiB per handshake.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::identity::{IdentityError, IdentityKey};
use crate::limits::VERIFIED_BINDINGS_MAX;

type Digest32 = [u8; 32];

/// Identity bindings that verified, most recent last.
#[derive(Default)]
pub(crate) struct VerifiedBindings {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<Digest32, IdentityKey>,
    order: VecDeque<Digest32>,
}

impl VerifiedBindings {
    /// The identity key in `der`, checked (§4.3: V4) and with `sig` verified over
    /// `remote_static` (V5), or the key remembered from an earlier identical check.
    ///
    /// # Errors
    /// As [`IdentityKey::from_der`] and [`IdentityKey::verify_static_key`]; failures are not
    /// remembered.
    pub(crate) fn check(
        &self,
        der: &[u8],
        sig: &[u8],
        remote_static: &[u8],
    ) -> Result<IdentityKey, IdentityError> {
        let digest = binding_digest(der, sig, remote_static);
        if let Some(key) = self.lock().keys.get(&digest) {
            return Ok(key.clone());
        }
        // Verified outside the lock: other handshakes need not wait for an RSA operation.
        let key = IdentityKey::from_der(der)?;
        key.verify_static_key(remote_static, sig)?;
        self.remember(digest, key.clone());
        Ok(key)
    }

    fn remember(&self, digest: Digest32, key: IdentityKey) {
        let mut inner = self.lock();
        if inner.keys.insert(digest, key).is_some() {
            // Two handshakes verified the same binding at once; it is listed already.
            return;
        }
        inner.order.push_back(digest);
        // One entry in, so at most one out.
        if inner.order.len() > VERIFIED_BINDINGS_MAX {
            if let Some(old) = inner.order.pop_front() {
                inner.keys.remove(&old);
            }
        }
    }

    /// A panic elsewhere while the lock was held leaves a map that is still consistent
    /// enough to use: at worst an entry is missing from `order` and is never forgotten early.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().keys.len()
    }
}

/// SHA-256 over the three values, each preceded by its length (so that no two different
/// triples hash the same input).
fn binding_digest(der: &[u8], sig: &[u8], remote_static: &[u8]) -> Digest32 {
    let mut h = Sha256::new();
    for part in [der, sig, remote_static] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys;

    fn signed(n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let kp = test_keys::identity(n);
        let static_key = [n as u8; 32];
        let sig = kp.sign_static_key(&static_key);
        (kp.public().to_der().to_vec(), sig, static_key.to_vec())
    }

    #[test]
    fn a_verified_binding_is_remembered_and_returns_the_same_key() {
        let cache = VerifiedBindings::default();
        let (der, sig, st) = signed(0);
        let first = cache.check(&der, &sig, &st).unwrap();
        assert_eq!(cache.len(), 1);
        let again = cache.check(&der, &sig, &st).unwrap();
        assert_eq!(first, again);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn any_other_signature_or_static_key_is_verified_in_full_and_fails() {
        let cache = VerifiedBindings::default();
        let (der, sig, st) = signed(0);
        cache.check(&der, &sig, &st).unwrap();
        // The remembered key's signature over another static key.
        let other_static = [9u8; 32];
        assert!(matches!(
            cache.check(&der, &sig, &other_static),
            Err(IdentityError::BadSignature)
        ));
        // Another key's signature over the same static key.
        let (_, sig1, _) = signed(1);
        assert!(matches!(
            cache.check(&der, &sig1, &st),
            Err(IdentityError::BadSignature)
        ));
        assert_eq!(cache.len(), 1, "failures are not remembered");
    }

    #[test]
    fn the_memory_keeps_at_most_its_bound_and_forgets_the_oldest() {
        let cache = VerifiedBindings::default();
        let key = IdentityKey::from_der(&signed(0).0).unwrap();
        for i in 0..VERIFIED_BINDINGS_MAX + 10 {
            cache.remember(binding_digest(&i.to_be_bytes(), b"", b""), key.clone());
        }
        assert_eq!(cache.len(), VERIFIED_BINDINGS_MAX);
        let inner = cache.lock();
        assert!(!inner
            .keys
            .contains_key(&binding_digest(&0usize.to_be_bytes(), b"", b"")));
        assert!(inner.keys.contains_key(&binding_digest(
            &(VERIFIED_BINDINGS_MAX + 9).to_be_bytes(),
            b"",
            b""
        )));
    }

    #[test]
    fn lengths_separate_the_fields() {
        assert_ne!(
            binding_digest(b"ab", b"c", b""),
            binding_digest(b"a", b"bc", b"")
        );
    }
}
