//! The friend cache: who our friends are, their identity keys and last known addresses.
//!
//! The server is the authority while it is reachable (login snapshot and pushes update this
//! book). The book is saved in the profile so that when the server is down, the peer
//! listener still knows whom to accept and the client still knows where and whom to dial
//! (SPEC.md §7.2): "currently, or last known to be, friends".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Current (or last known) identity key.
    pub identity_key: IdentityKey,
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

    /// The view for events and the UI.
    pub fn view(&self) -> FriendView {
        FriendView {
            userid: self.userid.clone(),
            online: self.online,
            address: self.dial_addr().map(|a| a.to_string()),
            fingerprint: self.identity_key.fingerprint().to_string(),
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
            let last = old.get(&key(&f.userid)).and_then(|c| c.last_addr);
            self.friends.insert(key(&f.userid), from_info(f, last));
        }
        self.incoming = incoming.to_vec();
        self.outgoing = outgoing.to_vec();
    }

    /// Adds or refreshes one friend (request accepted, friend online).
    pub fn upsert(&mut self, f: &FriendInfo) {
        let last = self.friends.get(&key(&f.userid)).and_then(|c| c.last_addr);
        self.friends.insert(key(&f.userid), from_info(f, last));
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
                c.identity_key = identity_key;
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

    /// A friend's identity key changed.
    pub fn set_key(&mut self, userid: &str, identity_key: IdentityKey) -> bool {
        match self.friends.get_mut(&key(userid)) {
            Some(c) => {
                c.identity_key = identity_key;
                true
            }
            None => false,
        }
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

    /// The friend whose current key is `identity_key`.
    pub fn by_key(&self, identity_key: &IdentityKey) -> Option<&CachedFriend> {
        self.friends
            .values()
            .find(|c| &c.identity_key == identity_key)
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
        for s in saved.friends {
            let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&s.identity_key) else {
                continue;
            };
            let Ok(identity_key) = IdentityKey::from_der(&der) else {
                continue;
            };
            book.friends.insert(
                key(&s.userid),
                CachedFriend {
                    userid: s.userid,
                    identity_key,
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
                })
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
        write_atomically(path, &text)
    }
}

fn from_info(f: &FriendInfo, last: Option<SocketAddr>) -> CachedFriend {
    CachedFriend {
        userid: f.userid.clone(),
        identity_key: f.identity_key.clone(),
        online: f.online,
        endpoint: f.endpoint,
        last_addr: f.endpoint.or(last),
        candidates: f.candidates.clone(),
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    friends: Vec<SavedFriend>,
}

#[derive(Serialize, Deserialize)]
struct SavedFriend {
    userid: String,
    identity_key: String,
    last_addr: Option<SocketAddr>,
}

/// Where the friend cache lives in a profile.
pub fn cache_path(profile_dir: &Path) -> PathBuf {
    profile_dir.join("friends.json")
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
        let path = cache_path(dir.path());
        b.save(&path)?;
        let loaded = FriendBook::load(&path);
        let again = loaded.get("bob").cloned().unwrap_or_else(|| panic!("bob"));
        assert_eq!(again.identity_key, test_keys::identity(1).public().clone());
        assert_eq!(again.last_addr, "127.0.0.1:4000".parse().ok());
        assert!(loaded.by_key(test_keys::identity(1).public()).is_some());
        assert!(loaded.by_key(test_keys::identity(2).public()).is_none());
        Ok(())
    }

    #[test]
    fn key_changes_and_removal() {
        let mut b = FriendBook::new();
        b.upsert(&info("carol", 3, None));
        assert!(b.set_key("Carol", test_keys::identity(4).public().clone()));
        assert!(b.by_key(test_keys::identity(3).public()).is_none());
        assert!(b.by_key(test_keys::identity(4).public()).is_some());
        assert!(b.remove("CAROL").is_some());
        assert!(b.get("carol").is_none());
        assert!(!b.set_online("carol", None, &[], test_keys::identity(4).public().clone()));
    }

    #[test]
    fn garbage_cache_is_an_empty_book() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = cache_path(dir.path());
        std::fs::write(&path, b"{not json")?;
        assert_eq!(FriendBook::load(&path).friends().count(), 0);
        Ok(())
    }
}
