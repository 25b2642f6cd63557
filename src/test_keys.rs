//! Fixed RSA identities for tests and benchmarks.
//!
//! RSA key generation takes seconds; tests reuse these. They are published in the repository:
//! never use them for anything real.

use crate::identity::IdentityKeyPair;

const PEMS: [&str; 16] = [
    include_str!("../testdata/keys/key-0.pem"),
    include_str!("../testdata/keys/key-1.pem"),
    include_str!("../testdata/keys/key-2.pem"),
    include_str!("../testdata/keys/key-3.pem"),
    include_str!("../testdata/keys/key-4.pem"),
    include_str!("../testdata/keys/key-5.pem"),
    include_str!("../testdata/keys/key-6.pem"),
    include_str!("../testdata/keys/key-7.pem"),
    include_str!("../testdata/keys/key-8.pem"),
    include_str!("../testdata/keys/key-9.pem"),
    include_str!("../testdata/keys/key-10.pem"),
    include_str!("../testdata/keys/key-11.pem"),
    include_str!("../testdata/keys/key-12.pem"),
    include_str!("../testdata/keys/key-13.pem"),
    include_str!("../testdata/keys/key-14.pem"),
    include_str!("../testdata/keys/key-15.pem"),
];

/// How many fixed identities exist.
pub const COUNT: usize = PEMS.len();

/// Fixed identity number `n % COUNT`.
#[allow(clippy::expect_used)]
pub fn identity(n: usize) -> IdentityKeyPair {
    // The PEMs are compiled in and checked by this crate's tests; failure is a build defect.
    IdentityKeyPair::from_pkcs8_pem(PEMS[n % COUNT]).expect("fixed test key parses")
}

/// The PKCS#8 PEM of fixed identity `n % COUNT`, for writing into test profiles.
pub fn pem(n: usize) -> &'static str {
    PEMS[n % COUNT]
}
