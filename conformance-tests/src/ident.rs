//! Client identities and random names.
//!
//! The suite's users take their RSA keys from `peerchat_proto::test_keys` (16 published
//! 2048-bit keys): generating RSA keys per user would take seconds. Several users may share a
//! key; SPEC.md does not require identity keys to be unique across accounts.

use std::sync::{Arc, OnceLock};

use peerchat_proto::handshake::NOISE_PARAMS;
use peerchat_proto::{test_keys, IdentityKey, IdentityKeyPair, LocalIdentity};
use rand::distributions::Alphanumeric;
use rand::Rng;

/// Everything about one test key that a connection needs, computed once per process: the
/// X25519 static key and its RSA signature (one RSA operation per key, never per connection).
pub struct KeyMaterial {
    /// Index into `test_keys`.
    pub index: usize,
    /// The RSA key pair.
    pub keypair: IdentityKeyPair,
    /// X25519 static private key (for the raw `snow` sessions).
    pub static_private: Vec<u8>,
    /// X25519 static public key.
    pub static_public: Vec<u8>,
    /// RSA-PSS signature over the static public key.
    pub signature: Vec<u8>,
    /// The same parts as a proto-crate identity, for `Channel` connections.
    pub local: LocalIdentity,
}

/// How many distinct client keys exist.
pub const KEY_COUNT: usize = test_keys::COUNT;

static KEYS: OnceLock<Vec<OnceLock<Arc<KeyMaterial>>>> = OnceLock::new();

/// The key material of test key `index % KEY_COUNT`.
///
/// # Panics
/// Never in practice: the only failure is X25519 key generation by `snow`, which cannot fail
/// with the fixed, valid parameters.
#[allow(clippy::expect_used)]
pub fn key(index: usize) -> Arc<KeyMaterial> {
    let index = index % KEY_COUNT;
    let slots = KEYS.get_or_init(|| (0..KEY_COUNT).map(|_| OnceLock::new()).collect());
    slots[index]
        .get_or_init(|| {
            let keypair = test_keys::identity(index);
            let params = NOISE_PARAMS.parse().expect("valid noise parameters");
            let st = snow::Builder::new(params)
                .generate_keypair()
                .expect("x25519 key generation");
            let signature = keypair.sign_static_key(&st.public);
            let local = LocalIdentity::from_parts(
                test_keys::identity(index),
                st.private.clone(),
                st.public.clone(),
                signature.clone(),
            );
            Arc::new(KeyMaterial {
                index,
                keypair,
                static_private: st.private,
                static_public: st.public,
                signature,
                local,
            })
        })
        .clone()
}

/// The public key of test key `index`.
pub fn public(index: usize) -> IdentityKey {
    key(index).keypair.public().clone()
}

/// A random test key index.
pub fn random_key() -> usize {
    rand::thread_rng().gen_range(0..KEY_COUNT)
}

/// A random test key index different from `other`.
pub fn other_key(other: usize) -> usize {
    (other + rand::thread_rng().gen_range(1..KEY_COUNT)) % KEY_COUNT
}

/// A random test key index that is none of `taken` (`None` only if every key is taken):
/// for a third party's key, which must be neither the friend's nor the client's.
pub fn key_other_than(taken: &[usize]) -> Option<usize> {
    use rand::seq::SliceRandom as _;
    let free: Vec<usize> = (0..KEY_COUNT).filter(|k| !taken.contains(k)).collect();
    free.choose(&mut rand::thread_rng()).copied()
}

/// `n` random ASCII letters and digits.
pub fn alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A fresh userid: "c" + 10 random letters/digits (mixed case, so that every check of the
/// "registered spelling" rule is exercised for free).
pub fn userid() -> String {
    format!("c{}", alnum(10))
}

/// A password that passes every rule of SPEC.md §5.1.
pub fn password() -> String {
    format!("pw-{}", alnum(16))
}

/// An e-mail address for `userid` that passes every rule of SPEC.md §5.1.
pub fn email(userid: &str) -> String {
    format!("{}@example.test", userid.to_ascii_lowercase())
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMaterial(test key {})", self.index)
    }
}
