//! SPEC.md §7 and Table L (§8.5.1) in the machine: links that reached OPEN, one per friend
//! (L52), the frames of OPEN (L20–L35), the effects of CLOSED, and when to dial (§7.4: the back-off grows with failed attempts over time, 1 s → 60 s, and is
//! reset by presence, a new friend list, a key change and any link reaching OPEN).
//!
//! The handshake and the hello (L1–L18) happen in the driver's link task; the machine learns
//! of a link when it is OPEN ([`LinkEvent::Up`]).
//!
//! The idle timers (§3.6, L21 and L40–L43) have one owner, the link task
//! (`peer/session.rs`), which applies the pure [`crate::peer::idle::decide`]: silence is
//! measured where the bytes arrive (a driver waiting on a slow disk must not make a busy link
//! look silent), and a `Ping` is answered from the link's single Pong slot ahead of queued
//! data and rate limited there (§3.6 r2). The machine never sees `Ping` or `Pong`.

use std::collections::HashSet;
use std::time::Instant;

use peerchat_proto::message::{InvalidFileFrame, PeerFeatures, PeerFrame};
use peerchat_proto::wire::CloseReason;

use super::{key, Action, ClientMachine, LinkId, MachineConfig};
use crate::bounded_set::BoundedSet;
use crate::events::{Event, LinkPath, PeerCloseReason};
use crate::fast_hash::FastMap;
use crate::peer::redial::Redial;
use crate::peer::registry::{Admission, PeerRegistry};

/// At most this many ids in a link's discard set (§8.5.3 allows forgetting the oldest;
/// audit D9): a friend naming ever new ids cannot grow it without bound.
pub const DISCARD_SET_MAX: usize = 1024;

/// How a link ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEnd {
    /// End-of-stream, reset or a framing error without the friend's `Close` (L1–L6).
    Dropped,
    /// The friend sent `Close` with this reason (the driver read it at the frame layer).
    FriendClosed(CloseReason),
    /// This side closed it (the driver finished a `CloseLink`).
    WeClosed,
}

/// What happened to a link, reported by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link reached OPEN (both hellos accepted, L12).
    Up {
        /// The link.
        link: LinkId,
        /// The friend (as named in the hello).
        friend: String,
        /// We dialled it.
        initiated_by_me: bool,
        /// How it was made.
        path: LinkPath,
        /// Fingerprint of the key the handshake authenticated (audit D18).
        fingerprint: String,
        /// The features both hellos named.
        features: PeerFeatures,
    },
    /// A link is gone.
    Down {
        /// The link.
        link: LinkId,
        /// How.
        end: LinkEnd,
    },
    /// A dial (the whole connection order) failed.
    DialFailed {
        /// The friend.
        friend: String,
    },
}

/// A bounded set of transfer ids, oldest forgotten first.
#[derive(Debug, Clone)]
pub(crate) struct DiscardSet(BoundedSet<Vec<u8>>);

impl Default for DiscardSet {
    fn default() -> Self {
        Self(BoundedSet::new(DISCARD_SET_MAX))
    }
}

impl DiscardSet {
    pub(crate) fn insert(&mut self, id: &[u8]) {
        self.0.insert(id.to_vec());
    }

    pub(crate) fn contains(&self, id: &[u8]) -> bool {
        self.0.contains(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) friend: String,
    fingerprint: String,
    /// The features both hellos named (§7.2 r9).
    features: PeerFeatures,
    pub(crate) discard: DiscardSet,
}

/// Every OPEN link and the dialing state.
#[derive(Debug)]
pub(crate) struct Links {
    links: FastMap<LinkId, Link>,
    registry: PeerRegistry,
    pub(crate) redial: Redial,
    pub(crate) dialing: HashSet<String>,
}

impl Links {
    pub(crate) fn new(c: &MachineConfig) -> Self {
        Self {
            links: FastMap::default(),
            registry: PeerRegistry::new(&c.me),
            redial: Redial::new(c.redial_min, c.redial_max),
            dialing: HashSet::new(),
        }
    }

    pub(crate) fn set_me(&mut self, me: &str) {
        self.registry.set_me(me);
    }

    /// The OPEN link with `k`.
    pub(crate) fn active(&self, k: &str) -> Option<LinkId> {
        self.registry.active(k)
    }

    pub(crate) fn links_of(&self, k: &str) -> Vec<LinkId> {
        let mut v: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.friend == k)
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    pub(crate) fn all(&self) -> Vec<LinkId> {
        let mut v: Vec<LinkId> = self.links.keys().copied().collect();
        v.sort();
        v
    }

    /// Both hellos of `link` named `file-blake3` (§8.3.1).
    pub(crate) fn blake3_ok(&self, link: LinkId) -> bool {
        self.links
            .get(&link)
            .is_some_and(|l| l.features.file_blake3)
    }

    pub(crate) fn fingerprint(&self, link: LinkId) -> Option<&str> {
        self.links.get(&link).map(|l| l.fingerprint.as_str())
    }

    pub(crate) fn get_mut(&mut self, link: LinkId) -> Option<&mut Link> {
        self.links.get_mut(&link)
    }

    pub(crate) fn in_discard(&self, link: LinkId, id: &[u8]) -> bool {
        self.links
            .get(&link)
            .is_some_and(|l| l.discard.contains(id))
    }

    pub(crate) fn discard(&mut self, link: LinkId, id: &[u8]) {
        if let Some(l) = self.links.get_mut(&link) {
            l.discard.insert(id);
        }
    }

    /// The earliest redial of a friend that wants a link and has none.
    pub(crate) fn next_timeout(&self, wants: Vec<String>) -> Option<Instant> {
        wants
            .iter()
            .filter(|k| {
                !self.dialing.contains(*k) && self.active(k).is_none() && !self.redial.is_refused(k)
            })
            .filter_map(|k| self.redial.not_before(k))
            .min()
    }
}

impl ClientMachine {
    /// The OPEN link both sides keep with `friend` (L52), if any.
    pub fn active_link(&self, friend: &str) -> Option<LinkId> {
        self.links.active(&key(friend))
    }

    /// How the active link with `friend` was made.
    pub fn link_path(&self, friend: &str) -> Option<LinkPath> {
        self.links.registry.path(&key(friend))
    }

    /// The friend of an OPEN link (lower-case key).
    pub fn link_friend(&self, link: LinkId) -> Option<&str> {
        self.links.links.get(&link).map(|l| l.friend.as_str())
    }

    /// A link came up, went down, or a dial failed.
    pub fn handle_link_event(&mut self, ev: LinkEvent, now: Instant) {
        match ev {
            LinkEvent::Up {
                link,
                friend,
                initiated_by_me,
                path,
                fingerprint,
                features,
            } => self.on_up(
                link,
                &friend,
                initiated_by_me,
                path,
                fingerprint,
                features,
                now,
            ),
            LinkEvent::Down { link, end } => {
                let (friend_close, why) = match end {
                    LinkEnd::FriendClosed(r) => (Some(Some(r)), PeerCloseReason::Friend(r)),
                    LinkEnd::Dropped => (Some(None), PeerCloseReason::Lost),
                    // A close the machine did not ask for (the link's own send budget, say):
                    // the driver does not say which code it sent.
                    LinkEnd::WeClosed => (None, PeerCloseReason::Local(CloseReason::Unspecified)),
                };
                self.link_closed(link, friend_close, why, now);
            }
            LinkEvent::DialFailed { friend } => {
                let k = key(&friend);
                self.links.dialing.remove(&k);
                self.links.redial.on_attempt_failed(&k, now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_up(
        &mut self,
        link: LinkId,
        friend: &str,
        initiated_by_me: bool,
        path: LinkPath,
        fingerprint: String,
        features: PeerFeatures,
        now: Instant,
    ) {
        let k = key(friend);
        // Any link reaching OPEN ends the attempt, ours or the friend's (a reversal or a
        // punch the friend asked for comes in as an accepted link).
        self.links.dialing.remove(&k);
        if self.logged_out {
            self.push(Action::CloseLink {
                link,
                reason: Some(CloseReason::Normal),
            });
            return;
        }
        // L11/L51a and audit D18: only a friend's trusted key opens a link, and the link
        // remembers which key it was authenticated with.
        if self.dir.trusted_key(&k) != Some(fingerprint.as_str()) {
            self.push(Action::CloseLink {
                link,
                reason: Some(CloseReason::NotAFriend),
            });
            return;
        }
        match self.links.registry.admit(&k, link, initiated_by_me, path) {
            Admission::Duplicate => {
                // L52: the link we had wins; the new one never counts as OPEN here.
                self.push(Action::CloseLink {
                    link,
                    reason: Some(CloseReason::DuplicateConnection),
                });
                return;
            }
            Admission::Admitted { replaced } => {
                self.links.links.insert(
                    link,
                    Link {
                        friend: k.clone(),
                        fingerprint,
                        features,
                        discard: DiscardSet::default(),
                    },
                );
                if let Some(old) = replaced {
                    // L52: the loser closes; what was only sent on it is re-sent below (C22,
                    // S30).
                    self.push(Action::CloseLink {
                        link: old,
                        reason: Some(CloseReason::DuplicateConnection),
                    });
                    self.forget_link(old, now);
                }
            }
        }
        self.links.redial.reset(&k);
        self.emit(Event::PeerConnected {
            friend: self.dir.display(&k),
            path,
            attempt: None,
        });
        // C20 first, then S32/S30 (§8.3 r15: after re-sending the outbox).
        self.chat_link_open(&k, link);
        self.transfers_link_open(&k, link, now);
    }

    /// A frame arrived on `link` (already decoded; `unix_ms` is our wall clock at receipt).
    pub fn handle_peer_frame(
        &mut self,
        link: LinkId,
        frame: PeerFrame,
        now: Instant,
        unix_ms: u64,
    ) {
        // L7: nothing is processed on a link that is not OPEN here.
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let k = l.friend.clone();
        match frame {
            PeerFrame::Hello { .. } => self.close_link(link, CloseReason::ProtocolError, now),
            // L21, L40–L43 belong to the link task (module docs).
            PeerFrame::Ping(_) | PeerFrame::Pong(_) | PeerFrame::Unknown => {}
            PeerFrame::Close { reason, .. } => {
                // L30–L35: closed at once, nothing sent.
                self.push(Action::CloseLink { link, reason: None });
                self.link_closed(
                    link,
                    Some(Some(reason)),
                    PeerCloseReason::Friend(reason),
                    now,
                );
            }
            PeerFrame::Chat(c) => self.on_chat(link, &k, c, now, unix_ms),
            PeerFrame::Ack { id } => self.on_ack(&k, id, now),
            PeerFrame::Typing(active) => self.on_typing(&k, active, now),
            f @ (PeerFrame::FileOffer(_)
            | PeerFrame::FileAccept { .. }
            | PeerFrame::FileChunk { .. }
            | PeerFrame::FileDigest { .. }
            | PeerFrame::FileComplete { .. }
            | PeerFrame::FileCancel { .. }) => self.on_file_frame(link, &k, f, now),
        }
    }

    /// A file frame whose values failed validation arrived on `link` (R2, R3, R21, R25, S2;
    /// L26: the link stays).
    pub fn handle_invalid_file_frame(
        &mut self,
        link: LinkId,
        frame: InvalidFileFrame,
        now: Instant,
    ) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let k = l.friend.clone();
        self.on_invalid_file_frame(link, &k, frame, now);
    }

    /// Send `Close{reason}` on `link` and apply the effects of CLOSED (it is CLOSING, and
    /// no later frame of it is processed).
    pub(crate) fn close_link(&mut self, link: LinkId, reason: CloseReason, now: Instant) {
        if self.links.links.contains_key(&link) {
            self.push(Action::CloseLink {
                link,
                reason: Some(reason),
            });
            self.link_closed(link, None, PeerCloseReason::sent(reason), now);
        }
    }

    /// The effects of CLOSED (§8.5.1). `friend_close`: `Some(reason or None for a drop)`
    /// when the friend ended it, `None` when we did; `why` is what the UI is told.
    fn link_closed(
        &mut self,
        link: LinkId,
        friend_close: Option<Option<CloseReason>>,
        why: PeerCloseReason,
        now: Instant,
    ) {
        let Some(k) = self.forget_link(link, now) else {
            return;
        };
        if let Some(reason) = friend_close {
            self.links.redial.on_link_closed(&k, now, reason);
        }
        self.emit(Event::PeerDisconnected {
            friend: self.dir.display(&k),
            reason: why,
        });
        self.maybe_dial(&k, now);
    }

    /// Drops `link` from every table: suspends its transfers, hides typing. Returns the
    /// friend if the link was known.
    fn forget_link(&mut self, link: LinkId, now: Instant) -> Option<String> {
        let l = self.links.links.remove(&link)?;
        let k = l.friend;
        let was_active = self.links.registry.remove(&k, link);
        if was_active {
            self.chat_link_closed(&k);
        }
        self.transfers_link_closed(&k, link, now);
        Some(k)
    }

    /// Dial `k` if something is pending, no link is OPEN or being dialled, and the back-off
    /// allows it now (otherwise [`ClientMachine::poll_timeout`] includes its wait).
    pub(crate) fn maybe_dial(&mut self, k: &str, now: Instant) {
        if self.logged_out
            || !self.dir.may_link(k)
            || self.links.active(k).is_some()
            || self.links.dialing.contains(k)
            || !self.has_pending(k)
            || !self.links.redial.may_dial(k, now)
        {
            return;
        }
        self.links.dialing.insert(k.to_owned());
        self.push(Action::Dial {
            friend: self.dir.display(k),
        });
    }

    pub(crate) fn redial_due(&mut self, now: Instant) {
        let mut due = self.links.redial.due(now);
        due.sort();
        for k in due {
            if self.has_pending(&k) {
                self.maybe_dial(&k, now);
            } else {
                self.links.redial.settle(&k);
            }
        }
    }
}
