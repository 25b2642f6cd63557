//! `peerchat-conformance`: run the Peerchat conformance suite against a server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use peerchat_conformance::case::Level;
use peerchat_conformance::{cases, config::matches_filter, report, run_suite, SuiteConfig};

/// Black-box conformance suite for Peerchat servers (SPEC.md).
#[derive(Parser, Debug)]
#[command(
    name = "peerchat-conformance",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// `peer`: test a client instead of a server.
    #[command(subcommand)]
    command: Option<Sub>,
    /// The server under test, HOST:PORT.
    #[arg(long, required_unless_present = "list")]
    server: Option<String>,
    /// Require the server to prove this identity (SHA256:... fingerprint).
    #[arg(long)]
    server_key: Option<String>,
    /// Run only cases whose id matches (comma-separated alternatives; `*` wildcards, otherwise substring).
    #[arg(long)]
    filter: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<std::path::PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// List the cases instead of running them.
    #[arg(long)]
    list: bool,
    /// With --list: print the README's SPEC-section table in Markdown.
    #[arg(long, requires = "list")]
    markdown: bool,
    /// How many cases run at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// The server's friend-request TTL in seconds (it must be tiny, like 2): enables the
    /// request-expiry cases, which wait for it.
    #[arg(long)]
    request_ttl_secs: Option<u64>,
    /// The server's connection cap (it must be small, like 64): enables the
    /// max-connections case.
    #[arg(long)]
    max_connections: Option<usize>,
    /// The server's per-address connection cap (SPEC.md's default is 64): enables the
    /// max-connections-per-address case.
    #[arg(long)]
    max_connections_per_address: Option<usize>,
    /// The server's login deadline in seconds, if shortened (`--slow`: SPEC.md's 30 s):
    /// enables the login-deadline case.
    #[arg(long)]
    login_deadline_secs: Option<u64>,
    /// The server's handshake time-out in seconds, if shorter than SPEC.md's 10 s.
    #[arg(long)]
    handshake_timeout_secs: Option<u64>,
    /// The server's idle timers in seconds, "PING,CLOSE" (e.g. "2,5"): enables the idle cases.
    #[arg(long)]
    idle_secs: Option<String>,
    /// Run the idle cases with SPEC.md's timers (30 s / 90 s): slow.
    #[arg(long)]
    slow: bool,
    /// A shell command that shuts the server down: enables the server-shutdown case, run last.
    #[arg(long)]
    shutdown_cmd: Option<String>,
    /// Connect from 127.0.0.1 only (by default each connection to a loopback server uses a
    /// random 127.0.0.0/8 source address, so per-address limits never leak between cases).
    #[arg(long)]
    no_source_spread: bool,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Test a CLIENT: the suite plays a friend against it through a real server (SPEC.md
    /// §3.6, §7, §8.5 tables L, C, R, S).
    Peer(PeerArgs),
}

#[derive(Args, Debug)]
struct PeerArgs {
    /// A running server, HOST:PORT (default: start `peerchat-server` on a free loopback
    /// port with a temporary data folder).
    #[arg(long)]
    server: Option<String>,
    /// The server binary to start when --server is not given (default: `peerchat-server`
    /// next to this program, else on PATH).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// The client under test (a program with peerchat-cli's command line; default
    /// `peerchat-cli` next to this program, else on PATH).
    #[arg(long)]
    client: Option<std::path::PathBuf>,
    /// An argument put before the suite's own on every client command line (repeatable).
    #[arg(long = "client-arg", allow_hyphen_values = true)]
    client_args: Vec<String>,
    /// The client accepts `--test-idle-ms PING,CLOSE` (peerchat-cli built with `test-hooks`):
    /// run the idle-timer cases with these timers, e.g. "1000,3000".
    #[arg(long)]
    client_idle_ms: Option<String>,
    /// Run only cases whose id matches (as for the server suite).
    #[arg(long)]
    filter: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<std::path::PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// List the cases instead of running them.
    #[arg(long)]
    list: bool,
    /// How many cases run at once.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Peer(p)) = &cli.command {
        return peer_main(p);
    }
    if cli.list {
        let all = cases::all();
        let all: Vec<_> = all
            .into_iter()
            .filter(|c| {
                cli.filter
                    .as_deref()
                    .is_none_or(|f| matches_filter(f, c.id))
            })
            .collect();
        if cli.markdown {
            print!("{}", peerchat_conformance::cases::markdown_table(&all));
        } else {
            for c in &all {
                println!(
                    "{:<48} §{:<7} {:<6} {}",
                    c.id,
                    c.section,
                    c.level.as_str(),
                    c.description
                );
            }
            println!("{} cases", all.len());
        }
        return ExitCode::SUCCESS;
    }
    let cfg = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peerchat-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peerchat-conformance: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(run_suite(cfg));
    println!("{}", report.summary_line());
    if let Err(e) = write_reports(&cli, &report) {
        eprintln!("peerchat-conformance: {e}");
        return ExitCode::from(2);
    }
    if report
        .outcomes
        .iter()
        .any(|o| o.status == report::Status::Fail && o.level == Level::Must)
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write_reports(cli: &Cli, report: &report::Report) -> Result<(), String> {
    write_report_files(cli.junit.as_deref(), cli.json.as_deref(), report)
}

fn write_report_files(
    junit: Option<&std::path::Path>,
    json: Option<&std::path::Path>,
    report: &report::Report,
) -> Result<(), String> {
    if let Some(p) = junit {
        std::fs::write(p, report.junit())
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = json {
        std::fs::write(p, report.json())
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

fn build_config(cli: &Cli) -> Result<SuiteConfig, String> {
    let server = cli
        .server
        .as_deref()
        .ok_or("--server HOST:PORT is required")?;
    let addr: SocketAddr = server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server} resolves to no address"))?;
    let mut cfg = SuiteConfig::new(addr);
    cfg.verbose = true;
    cfg.jobs = cli.jobs.max(1);
    cfg.filter = cli.filter.clone();
    cfg.spread_sources = !cli.no_source_spread;
    if let Some(k) = &cli.server_key {
        cfg.server_key = Some(k.parse().map_err(|e| format!("--server-key: {e}"))?);
    }
    cfg.request_ttl = cli.request_ttl_secs.map(Duration::from_secs);
    cfg.max_connections = cli.max_connections;
    cfg.max_connections_per_address = cli.max_connections_per_address;
    if cli.slow {
        cfg.login_deadline = Some(peerchat_proto::limits::LOGIN_DEADLINE);
    }
    if let Some(s) = cli.login_deadline_secs {
        cfg.login_deadline = Some(Duration::from_secs(s));
    }
    if let Some(s) = cli.handshake_timeout_secs {
        cfg.handshake_timeout = Duration::from_secs(s);
    }
    if cli.slow {
        cfg.idle = Some((
            peerchat_proto::limits::IDLE_PING_AFTER,
            peerchat_proto::limits::IDLE_TIMEOUT,
        ));
    }
    if let Some(s) = &cli.idle_secs {
        let (p, c) = s.split_once(',').ok_or("--idle-secs takes PING,CLOSE")?;
        let p: u64 = p.trim().parse().map_err(|_| "--idle-secs: bad PING")?;
        let c: u64 = c.trim().parse().map_err(|_| "--idle-secs: bad CLOSE")?;
        cfg.idle = Some((Duration::from_secs(p), Duration::from_secs(c)));
    }
    if let Some(cmd) = cli.shutdown_cmd.clone() {
        cfg.shutdown = Some(Arc::new(move || {
            let cmd = cmd.clone();
            Box::pin(async move {
                let status = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .status()
                    .await
                    .map_err(|e| e.to_string())?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("shutdown command exited with {status}"))
                }
            })
        }));
    }
    Ok(cfg)
}

/// A program next to this one, else the bare name (looked up on PATH).
fn sibling(name: &str) -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| name.into())
}

fn peer_main(p: &PeerArgs) -> ExitCode {
    let all = peerchat_conformance::peer::cases::all();
    if p.list {
        for c in all
            .iter()
            .filter(|c| p.filter.as_deref().is_none_or(|f| matches_filter(f, c.id)))
        {
            println!(
                "{:<48} §{:<7} {:<6} {}",
                c.id,
                c.section,
                c.level.as_str(),
                c.description
            );
        }
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peerchat-conformance: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        let mut started = None;
        let addr: SocketAddr = match &p.server {
            Some(s) => s
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {s}: {e}"))?
                .next()
                .ok_or_else(|| format!("{s} resolves to no address"))?,
            None => {
                let bin = p
                    .server_bin
                    .clone()
                    .unwrap_or_else(|| sibling("peerchat-server"));
                let s = peerchat_conformance::peer::server::StartedServer::start(&bin).await?;
                let a = s.addr;
                started = Some(s);
                a
            }
        };
        let mut target = peerchat_conformance::peer::PeerTarget::new(
            p.client.clone().unwrap_or_else(|| sibling("peerchat-cli")),
        );
        target.args = p.client_args.clone();
        if let Some(s) = &p.client_idle_ms {
            let (a, b) = s
                .split_once(',')
                .ok_or("--client-idle-ms takes PING,CLOSE")?;
            let a: u64 = a.trim().parse().map_err(|_| "--client-idle-ms: bad PING")?;
            let b: u64 = b
                .trim()
                .parse()
                .map_err(|_| "--client-idle-ms: bad CLOSE")?;
            target.idle = Some((Duration::from_millis(a), Duration::from_millis(b)));
        }
        let mut cfg = SuiteConfig::new(addr);
        cfg.verbose = true;
        cfg.jobs = p.jobs.max(1);
        cfg.filter = p.filter.clone();
        cfg.peer = Some(Arc::new(target));
        let report = peerchat_conformance::runner::run_cases(cfg, all).await;
        drop(started);
        Ok::<_, String>(report)
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peerchat-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", report.summary_line());
    if let Err(e) = write_report_files(p.junit.as_deref(), p.json.as_deref(), &report) {
        eprintln!("peerchat-conformance: {e}");
        return ExitCode::from(2);
    }
    if report
        .outcomes
        .iter()
        .any(|o| o.status == report::Status::Fail && o.level == Level::Must)
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
