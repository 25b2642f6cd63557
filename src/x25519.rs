//! X25519 for the Noise handshake: AWS-LC's assembly (through aws-lc-rs) in place of snow's
//! portable code, each private key parsed once, and the static key's public half derived once
//! instead of at every handshake.
//!
//! Why: X25519 is most of a handshake's CPU (docs/PERFORMANCE.md). snow's default resolver
//! uses curve25519-dalek's portable `serial::u64` arithmetic (its ring resolver supplies only
//! ciphers and hashes). Session 7 moved the DH to ring's BoringSSL code (fiat-crypto with
//! ADX/BMI2). Session 20 measured AWS-LC's (s2n-bignum's formally verified x86-64 assembly) on
//! the same machine, in one process: a DH 20–24 µs against ring's ~31 µs, and a key pair from
//! 32 bytes 5.5–8 µs against ring's 17–19 µs. A Noise XX side does one key generation and
//! three DHs, so that is ~108 → ~69 µs per side per handshake. And snow's `Dh::set`
//! re-derives the public key of the static private key it is given, a base-point
//! multiplication per handshake for a key that never changes; [`NoiseResolver`] hands it the
//! key parsed when the [`crate::LocalIdentity`] was made.
//!
//! aws-lc-rs also takes a fixed private key through its public API
//! (`PrivateKey::from_private_key`). ring only offers X25519 keys that are generated from its
//! own random source and used once, which Noise's static key (es, se) is not, and reaching it
//! took ring's deprecated test random source.
//!
//! X25519 is X25519 (RFC 7748): the same private key and peer key give the same bytes as before,
//! which the test vectors in `testdata/` and the tests below check against x25519-dalek. One
//! detail is kept on purpose: AWS-LC refuses a result of all zeros (a low-order peer key), where
//! curve25519-dalek returned the zeros and the handshake went on; [`LcX25519::dh`] returns the
//! zeros too, so nothing a peer can observe changes (no wire or behaviour change, SPEC.md §4).

use std::sync::Arc;

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// Length of an X25519 private key, public key and shared secret.
pub const KEY_LEN: usize = 32;

/// An X25519 key pair parsed, and its public half computed, once.
pub struct StaticKey {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
    key: PrivateKey,
}

impl StaticKey {
    /// Parses `private` and derives its public half; `None` if it is not 32 bytes.
    pub fn derive(private: &[u8]) -> Option<Self> {
        let private: [u8; KEY_LEN] = private.try_into().ok()?;
        let (key, public) = parse(&private)?;
        Some(Self {
            private,
            public,
            key,
        })
    }

    /// The public half.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }
}

impl Drop for StaticKey {
    fn drop(&mut self) {
        // AWS-LC clears its own copy when it frees it.
        wipe(&mut self.private);
    }
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half.
        write!(f, "StaticKey(public {:02x?})", &self.public[..4])
    }
}

/// `private` as AWS-LC's key, with its public half (computed while parsing: AWS-LC derives it
/// when the key is made). `None` only if AWS-LC fails internally.
fn parse(private: &[u8; KEY_LEN]) -> Option<(PrivateKey, [u8; KEY_LEN])> {
    let key = PrivateKey::from_private_key(&X25519, private).ok()?;
    let public = key.compute_public_key().ok()?.as_ref().try_into().ok()?;
    Some((key, public))
}

/// X25519(private, 9): the public key, as curve25519-dalek's `mul_base_clamped` computed it.
#[cfg(test)]
fn public_key(private: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
    parse(private).map(|(_, public)| public)
}

/// X25519(`key`, `peer`) into `out`; all zeros for a low-order `peer` (see the module docs).
fn agree(key: &PrivateKey, peer: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
    let out = out.get_mut(..KEY_LEN).ok_or(snow::Error::Dh)?;
    let peer = peer.get(..KEY_LEN).ok_or(snow::Error::Dh)?;
    let agreed = agreement::agree(key, UnparsedPublicKey::new(&X25519, peer), (), |k| {
        out.copy_from_slice(k.get(..KEY_LEN).ok_or(())?);
        Ok(())
    });
    if agreed.is_err() {
        // AWS-LC's only refusal for a 32-byte peer key: the result is all zeros.
        out.fill(0);
    }
    Ok(())
}

/// Which parsed key a [`LcX25519`] agrees with.
enum Slot {
    /// None set yet, or AWS-LC failed to parse one: every DH fails.
    Empty,
    /// The local static key the resolver was given.
    Known,
    /// Any other key (the ephemeral one, in practice).
    Own(PrivateKey),
}

/// snow's `Dh` for "25519", backed by AWS-LC. Knows the local static key so that `set` with it
/// costs a comparison instead of a parse and a base-point multiplication.
pub struct LcX25519 {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
    slot: Slot,
    known: Option<Arc<StaticKey>>,
}

impl LcX25519 {
    /// A key slot; `known` is the local static key, if the caller has one.
    pub fn new(known: Option<Arc<StaticKey>>) -> Self {
        Self {
            private: [0; KEY_LEN],
            public: [0; KEY_LEN],
            slot: Slot::Empty,
            known,
        }
    }

    fn set_private(&mut self, private: [u8; KEY_LEN]) {
        self.private = private;
        (self.slot, self.public) = match &self.known {
            Some(k) if equal(&k.private, &private) => (Slot::Known, k.public),
            // Only an internal AWS-LC failure lands in `None`; the all-zero public key and the
            // empty slot then fail snow's later steps instead of panicking.
            _ => match parse(&private) {
                Some((key, public)) => (Slot::Own(key), public),
                None => (Slot::Empty, [0; KEY_LEN]),
            },
        };
    }
}

/// Zeroes a private key before its memory is freed. Best effort: private keys should not
/// linger in freed memory, and `black_box` keeps the compiler from dropping the write.
fn wipe(private: &mut [u8; KEY_LEN]) {
    private.fill(0);
    std::hint::black_box(private);
}

/// Constant-time equality of two keys.
fn equal(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Drop for LcX25519 {
    fn drop(&mut self) {
        wipe(&mut self.private);
    }
}

impl Dh for LcX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        // snow checks the length against priv_len() before calling this.
        let mut private = [0u8; KEY_LEN];
        let n = privkey.len().min(KEY_LEN);
        private[..n].copy_from_slice(&privkey[..n]);
        self.set_private(private);
    }

    fn generate(&mut self, rng: &mut dyn Random) {
        let mut private = [0u8; KEY_LEN];
        rng.fill_bytes(&mut private);
        self.set_private(private);
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let key = match (&self.slot, &self.known) {
            (Slot::Own(key), _) => key,
            (Slot::Known, Some(known)) => &known.key,
            _ => return Err(snow::Error::Dh),
        };
        agree(key, pubkey, out)
    }
}

/// snow's crypto resolver for Peerchat: ring for the random source, hash and ciphers, and
/// [`LcX25519`] as the DH. Built per handshake (snow takes it by value); cloning the static
/// key is one `Arc`.
pub struct NoiseResolver {
    known: Option<Arc<StaticKey>>,
}

impl NoiseResolver {
    /// A resolver whose DH recognises `known`, the local static key.
    pub fn new(known: Option<Arc<StaticKey>>) -> Self {
        Self { known }
    }
}

impl CryptoResolver for NoiseResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        RingResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(LcX25519::new(self.known.clone()))),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        RingResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver.resolve_cipher(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; KEY_LEN] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// X25519(`private`, `peer`) through a freshly parsed key.
    fn agree_raw(private: &[u8; KEY_LEN], peer: &[u8], out: &mut [u8]) {
        agree(&parse(private).unwrap().0, peer, out).unwrap();
    }

    /// RFC 7748 §6.1: Alice's and Bob's key pairs and their shared secret.
    #[test]
    fn rfc7748_vectors() {
        let a = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let a_pub = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let b = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let b_pub = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(public_key(&a).unwrap(), a_pub);
        assert_eq!(StaticKey::derive(&b).unwrap().public(), &b_pub);
        let mut out = [0u8; KEY_LEN];
        agree_raw(&a, &b_pub, &mut out);
        assert_eq!(out, shared);
        agree_raw(&b, &a_pub, &mut out);
        assert_eq!(out, shared);
    }

    /// The same bytes as curve25519-dalek (what snow used before) for many keys, including
    /// peer keys with the top bit set and non-canonical ones (both must ignore bit 255).
    #[test]
    fn matches_dalek() {
        use x25519_dalek::{PublicKey, StaticSecret};
        for i in 0u8..64 {
            let private: [u8; KEY_LEN] =
                std::array::from_fn(|j| i.wrapping_mul(31) ^ (j as u8).wrapping_mul(7));
            let mut peer: [u8; KEY_LEN] =
                std::array::from_fn(|j| i.wrapping_add(j as u8).wrapping_mul(13));
            if i % 2 == 0 {
                peer[31] |= 0x80;
            }
            if i == 1 {
                // 2^255 - 1: non-canonical (>= p).
                peer = [0xff; KEY_LEN];
                peer[31] = 0x7f;
            }
            let secret = StaticSecret::from(private);
            assert_eq!(
                public_key(&private).unwrap(),
                PublicKey::from(&secret).to_bytes()
            );
            let mut out = [0u8; KEY_LEN];
            agree_raw(&private, &peer, &mut out);
            assert_eq!(
                out,
                secret.diffie_hellman(&PublicKey::from(peer)).to_bytes(),
                "key {i}"
            );
        }
    }

    /// A low-order peer key gives all zeros, as with curve25519-dalek, not an error.
    #[test]
    fn low_order_point_gives_zeros_as_before() {
        let private = [0x42u8; KEY_LEN];
        let mut out = [0xaau8; KEY_LEN];
        agree_raw(&private, &[0u8; KEY_LEN], &mut out);
        assert_eq!(out, [0u8; KEY_LEN]);
        let mut one = [0u8; KEY_LEN];
        one[0] = 1;
        agree_raw(&private, &one, &mut out);
        assert_eq!(out, [0u8; KEY_LEN]);
    }

    /// `set` with the known static key takes its cached public half; with any other key it
    /// derives it; `generate` derives it from the random bytes.
    #[test]
    fn set_uses_the_cached_public_key_only_for_the_known_key() {
        let known = Arc::new(StaticKey::derive(&[7u8; KEY_LEN]).unwrap());
        let mut dh = LcX25519::new(Some(Arc::clone(&known)));
        let peer = public_key(&[3u8; KEY_LEN]).unwrap();
        let (mut via_slot, mut direct) = ([0u8; KEY_LEN], [1u8; KEY_LEN]);
        assert!(dh.dh(&peer, &mut via_slot).is_err(), "no key set yet");
        dh.set(&[7u8; KEY_LEN]);
        assert_eq!(dh.pubkey(), known.public());
        // The known key's parsed copy does the DH.
        dh.dh(&peer, &mut via_slot).unwrap();
        agree_raw(&[7u8; KEY_LEN], &peer, &mut direct);
        assert_eq!(via_slot, direct);
        dh.set(&[8u8; KEY_LEN]);
        assert_eq!(dh.pubkey(), &public_key(&[8u8; KEY_LEN]).unwrap());

        struct Fixed;
        impl rand::RngCore for Fixed {
            fn next_u32(&mut self) -> u32 {
                9
            }
            fn next_u64(&mut self) -> u64 {
                9
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.fill(9);
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
                dest.fill(9);
                Ok(())
            }
        }
        impl rand::CryptoRng for Fixed {}
        impl Random for Fixed {}
        dh.generate(&mut Fixed);
        assert_eq!(dh.privkey(), &[9u8; KEY_LEN]);
        assert_eq!(dh.pubkey(), &public_key(&[9u8; KEY_LEN]).unwrap());
    }
}
