//! What every connection shares: the database, the presence hub, the password hasher, the
//! login limiter and the settings the command handlers need.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerchat_proto::IdentityKey;

use crate::cmd::traversal::ConnectPeerLimiter;
use crate::config::{Clock, Faults};
use crate::db::Store;
use crate::hub::{Outbox, PresenceHub, SessionHandle};
use crate::password::Hasher;
use crate::ratelimit::{LoginLimiter, RegisterLimiter};
use crate::relay::Relays;

/// State shared by all connections of one server.
#[derive(Debug)]
pub struct Shared {
    /// The database.
    pub store: Store,
    /// Who is online.
    pub hub: PresenceHub,
    /// argon2id, off the runtime.
    pub hasher: Hasher,
    /// Login-failure limits.
    pub login_limits: LoginLimiter,
    /// Per-address registration limit.
    pub register_limits: RegisterLimiter,
    /// Wall clock for request times.
    pub clock: Arc<dyn Clock>,
    /// Deliberate defects (conformance self-test only).
    pub faults: Faults,
    /// Life of a friend request.
    pub request_ttl: Duration,
    /// Size of each connection's outbound queue (also bounds pushes held during login).
    pub outbound_queue: usize,
    /// ConnectPeer bucket per (requester, friend) pair (SPEC.md §7.6).
    pub connect_limits: ConnectPeerLimiter,
    /// In a cluster: the failure limits shared by every node (SPEC.md §6.11), checked after
    /// `login_limits`. Set by `crate::cluster::join`.
    pub shared_limits: Option<crate::cluster::limits::SharedLimiter>,
    /// Relay links, waiting relays and the relay's settings (SPEC.md §7.7). Replace it after
    /// [`Shared::new`] to change the settings.
    pub relays: Relays,
    /// In a cluster with `--cluster-listen`: the node-to-node relay links' key and this
    /// node's link address (SPEC.md §6.11 rule 7).
    pub link: Option<crate::cluster::link::LinkConfig>,
    next_session: AtomicU64,
}

impl Shared {
    /// Shared state over `store`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        login_limits: LoginLimiter,
        register_limits: RegisterLimiter,
        clock: Arc<dyn Clock>,
        faults: Faults,
        request_ttl: Duration,
        outbound_queue: usize,
    ) -> Self {
        Self {
            store,
            hub: PresenceHub::new(),
            hasher: Hasher::new(),
            login_limits,
            register_limits,
            clock,
            faults,
            request_ttl,
            outbound_queue,
            connect_limits: ConnectPeerLimiter::default(),
            relays: Relays::default(),
            shared_limits: None,
            link: None,
            next_session: AtomicU64::new(1),
        }
    }

    /// Now, Unix ms, from the configured clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

/// One connection's own state, owned by its task and handed to the command handlers.
#[derive(Debug)]
pub struct ConnState {
    /// The client's TCP address (the observed source IP fills empty endpoint hosts).
    pub peer_addr: SocketAddr,
    /// The identity key the handshake proved.
    pub identity_key: IdentityKey,
    /// This connection's outbound queue.
    pub outbox: Outbox,
    /// Set while LoggedIn.
    pub login: Option<LoggedIn>,
    /// Set by a successful login: after LoginOk is queued, deliver notices and open the gate.
    pub finish_login: bool,
    /// Notices delivered but not yet acknowledged: deleted when the Pong with this nonce
    /// arrives (SPEC.md §6.9).
    pub notice_ack: Option<NoticeAck>,
}

/// Queued notices waiting for the client's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeAck {
    /// Nonce of the Ping sent right after the notices.
    pub nonce: u64,
    /// The account the notices were queued for.
    pub account_id: i64,
    /// Row ids of the notices to delete once acknowledged.
    pub ids: Vec<i64>,
}

/// The LoggedIn state (SPEC.md §4.6).
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// Account row id.
    pub account_id: i64,
    /// Lowercase userid (hub key).
    pub userid_lower: String,
    /// This session as the hub holds it.
    pub handle: Arc<SessionHandle>,
}
