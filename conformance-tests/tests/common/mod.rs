//! Starting our own server in-process for the suite's self-tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use peerchat_conformance::SuiteConfig;
use peerchat_server::{Config, RunningServer};
use tokio::sync::Mutex;

/// The tiny friend-request TTL our test server uses (the suite is told with request_ttl).
pub const TTL: Duration = Duration::from_secs(2);
/// Short idle timers so the idle cases finish quickly.
pub const IDLE: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(5));
/// Short handshake time-out so the stall cases finish quickly.
pub const HANDSHAKE: Duration = Duration::from_secs(3);
/// Connection cap, large enough for 8 parallel cases, small enough to reach in one case.
pub const MAX_CONNECTIONS: usize = 200;
/// Per-address cap: above what any other case opens from one source address.
pub const MAX_PER_ADDRESS: usize = 20;
/// Login deadline of the short-timer server (above the idle cases' 1.5 x 5 s of activity
/// on Authenticating connections would not matter: they log in).
pub const LOGIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(6);

/// A running server and its temp directory (kept alive as long as the server).
pub struct TestServer {
    /// The server, taken by the shutdown hook.
    pub server: Arc<Mutex<Option<RunningServer>>>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its request TTL and idle timers, if shortened.
    pub timers: Option<(Duration, (Duration, Duration))>,
    _dir: tempfile::TempDir,
}

/// `PEERCHAT_TEST_DATABASE=postgres` runs our server on PostgreSQL instead of SQLite: one
/// throwaway cluster per test binary (`peerchat_server::pg_harness`, stopped when the binary
/// exits), one fresh database per server. `bash scripts/test` runs the suite both ways.
pub async fn database_url() -> Option<String> {
    use peerchat_server::pg_harness::PgCluster;
    static PG: tokio::sync::OnceCell<PgCluster> = tokio::sync::OnceCell::const_new();
    if std::env::var("PEERCHAT_TEST_DATABASE").as_deref() != Ok("postgres") {
        return None;
    }
    let pg = PG
        .get_or_init(|| async {
            tokio::task::spawn_blocking(PgCluster::start)
                .await
                .expect("join")
                .expect("start PostgreSQL")
        })
        .await;
    Some(pg.create_database().await.expect("create database"))
}

/// Starts our server on 127.0.0.1:0 with a temp database and the given test faults.
pub async fn start(faults: &[&str]) -> TestServer {
    start_with(faults, None).await
}

/// As [`start`], with a tiny request TTL if given (default: SPEC.md's 7 days).
pub async fn start_with(
    faults: &[&str],
    timers: Option<(Duration, (Duration, Duration))>,
) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config::for_tests(dir.path().to_path_buf());
    cfg.identity = Some(peerchat_proto::test_keys::identity(15));
    cfg.database_url = database_url().await;
    if let Some((ttl, (ping, idle))) = timers {
        cfg.request_ttl = ttl;
        cfg.idle_ping_after = ping;
        cfg.idle_timeout = idle;
    }
    cfg.handshake_timeout = HANDSHAKE;
    cfg.max_connections = MAX_CONNECTIONS;
    cfg.max_connections_per_address = MAX_PER_ADDRESS;
    if timers.is_some() {
        cfg.login_deadline = LOGIN_DEADLINE;
    }
    for f in faults {
        cfg.faults.enable(f).expect("known fault");
    }
    let server = peerchat_server::start(cfg).await.expect("server starts");
    let addr = server.local_addr;
    TestServer {
        server: Arc::new(Mutex::new(Some(server))),
        addr,
        timers,
        _dir: dir,
    }
}

impl TestServer {
    /// A suite configuration that knows this server's short timers and can stop it.
    pub fn suite_config(&self) -> SuiteConfig {
        let mut cfg = SuiteConfig::new(self.addr);
        cfg.request_ttl = self.timers.map(|t| t.0);
        cfg.idle = self.timers.map(|t| t.1);
        cfg.handshake_timeout = HANDSHAKE;
        cfg.max_connections = Some(MAX_CONNECTIONS);
        cfg.max_connections_per_address = Some(MAX_PER_ADDRESS);
        cfg.login_deadline = self.timers.map(|_| LOGIN_DEADLINE);
        let server = self.server.clone();
        cfg.shutdown = Some(Arc::new(move || {
            let server = server.clone();
            Box::pin(async move {
                match server.lock().await.take() {
                    Some(s) => {
                        s.shutdown().await;
                        Ok(())
                    }
                    None => Err("already stopped".to_string()),
                }
            })
        }));
        cfg
    }

    /// Stops the server if it still runs.
    pub async fn stop(&self) {
        if let Some(s) = self.server.lock().await.take() {
            s.shutdown().await;
        }
    }
}
