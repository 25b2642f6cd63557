//! The PeerHello rules (SPEC.md §7.2), without I/O.
//!
//! The handshake proves *which key* is on the other end; the hello says *which user* it
//! claims to be and whom it meant to reach. A connection is kept only if the key belongs to
//! that friend (in the friend cache) and the hello names us.

use peerchat_proto::message::PeerFeatures;
use peerchat_proto::IdentityKey;

use crate::events::RefuseReason;
use crate::friends::FriendBook;

/// Why a peer connection is refused with Close{NOT_A_FRIEND} or PROTOCOL_ERROR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The handshake key is no friend's key.
    #[error("identity {0} is not the key of any friend")]
    UnknownKey(String),
    /// The hello names a user who is not our friend, or whose key is not the handshake key.
    #[error("hello claims to be {0}, which does not match the proven identity")]
    WrongUser(String),
    /// The hello is addressed to someone else.
    #[error("hello is addressed to {0}, not to us")]
    NotForUs(String),
    /// We dialled one friend and reached another identity.
    #[error("expected {expected}'s key, the remote proved {got}")]
    UnexpectedKey {
        /// Whom we dialled.
        expected: String,
        /// The fingerprint we got.
        got: String,
    },
    /// The friend's key changed and the user has not decided yet (SPEC.md §12.4): no link
    /// is admitted under either key.
    #[error("{0}'s identity key changed; no connection until the new key is accepted")]
    KeyChangePending(String),
    /// The first frame was not a hello.
    #[error("the first frame must be PeerHello")]
    NotHello,
    /// The connection broke (or timed out) during the hello exchange.
    #[error("connection failed during the hello exchange: {0}")]
    Connection(String),
}

impl HelloError {
    /// The typed reason an [`crate::Event::PeerRefused`] carries.
    pub fn refuse_reason(&self) -> RefuseReason {
        match self {
            HelloError::UnknownKey(_) => RefuseReason::UnknownKey,
            HelloError::WrongUser(_) => RefuseReason::WrongUser,
            HelloError::NotForUs(_) => RefuseReason::NotForUs,
            HelloError::UnexpectedKey { .. } => RefuseReason::UnexpectedKey,
            HelloError::KeyChangePending(_) => RefuseReason::KeyChangePending,
            HelloError::NotHello => RefuseReason::NotHello,
            HelloError::Connection(_) => RefuseReason::Connection,
        }
    }
}

/// Set (to anything) in a client's environment, it does not name `aes-gcm` even on AES
/// hardware: for tests of the ChaChaPoly path against an AES peer, and for benchmarks.
pub const NO_AES_GCM_ENV: &str = "PEERCHAT_NO_AES_GCM";

/// The features this client names in its hellos (SPEC.md §7.2 rule 9): all it implements,
/// without `aes-gcm` on a CPU without AES hardware (§3.2.1 rule 1) or with
/// [`NO_AES_GCM_ENV`] set.
pub fn local_features() -> PeerFeatures {
    PeerFeatures::local(std::env::var_os(NO_AES_GCM_ENV).is_some())
}

/// The acceptor's first check, right after the handshake: the friend whose key this is.
/// A friend whose key change is pending has no key that passes (SPEC.md §12.4).
///
/// # Errors
/// [`HelloError::UnknownKey`].
pub fn friend_for_key(book: &FriendBook, remote: &IdentityKey) -> Result<String, HelloError> {
    book.by_key(remote)
        .map(|f| f.userid.clone())
        .ok_or_else(|| HelloError::UnknownKey(remote.fingerprint().to_string()))
}

/// The dialler's first check: the key we reached is the one of the friend we dialled.
///
/// # Errors
/// [`HelloError::UnexpectedKey`] (also when the friend is no longer in the book).
pub fn check_dialled_key(
    book: &FriendBook,
    friend: &str,
    remote: &IdentityKey,
) -> Result<(), HelloError> {
    match book.get(friend) {
        Some(f) if f.key_change_pending() => Err(HelloError::KeyChangePending(f.userid.clone())),
        Some(f) if &f.identity_key == remote => Ok(()),
        _ => Err(HelloError::UnexpectedKey {
            expected: friend.to_owned(),
            got: remote.fingerprint().to_string(),
        }),
    }
}

/// Checks a received hello against the handshake key and our own userid. Returns the
/// friend's registered spelling.
///
/// # Errors
/// [`HelloError::WrongUser`] or [`HelloError::NotForUs`].
pub fn check_hello(
    book: &FriendBook,
    remote: &IdentityKey,
    me: &str,
    hello_userid: &str,
    hello_to: &str,
) -> Result<String, HelloError> {
    let friend = book
        .get(hello_userid)
        .filter(|f| &f.identity_key == remote && !f.key_change_pending())
        .ok_or_else(|| HelloError::WrongUser(hello_userid.to_owned()))?;
    if !hello_to.eq_ignore_ascii_case(me) && !crate::faults::on("hello-ignores-to") {
        return Err(HelloError::NotForUs(hello_to.to_owned()));
    }
    Ok(friend.userid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_proto::message::FriendInfo;
    use peerchat_proto::test_keys;

    fn book() -> FriendBook {
        let mut b = FriendBook::new();
        b.upsert(&FriendInfo {
            candidates: vec![],
            userid: "Bob".into(),
            online: false,
            endpoint: None,
            identity_key: test_keys::identity(1).public().clone(),
        });
        b.upsert(&FriendInfo {
            candidates: vec![],
            userid: "carol".into(),
            online: false,
            endpoint: None,
            identity_key: test_keys::identity(2).public().clone(),
        });
        b
    }

    #[test]
    fn a_friends_hello_to_us_is_accepted_in_any_case() {
        let b = book();
        let bob = test_keys::identity(1).public().clone();
        assert_eq!(friend_for_key(&b, &bob), Ok("Bob".into()));
        assert_eq!(
            check_hello(&b, &bob, "alice", "BOB", "Alice"),
            Ok("Bob".into())
        );
        assert_eq!(check_dialled_key(&b, "bob", &bob), Ok(()));
    }

    #[test]
    fn a_pending_key_change_admits_neither_key() {
        let mut b = book();
        let old = test_keys::identity(1).public().clone();
        let new = test_keys::identity(5).public().clone();
        assert!(b.set_key("bob", new.clone()));
        for k in [&old, &new] {
            assert!(matches!(
                friend_for_key(&b, k),
                Err(HelloError::UnknownKey(_))
            ));
            assert_eq!(
                check_dialled_key(&b, "bob", k),
                Err(HelloError::KeyChangePending("Bob".into()))
            );
            assert!(check_hello(&b, k, "alice", "bob", "alice").is_err());
        }
        // Accepted: only the new key passes.
        let fp = new.fingerprint().to_string();
        assert_eq!(b.accept_key("BOB", &fp), Ok(()));
        assert_eq!(friend_for_key(&b, &new), Ok("Bob".into()));
        assert!(friend_for_key(&b, &old).is_err());
        assert_eq!(check_dialled_key(&b, "bob", &new), Ok(()));
    }

    #[test]
    fn strangers_and_impostors_are_refused() {
        let b = book();
        let stranger = test_keys::identity(9).public().clone();
        assert!(matches!(
            friend_for_key(&b, &stranger),
            Err(HelloError::UnknownKey(_))
        ));
        let carol = test_keys::identity(2).public().clone();
        // Carol's key claiming to be Bob.
        assert_eq!(
            check_hello(&b, &carol, "alice", "bob", "alice"),
            Err(HelloError::WrongUser("bob".into()))
        );
        // Addressed to someone else.
        assert_eq!(
            check_hello(&b, &carol, "alice", "carol", "dave"),
            Err(HelloError::NotForUs("dave".into()))
        );
        // Dialled Bob, reached Carol.
        assert!(matches!(
            check_dialled_key(&b, "bob", &carol),
            Err(HelloError::UnexpectedKey { .. })
        ));
    }
}
