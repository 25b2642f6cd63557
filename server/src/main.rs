//! `peerchat-server`: runs the Peerchat directory server until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use peerchat_server::Config;

/// The Peerchat server: accounts, friends, friend requests and presence (SPEC.md §5, §6).
#[derive(Debug, Parser)]
#[command(name = "peerchat-server", version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Directory for peerchat.db and the server identity key
    /// [default: $XDG_DATA_HOME/peerchat-server or the platform's data directory].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (any sea-orm URL); overrides SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Join a cluster as node NAME (unique per node): needs a postgres:// --database-url
    /// shared by every node, and the same server key file on every node (docs/DEPLOY.md).
    #[arg(long, value_name = "NAME", requires = "database_url")]
    cluster_node: Option<String>,
    /// This node's relay-link listener (e.g. 10.0.0.11:7879), which the other nodes dial to
    /// splice a relay whose two halves reached different nodes. Must be reachable by them (not
    /// 0.0.0.0), and on a private network: only the peers' ciphertext and an authenticated
    /// preamble cross it (docs/DEPLOY.md).
    #[arg(long, value_name = "ADDR", requires = "cluster_node")]
    cluster_listen: Option<std::net::SocketAddr>,
    /// Expect a PROXY protocol header (v2 or v1, e.g. HAProxy `send-proxy-v2`) on every
    /// connection to --listen and use the client address it names; connections without a
    /// valid header are closed. Only behind a balancer that always sends one.
    #[arg(long)]
    proxy_protocol: bool,
    /// Life of an unanswered friend request, e.g. "7d", "12h", "2s".
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    request_ttl: Duration,
    /// Maximum simultaneous connections; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = peerchat_proto::limits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Maximum simultaneous connections from one source address (IPv6: one /64), loopback
    /// included; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = peerchat_proto::limits::MAX_CONNECTIONS_PER_ADDRESS)]
    max_connections_per_address: usize,
    /// Registrations one source address (IPv6: /64) may make at once; refilled at one per
    /// second (SPEC.md §5.2 REGISTER_BURST; at least 60 per minute are always allowed).
    #[arg(long, value_name = "N", default_value_t = peerchat_proto::limits::REGISTER_BURST)]
    register_burst: u32,
    /// Relayed bytes per second per relay link and direction (SPEC.md §7.7 RELAY_LINK_RATE).
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = peerchat_proto::limits::RELAY_LINK_RATE)]
    relay_link_rate: u64,
    /// Relayed bytes per second for all relay links together (SPEC.md §7.7 RELAY_SERVER_RATE).
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = peerchat_proto::limits::RELAY_SERVER_RATE)]
    relay_server_rate: u64,
    /// Accounts whose KeyLogin data (id, spelling, key digest, ~150 bytes; friends, pending
    /// requests and notices, at most N KiB for all accounts together) stay in memory, so a
    /// KeyLogin and its Logout need no database read for them; 0 turns it off. Not used with
    /// --cluster-node: another node may write unseen (docs/DEPLOY.md).
    #[arg(long, value_name = "N", default_value_t = peerchat_server::db::key_cache::DEFAULT_KEY_LOGIN_CACHE)]
    key_login_cache: usize,
    /// How long an opened relay waits for the invited friend (SPEC.md §10 RELAY_JOIN_TIMEOUT;
    /// shorten only in test set-ups).
    #[arg(long, value_name = "DURATION", hide = true, default_value = "10s", value_parser = humantime::parse_duration)]
    relay_join_timeout: Duration,
    /// A relayed link with no byte either way for this long is closed (SPEC.md §10
    /// RELAY_IDLE_TIMEOUT; shorten only in test set-ups).
    #[arg(long, value_name = "DURATION", hide = true, default_value = "120s", value_parser = humantime::parse_duration)]
    relay_idle_timeout: Duration,
    /// TEST ONLY: append every relayed byte to files in DIR, one pair per link
    /// (`<n>-opener-to-joiner.bin`, `<n>-joiner-to-opener.bin`). Built only with the
    /// `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    #[arg(long, value_name = "DIR")]
    relay_tap: Option<PathBuf>,
    /// Deliberate defect for the conformance suite's self-test (repeatable). Exists only in
    /// builds with the `test-faults` feature, never in a release build.
    #[cfg(feature = "test-faults")]
    #[arg(long = "test-fault", value_name = "NAME", hide = true)]
    test_fault: Vec<String>,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "peerchat-server")
        .map(|d| d.data_dir().to_path_buf())
        .context("cannot determine a data directory (no home directory?); pass --data-dir")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let data_dir = match cli.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let mut config = Config::new(data_dir.clone());
    config.listen = cli.listen;
    config.database_url = cli.database_url;
    config.cluster_node = cli.cluster_node;
    config.cluster_listen = cli.cluster_listen;
    config.proxy_protocol = cli.proxy_protocol;
    config.request_ttl = cli.request_ttl;
    config.max_connections = cli.max_connections;
    config.register_burst = cli.register_burst;
    config.max_connections_per_address = cli.max_connections_per_address;
    config.key_login_cache = cli.key_login_cache;
    config.relay.link_rate = cli.relay_link_rate;
    config.relay.server_rate = cli.relay_server_rate;
    config.relay.join_timeout = cli.relay_join_timeout;
    config.relay.idle_timeout = cli.relay_idle_timeout;
    #[cfg(feature = "test-hooks")]
    if let Some(dir) = cli.relay_tap {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create relay tap directory {}", dir.display()))?;
        tracing::warn!(dir = %dir.display(), "RELAY TAP ENABLED: relayed bytes are copied to disk (test only)");
        config.relay.tap = Some(dir);
    }
    #[cfg(feature = "test-faults")]
    {
        let mut faults = peerchat_server::Faults::default();
        for f in &cli.test_fault {
            faults.enable(f)?;
        }
        config.faults = faults;
        if faults != peerchat_server::Faults::default() {
            tracing::warn!(
                ?faults,
                "TEST FAULTS ENABLED: this server deliberately breaks the protocol"
            );
        }
    }

    let server = peerchat_server::start(config)
        .await
        .context("server failed to start")?;
    {
        let mut out = std::io::stdout().lock();
        if server.key_created {
            writeln!(
                out,
                "created server identity key {}",
                data_dir.join(peerchat_server::config::KEY_FILE).display()
            )?;
        }
        writeln!(out, "peerchat-server listening on {}", server.local_addr)?;
        writeln!(out, "server key fingerprint {}", server.fingerprint)?;
        out.flush()?;
    }

    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
