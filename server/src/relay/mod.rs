//! The end-to-end relay (SPEC.md §7.7): a relay connection proves an account key, sends one
//! `RelayOpen`, and is spliced to the relay connection of a friend. The peers then run their
//! own Noise handshake through the splice; the server forwards bytes it cannot read.
//!
//! - this file: the [`RelayRegistry`] — relay connections per account (the
//!   `RELAY_LINKS_PER_USER` limit), relays waiting for the invited friend, and the switches that
//!   close a user's links when their session or a friendship ends. No I/O: unit-tested here.
//! - [`session`]: one relay connection, from its `RelayOpen` to the end of the splice.
//! - [`splice`]: the byte pump between the two connections.
//! - [`limits`]: the per-link and server-wide byte rates.

pub mod limits;
pub mod session;
pub mod splice;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use peerchat_proto::limits as L;
use peerchat_proto::message::TraversalId;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use session::serve;

/// The relay's settings (SPEC.md §10; all but the limit per user are configurable).
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// `RELAY_JOIN_TIMEOUT`: how long an opener waits for the invited friend.
    pub join_timeout: Duration,
    /// `RELAY_IDLE_TIMEOUT`: a link with no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// `RELAY_LINK_RATE`: bytes per second per link and direction.
    pub link_rate: u64,
    /// `RELAY_SERVER_RATE`: bytes per second for all links together.
    pub server_rate: u64,
    /// `RELAY_LINKS_PER_USER`: relay connections (waiting or joined) per account.
    pub links_per_user: usize,
    /// How long a relay connection may take to send its RelayOpen.
    pub open_timeout: Duration,
    /// Test-only: append every relayed byte of link `n` to `<dir>/<n>-opener-to-joiner.bin`
    /// and `<dir>/<n>-joiner-to-opener.bin`. Only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub tap: Option<std::path::PathBuf>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            join_timeout: L::RELAY_JOIN_TIMEOUT,
            idle_timeout: L::RELAY_IDLE_TIMEOUT,
            link_rate: L::RELAY_LINK_RATE,
            server_rate: L::RELAY_SERVER_RATE,
            links_per_user: L::RELAY_LINKS_PER_USER,
            open_timeout: L::HANDSHAKE_TIMEOUT,
            #[cfg(feature = "test-hooks")]
            tap: None,
        }
    }
}

/// The server's relay state: settings, the registry, the server-wide rate.
#[derive(Debug)]
pub struct Relays {
    /// Settings.
    pub settings: RelaySettings,
    /// Links, waiting relays and their switches.
    pub registry: RelayRegistry<session::Joiner>,
    /// `RELAY_SERVER_RATE`, shared by every pump.
    pub server_bucket: limits::SharedBucket,
    /// In a cluster: relays waiting on other nodes, as their `RelayWaiting` announced them.
    pub remote: RemoteWaiting,
    next_link: AtomicU64,
}

/// A relay waiting on another node of the cluster (SPEC.md §6.11 rule 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRelay {
    /// Where that node's link listener is.
    pub addr: std::net::SocketAddr,
    /// Lowercase userid of the opener.
    pub opener: String,
    /// Lowercase userid of the invited friend.
    pub invitee: String,
}

/// Relays waiting on other nodes, by token, each forgotten after `RELAY_JOIN_TIMEOUT`.
#[derive(Debug, Default)]
pub struct RemoteWaiting {
    map: Mutex<HashMap<TraversalId, (RemoteRelay, std::time::Instant)>>,
    added: tokio::sync::Notify,
}

impl RemoteWaiting {
    /// Records a relay another node announced (and forgets expired ones).
    pub fn insert(&self, token: TraversalId, relay: RemoteRelay, ttl: Duration) {
        let now = std::time::Instant::now();
        let mut map = lock(&self.map);
        map.retain(|_, (_, until)| *until > now);
        map.insert(token, (relay, now + ttl));
        drop(map);
        self.added.notify_waiters();
    }

    /// Takes the relay `token` if one was announced, waiting up to `patience` for the
    /// announcement (the invite may reach the joiner before the bus reaches this node).
    pub async fn take(&self, token: &TraversalId, patience: Duration) -> Option<RemoteRelay> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some((r, _)) = lock(&self.map).remove(token) {
                return Some(r);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }
}

impl Relays {
    /// Relay state for `settings`.
    pub fn new(settings: RelaySettings) -> Self {
        Self {
            registry: RelayRegistry::new(settings.links_per_user),
            server_bucket: limits::SharedBucket::new(settings.server_rate),
            remote: RemoteWaiting::default(),
            settings,
            next_link: AtomicU64::new(1),
        }
    }

    /// A number for the next spliced link (names its tap files).
    pub fn next_link(&self) -> u64 {
        self.next_link.fetch_add(1, Ordering::Relaxed)
    }

    /// Closes every relay connection admitted under the session `session_id` (logout,
    /// replacement, drop; SPEC.md §7.7 rule 1).
    pub fn close_session(&self, session_id: u64) {
        self.registry.close_session(&SessionKey::Local(session_id));
    }

    /// Closes every relay connection admitted here under session `session_id` of node `node`
    /// (that session ended, was replaced, or its node died).
    pub fn close_remote_session(&self, node: &str, session_id: u64) {
        self.registry
            .close_session(&SessionKey::Remote(node.to_owned(), session_id));
    }

    /// Closes every relay connection between `a` and `b` (lowercase userids): the friendship
    /// ended.
    pub fn close_pair(&self, a: &str, b: &str) {
        self.registry.close_pair(a, b);
    }
}

impl Default for Relays {
    fn default() -> Self {
        Self::new(RelaySettings::default())
    }
}

/// The logged-in session a relay connection was admitted under: on this node, or (in a
/// cluster) on another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKey {
    /// A session id of this node.
    Local(u64),
    /// Node name and its session id.
    Remote(String, u64),
}

#[derive(Debug)]
struct SlotInfo {
    user: String,
    peer: String,
    session: SessionKey,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Waiting<J> {
    opener: String,
    invitee: String,
    join: oneshot::Sender<J>,
}

#[derive(Debug)]
struct Inner<J> {
    next_slot: u64,
    slots: HashMap<u64, SlotInfo>,
    waiting: HashMap<TraversalId, Waiting<J>>,
}

/// Relay connections and waiting relays. `J` is what a joiner hands the waiting opener.
#[derive(Debug)]
pub struct RelayRegistry<J> {
    inner: Arc<Mutex<Inner<J>>>,
    links_per_user: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Short critical sections that cannot leave the maps half-updated.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Over `RELAY_LINKS_PER_USER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many relay connections for this account")]
pub struct LimitExceeded;

/// One admitted relay connection. Counts toward its account's limit until dropped; its
/// `stop` token fires when the relay must close (session or friendship ended).
#[derive(Debug)]
pub struct Slot<J> {
    id: u64,
    /// Cancelled when this relay connection must end.
    pub stop: CancellationToken,
    /// Lowercase userid of the account.
    pub user: String,
    inner: Arc<Mutex<Inner<J>>>,
}

impl<J> Drop for Slot<J> {
    fn drop(&mut self) {
        lock(&self.inner).slots.remove(&self.id);
    }
}

impl<J> RelayRegistry<J> {
    /// An empty registry allowing `links_per_user` relay connections per account.
    pub fn new(links_per_user: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                next_slot: 1,
                slots: HashMap::new(),
                waiting: HashMap::new(),
            })),
            links_per_user,
        }
    }

    /// Admits a relay connection of `user` (to `peer`) under the session `session`.
    ///
    /// # Errors
    /// [`LimitExceeded`] when `user` already holds `links_per_user` relay connections.
    pub fn admit(
        &self,
        user: &str,
        peer: &str,
        session: SessionKey,
    ) -> Result<Slot<J>, LimitExceeded> {
        let mut inner = lock(&self.inner);
        let held = inner.slots.values().filter(|s| s.user == user).count();
        if held >= self.links_per_user {
            return Err(LimitExceeded);
        }
        let id = inner.next_slot;
        inner.next_slot += 1;
        let stop = CancellationToken::new();
        inner.slots.insert(
            id,
            SlotInfo {
                user: user.to_owned(),
                peer: peer.to_owned(),
                session,
                stop: stop.clone(),
            },
        );
        Ok(Slot {
            id,
            stop,
            user: user.to_owned(),
            inner: Arc::clone(&self.inner),
        })
    }

    /// Relay connections `user` holds.
    pub fn count(&self, user: &str) -> usize {
        lock(&self.inner)
            .slots
            .values()
            .filter(|s| s.user == user)
            .count()
    }

    /// Registers a relay opened by `opener` for `invitee` under a fresh random token.
    /// The receiver yields the joiner's hand-over.
    pub fn open(&self, opener: &str, invitee: &str) -> (TraversalId, oneshot::Receiver<J>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = lock(&self.inner);
        let token = loop {
            let t: TraversalId = rand::random();
            if !inner.waiting.contains_key(&t) {
                break t;
            }
        };
        inner.waiting.insert(
            token,
            Waiting {
                opener: opener.to_owned(),
                invitee: invitee.to_owned(),
                join: tx,
            },
        );
        (token, rx)
    }

    /// Takes the relay `token` if it was opened by `opener` for `joiner` and still waits.
    pub fn take_waiting(
        &self,
        token: &TraversalId,
        joiner: &str,
        opener: &str,
    ) -> Option<oneshot::Sender<J>> {
        let mut inner = lock(&self.inner);
        let w = inner.waiting.get(token)?;
        if w.opener != opener || w.invitee != joiner {
            return None;
        }
        inner.waiting.remove(token).map(|w| w.join)
    }

    /// Withdraws the waiting relay `token` (the opener timed out or left). False if a joiner
    /// already took it.
    pub fn cancel_waiting(&self, token: &TraversalId) -> bool {
        lock(&self.inner).waiting.remove(token).is_some()
    }

    /// Fires the stop switch of every relay connection admitted under `session`.
    pub fn close_session(&self, session: &SessionKey) {
        for s in lock(&self.inner).slots.values() {
            if s.session == *session {
                s.stop.cancel();
            }
        }
    }

    /// Fires the stop switch of every relay connection between `a` and `b`.
    pub fn close_pair(&self, a: &str, b: &str) {
        for s in lock(&self.inner).slots.values() {
            if (s.user == a && s.peer == b) || (s.user == b && s.peer == a) {
                s.stop.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_per_user_counts_until_dropped() {
        let r: RelayRegistry<()> = RelayRegistry::new(2);
        let a = r.admit("alice", "bob", SessionKey::Local(1)).unwrap();
        let b = r.admit("alice", "carol", SessionKey::Local(1)).unwrap();
        assert_eq!(
            r.admit("alice", "bob", SessionKey::Local(1)).unwrap_err(),
            LimitExceeded
        );
        // Other accounts have their own count.
        let _c = r.admit("bob", "alice", SessionKey::Local(2)).unwrap();
        assert_eq!(r.count("alice"), 2);
        drop(a);
        assert_eq!(r.count("alice"), 1);
        let _d = r.admit("alice", "bob", SessionKey::Local(1)).unwrap();
        drop(b);
    }

    #[test]
    fn a_waiting_relay_is_taken_only_by_its_invitee_and_once() {
        let r: RelayRegistry<u32> = RelayRegistry::new(8);
        let (token, mut rx) = r.open("alice", "bob");
        assert!(r.take_waiting(&token, "carol", "alice").is_none());
        assert!(r.take_waiting(&token, "bob", "carol").is_none());
        assert!(r.take_waiting(&[0; 16], "bob", "alice").is_none());
        let tx = r.take_waiting(&token, "bob", "alice").unwrap();
        assert!(r.take_waiting(&token, "bob", "alice").is_none(), "once");
        assert!(!r.cancel_waiting(&token), "already taken");
        tx.send(7).unwrap();
        assert_eq!(rx.try_recv().unwrap(), 7);
    }

    #[test]
    fn a_cancelled_relay_cannot_be_joined() {
        let r: RelayRegistry<u32> = RelayRegistry::new(8);
        let (token, _rx) = r.open("alice", "bob");
        assert!(r.cancel_waiting(&token));
        assert!(r.take_waiting(&token, "bob", "alice").is_none());
    }

    #[test]
    fn session_end_and_unfriend_fire_the_right_switches() {
        let r: RelayRegistry<()> = RelayRegistry::new(8);
        let a1 = r.admit("alice", "bob", SessionKey::Local(10)).unwrap();
        let a2 = r.admit("alice", "carol", SessionKey::Local(10)).unwrap();
        let b1 = r.admit("bob", "alice", SessionKey::Local(20)).unwrap();
        let c1 = r.admit("carol", "alice", SessionKey::Local(30)).unwrap();
        r.close_pair("bob", "alice");
        assert!(a1.stop.is_cancelled() && b1.stop.is_cancelled());
        assert!(!a2.stop.is_cancelled() && !c1.stop.is_cancelled());
        r.close_session(&SessionKey::Local(30));
        assert!(c1.stop.is_cancelled());
        assert!(!a2.stop.is_cancelled());
        r.close_session(&SessionKey::Remote("n2".into(), 10));
        assert!(!a2.stop.is_cancelled(), "another node's session 10");
        r.close_session(&SessionKey::Local(10));
        assert!(a2.stop.is_cancelled());
    }
}
