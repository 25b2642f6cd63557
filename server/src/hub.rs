//! The presence hub: who is logged in right now, and the way to reach them (SPEC.md §6.6).
//!
//! A sharded map (dashmap) from lowercase userid to the live [`SessionHandle`], so logins,
//! logouts and presence fan-out on different accounts do not queue behind one global lock.
//! Every delivery is a non-blocking `try_send` into the session's bounded outbound queue;
//! a client whose queue is full is stopped with SLOW_CONSUMER instead of being buffered
//! without bound or slowing the sender down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use peerchat_proto::message::{Candidate, PushEvent, ServerFrame};
use peerchat_proto::wire::{self, CloseReason};
use peerchat_proto::IdentityKey;
use tokio::sync::{mpsc, watch};

/// How a connection is to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Send `Close{reason, message}` after what is already queued, then close.
    Close(CloseReason, String),
    /// Close without sending anything (the client closed or vanished).
    Silent,
}

/// The sending side of one connection: its bounded outbound queue and its stop switch.
///
/// Cloned into the connection's [`SessionHandle`] so that other connections can push to it
/// and stop it (session replaced, slow consumer).
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<wire::ServerMessage>,
    stop: Arc<watch::Sender<Option<Stop>>>,
}

impl Outbox {
    /// A queue of `capacity` frames. The receiver goes to the connection's writer task.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<wire::ServerMessage>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (stop, _) = watch::channel(None);
        (
            Self {
                tx,
                stop: Arc::new(stop),
            },
            rx,
        )
    }

    /// Queues a frame without waiting. Returns false if it was not queued: the connection is
    /// gone, or its queue is full, in which case the connection is stopped with SLOW_CONSUMER.
    pub fn send(&self, msg: wire::ServerMessage) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stop(Stop::Close(
                    CloseReason::SlowConsumer,
                    "outbound queue full: the client reads too slowly".into(),
                ));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a frame built from `frame`.
    pub fn send_frame(&self, frame: &ServerFrame) -> bool {
        self.send(frame.to_message())
    }

    /// Asks the connection to end. The first request wins; later ones are ignored.
    pub fn stop(&self, how: Stop) {
        self.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(how);
                true
            } else {
                false
            }
        });
    }

    /// How the connection was asked to end, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        self.stop.borrow().clone()
    }

    /// A receiver that wakes when [`Outbox::stop`] is first called.
    pub fn subscribe(&self) -> watch::Receiver<Option<Stop>> {
        self.stop.subscribe()
    }
}

/// Whether pushes flow to a session yet.
#[derive(Debug)]
enum Gate {
    /// Logging in: pushes wait here until LoginOk and the queued notices are out, so a client
    /// never sees a push before its LoginOk (SPEC.md §6.9).
    Pending(Vec<wire::ServerMessage>),
    /// Logged in.
    Open,
    /// Logged out or replaced: pushes are dropped.
    Closed,
}

/// One logged-in session as other connections see it.
#[derive(Debug)]
pub struct SessionHandle {
    /// Unique per login, so a connection only removes its own entry from the hub.
    pub session_id: u64,
    /// Account row id.
    pub account_id: i64,
    /// Registered spelling.
    pub userid: String,
    /// The identity key this session's channel proved (the account's current key).
    pub identity_key: IdentityKey,
    endpoint: Mutex<Option<SocketAddr>>,
    /// Where friends may reach this session (SPEC.md §7.5), replaced with the endpoint.
    candidates: Mutex<Vec<Candidate>>,
    /// The connection's smoothed round-trip time, from the server's own Pings (SPEC.md §7.6).
    rtt: Mutex<Option<Duration>>,
    outbox: Outbox,
    gate: Mutex<Gate>,
    gate_capacity: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data half-updated.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionHandle {
    /// A session whose pushes are held back until [`SessionHandle::open`].
    pub fn new(
        session_id: u64,
        account_id: i64,
        userid: String,
        identity_key: IdentityKey,
        endpoint: Option<SocketAddr>,
        outbox: Outbox,
        gate_capacity: usize,
    ) -> Self {
        Self {
            session_id,
            account_id,
            userid,
            identity_key,
            endpoint: Mutex::new(endpoint),
            candidates: Mutex::new(Vec::new()),
            rtt: Mutex::new(None),
            outbox,
            gate: Mutex::new(Gate::Pending(Vec::new())),
            gate_capacity,
        }
    }

    /// Delivers a push (or holds it while the login is being answered). Returns false if it
    /// was dropped.
    pub fn push(&self, event: &PushEvent) -> bool {
        let msg = ServerFrame::Push(event.clone()).to_message();
        let mut gate = lock(&self.gate);
        match &mut *gate {
            Gate::Open => self.outbox.send(msg),
            Gate::Pending(held) if held.len() < self.gate_capacity => {
                held.push(msg);
                true
            }
            Gate::Pending(_) => {
                self.outbox.stop(Stop::Close(
                    CloseReason::SlowConsumer,
                    "outbound queue full".into(),
                ));
                false
            }
            Gate::Closed => false,
        }
    }

    /// Releases held pushes, in order, and lets later ones through.
    pub fn open(&self) {
        let mut gate = lock(&self.gate);
        if let Gate::Pending(held) = std::mem::replace(&mut *gate, Gate::Open) {
            for msg in held {
                self.outbox.send(msg);
            }
        }
    }

    /// Stops pushes for good (logout, replacement, disconnect).
    pub fn close(&self) {
        *lock(&self.gate) = Gate::Closed;
    }

    /// Ends the connection behind this session.
    pub fn stop(&self, how: Stop) {
        self.close();
        self.outbox.stop(how);
    }

    /// The peer endpoint friends are told.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        *lock(&self.endpoint)
    }

    /// Changes the peer endpoint (SetPeerEndpoint).
    pub fn set_endpoint(&self, endpoint: Option<SocketAddr>) {
        *lock(&self.endpoint) = endpoint;
    }

    /// The candidate list friends are told (SPEC.md §7.5).
    pub fn candidates(&self) -> Vec<Candidate> {
        lock(&self.candidates).clone()
    }

    /// Replaces the candidate list (Login, KeyLogin, SetPeerEndpoint).
    pub fn set_candidates(&self, candidates: Vec<Candidate>) {
        *lock(&self.candidates) = candidates;
    }

    /// The round-trip-time estimate, once a Pong has been timed (SPEC.md §7.6).
    pub fn rtt(&self) -> Option<Duration> {
        *lock(&self.rtt)
    }

    /// Records a new round-trip-time estimate.
    pub fn set_rtt(&self, rtt: Option<Duration>) {
        *lock(&self.rtt) = rtt;
    }
}

/// Every live session, by lowercase userid.
#[derive(Debug, Default)]
pub struct PresenceHub {
    sessions: DashMap<String, Arc<SessionHandle>>,
}

impl PresenceHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `handle` the session of `userid_lower`, returning the session it replaces.
    pub fn insert(
        &self,
        userid_lower: String,
        handle: Arc<SessionHandle>,
    ) -> Option<Arc<SessionHandle>> {
        self.sessions.insert(userid_lower, handle)
    }

    /// Removes the session of `userid_lower` only if it is still `session_id` (a replaced
    /// session must not remove its successor). Returns whether it did.
    pub fn remove_if_current(&self, userid_lower: &str, session_id: u64) -> bool {
        self.sessions
            .remove_if(userid_lower, |_, h| h.session_id == session_id)
            .is_some()
    }

    /// The live session of `userid_lower`. The map shard is released before returning, so the
    /// caller may do anything with the handle without holding up other lookups.
    pub fn get(&self, userid_lower: &str) -> Option<Arc<SessionHandle>> {
        self.sessions
            .get(userid_lower)
            .map(|h| Arc::clone(h.value()))
    }

    /// Whether `userid_lower` is logged in.
    pub fn is_online(&self, userid_lower: &str) -> bool {
        self.sessions.contains_key(userid_lower)
    }

    /// Pushes `event` to `userid_lower` if online. Returns whether it was queued.
    pub fn push(&self, userid_lower: &str, event: &PushEvent) -> bool {
        self.get(userid_lower).is_some_and(|h| h.push(event))
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether nobody is logged in.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_proto::message::PushEvent;
    use prost::Message as _;

    fn key() -> IdentityKey {
        peerchat_proto::test_keys::identity(0).public().clone()
    }

    fn session(
        id: u64,
        cap: usize,
    ) -> (
        Arc<SessionHandle>,
        mpsc::Receiver<wire::ServerMessage>,
        Outbox,
    ) {
        let (outbox, rx) = Outbox::new(cap);
        (
            Arc::new(SessionHandle::new(
                id,
                1,
                "Alice".into(),
                key(),
                None,
                outbox.clone(),
                cap,
            )),
            rx,
            outbox,
        )
    }

    fn offline(u: &str) -> PushEvent {
        PushEvent::FriendOffline { userid: u.into() }
    }

    fn decode(m: wire::ServerMessage) -> ServerFrame {
        ServerFrame::try_from(wire::ServerMessage::decode(&m.encode_to_vec()[..]).unwrap()).unwrap()
    }

    #[test]
    fn pushes_wait_for_the_gate() {
        let hub = PresenceHub::new();
        let (h, mut rx, _o) = session(1, 8);
        assert!(hub.insert("alice".into(), h.clone()).is_none());
        assert!(hub.push("alice", &offline("x")));
        assert!(rx.try_recv().is_err(), "held until open");
        h.open();
        assert_eq!(
            decode(rx.try_recv().unwrap()),
            ServerFrame::Push(offline("x"))
        );
        assert!(hub.push("alice", &offline("y")));
        assert_eq!(
            decode(rx.try_recv().unwrap()),
            ServerFrame::Push(offline("y"))
        );
        assert!(!hub.push("nobody", &offline("y")));
        h.close();
        assert!(!hub.push("alice", &offline("z")));
    }

    #[test]
    fn replacement_keeps_the_successor() {
        let hub = PresenceHub::new();
        let (old, _rx1, _o1) = session(1, 8);
        let (new, _rx2, _o2) = session(2, 8);
        hub.insert("alice".into(), old);
        let replaced = hub.insert("alice".into(), new).unwrap();
        assert_eq!(replaced.session_id, 1);
        assert!(!hub.remove_if_current("alice", 1));
        assert!(hub.is_online("alice"));
        assert!(hub.remove_if_current("alice", 2));
        assert!(hub.is_empty());
    }

    #[test]
    fn full_queue_stops_the_slow_consumer() {
        let (h, _rx, outbox) = session(1, 2);
        h.open();
        assert!(h.push(&offline("a")));
        assert!(h.push(&offline("b")));
        assert_eq!(outbox.stopped(), None);
        assert!(!h.push(&offline("c")));
        assert!(matches!(
            outbox.stopped(),
            Some(Stop::Close(CloseReason::SlowConsumer, _))
        ));
        // The first stop wins.
        outbox.stop(Stop::Silent);
        assert!(matches!(
            outbox.stopped(),
            Some(Stop::Close(CloseReason::SlowConsumer, _))
        ));
    }
}
