//! SPEC.md §6 and §12.4 in the machine: the friend book as the server reports it, presence,
//! and key changes. What a friend may do with us (link, receive, be dialled) is decided here:
//! a friend whose presented key differs from the pinned one is "key change pending" (L51a)
//! until the user accepts the presented key or the server presents the pinned one again.

use std::time::Instant;

use peerchat_proto::wire::CloseReason;

use super::{key, Action, ClientMachine, CommandError};
pub use crate::events::OfflineReason;
use crate::events::{Event, KeyDecision};
use crate::fast_hash::FastMap;

/// A friend as the server reports them (the driver converts the proto `Friend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendEntry {
    /// Registered spelling.
    pub userid: String,
    /// Fingerprint of the identity key the server presents now.
    pub fingerprint: String,
    /// Logged in now.
    pub online: bool,
}

/// What the server session reports (the driver converts `ServerEvent`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerInput {
    /// Logged in: the whole friend list (friends missing from it are gone, L50).
    LoggedIn {
        /// Every friend.
        friends: Vec<FriendEntry>,
    },
    /// A friend came online (resets its redial back-off, §7.4).
    FriendOnline(FriendEntry),
    /// A friend went offline.
    FriendOffline {
        /// The friend.
        userid: String,
    },
    /// A new friend.
    FriendAdded(FriendEntry),
    /// The friendship ended (`Unfriended`, `UnfriendOk`).
    FriendRemoved {
        /// The former friend.
        userid: String,
    },
    /// The server presents a key for a friend (`FriendKeyChanged`).
    FriendKey {
        /// The friend.
        userid: String,
        /// The presented key's fingerprint.
        fingerprint: String,
    },
    /// The server link is down; peer links are kept (L55).
    Offline(OfflineReason),
}

#[derive(Debug, Clone)]
struct Friend {
    userid: String,
    pinned: String,
    presented: String,
    online: bool,
}

/// Every friend.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    friends: FastMap<String, Friend>,
}

impl Directory {
    pub(crate) fn is_friend(&self, k: &str) -> bool {
        self.friends.contains_key(k)
    }

    /// A friend with no key change pending: links may be made and admitted.
    pub(crate) fn may_link(&self, k: &str) -> bool {
        self.friends.get(k).is_some_and(|f| f.pinned == f.presented)
    }

    /// The key a link with `k` must be authenticated with.
    pub(crate) fn trusted_key(&self, k: &str) -> Option<&str> {
        self.friends
            .get(k)
            .filter(|f| f.pinned == f.presented)
            .map(|f| f.pinned.as_str())
    }

    /// The registered spelling of `k` (for events).
    pub(crate) fn display(&self, k: &str) -> String {
        self.friends
            .get(k)
            .map_or_else(|| k.to_owned(), |f| f.userid.clone())
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        self.friends.keys().cloned().collect()
    }
}

impl ClientMachine {
    /// The server session reported something.
    pub fn handle_server_event(&mut self, ev: ServerInput, now: Instant) {
        match ev {
            ServerInput::LoggedIn { friends } => {
                self.logged_out = false;
                let listed: Vec<String> = friends.iter().map(|f| key(&f.userid)).collect();
                for k in self.dir.keys() {
                    if !listed.contains(&k) {
                        self.friend_gone(&k, now);
                    }
                }
                for f in friends {
                    self.upsert_friend(&f, now);
                    // A new friend list resets every back-off (§7.4).
                    self.links.redial.reset(&key(&f.userid));
                }
                for k in self.dir.keys() {
                    self.maybe_dial(&k, now);
                }
            }
            ServerInput::FriendOnline(f) => {
                self.upsert_friend(&f, now);
                let k = key(&f.userid);
                self.links.redial.reset(&k);
                self.emit(Event::Presence {
                    friend: f.userid,
                    online: true,
                    address: None,
                });
                self.maybe_dial(&k, now);
            }
            ServerInput::FriendOffline { userid } => {
                if let Some(f) = self.dir.friends.get_mut(&key(&userid)) {
                    f.online = false;
                }
                self.emit(Event::Presence {
                    friend: userid,
                    online: false,
                    address: None,
                });
            }
            ServerInput::FriendAdded(f) => {
                self.upsert_friend(&f, now);
                self.maybe_dial(&key(&f.userid), now);
            }
            ServerInput::FriendRemoved { userid } => self.friend_gone(&key(&userid), now),
            ServerInput::FriendKey {
                userid,
                fingerprint,
            } => {
                let k = key(&userid);
                if self.dir.is_friend(&k) {
                    self.present_key(&k, &fingerprint, now);
                    self.links.redial.reset(&k);
                    self.maybe_dial(&k, now);
                }
            }
            ServerInput::Offline(reason) => {
                if reason == OfflineReason::LoggedOut {
                    self.go_offline(now);
                }
                self.emit(Event::ServerStatus {
                    online: false,
                    reason: Some(reason),
                });
            }
        }
    }

    fn upsert_friend(&mut self, f: &FriendEntry, now: Instant) {
        let k = key(&f.userid);
        if let Some(old) = self.dir.friends.get_mut(&k) {
            old.userid.clone_from(&f.userid);
            old.online = f.online;
            self.present_key(&k, &f.fingerprint, now);
        } else {
            // First seen: its key is pinned as presented (trust on first use, §12.4).
            self.dir.friends.insert(
                k,
                Friend {
                    userid: f.userid.clone(),
                    pinned: f.fingerprint.clone(),
                    presented: f.fingerprint.clone(),
                    online: f.online,
                },
            );
        }
    }

    /// The server presents `fingerprint` for `k` (L51, L51a).
    fn present_key(&mut self, k: &str, fingerprint: &str, now: Instant) {
        let Some(f) = self.dir.friends.get_mut(k) else {
            return;
        };
        let was_pending = f.pinned != f.presented;
        let changed = f.presented != fingerprint;
        f.presented = fingerprint.to_owned();
        let (userid, pinned) = (f.userid.clone(), f.pinned.clone());
        if pinned == fingerprint {
            if was_pending {
                self.emit(Event::FriendKeyTrusted {
                    friend: userid,
                    fingerprint: pinned,
                    how: KeyDecision::Reverted,
                });
            }
        } else if changed {
            self.emit(Event::FriendKeyChanged {
                friend: userid,
                pinned,
                presented: fingerprint.to_owned(),
            });
        }
        // L51 and L51a: a link authenticated with any key other than the trusted one goes.
        let trusted = self.dir.trusted_key(k).map(str::to_owned);
        for link in self.links.links_of(k) {
            if self.links.fingerprint(link) != trusted.as_deref() {
                self.close_link(link, CloseReason::NotAFriend, now);
            }
        }
    }

    pub(crate) fn accept_friend_key(
        &mut self,
        friend: &str,
        fingerprint: &str,
        now: Instant,
    ) -> Result<(), CommandError> {
        let k = key(friend);
        let f = self
            .dir
            .friends
            .get_mut(&k)
            .ok_or_else(|| CommandError::NotAFriend(friend.to_owned()))?;
        if f.presented != fingerprint {
            return Err(CommandError::KeyMismatch {
                friend: friend.to_owned(),
                fingerprint: fingerprint.to_owned(),
            });
        }
        if f.pinned != f.presented {
            f.pinned = f.presented.clone();
            let userid = f.userid.clone();
            self.emit(Event::FriendKeyTrusted {
                friend: userid,
                fingerprint: fingerprint.to_owned(),
                how: KeyDecision::Accepted,
            });
            self.links.redial.reset(&k);
            self.maybe_dial(&k, now);
        }
        Ok(())
    }

    /// The friendship ended (L50, C23, R54, S39).
    fn friend_gone(&mut self, k: &str, now: Instant) {
        for link in self.links.links_of(k) {
            self.close_link(link, CloseReason::NotAFriend, now);
        }
        self.chat.forget(k);
        self.transfers_unfriended(k, now);
        let userid = self.dir.display(k);
        self.dir.friends.remove(k);
        self.links.redial.reset(k);
        self.emit(Event::FriendRemoved { userid });
    }

    /// The user logs out (L53): every link closes NORMAL and nothing is dialled until the
    /// next login.
    pub(crate) fn go_offline(&mut self, now: Instant) {
        self.logged_out = true;
        for link in self.links.all() {
            self.close_link(link, CloseReason::Normal, now);
        }
        self.links.redial.clear();
        self.links.dialing.clear();
    }

    /// `RetryNow`: forget every back-off, reconnect the server, dial who has something
    /// pending.
    pub(crate) fn retry_now(&mut self, now: Instant) {
        self.links.redial.clear();
        self.push(Action::ConnectServer);
        for k in self.dir.keys() {
            self.maybe_dial(&k, now);
        }
    }
}
