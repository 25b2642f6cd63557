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
use std::collections::HashSet;
use std::sync::OnceLock;

use crate::cluster::{encode_push, BusMessage, Link, QueuedNotice};
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

/// A frame in a connection's outbound queue, boxed: tokio's channel allocates its slots in
/// blocks of 32 that live as long as the channel, so every idle connection would otherwise
/// keep 32 whole `ServerMessage`s (several KiB) allocated (issue #14: RSS per session). A box
/// costs one pointer per slot and is freed as soon as the frame is written.
pub type Queued = Box<wire::ServerMessage>;

/// The sending side of one connection: its bounded outbound queue and its stop switch.
///
/// Cloned into the connection's [`SessionHandle`] so that other connections can push to it
/// and stop it (session replaced, slow consumer).
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    stop: Arc<watch::Sender<Option<Stop>>>,
}

impl Outbox {
    /// A queue of `capacity` frames. The receiver goes to the connection's writer task.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Queued>) {
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
        match self.tx.try_send(Box::new(msg)) {
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

/// Recipients per fan-out bus message: 64 userids of at most 32 bytes keep a `NOTIFY`
/// payload well under PostgreSQL's 8000 bytes beside a FriendOnline with its key.
pub const FANOUT_CHUNK: usize = 64;

/// A session held by another node of the cluster, as its `Online` bus message described it
/// (see [`crate::cluster`]).
#[derive(Debug, Clone)]
pub struct RemoteSession {
    /// The node that holds it.
    pub node: String,
    /// Its session id on that node.
    pub session_id: u64,
    /// Account row id.
    pub account_id: i64,
    /// The `FriendOnline` push describing it (endpoint, candidates, key).
    pub online: PushEvent,
}

/// Every live session, by lowercase userid: this node's own, and in a cluster the other
/// nodes' (a directory kept from the bus).
#[derive(Debug, Default)]
pub struct PresenceHub {
    sessions: DashMap<String, Arc<SessionHandle>>,
    remote: DashMap<String, RemoteSession>,
    link: OnceLock<Link>,
}

impl PresenceHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects the hub to the cluster bus (once, at start-up).
    pub fn set_link(&self, link: Link) {
        let _ = self.link.set(link);
    }

    /// Publishes `msg` on the cluster bus; nothing on a single node.
    pub fn publish(&self, msg: BusMessage) {
        if let Some(l) = self.link.get() {
            l.publish(msg);
        }
    }

    /// This node's name in the cluster; `None` on a single node.
    pub fn node_name(&self) -> Option<String> {
        self.link.get().map(|l| l.node.clone())
    }

    /// Waits until every bus message published so far has been sent; at once on a single
    /// node.
    pub async fn flush(&self) {
        if let Some(l) = self.link.get() {
            l.flush().await;
        }
    }

    /// Tells the other nodes that `session` is this node's session of its user (login,
    /// endpoint change). They record it, and close an older session of the user they hold.
    pub fn publish_online(&self, session: &SessionHandle) {
        if let Some(l) = self.link.get() {
            l.publish(BusMessage::Online {
                node: l.node.clone(),
                session: session.session_id,
                user: crate::validate::fold(&session.userid),
                account_id: session.account_id,
                online: encode_push(&PushEvent::FriendOnline {
                    userid: session.userid.clone(),
                    endpoint: session.endpoint(),
                    identity_key: session.identity_key.clone(),
                    candidates: session.candidates(),
                }),
            });
        }
    }

    /// Makes `handle` the session of `userid_lower`, returning the session it replaces.
    pub fn insert(
        &self,
        userid_lower: String,
        handle: Arc<SessionHandle>,
    ) -> Option<Arc<SessionHandle>> {
        self.remote.remove(&userid_lower);
        self.sessions.insert(userid_lower, handle)
    }

    /// Removes the session of `userid_lower` only if it is still `session_id` (a replaced
    /// session must not remove its successor). Returns whether it did.
    pub fn remove_if_current(&self, userid_lower: &str, session_id: u64) -> bool {
        let removed = self
            .sessions
            .remove_if(userid_lower, |_, h| h.session_id == session_id)
            .is_some();
        if removed {
            if let Some(l) = self.link.get() {
                l.publish(BusMessage::Offline {
                    node: l.node.clone(),
                    session: session_id,
                    user: userid_lower.to_owned(),
                });
            }
        }
        removed
    }

    /// Takes this node's session of `userid_lower` out of the hub (it was replaced on
    /// another node); its end then announces nothing.
    pub fn take_local(&self, userid_lower: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.remove(userid_lower).map(|(_, h)| h)
    }

    /// Every session of this node.
    pub fn local_sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.sessions
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect()
    }

    /// Records another node's session of `userid_lower`.
    pub fn set_remote(&self, userid_lower: String, session: RemoteSession) {
        self.remote.insert(userid_lower, session);
    }

    /// Forgets another node's session if it is still the one recorded.
    pub fn remove_remote(&self, userid_lower: &str, node: &str, session_id: u64) {
        self.remote.remove_if(userid_lower, |_, r| {
            r.node == node && r.session_id == session_id
        });
    }

    /// Forgets every remote session whose node is not in `live`, returning them.
    pub fn remove_remote_unless(&self, live: &HashSet<String>) -> Vec<(String, RemoteSession)> {
        let dead: Vec<String> = self
            .remote
            .iter()
            .filter(|e| !live.contains(&e.value().node))
            .map(|e| e.key().clone())
            .collect();
        dead.into_iter()
            .filter_map(|u| self.remote.remove_if(&u, |_, r| !live.contains(&r.node)))
            .collect()
    }

    /// The node and session id of `userid_lower`'s session on another node.
    pub fn remote_session(&self, userid_lower: &str) -> Option<(String, u64)> {
        self.remote
            .get(userid_lower)
            .map(|r| (r.node.clone(), r.session_id))
    }

    /// The `FriendOnline` describing `userid_lower`'s session on another node.
    pub fn remote_presence(&self, userid_lower: &str) -> Option<PushEvent> {
        self.remote.get(userid_lower).map(|r| r.online.clone())
    }

    /// The live session of `userid_lower` on this node. The map shard is released before
    /// returning, so the caller may do anything with the handle without holding up other
    /// lookups.
    pub fn get(&self, userid_lower: &str) -> Option<Arc<SessionHandle>> {
        self.sessions
            .get(userid_lower)
            .map(|h| Arc::clone(h.value()))
    }

    /// Whether `userid_lower` is logged in, on this node or another.
    pub fn is_online(&self, userid_lower: &str) -> bool {
        self.sessions.contains_key(userid_lower) || self.remote.contains_key(userid_lower)
    }

    /// Pushes `event` to `userid_lower` if online here or on another node. Returns whether it
    /// was queued here or handed to the bus for a session the directory knows.
    pub fn push(&self, userid_lower: &str, event: &PushEvent) -> bool {
        self.push_or_notice(userid_lower, event, None)
    }

    /// As [`PresenceHub::push`]; a push handed to the bus for a session on another node
    /// carries `notice`, which that node (and only that one) stores if the session has ended
    /// meanwhile (SPEC.md §6.9).
    ///
    /// In a cluster a push for a user not online here goes on the bus even when the
    /// directory does not know the user: a login on another node may not have reached this
    /// node yet, and its snapshot may already be read (SPEC.md §6.11). It then returns false,
    /// so the caller queues the notice itself.
    pub fn push_or_notice(
        &self,
        userid_lower: &str,
        event: &PushEvent,
        notice: Option<QueuedNotice>,
    ) -> bool {
        if self.push_local(userid_lower, event) {
            return true;
        }
        let Some(l) = self.link.get() else {
            return false;
        };
        let holder = self.remote.get(userid_lower).map(|r| r.node.clone());
        let known = holder.is_some();
        l.publish(BusMessage::Push {
            node: l.node.clone(),
            to: vec![userid_lower.to_owned()],
            frame: encode_push(event),
            notice: notice.filter(|_| known),
            holder,
        });
        known
    }

    /// Pushes `event` to each of `users` online here or elsewhere (presence fan-out): local
    /// sessions directly, the rest in bus messages of at most [`FANOUT_CHUNK`] recipients.
    pub fn push_many<'a>(&self, users: impl IntoIterator<Item = &'a str>, event: &PushEvent) {
        let rest: Vec<String> = users
            .into_iter()
            .filter(|u| !self.push_local(u, event))
            .map(str::to_owned)
            .collect();
        let Some(l) = self.link.get() else {
            return;
        };
        if rest.is_empty() {
            return;
        }
        let frame = encode_push(event);
        for chunk in rest.chunks(FANOUT_CHUNK) {
            l.publish(BusMessage::Push {
                node: l.node.clone(),
                to: chunk.to_vec(),
                frame: frame.clone(),
                notice: None,
                holder: None,
            });
        }
    }

    /// Pushes `event` to `userid_lower`'s session on this node only.
    pub fn push_local(&self, userid_lower: &str, event: &PushEvent) -> bool {
        self.get(userid_lower).is_some_and(|h| h.push(event))
    }

    /// Number of live sessions on this node.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether nobody is logged in on this node.
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

    fn session(id: u64, cap: usize) -> (Arc<SessionHandle>, mpsc::Receiver<Queued>, Outbox) {
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

    fn decode(m: Queued) -> ServerFrame {
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
