//! What the suite knows about the server under test and how to run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use peerchat_proto::Fingerprint;

/// Stops the server under test; used only by the server-shutdown case.
pub type ShutdownHook = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Configuration of one suite run.
#[derive(Clone)]
pub struct SuiteConfig {
    /// The server under test.
    pub server: SocketAddr,
    /// If set, every connection checks that the server proves this identity key.
    pub server_key: Option<Fingerprint>,
    /// Run only cases whose id matches this pattern (comma-separated alternatives; `*`
    /// wildcards, otherwise a substring).
    pub filter: Option<String>,
    /// How many cases run at once.
    pub jobs: usize,
    /// The server's friend-request life time, when it was started with a tiny one: enables
    /// the expiry cases, which wait for it.
    pub request_ttl: Option<Duration>,
    /// The server's connection cap, when it was started with a small one: enables the
    /// TOO_MANY_CONNECTIONS case.
    pub max_connections: Option<usize>,
    /// The server's per-address connection cap: enables the per-address cap case.
    pub max_connections_per_address: Option<usize>,
    /// The server's login deadline (SPEC.md §4.6 `LOGIN_DEADLINE`): enables the case that
    /// waits for it.
    pub login_deadline: Option<Duration>,
    /// The server's idle timers (ping after, close after), when the idle cases should run.
    /// `--slow` sets them to SPEC.md's values (30 s / 90 s).
    pub idle: Option<(Duration, Duration)>,
    /// The server's handshake time-out (SPEC.md: HANDSHAKE_TIMEOUT, 10 s); a test server may
    /// use a shorter one so that the stalled-handshake cases finish sooner.
    pub handshake_timeout: Duration,
    /// How to stop the server: enables the server-shutdown case (run last).
    pub shutdown: Option<ShutdownHook>,
    /// Bind each connection to a random 127.0.0.0/8 source address when the server is on
    /// loopback, so per-IP failure limits of one case never leak into another.
    pub spread_sources: bool,
    /// Print each case's outcome as soon as it is known.
    pub verbose: bool,
    /// The client under test of the peer suite (`peerchat-conformance peer`); the peer
    /// cases SKIP without one.
    pub peer: Option<Arc<PeerTarget>>,
}

impl SuiteConfig {
    /// A configuration with defaults for `server`.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            server_key: None,
            filter: None,
            jobs: 8,
            request_ttl: None,
            max_connections: None,
            max_connections_per_address: None,
            login_deadline: None,
            idle: None,
            handshake_timeout: peerchat_proto::limits::HANDSHAKE_TIMEOUT,
            shutdown: None,
            spread_sources: true,
            verbose: false,
            peer: None,
        }
    }
}

/// True if `id` matches `pattern`: a comma-separated list of alternatives, each a glob with
/// `*` when it contains one, else a substring.
pub fn matches_filter(pattern: &str, id: &str) -> bool {
    pattern
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| matches_one(p, id))
}

fn matches_one(pattern: &str, id: &str) -> bool {
    if !pattern.contains('*') {
        return id.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = id;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::matches_filter;

    #[test]
    fn filter_is_substring_or_glob() {
        assert!(matches_filter("register", "auth.register.ok"));
        assert!(matches_filter("auth.*", "auth.register.ok"));
        assert!(matches_filter("*.ok", "auth.register.ok"));
        assert!(matches_filter("auth.*.ok", "auth.register.ok"));
        assert!(!matches_filter("auth.*.ok", "auth.register.taken"));
        assert!(!matches_filter("friends.*", "auth.register.ok"));
        assert!(matches_filter("friends.*, auth.*", "auth.register.ok"));
    }
}

/// The client under test: how to start it and what it supports.
#[derive(Debug, Clone)]
pub struct PeerTarget {
    /// The program (default: `peerchat-cli`).
    pub program: PathBuf,
    /// Arguments put before the suite's own (e.g. `--test-fault NAME` for the self-test).
    pub args: Vec<String>,
    /// The client accepts `--test-idle-ms PING,CLOSE` (a test-only flag): enables the
    /// idle-timer cases, which start it with these short timers.
    pub idle: Option<(Duration, Duration)>,
    /// Where profile folders are made (one per case, removed afterwards).
    pub work_dir: PathBuf,
}

impl PeerTarget {
    /// `program` with no extra arguments, profiles under the system temp folder.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            idle: None,
            work_dir: std::env::temp_dir(),
        }
    }
}
