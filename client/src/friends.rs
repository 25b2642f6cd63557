//! The friend cache: who our friends are, their identity keys and last known addresses.
//!
//! The server is the authority while it is reachable (login snapshot and pushes update this
//! book). The book is saved in the profile so that when the server is down, the peer
//! listener still knows whom to accept and the client still knows where and whom to dial
//! (SPEC.md §7.2): "currently, or last known to be, friends".
//!
//! The server is *not* the authority on a friend's identity key (SPEC.md §12.4): the book
//! pins the first key it sees for a friend, and a different key from any source only puts the
//! friend in the "key change pending" state ([`CachedFriend::presented_key`]) until the user
//! accepts that exact key with [`FriendBook::accept_key`]. While pending, the friend has no
//! key that peer admission accepts, so nothing is sent to either key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use base64::Engine as _;
use peerchat_proto::message::{Candidate, FriendInfo, PendingRequest};
use peerchat_proto::IdentityKey;
use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomically;
use crate::events::{FriendView, RequestView};

/// One friend as last known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFriend {
    /// Registered spelling.
    pub userid: String,
    /// The pinned identity key: the only key peer connections to this friend may prove.
    pub identity_key: IdentityKey,
    /// "Key change pending" (SPEC.md §12.4): the server presents this key for the friend,
    /// it differs from the pin, and the user has not accepted it yet. While set, no peer link
    /// with the friend is admitted under either key and messages and files stay queued.
    pub presented_key: Option<IdentityKey>,
    /// Logged in to the server right now (false while we are offline).
    pub online: bool,
    /// Peer endpoint of the current session, if online and announced.
    pub endpoint: Option<SocketAddr>,
    /// The last endpoint we ever saw; used to dial while the server is unreachable.
    pub last_addr: Option<SocketAddr>,
    /// Where the current session may be reachable (SPEC.md §7.5); empty while offline.
    /// Not saved: candidates are only good while that session lasts.
    pub candidates: Vec<Candidate>,
}

impl CachedFriend {
    /// Where to dial: the current endpoint, else the last known one.
    pub fn dial_addr(&self) -> Option<SocketAddr> {
        self.endpoint.or(self.last_addr)
    }

    /// Whether a key change awaits the user's decision.
    pub fn key_change_pending(&self) -> bool {
        self.presented_key.is_some()
    }

    /// Records that the server presents `presented` for this friend (SPEC.md §12.4): the
    /// pinned key clears a pending change (the key changed back), any other key becomes
    /// (or replaces) the pending one. The pin itself never moves here.
    fn observe_key(&mut self, presented: &IdentityKey) {
        self.presented_key = (presented != &self.identity_key).then(|| presented.clone());
    }

    /// The view for events and the UI.
    pub fn view(&self) -> FriendView {
        FriendView {
            userid: self.userid.clone(),
            online: self.online,
            address: self.dial_addr().map(|a| a.to_string()),
            fingerprint: self.identity_key.fingerprint().to_string(),
            presented_fingerprint: self
                .presented_key
                .as_ref()
                .map(|k| k.fingerprint().to_string()),
            candidates: self.candidates.iter().map(|c| c.addr.to_string()).collect(),
            path: None,
        }
    }
}

/// Friends and pending requests, keyed by lower-case userid.
#[derive(Debug, Default, Clone)]
pub struct FriendBook {
    friends: BTreeMap<String, CachedFriend>,
    incoming: Vec<PendingRequest>,
    outgoing: Vec<PendingRequest>,
}

/// The lookup key for a userid (userids are case-insensitive, SPEC.md §5.1).
pub fn key(userid: &str) -> String {
    userid.to_ascii_lowercase()
}

impl FriendBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces everything with a login snapshot. Friends keep their last known address.
    pub fn apply_snapshot(
        &mut self,
        friends: &[FriendInfo],
        incoming: &[PendingRequest],
        outgoing: &[PendingRequest],
    ) {
        let old = std::mem::take(&mut self.friends);
        for f in friends {
            let entry = merge(old.get(&key(&f.userid)), f);
            self.friends.insert(key(&f.userid), entry);
        }
        self.incoming = incoming.to_vec();
        self.outgoing = outgoing.to_vec();
    }

    /// Adds or refreshes one friend (request accepted, friend online).
    pub fn upsert(&mut self, f: &FriendInfo) {
        let entry = merge(self.friends.get(&key(&f.userid)), f);
        self.friends.insert(key(&f.userid), entry);
        self.incoming.retain(|r| key(&r.userid) != key(&f.userid));
        self.outgoing.retain(|r| key(&r.userid) != key(&f.userid));
    }

    /// A friend came online (or moved).
    pub fn set_online(
        &mut self,
        userid: &str,
        endpoint: Option<SocketAddr>,
        candidates: &[Candidate],
        identity_key: IdentityKey,
    ) -> bool {
        match self.friends.get_mut(&key(userid)) {
            Some(c) => {
                c.online = true;
                c.endpoint = endpoint;
                c.candidates = candidates.to_vec();
                c.last_addr = endpoint.or(c.last_addr);
                c.observe_key(&identity_key);
                true
            }
            None => false,
        }
    }

    /// A friend went offline. Their last address stays for dialling later.
    pub fn set_offline(&mut self, userid: &str) -> bool {
        match self.friends.get_mut(&key(userid)) {
            Some(c) => {
                let was = c.online;
                c.online = false;
                c.endpoint = None;
                c.candidates.clear();
                was
            }
            None => false,
        }
    }

    /// We lost the server: nobody is known to be online any more (addresses stay).
    pub fn all_offline(&mut self) {
        for c in self.friends.values_mut() {
            c.online = false;
            c.endpoint = None;
            c.candidates.clear();
        }
    }

    /// The server says a friend's identity key is now `identity_key` (FriendKeyChanged).
    /// Like every other source, this only marks the change pending (SPEC.md §12.4).
    pub fn set_key(&mut self, userid: &str, identity_key: IdentityKey) -> bool {
        match self.friends.get_mut(&key(userid)) {
            Some(c) => {
                c.observe_key(&identity_key);
                true
            }
            None => false,
        }
    }

    /// The user accepts the presented key of `userid`, naming its fingerprint: it becomes
    /// the pin and the pending state ends (SPEC.md §12.4).
    ///
    /// # Errors
    /// [`AcceptKeyError::NotAFriend`], [`AcceptKeyError::NothingPending`], or
    /// [`AcceptKeyError::FingerprintChanged`] when the presented key is not (any more) the one
    /// the user named, so that a key that changed again meanwhile is never accepted blind.
    pub fn accept_key(&mut self, userid: &str, fingerprint: &str) -> Result<(), AcceptKeyError> {
        let c = self
            .friends
            .get_mut(&key(userid))
            .ok_or_else(|| AcceptKeyError::NotAFriend(userid.to_owned()))?;
        let Some(presented) = c.presented_key.clone() else {
            return Err(AcceptKeyError::NothingPending(c.userid.clone()));
        };
        let fp = presented.fingerprint().to_string();
        if fp != fingerprint.trim() {
            return Err(AcceptKeyError::FingerprintChanged {
                friend: c.userid.clone(),
                named: fingerprint.trim().to_owned(),
                presented: fp,
            });
        }
        c.identity_key = presented;
        c.presented_key = None;
        Ok(())
    }

    /// Friends whose key change awaits the user, as (lower-case key, pinned, presented).
    pub fn pending_key_changes(&self) -> Vec<(String, IdentityKey, IdentityKey)> {
        self.friends
            .iter()
            .filter_map(|(k, c)| {
                c.presented_key
                    .as_ref()
                    .map(|p| (k.clone(), c.identity_key.clone(), p.clone()))
            })
            .collect()
    }

    /// Records a working address for a friend (a connection to it succeeded).
    pub fn set_last_addr(&mut self, userid: &str, addr: SocketAddr) {
        if let Some(c) = self.friends.get_mut(&key(userid)) {
            c.last_addr = Some(addr);
        }
    }

    /// Removes a friend (unfriended either way).
    pub fn remove(&mut self, userid: &str) -> Option<CachedFriend> {
        self.friends.remove(&key(userid))
    }

    /// A friend by userid, any case.
    pub fn get(&self, userid: &str) -> Option<&CachedFriend> {
        self.friends.get(&key(userid))
    }

    /// The friend whose pinned key is `identity_key`, unless a key change is pending for
    /// them (then no key is theirs until the user decides, SPEC.md §12.4).
    pub fn by_key(&self, identity_key: &IdentityKey) -> Option<&CachedFriend> {
        self.friends
            .values()
            .find(|c| &c.identity_key == identity_key && !c.key_change_pending())
    }

    /// Every friend, sorted by lower-case userid.
    pub fn friends(&self) -> impl Iterator<Item = &CachedFriend> {
        self.friends.values()
    }

    /// A request from `userid` arrived.
    pub fn add_incoming(&mut self, r: PendingRequest) {
        self.incoming.retain(|x| key(&x.userid) != key(&r.userid));
        self.incoming.push(r);
    }

    /// We asked `userid`.
    pub fn add_outgoing(&mut self, r: PendingRequest) {
        self.outgoing.retain(|x| key(&x.userid) != key(&r.userid));
        self.outgoing.push(r);
    }

    /// A request to or from `userid` is gone (answered, refused or expired).
    pub fn drop_request(&mut self, userid: &str) {
        self.incoming.retain(|x| key(&x.userid) != key(userid));
        self.outgoing.retain(|x| key(&x.userid) != key(userid));
    }

    /// Pending requests to us.
    pub fn incoming(&self) -> Vec<RequestView> {
        self.incoming.iter().map(RequestView::from).collect()
    }

    /// Pending requests from us.
    pub fn outgoing(&self) -> Vec<RequestView> {
        self.outgoing.iter().map(RequestView::from).collect()
    }

    /// Every friend as a view.
    pub fn views(&self) -> Vec<FriendView> {
        self.friends.values().map(CachedFriend::view).collect()
    }

    /// Loads the cache saved at `path`; a missing or unreadable file is an empty book (the
    /// server rebuilds it at the next login).
    pub fn load(path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Self::new();
        };
        let Ok(saved) = serde_json::from_str::<Saved>(&text) else {
            tracing::warn!(path = %path.display(), "friend cache unreadable; starting empty");
            return Self::new();
        };
        let mut book = Self::new();
        book.outgoing = saved
            .outgoing
            .into_iter()
            .map(|r| PendingRequest {
                userid: r.userid,
                created_at_unix_ms: r.created_at_unix_ms,
                expires_at_unix_ms: r.expires_at_unix_ms,
            })
            .collect();
        for s in saved.friends {
            let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&s.identity_key) else {
                continue;
            };
            let Ok(identity_key) = IdentityKey::from_der(&der) else {
                continue;
            };
            // A damaged pending key must not turn into "nothing pending" (that would fail
            // open): the friend stays pending, on their own pin as a placeholder, so no link
            // is admitted; the next login snapshot sets the real state again.
            let presented_key = match s.presented_key.as_deref().map(decode_key) {
                None => None,
                Some(Some(k)) => Some(k),
                Some(None) => Some(identity_key.clone()),
            };
            book.friends.insert(
                key(&s.userid),
                CachedFriend {
                    userid: s.userid,
                    identity_key,
                    presented_key,
                    online: false,
                    endpoint: None,
                    candidates: Vec::new(),
                    last_addr: s.last_addr,
                },
            );
        }
        book
    }

    /// Saves the cache to `path` (atomically).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let saved = Saved {
            friends: self
                .friends
                .values()
                .map(|c| SavedFriend {
                    userid: c.userid.clone(),
                    identity_key: base64::engine::general_purpose::STANDARD
                        .encode(c.identity_key.to_der()),
                    last_addr: c.dial_addr(),
                    presented_key: c
                        .presented_key
                        .as_ref()
                        .map(|k| base64::engine::general_purpose::STANDARD.encode(k.to_der())),
                })
                .collect(),
            outgoing: self
                .outgoing
                .iter()
                .map(|r| SavedRequest {
                    userid: r.userid.clone(),
                    created_at_unix_ms: r.created_at_unix_ms,
                    expires_at_unix_ms: r.expires_at_unix_ms,
                })
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
        write_atomically(path, &text)
    }
}

/// Why [`FriendBook::accept_key`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptKeyError {
    /// No such friend.
    #[error("{0} is not a friend")]
    NotAFriend(String),
    /// The friend's key did not change (or the change was already accepted or reverted).
    #[error("no key change is pending for {0}")]
    NothingPending(String),
    /// The key presented now is not the one the user named.
    #[error("{friend}'s presented key is {presented}, not {named}; compare the new fingerprint and accept that one")]
    FingerprintChanged {
        /// The friend.
        friend: String,
        /// The fingerprint the user named.
        named: String,
        /// The fingerprint presented now.
        presented: String,
    },
}

/// The entry for a friend the server lists as `f`, given what we had (`old`): the first key
/// ever seen is pinned on first use; a known friend keeps their pin and any other key
/// becomes a pending change (SPEC.md §12.4).
fn merge(old: Option<&CachedFriend>, f: &FriendInfo) -> CachedFriend {
    let mut c = CachedFriend {
        userid: f.userid.clone(),
        identity_key: f.identity_key.clone(),
        presented_key: None,
        online: f.online,
        endpoint: f.endpoint,
        last_addr: f.endpoint.or(old.and_then(|o| o.last_addr)),
        candidates: f.candidates.clone(),
    };
    if let Some(o) = old {
        c.identity_key = o.identity_key.clone();
        c.observe_key(&f.identity_key);
    }
    c
}

fn decode_key(b64: &str) -> Option<IdentityKey> {
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    IdentityKey::from_der(&der).ok()
}

#[derive(Serialize, Deserialize)]
struct Saved {
    friends: Vec<SavedFriend>,
    /// Our pending requests: which answers (queued notices) are still news after a
    /// restart (see [`crate::notices`]).
    #[serde(default)]
    outgoing: Vec<SavedRequest>,
}

#[derive(Serialize, Deserialize)]
struct SavedRequest {
    userid: String,
    created_at_unix_ms: u64,
    expires_at_unix_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct SavedFriend {
    userid: String,
    /// The pin.
    identity_key: String,
    last_addr: Option<SocketAddr>,
    /// A key change awaiting the user (SPEC.md §12.4); survives a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    presented_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_proto::test_keys;

    fn info(userid: &str, n: usize, endpoint: Option<&str>) -> FriendInfo {
        FriendInfo {
            candidates: vec![],
            userid: userid.into(),
            online: endpoint.is_some(),
            endpoint: endpoint.and_then(|e| e.parse().ok()),
            identity_key: test_keys::identity(n).public().clone(),
        }
    }

    #[test]
    fn offline_friends_keep_their_last_address_and_survive_a_save() -> std::io::Result<()> {
        let mut b = FriendBook::new();
        b.apply_snapshot(&[info("Bob", 1, Some("127.0.0.1:4000"))], &[], &[]);
        assert!(b.set_offline("bob"));
        let bob = b.get("BOB").cloned().unwrap_or_else(|| panic!("bob"));
        assert!(!bob.online);
        assert_eq!(bob.dial_addr(), "127.0.0.1:4000".parse().ok());
        // A new snapshot listing bob offline keeps the address.
        b.apply_snapshot(&[info("Bob", 1, None)], &[], &[]);
        assert_eq!(
            b.get("bob").and_then(CachedFriend::dial_addr),
            "127.0.0.1:4000".parse().ok()
        );

        let dir = tempfile::tempdir()?;
        let path = dir.path().join("friends.json");
        b.save(&path)?;
        let loaded = FriendBook::load(&path);
        let again = loaded.get("bob").cloned().unwrap_or_else(|| panic!("bob"));
        assert_eq!(again.identity_key, test_keys::identity(1).public().clone());
        assert_eq!(again.last_addr, "127.0.0.1:4000".parse().ok());
        assert!(loaded.by_key(test_keys::identity(1).public()).is_some());
        assert!(loaded.by_key(test_keys::identity(2).public()).is_none());
        Ok(())
    }

    fn fp(n: usize) -> String {
        test_keys::identity(n).public().fingerprint().to_string()
    }

    fn pending_of(b: &FriendBook, userid: &str) -> Option<String> {
        b.get(userid)
            .and_then(|c| c.presented_key.as_ref())
            .map(|k| k.fingerprint().to_string())
    }

    #[test]
    fn the_first_key_is_pinned_without_asking() {
        let mut b = FriendBook::new();
        b.apply_snapshot(&[info("bob", 1, None)], &[], &[]);
        b.upsert(&info("carol", 2, None));
        for (u, n) in [("bob", 1), ("carol", 2)] {
            let c = b.get(u).cloned().unwrap_or_else(|| panic!("{u}"));
            assert_eq!(c.identity_key, test_keys::identity(n).public().clone());
            assert!(!c.key_change_pending());
        }
        assert!(b.pending_key_changes().is_empty());
    }

    #[test]
    fn every_source_of_a_new_key_makes_the_same_pending_state() {
        type Source = fn(&mut FriendBook);
        let sources: [(&str, Source); 4] = [
            ("login snapshot", |b| {
                b.apply_snapshot(&[info("bob", 2, None)], &[], &[])
            }),
            ("FriendOnline", |b| {
                b.set_online("bob", None, &[], test_keys::identity(2).public().clone());
            }),
            ("FriendKeyChanged", |b| {
                b.set_key("bob", test_keys::identity(2).public().clone());
            }),
            ("Friend entry", |b| b.upsert(&info("bob", 2, None))),
        ];
        for (name, learn) in sources {
            let mut b = FriendBook::new();
            b.upsert(&info("bob", 1, None));
            learn(&mut b);
            let c = b.get("bob").cloned().unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                c.identity_key,
                test_keys::identity(1).public().clone(),
                "{name}: the pin stays"
            );
            assert_eq!(pending_of(&b, "bob"), Some(fp(2)), "{name}");
            assert_eq!(c.view().presented_fingerprint, Some(fp(2)), "{name}");
            assert!(
                b.by_key(test_keys::identity(1).public()).is_none(),
                "{name}"
            );
            assert!(
                b.by_key(test_keys::identity(2).public()).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_key_that_changes_back_clears_and_one_that_changes_again_replaces() {
        let mut b = FriendBook::new();
        b.upsert(&info("bob", 1, None));
        b.set_key("bob", test_keys::identity(2).public().clone());
        // Changed again: the user now sees (and must name) the latest key.
        b.set_key("bob", test_keys::identity(3).public().clone());
        assert_eq!(pending_of(&b, "bob"), Some(fp(3)));
        assert_eq!(
            b.accept_key("bob", &fp(2)),
            Err(AcceptKeyError::FingerprintChanged {
                friend: "bob".into(),
                named: fp(2),
                presented: fp(3),
            })
        );
        // Back to the pinned key: nothing to decide any more.
        b.apply_snapshot(&[info("bob", 1, None)], &[], &[]);
        assert_eq!(pending_of(&b, "bob"), None);
        assert!(b.by_key(test_keys::identity(1).public()).is_some());
        assert_eq!(
            b.accept_key("bob", &fp(3)),
            Err(AcceptKeyError::NothingPending("bob".into()))
        );
        // A repeated notice of the same key changes nothing.
        b.set_key("bob", test_keys::identity(2).public().clone());
        b.set_key("bob", test_keys::identity(2).public().clone());
        assert_eq!(b.pending_key_changes().len(), 1);
    }

    #[test]
    fn accepting_the_named_key_moves_the_pin() {
        let mut b = FriendBook::new();
        b.upsert(&info("bob", 1, None));
        assert_eq!(
            b.accept_key("nobody", &fp(1)),
            Err(AcceptKeyError::NotAFriend("nobody".into()))
        );
        b.set_key("bob", test_keys::identity(2).public().clone());
        assert_eq!(b.accept_key("BOB", &format!(" {} ", fp(2))), Ok(()));
        assert_eq!(pending_of(&b, "bob"), None);
        assert!(b.by_key(test_keys::identity(2).public()).is_some());
        assert!(b.by_key(test_keys::identity(1).public()).is_none());
        // The next snapshot with the accepted key is no change.
        b.apply_snapshot(&[info("bob", 2, None)], &[], &[]);
        assert_eq!(pending_of(&b, "bob"), None);
    }

    #[test]
    fn a_pending_change_survives_a_restart_and_a_damaged_one_fails_closed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("friends.json");
        let mut b = FriendBook::new();
        b.upsert(&info("bob", 1, None));
        b.set_key("bob", test_keys::identity(2).public().clone());
        b.save(&path)?;
        let loaded = FriendBook::load(&path);
        assert_eq!(pending_of(&loaded, "bob"), Some(fp(2)));
        assert_eq!(
            loaded.get("bob").map(|c| c.identity_key.clone()),
            Some(test_keys::identity(1).public().clone())
        );

        let text = std::fs::read_to_string(&path)?;
        let damaged = text.replace("\"presented_key\": \"", "\"presented_key\": \"!!");
        assert_ne!(text, damaged);
        std::fs::write(&path, damaged)?;
        let loaded = FriendBook::load(&path);
        assert!(loaded
            .get("bob")
            .is_some_and(CachedFriend::key_change_pending));
        assert!(loaded.by_key(test_keys::identity(1).public()).is_none());
        Ok(())
    }

    #[test]
    fn key_changes_and_removal() {
        let mut b = FriendBook::new();
        b.upsert(&info("carol", 3, None));
        assert!(b.set_key("Carol", test_keys::identity(4).public().clone()));
        assert!(b.by_key(test_keys::identity(3).public()).is_none());
        assert!(b.by_key(test_keys::identity(4).public()).is_none());
        assert_eq!(b.accept_key("carol", &fp(4)), Ok(()));
        assert!(b.by_key(test_keys::identity(4).public()).is_some());
        assert!(b.remove("CAROL").is_some());
        assert!(b.get("carol").is_none());
        assert!(!b.set_online("carol", None, &[], test_keys::identity(4).public().clone()));
    }

    #[test]
    fn garbage_cache_is_an_empty_book() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("friends.json");
        std::fs::write(&path, b"{not json")?;
        assert_eq!(FriendBook::load(&path).friends().count(), 0);
        Ok(())
    }
}
