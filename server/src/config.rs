//! Server configuration: everything `peerchat-server`'s flags set, plus the knobs tests need
//! (short idle times, a fixed identity key, an injectable clock, fault switches).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
#[cfg(feature = "test-faults")]
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peerchat_proto::limits;
use peerchat_proto::IdentityKeyPair;

use crate::ratelimit::LoginPolicy;
use crate::relay::RelaySettings;

/// Wall-clock time as the server sees it, for request creation and expiry.
///
/// A trait so that tests can move time forward instead of sleeping through a TTL.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, as Unix time in milliseconds.
    fn now_unix_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The system clock shifted by an adjustable offset: tests call [`OffsetClock::advance`] to
/// make friend requests expire without waiting.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_unix_ms(&self) -> u64 {
        let base = SystemClock.now_unix_ms() as i64;
        (base + self.offset_ms.load(Ordering::SeqCst)).max(0) as u64
    }
}

/// Deliberate defects, so that the conformance suite can prove it notices them.
///
/// The switches exist only with the `test-faults` cargo feature, which release builds do not
/// enable: without it every accessor is a constant `false`, the checks compile away and the
/// binary has no `--test-fault` flag (issue #10: the switch that lets anyone log in as anyone
/// must not ship).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// FriendOffline is never sent.
    #[cfg(feature = "test-faults")]
    pub no_offline_push: bool,
    /// Find always answers found = false.
    #[cfg(feature = "test-faults")]
    pub find_reveals_nothing: bool,
    /// The per-connection request bucket is disabled.
    #[cfg(feature = "test-faults")]
    pub no_rate_limit: bool,
    /// KeyLogin succeeds whatever key the channel proved.
    #[cfg(feature = "test-faults")]
    pub accept_any_key_login: bool,
    /// ChangePassword skips the old-password check (any old password is accepted).
    #[cfg(feature = "test-faults")]
    pub change_password_unchecked: bool,
    /// RelayOpen skips the friendship check: strangers can be relayed.
    pub relay_strangers: bool,
    /// The relay flips a bit in every read it forwards.
    pub relay_tamper: bool,
}

/// An unknown `--test-fault` name.
#[cfg(feature = "test-faults")]
#[derive(Debug, thiserror::Error)]
#[error("unknown fault {0:?}; known: no-offline-push, find-reveals-nothing, no-rate-limit, accept-any-key-login, change-password-unchecked, relay-strangers, relay-tamper")]
pub struct UnknownFault(pub String);

impl Faults {
    /// FriendOffline is never sent.
    pub fn no_offline_push(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.no_offline_push;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// Find always answers found = false.
    pub fn find_reveals_nothing(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.find_reveals_nothing;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// The per-connection request bucket is disabled.
    pub fn no_rate_limit(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.no_rate_limit;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// KeyLogin succeeds whatever key the channel proved.
    pub fn accept_any_key_login(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.accept_any_key_login;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// ChangePassword skips the old-password check.
    pub fn change_password_unchecked(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.change_password_unchecked;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// Switches on the fault called `name`.
    ///
    /// # Errors
    /// [`UnknownFault`].
    #[cfg(feature = "test-faults")]
    pub fn enable(&mut self, name: &str) -> Result<(), UnknownFault> {
        match name {
            "no-offline-push" => self.no_offline_push = true,
            "find-reveals-nothing" => self.find_reveals_nothing = true,
            "no-rate-limit" => self.no_rate_limit = true,
            "accept-any-key-login" => self.accept_any_key_login = true,
            "change-password-unchecked" => self.change_password_unchecked = true,
            "relay-strangers" => self.relay_strangers = true,
            "relay-tamper" => self.relay_tamper = true,
            other => return Err(UnknownFault(other.to_owned())),
        }
        Ok(())
    }
}

#[cfg(feature = "test-faults")]
impl FromStr for Faults {
    type Err = UnknownFault;
    /// Comma-separated fault names.
    fn from_str(s: &str) -> Result<Self, UnknownFault> {
        let mut f = Faults::default();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            f.enable(name)?;
        }
        Ok(f)
    }
}

/// How the server runs. Every field is public: tests and benchmarks build one directly.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; see `RunningServer::local_addr`).
    pub listen: SocketAddr,
    /// Holds `peerchat.db` and the server identity key `server_key.pem`.
    pub data_dir: PathBuf,
    /// Any sea-orm database URL; `None` means SQLite at `<data_dir>/peerchat.db`.
    pub database_url: Option<String>,
    /// This node's name in a cluster of nodes sharing one PostgreSQL database
    /// (SPEC.md §6.11); `None` for a single server.
    pub cluster_node: Option<String>,
    /// In a cluster: the address of this node's relay-link listener, which the other nodes
    /// dial to splice a relay whose two halves reached different nodes (SPEC.md §6.11 rule 7).
    /// It is announced as bound, so it must be reachable by the other nodes (not 0.0.0.0);
    /// port 0 picks a free port. `None`: relays work only within one node.
    pub cluster_listen: Option<SocketAddr>,
    /// Every connection to `listen` starts with a PROXY protocol header (v2 or v1) from a
    /// load balancer; its client address replaces the socket's. Connections without a valid
    /// header are closed (SPEC.md §10 `PROXY_HEADER_MAX`, docs/DEPLOY.md).
    pub proxy_protocol: bool,
    /// Life of an unanswered friend request (SPEC.md §6.7).
    pub request_ttl: Duration,
    /// How often expired requests are swept.
    pub sweep_interval: Duration,
    /// Cap on simultaneous connections; over it, new TCP connections are closed at once.
    pub max_connections: usize,
    /// Cap on simultaneous connections from one source address (IPv6: one /64), loopback
    /// included; over it, new TCP connections are closed at once, before the handshake.
    pub max_connections_per_address: usize,
    /// A connection not logged in this long after its handshake (or its LogoutOk) is closed
    /// with IDLE_TIMEOUT, whatever it sends meanwhile.
    pub login_deadline: Duration,
    /// The whole Noise handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Send Ping after this long without receiving a frame.
    pub idle_ping_after: Duration,
    /// Close with IDLE_TIMEOUT after this long without receiving a frame.
    pub idle_timeout: Duration,
    /// Frames queued for one client before it is closed with SLOW_CONSUMER.
    pub outbound_queue: usize,
    /// Per-connection request bucket size.
    pub request_burst: u32,
    /// Per-connection request bucket refill per second.
    pub request_rate_per_sec: u32,
    /// Consecutive rate-limited requests before the connection is closed.
    pub rate_limit_disconnect_after: u32,
    /// Login-failure limits.
    pub login_policy: LoginPolicy,
    /// Per-address registration bucket size (`REGISTER_BURST`; SPEC.md §10 requires that at
    /// least 60 per minute be allowed).
    pub register_burst: u32,
    /// Per-address registration bucket refill per second (`REGISTER_RATE`).
    pub register_rate_per_sec: u32,
    /// The server identity; `None` loads or creates `<data_dir>/server_key.pem` (3072 bits).
    pub identity: Option<IdentityKeyPair>,
    /// Wall clock for request times and expiry.
    pub clock: Arc<dyn Clock>,
    /// Deliberate defects for the conformance suite's self-test.
    pub faults: Faults,
    /// The relay's rates and timers (SPEC.md §7.7, §10).
    pub relay: RelaySettings,
    /// Accounts whose KeyLogin data (account and login view) the server keeps in memory
    /// (`crate::db::key_cache`); 0 turns the cache off. Ignored in a cluster, which never
    /// caches (another node may write unseen).
    pub key_login_cache: usize,
}

/// File name of the server identity key inside the data directory.
pub const KEY_FILE: &str = "server_key.pem";
/// File name of the SQLite database inside the data directory.
pub const DB_FILE: &str = "peerchat.db";

impl Config {
    /// The production defaults for `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir,
            database_url: None,
            cluster_node: None,
            cluster_listen: None,
            proxy_protocol: false,
            request_ttl: limits::DEFAULT_REQUEST_TTL,
            sweep_interval: Duration::from_secs(1),
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: limits::MAX_CONNECTIONS_PER_ADDRESS,
            login_deadline: limits::LOGIN_DEADLINE,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            idle_ping_after: limits::IDLE_PING_AFTER,
            idle_timeout: limits::IDLE_TIMEOUT,
            outbound_queue: limits::OUTBOUND_QUEUE,
            request_burst: limits::REQUEST_BURST,
            request_rate_per_sec: limits::REQUEST_RATE,
            rate_limit_disconnect_after: limits::RATE_LIMIT_DISCONNECT_AFTER,
            login_policy: LoginPolicy::default(),
            register_burst: limits::REGISTER_BURST,
            register_rate_per_sec: limits::REGISTER_RATE,
            identity: None,
            clock: Arc::new(SystemClock),
            faults: Faults::default(),
            relay: RelaySettings::default(),
            key_login_cache: crate::db::key_cache::DEFAULT_KEY_LOGIN_CACHE,
        }
    }

    /// Defaults for tests: listen on 127.0.0.1:0 and sweep expired requests every 100 ms.
    ///
    /// With this crate's `test-keys` feature the identity is fixed test key 15; otherwise set
    /// `identity` to a `peerchat_proto::test_keys` key, or the server generates a 3072-bit key
    /// (seconds of CPU) on first start.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut c = Self::new(data_dir);
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.sweep_interval = Duration::from_millis(100);
        #[cfg(feature = "test-keys")]
        {
            c.identity = Some(peerchat_proto::test_keys::identity(15));
        }
        c
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join(DB_FILE).display()
            ),
        }
    }
}
