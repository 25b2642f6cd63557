//! Server events and pushes (SPEC.md §6): the friend cache and the requests the UI shows
//! stay with the driver; the machine learns what its decisions need — who is a friend,
//! which key is pinned and which one the server presents (§12.4), who came online (§7.4:
//! that resets the redial back-off) — through [`ServerInput`]s.

use std::time::Instant;

use peerchat_proto::message::{PendingRequest, PushEvent};

use super::Core;
use crate::error::ClientError;
use crate::events::{Event, LinkPath};
use crate::friends::{key, FriendBook};
use crate::history;
use crate::machine::{self, FriendEntry, ServerInput};
use crate::peer::relay::spawn_relay;
use crate::peer::traversal::{is_reachable, Reach};
use crate::server_session::ServerEvent;

impl Core {
    pub(super) async fn on_server(&mut self, ev: ServerEvent) {
        let now = Instant::now();
        match ev {
            ServerEvent::Online => self.emit(Event::ServerStatus {
                online: true,
                reason: None,
            }),
            ServerEvent::Offline { reason } => {
                // Peer links are kept (L55); only what the server told us is forgotten.
                self.traversal.set_reach(Reach::default());
                self.with_book(FriendBook::all_offline);
                self.emit(Event::ServerStatus {
                    online: false,
                    reason: Some(reason),
                });
            }
            ServerEvent::LoggedIn(snap) => {
                if let Ok(mut me) = self.me.write() {
                    *me = Some(snap.userid.clone());
                }
                self.machine.set_me(&snap.userid);
                if let Err(e) = self.profile.set_account(&snap.userid) {
                    self.error(e.to_string());
                }
                if let Ok(b) = self.book.read() {
                    self.notices.before_snapshot(&b);
                }
                self.with_book(|b| b.apply_snapshot(&snap.friends, &snap.incoming, &snap.outgoing));
                let (friends, incoming, outgoing) = self
                    .book
                    .read()
                    .map(|b| (b.views(), b.incoming(), b.outgoing()))
                    .unwrap_or_default();
                self.emit(Event::LoggedIn {
                    userid: snap.userid,
                    friends,
                    incoming_requests: incoming,
                    outgoing_requests: outgoing,
                });
                // After LoggedIn, so a UI has the friend list when it shows a key change.
                // The whole list: friends missing from it are gone (L50), and every back-off
                // starts over (§7.4, L33).
                let entries = self.entries();
                self.machine
                    .handle_server_event(ServerInput::LoggedIn { friends: entries }, now);
                self.sync_directory();
            }
            ServerEvent::Announced {
                announcement,
                observed,
            } => {
                let reachable = is_reachable(observed, &announcement.host_candidates);
                tracing::info!(?observed, hosts = ?announcement.host_candidates, from_listener = announcement.observed_is_listener, reachable, "announced");
                self.traversal.set_reach(Reach {
                    server_online: true,
                    reachable,
                });
            }
            ServerEvent::LoggedOut => {
                self.go_offline(now);
                self.emit(Event::LoggedOut)
            }
            ServerEvent::FriendAdded(f) => {
                self.notices.friend_added(&f.userid);
                self.with_book(|b| b.upsert(&f));
                let view = self
                    .book
                    .read()
                    .ok()
                    .and_then(|b| b.get(&f.userid).map(|c| c.view()));
                if let Some(friend) = view {
                    self.emit(Event::FriendAdded { friend });
                }
                self.sync_directory();
            }
            ServerEvent::FriendRemoved(userid) => self.friend_gone(&userid),
            ServerEvent::RequestSent(userid) => {
                self.notices.request_sent(&userid);
                let now = history::now_ms();
                self.with_book(|b| {
                    b.add_outgoing(PendingRequest {
                        userid: userid.clone(),
                        created_at_unix_ms: now,
                        expires_at_unix_ms: 0,
                    })
                });
                self.emit(Event::FriendRequestSent { userid });
            }
            ServerEvent::RequestAnswered { userid, answer } => {
                self.with_book(|b| b.drop_request(&userid));
                self.emit(Event::FriendRequestAnswered { userid, answer });
            }
            ServerEvent::Error(message) => self.error(message),
            ServerEvent::LoginRefused(code) => self.emit(Event::LoginRefused { code }),
            ServerEvent::SessionReplaced => self.emit(Event::SessionReplaced),
            ServerEvent::PinFailed(p) => {
                // A typed event for a security UI; the whole explanation as an error too.
                if let crate::pinning::PinError::Changed {
                    server,
                    pinned,
                    presented,
                    ..
                } = &p
                {
                    self.emit(Event::ServerKeyChanged {
                        server: server.clone(),
                        pinned: pinned.clone(),
                        presented: presented.clone(),
                    });
                }
                self.error(p.to_string());
            }
            ServerEvent::LoginRetry {
                reason,
                code,
                retry_in,
                attempt,
            } => self.emit(Event::LoginRetry {
                reason,
                code,
                retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                attempt,
            }),
            ServerEvent::Push(p) => self.on_push(p, now),
        }
    }

    /// The machine's view of every cached friend: the key it was last told (the pinned key
    /// for a friend it does not know yet, so that the pin survives a restart), and presence.
    fn entries(&self) -> Vec<FriendEntry> {
        let Ok(b) = self.book.read() else {
            return Vec::new();
        };
        b.friends()
            .map(|f| {
                let k = key(&f.userid);
                let fingerprint = self
                    .told_keys
                    .get(&k)
                    .cloned()
                    .unwrap_or_else(|| f.identity_key.fingerprint().to_string());
                FriendEntry {
                    userid: f.userid.clone(),
                    fingerprint,
                    online: f.online,
                }
            })
            .collect()
    }

    /// Tells the machine what changed in the friend book: new friends (with their pinned
    /// key), friends gone, and the key the server presents now for each (§12.4: a key other
    /// than the pin makes the change pending; the pin again ends it). The machine emits the
    /// key events and closes or holds links as L51/L51a say.
    pub(super) fn sync_directory(&mut self) {
        let now = Instant::now();
        let view: Vec<(String, FriendEntry, String, String)> = self
            .book
            .read()
            .map(|b| {
                b.friends()
                    .map(|f| {
                        let pinned = f.identity_key.fingerprint().to_string();
                        let presented = f
                            .presented_key
                            .as_ref()
                            .map_or_else(|| pinned.clone(), |p| p.fingerprint().to_string());
                        let entry = FriendEntry {
                            userid: f.userid.clone(),
                            fingerprint: pinned.clone(),
                            online: f.online,
                        };
                        (key(&f.userid), entry, pinned, presented)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let gone: Vec<String> = self
            .told_keys
            .keys()
            .filter(|k| !view.iter().any(|(v, ..)| v == *k))
            .cloned()
            .collect();
        for k in gone {
            self.told_keys.remove(&k);
            self.traversal.forget(&k);
            self.machine
                .handle_server_event(ServerInput::FriendRemoved { userid: k }, now);
        }
        for (k, entry, pinned, presented) in view {
            if !self.told_keys.contains_key(&k) {
                self.machine
                    .handle_server_event(ServerInput::FriendAdded(entry), now);
                self.told_keys.insert(k.clone(), pinned.clone());
            }
            if self.told_keys.get(&k) != Some(&presented) {
                if presented != pinned {
                    // Attempts made with the old key end here (§7.2 "While Open").
                    self.traversal.forget(&k);
                }
                self.machine.handle_server_event(
                    ServerInput::FriendKey {
                        userid: self.display(&k),
                        fingerprint: presented.clone(),
                    },
                    now,
                );
                self.told_keys.insert(k, presented);
            }
        }
    }

    /// The user accepts `fingerprint` as `friend`'s key (SPEC.md §12.4): the pin moves in
    /// the book (saved) and in the machine, which releases what was held.
    pub(super) fn accept_friend_key(
        &mut self,
        friend: &str,
        fingerprint: &str,
        now: Instant,
    ) -> Result<(), ClientError> {
        let k = key(friend);
        self.with_book(|b| b.accept_key(&k, fingerprint))
            .ok_or(ClientError::Closed)??;
        let presented = fingerprint.trim().to_owned();
        self.told_keys.insert(k, presented.clone());
        self.machine_command(
            machine::Command::AcceptFriendKey {
                friend: friend.to_owned(),
                fingerprint: presented,
            },
            now,
        )
    }

    fn friend_gone(&mut self, userid: &str) {
        let k = key(userid);
        let display = self.display(&k);
        self.notices.friend_gone(&k);
        self.with_book(|b| b.remove(&k));
        self.emit(Event::FriendRemoved { userid: display });
        // The machine closes the links (NOT_A_FRIEND), ends the transfers (R54, S39) and
        // drops the outbox (C23).
        self.sync_directory();
    }

    /// Our request to `userid` was refused or expired; false for a repeated notice.
    fn request_answered(&mut self, userid: &str) -> bool {
        let k = key(userid);
        let listed = self
            .book
            .read()
            .map(|b| b.outgoing().iter().any(|r| key(&r.userid) == k))
            .unwrap_or(false);
        self.with_book(|b| b.drop_request(userid));
        self.notices.answered(userid, listed)
    }

    fn key_change_pending(&self, k: &str) -> bool {
        self.book
            .read()
            .map(|b| b.get(k).is_some_and(|f| f.key_change_pending()))
            .unwrap_or(true)
    }

    fn is_friend(&self, k: &str) -> bool {
        self.book
            .read()
            .map(|b| b.get(k).is_some())
            .unwrap_or(false)
    }

    fn on_push(&mut self, p: PushEvent, now: Instant) {
        match p {
            PushEvent::FriendRequestReceived(r) => {
                let from = r.userid.clone();
                self.with_book(|b| b.add_incoming(r));
                self.emit(Event::FriendRequestReceived { from });
            }
            PushEvent::FriendRequestAccepted(f) => {
                // Queued notices may come twice (§6.9): a repeat changes nothing visible.
                let news = self.notices.accepted(&f.userid) || !self.is_friend(&key(&f.userid));
                self.with_book(|b| b.upsert(&f));
                if news {
                    let view = self
                        .book
                        .read()
                        .ok()
                        .and_then(|b| b.get(&f.userid).map(|c| c.view()));
                    self.emit(Event::FriendRequestAccepted {
                        userid: f.userid.clone(),
                    });
                    if let Some(friend) = view {
                        self.emit(Event::FriendAdded { friend });
                    }
                }
                self.sync_directory();
            }
            PushEvent::FriendRequestRefused { userid } => {
                if self.request_answered(&userid) {
                    self.emit(Event::FriendRequestRefused { userid });
                }
            }
            PushEvent::FriendRequestExpired { userid } => {
                if self.request_answered(&userid) {
                    self.emit(Event::FriendRequestExpired { userid });
                }
            }
            PushEvent::FriendOnline {
                userid,
                endpoint,
                identity_key,
                candidates,
            } => {
                let k = key(&userid);
                let known =
                    self.with_book(|b| b.set_online(&userid, endpoint, &candidates, identity_key));
                // The key first (a pending change holds the dial), then presence.
                self.sync_directory();
                if known == Some(true) {
                    let friend = self.display(&k);
                    self.emit(Event::Presence {
                        friend: friend.clone(),
                        online: true,
                        address: endpoint.map(|e| e.to_string()),
                    });
                    // The friend is back (or moved): the back-off resets and whoever has
                    // something pending dials at once (§7.4 r4).
                    let fingerprint = self.told_keys.get(&k).cloned().unwrap_or_default();
                    self.machine.handle_server_event(
                        ServerInput::FriendOnline(FriendEntry {
                            userid: friend,
                            fingerprint,
                            online: true,
                        }),
                        now,
                    );
                }
            }
            PushEvent::FriendOffline { userid } => {
                let k = key(&userid);
                if self.with_book(|b| b.set_offline(&userid)).is_some() {
                    let friend = self.display(&k);
                    self.emit(Event::Presence {
                        friend: friend.clone(),
                        online: false,
                        address: None,
                    });
                    self.machine
                        .handle_server_event(ServerInput::FriendOffline { userid: friend }, now);
                }
            }
            PushEvent::Unfriended { userid } => self.friend_gone(&userid),
            PushEvent::FriendKeyChanged {
                userid,
                identity_key,
            } => {
                // Like every other way of learning a key, only a pending change (§12.4).
                self.with_book(|b| b.set_key(&userid, identity_key));
                self.sync_directory();
            }
            PushEvent::PeerConnectRequested(req) => {
                let k = key(&req.userid);
                // Only friends may make us dial (SPEC.md §12.10 rule 4), and not while their
                // key change is pending (§12.4).
                if !self.is_friend(&k) || self.key_change_pending(&k) {
                    return;
                }
                let has_direct = self
                    .machine
                    .link_path(&k)
                    .is_some_and(|p| p != LinkPath::Relayed);
                let actions = self.traversal.on_request(&req, has_direct, now);
                self.run_traversal(actions);
            }
            PushEvent::RelayInvite { userid, token } => {
                let k = key(&userid);
                if !self.is_friend(&k)
                    || self.key_change_pending(&k)
                    || self.machine.active_link(&k).is_some()
                {
                    return;
                }
                let friend = self.display(&k);
                tracing::debug!(%friend, "joining a relay");
                spawn_relay(self.session_ctx.clone(), friend, Some(token), None);
            }
        }
    }
}
