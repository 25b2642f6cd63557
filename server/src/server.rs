//! Start-up, the accept loop and graceful shutdown.
//!
//! [`start`] loads the identity, opens and migrates the database, binds, and spawns the
//! accept loop and the expiry sweeper. [`RunningServer::shutdown`] stops accepting, sends
//! every connection Close{SERVER_SHUTDOWN} after its current request, waits for all of them
//! and closes the database.

use std::net::SocketAddr;
use std::sync::Arc;

use peerchat_proto::limits::RSA_DEFAULT_BITS;
use peerchat_proto::{Fingerprint, IdentityKeyPair, LocalIdentity};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, KEY_FILE};
use crate::connection::{self, ConnSettings, Signals};
use crate::db::{DbError, Store};
use crate::ratelimit::{AddressSlots, LoginLimiter, RegisterLimiter};
use crate::relay::Relays;
use crate::state::Shared;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The identity key could not be loaded or created.
    #[error("server identity key: {0}")]
    Identity(#[from] peerchat_proto::IdentityError),
    /// The Noise static key could not be made.
    #[error("noise static key: {0}")]
    Handshake(#[from] peerchat_proto::HandshakeError),
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Db(#[from] DbError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cluster could not be joined.
    #[error("{0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// `--cluster-listen` names no address the other nodes could dial.
    #[error("--cluster-listen {0}: the other nodes dial this address as given; name the node's own address, not 0.0.0.0 or ::")]
    ClusterListen(SocketAddr),
    /// A start-up task panicked.
    #[error("start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (with the real port when the config said 0).
    pub local_addr: SocketAddr,
    /// The server identity's fingerprint, which clients pin.
    pub fingerprint: Fingerprint,
    /// Whether this start created the identity key.
    pub key_created: bool,
    shared: Arc<Shared>,
    connections: Connections,
    signals: Signals,
    sweeper_stop: CancellationToken,
    tracker: TaskTracker,
    accept: Option<JoinHandle<()>>,
}

/// Loads the identity, opens the database, binds and spawns the server.
///
/// # Errors
/// [`ServerError`] for every start-up failure.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    let needs_dir = config.identity.is_none() || config.database_url.is_none();
    if needs_dir {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    let database_url = config.database_url();
    let (keypair, key_created) = match config.identity {
        Some(k) => (k, false),
        None => {
            let path = config.data_dir.join(KEY_FILE);
            tokio::task::spawn_blocking(move || {
                IdentityKeyPair::load_or_generate(&path, RSA_DEFAULT_BITS)
            })
            .await??
        }
    };
    let fingerprint = keypair.public().fingerprint();
    // The node-to-node relay links' key comes from the key every node shares.
    let link_key = match (&config.cluster_node, config.cluster_listen) {
        (Some(_), Some(_)) => Some(crate::cluster::link::LinkKey::derive(
            &keypair.to_pkcs8_pem()?,
        )),
        _ => None,
    };
    // The one RSA signature of this process (SPEC.md §4.3), off the runtime.
    let local = tokio::task::spawn_blocking(move || LocalIdentity::new(keypair)).await??;

    let mut store = Store::connect(&database_url).await?;
    // A single server is the only writer of its accounts, so a cache of what KeyLogin reads
    // stays exact; a cluster node is not (crate::db::key_cache).
    if config.cluster_node.is_none() {
        store.cache_key_logins(config.key_login_cache);
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;

    let mut shared = Shared::new(
        store,
        LoginLimiter::new(config.login_policy),
        RegisterLimiter::new(config.register_burst, config.register_rate_per_sec),
        config.clock.clone(),
        config.faults,
        config.request_ttl,
        config.outbound_queue,
    );
    shared.relays = Relays::new(config.relay.clone());
    if config.cluster_node.is_some() {
        shared.shared_limits = Some(crate::cluster::limits::SharedLimiter::new(
            shared.store.conn().clone(),
            config.login_policy,
        ));
    }
    let link_listener = match (link_key, config.cluster_listen) {
        (Some(key), Some(addr)) => {
            if addr.ip().is_unspecified() {
                return Err(ServerError::ClusterListen(addr));
            }
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            shared.link = Some(crate::cluster::link::LinkConfig { key, addr: bound });
            Some(l)
        }
        _ => None,
    };
    let shared = Arc::new(shared);
    let settings = ConnSettings {
        handshake_timeout: config.handshake_timeout,
        login_deadline: config.login_deadline,
        idle_ping_after: config.idle_ping_after,
        idle_timeout: config.idle_timeout,
        outbound_queue: config.outbound_queue,
        request_burst: config.request_burst,
        request_rate_per_sec: config.request_rate_per_sec,
        rate_limit_disconnect_after: config.rate_limit_disconnect_after,
    };
    let signals = Signals {
        shutdown: CancellationToken::new(),
        abort: CancellationToken::new(),
    };
    let sweeper_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let connections = Connections {
        permits: permits.clone(),
        max: config.max_connections.max(1),
        per_address: AddressSlots::new(config.max_connections_per_address),
        proxy_protocol: config.proxy_protocol,
    };

    if let Some(node) = config.cluster_node.clone() {
        crate::cluster::join(
            shared.clone(),
            &database_url,
            node,
            sweeper_stop.clone(),
            &tracker,
        )
        .await?;
    }
    if let Some(l) = link_listener {
        tracker.spawn(link_accept_loop(l, shared.clone(), signals.clone()));
    }
    tracker.spawn(crate::expiry::run(
        shared.clone(),
        config.sweep_interval,
        sweeper_stop.clone(),
    ));
    let accept = tokio::spawn(accept_loop(
        listener,
        shared.clone(),
        local,
        settings,
        signals.clone(),
        connections.clone(),
        tracker.clone(),
    ));
    tracing::info!(%local_addr, %fingerprint, "server started");
    Ok(RunningServer {
        local_addr,
        fingerprint,
        key_created,
        shared,
        connections,
        signals,
        sweeper_stop,
        tracker,
        accept: Some(accept),
    })
}

/// Accepts node-to-node relay links (SPEC.md §6.11 rule 7) until shutdown.
async fn link_accept_loop(listener: TcpListener, shared: Arc<Shared>, signals: Signals) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = signals.shutdown.cancelled() => return,
            _ = signals.abort.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "relay link accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(crate::relay::session::serve_link(
            stream,
            peer,
            shared.clone(),
        ));
    }
}

/// The connection caps: `MAX_CONNECTIONS` in all, `MAX_CONNECTIONS_PER_ADDRESS` per source
/// address (SPEC.md §4.2, §10).
#[derive(Debug, Clone)]
struct Connections {
    permits: Arc<Semaphore>,
    max: usize,
    per_address: Arc<AddressSlots>,
    /// Read a PROXY protocol header before anything else (`--proxy-protocol`).
    proxy_protocol: bool,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    local: LocalIdentity,
    settings: ConnSettings,
    signals: Signals,
    connections: Connections,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = signals.shutdown.cancelled() => return,
            _ = signals.abort.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if connections.proxy_protocol {
            // The client's address is in the balancer's PROXY header: read it first (under
            // a global slot, so stalled headers cannot pile up), then the per-address cap.
            let Ok(permit) = connections.permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection limit reached; closing new connection");
                drop(stream);
                continue;
            };
            let (shared, local, signals) = (shared.clone(), local.clone(), signals.clone());
            let per_address = connections.per_address.clone();
            tracker.spawn(async move {
                let mut stream = stream;
                let header = tokio::select! {
                    h = crate::proxy_protocol::read_header(&mut stream, settings.handshake_timeout) => h,
                    _ = signals.abort.cancelled() => return,
                    _ = signals.shutdown.cancelled() => return,
                };
                let client = match header {
                    Ok(h) => h.source.unwrap_or(peer),
                    // A connect-and-close (a plain TCP health check) is no news.
                    Err(e @ crate::proxy_protocol::ProxyError::Truncated(_)) => {
                        tracing::debug!(%peer, error = %e, "PROXY protocol header incomplete; closing");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "PROXY protocol header refused; closing");
                        return;
                    }
                };
                let Some(slot) = per_address.try_acquire(client.ip()) else {
                    tracing::debug!(%client, "per-address connection limit reached; closing new connection");
                    return;
                };
                connection::serve(stream, client, shared, local, settings, signals).await;
                drop(permit);
                drop(slot);
            });
            continue;
        }
        // Per address first: one address over its cap costs nobody else a slot.
        let Some(slot) = connections.per_address.try_acquire(peer.ip()) else {
            tracing::debug!(%peer, "per-address connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let Ok(permit) = connections.permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let (shared, local, signals) = (shared.clone(), local.clone(), signals.clone());
        tracker.spawn(async move {
            connection::serve(stream, peer, shared, local, settings, signals).await;
            drop(permit);
            drop(slot);
        });
    }
}

impl RunningServer {
    /// Number of logged-in sessions (for tests and benchmarks).
    pub fn online_count(&self) -> usize {
        self.shared.hub.len()
    }

    /// Number of TCP connections held, in every state (for tests and measurements).
    pub fn connection_count(&self) -> usize {
        self.connections
            .max
            .saturating_sub(self.connections.permits.available_permits())
    }

    /// Runs one expiry sweep now (tests with a manual clock use it instead of waiting).
    pub async fn sweep_now(&self) -> usize {
        crate::expiry::sweep_once(&self.shared).await
    }

    /// Graceful shutdown: stop accepting, close every connection with SERVER_SHUTDOWN after
    /// its current request, wait for all of them, close the database.
    pub async fn shutdown(mut self) {
        self.signals.shutdown.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        self.tracker.close();
        // Connections first: they may still finish a request that needs the sweeper's peers.
        self.sweeper_stop.cancel();
        self.tracker.wait().await;
        if let Err(e) = self.shared.store.close().await {
            tracing::warn!(error = %e, "closing the database failed");
        }
        tracing::info!("server stopped");
    }

    /// Stops everything at once without Close frames (a crash, for tests).
    pub fn abort(&self) {
        self.signals.abort.cancel();
        self.sweeper_stop.cancel();
        if let Some(a) = &self.accept {
            a.abort();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // A server dropped without shutdown() must not keep serving in the background.
        if self.accept.is_some() {
            self.abort();
        }
    }
}
