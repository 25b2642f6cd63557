//! The Peerchat server in a child process (hidden subcommand `__server`).
//!
//! It runs the same library code as the `peerchat-server` binary (`peerchat_server::start`,
//! with the binary's info-level logging to stderr, which the parent sends to a file), in a
//! process of its own so that /proc/<pid>/status shows the server's memory alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::child::ChildProc;

/// Options of the `__server` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Data directory (database and, unused here, key file).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Connection cap (the default 16384 is below `--clients 50000`).
    #[arg(long, default_value_t = 16_384)]
    pub max_connections: usize,
    /// Lift the per-connection request bucket (for the rate scenario, which sends thousands of
    /// requests per second on few connections).
    #[arg(long)]
    pub relaxed_limits: bool,
    /// Database URL instead of SQLite in the data directory (the cluster scenario's
    /// PostgreSQL).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Join the cluster on `--database-url` as this node.
    #[arg(long)]
    pub cluster_node: Option<String>,
    /// The server's KeyLogin cache size (accounts and their login views; 0: off), to measure what the cache buys
    /// with one build; set it for a whole run through the environment, which the server
    /// child inherits.
    #[arg(long, env = "PEERCHAT_BENCH_KEY_LOGIN_CACHE", default_value_t = peerchat_server::db::key_cache::DEFAULT_KEY_LOGIN_CACHE)]
    pub key_login_cache: usize,
}

/// Body of the `__server` subcommand: serve until the parent closes our stdin.
///
/// # Errors
/// Start-up failures.
pub async fn serve_main(args: ServeArgs) -> anyhow::Result<()> {
    crate::rlimit::raise_nofile(args.max_connections as u64 + 1024);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = peerchat_server::Config::for_tests(args.data_dir);
    // A fixed key: generating the 3072-bit default would cost seconds per run.
    config.identity = Some(peerchat_proto::test_keys::identity(15));
    config.max_connections = args.max_connections;
    // Every simulated user connects from loopback.
    config.max_connections_per_address = args.max_connections;
    if args.relaxed_limits {
        config.request_burst = 1_000_000;
        config.request_rate_per_sec = 1_000_000;
        config.register_burst = 1_000_000;
    }
    config.database_url = args.database_url;
    config.cluster_node = args.cluster_node;
    config.key_login_cache = args.key_login_cache;
    let server = peerchat_server::start(config).await?;
    println!("LISTEN {}", server.local_addr);
    crate::child::wait_for_parent(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await;
    Ok(())
}

/// A server child process, seen from the parent.
pub struct ServerProc {
    proc: ChildProc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProc {
    /// Starts a server on the (already seeded) `data_dir`; its log goes to `data_dir/server.log`.
    ///
    /// # Errors
    /// The child does not start or does not report its address.
    pub async fn spawn(
        data_dir: &Path,
        max_connections: usize,
        relaxed_limits: bool,
    ) -> anyhow::Result<Self> {
        Self::spawn_node(data_dir, max_connections, relaxed_limits, None).await
    }

    /// As [`ServerProc::spawn`]; with `cluster = Some((database_url, node))` the server is
    /// node `node` of the cluster on that (PostgreSQL) database.
    ///
    /// # Errors
    /// The child does not start or does not report its address.
    pub async fn spawn_node(
        data_dir: &Path,
        max_connections: usize,
        relaxed_limits: bool,
        cluster: Option<(&str, &str)>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let mut args = vec![
            "__server".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--max-connections".to_owned(),
            max_connections.to_string(),
        ];
        if relaxed_limits {
            args.push("--relaxed-limits".to_owned());
        }
        if let Some((url, node)) = cluster {
            args.extend([
                "--database-url".to_owned(),
                url.to_owned(),
                "--cluster-node".to_owned(),
                node.to_owned(),
            ]);
        }
        let mut proc = ChildProc::spawn(&args, &data_dir.join("server.log")).await?;
        let addr = proc
            .expect("LISTEN ", Duration::from_secs(60))
            .await?
            .parse()
            .context("server printed a bad address")?;
        Ok(Self { proc, addr })
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The server's memory now.
    ///
    /// # Errors
    /// The process is gone.
    pub fn memory(&self) -> anyhow::Result<crate::procfs::Memory> {
        let pid = self.pid().context("server process already exited")?;
        Ok(crate::procfs::memory(Some(pid))?)
    }

    /// Graceful shutdown (killed after 30 s).
    pub async fn stop(self) {
        self.proc.finish(Duration::from_secs(30)).await;
    }
}
