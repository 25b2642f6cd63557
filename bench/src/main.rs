//! `peerchat-bench`: measures Peerchat beside baselines taken in the same run (issue 7).
//!
//! `cargo run --release -p peerchat-bench` runs scenarios 1-4 with the defaults and
//! prints one table row per figure; `--json FILE` writes every row. See docs/PERFORMANCE.md
//! for a recorded run and how to read it.
//!
//! 1. file transfer between two client cores vs. a plain TCP copy (and scp if available);
//! 2. chat round trips and messages per second vs. a plain TCP ping-pong;
//! 3. server scale: N logged-in sessions, RSS per session, presence fan-out;
//! 4. handshakes and logins per second vs. plain connects, Ping/Pong and raw argon2id;
//! 5. (only when asked, `--scenarios 5`: it starts a PostgreSQL of its own) a cluster of
//!    server nodes vs. one node on the same database: cross-node presence, login rates and
//!    the bus's cost per presence change;
//! 6. (only when asked, `--scenarios 6`: it needs `peerchat-cli` built beside this binary)
//!    a file between two real `peerchat-cli` processes in `--rounds` rounds interleaved with
//!    scp, socat and magic-wormhole: medians, CPU-seconds per GB and peak RSS of each end.
//!
//! The server, each client core and the plain-TCP baseline server run as child processes
//! of this same binary (hidden subcommands), so each one's memory is its own.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod alloc;
mod baseline;
mod child;
mod cipher;
mod cli_proc;
mod history_bench;
mod machine;
mod peer_proc;
mod procfs;
mod report;
mod rlimit;
mod scenario;
mod seed;
mod server_proc;
mod size;
mod stats;
mod tcp_hold;
mod testfile;
mod wire_client;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::report::Row;

/// Each child on its binary's allocator (see `alloc.rs`).
#[global_allocator]
static ALLOC: alloc::Dispatch = alloc::Dispatch;

/// Peerchat benchmarks, each figure beside a baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "peerchat-bench", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    child: Option<ChildCmd>,
    #[command(flatten)]
    opts: BenchOpts,
}

/// The hidden subcommands this binary re-executes itself with.
#[derive(Debug, Subcommand)]
enum ChildCmd {
    /// Run the Peerchat server (child process).
    #[command(name = "__server", hide = true)]
    Server(server_proc::ServeArgs),
    /// Run a client core driven by line commands (child process).
    #[command(name = "__peer", hide = true)]
    Peer(peer_proc::PeerArgs),
    /// Run the plain-TCP baseline server (child process).
    #[command(name = "__tcp-hold", hide = true)]
    TcpHold,
    /// Repeat one in-memory protocol operation, for `perf record` (see docs/PERFORMANCE.md).
    #[command(name = "__profile", hide = true)]
    Profile {
        /// `handshake` (both ends), `chunks` (FileChunk encode+seal+open+decode), `rsa`
        /// (verify) or `history` (group commit vs one transaction per op, on disk).
        what: String,
        /// Handshakes, MiB of chunks, RSA verifications or history ops.
        count: u64,
    },
}

/// What to run and how big.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
struct BenchOpts {
    /// Scenarios to run, comma-separated (1 file, 2 chat, 3 scale, 4 rates; not run by
    /// default: 5 cluster, needs PostgreSQL installed; 6 two real peerchat-cli processes
    /// against the peers in rounds, needs peerchat-cli built).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
    scenarios: Vec<u8>,
    /// Scenario 1: size of the file sent (KiB/MiB/GiB suffixes).
    #[arg(long, value_parser = size::parse_size, default_value = "2GiB")]
    file_size: u64,
    /// Scenario 2: messages for the round-trip run and again for the throughput run.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Scenario 2: longest time, in seconds, for each phase (round trips, flood).
    #[arg(long, default_value_t = 30.0)]
    chat_seconds: f64,
    /// Scenario 2: chat text size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Scenario 3: concurrent logged-in clients (source addresses spread over 127.0.0.0/8).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Scenario 3: online friends of the user whose login is fanned out.
    #[arg(long, default_value_t = 1000)]
    fanout_friends: usize,
    /// Scenario 3: logins fanned out (one hub account each).
    #[arg(long, default_value_t = 20)]
    fanout_rounds: usize,
    /// Scenario 3: connects + handshakes in flight while bringing clients up.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Scenario 4: seconds per rate measurement.
    #[arg(long, default_value_t = 2.0)]
    rate_seconds: f64,
    /// Scenario 4: connections in flight per client thread.
    #[arg(long, default_value_t = 4)]
    rate_conns: usize,
    /// Scenario 4: friends (offline accounts) of each account that logs in, so the KeyLogin
    /// rate shows what a login's friend list costs.
    #[arg(long, default_value_t = 0)]
    rate_friends: usize,
    /// Scenario 5: server nodes of the cluster (the baseline is one node).
    #[arg(long, default_value_t = 3)]
    cluster_nodes: usize,
    /// Scenario 5: logged-in sessions spread over the nodes.
    #[arg(long, default_value_t = 1000)]
    cluster_sessions: usize,
    /// Scenario 5: online friends (spread over the nodes) of the user whose login is timed.
    #[arg(long, default_value_t = 100)]
    cluster_friends: usize,
    /// Scenario 5: presence rounds (a login and a logout each).
    #[arg(long, default_value_t = 30)]
    cluster_rounds: usize,
    /// Scenario 5: concurrent password Logins timed.
    #[arg(long, default_value_t = 30)]
    cluster_password_logins: usize,
    /// Scenario 6: interleaved rounds (the figures are their medians).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Scenario 6: the peerchat-cli executable (default: beside this one).
    #[arg(long, value_name = "PATH")]
    cli: Option<PathBuf>,
    /// Write every result row, the machine and the options as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the rows as a Markdown table to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Directory for the run's temporary files (default: the system's temp directory).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A client child runs on the runtime the apps use (one thread); set
    // PEERCHAT_BENCH_PEER_RUNTIME=multi to compare with a work-stealing one (two workers).
    let peer = matches!(cli.child, Some(ChildCmd::Peer(_)));
    let multi = std::env::var("PEERCHAT_BENCH_PEER_RUNTIME").is_ok_and(|v| v == "multi");
    let rt = if peer && !multi {
        peerchat_client::runtime::build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    match cli.child {
        Some(ChildCmd::Server(a)) => rt.block_on(server_proc::serve_main(a)),
        Some(ChildCmd::Peer(a)) => rt.block_on(peer_proc::peer_main(a)),
        Some(ChildCmd::TcpHold) => rt.block_on(tcp_hold::hold_main()),
        Some(ChildCmd::Profile { what, count }) if what == "history" => {
            rt.block_on(history_bench::run(count, 1000))
        }
        Some(ChildCmd::Profile { what, count }) => profile(&what, count),
        None => rt.block_on(bench(cli.opts)),
    }
}

fn profile(what: &str, count: u64) -> anyhow::Result<()> {
    let a = peerchat_proto::LocalIdentity::new(peerchat_proto::test_keys::identity(0))?;
    let b = peerchat_proto::LocalIdentity::new(peerchat_proto::test_keys::identity(14))?;
    let t0 = Instant::now();
    match what {
        "handshake" => {
            for _ in 0..count {
                cipher::handshake(&a, &b)?;
            }
            println!(
                "{:.1} µs per handshake (both ends)",
                t0.elapsed().as_secs_f64() * 1e6 / count.max(1) as f64
            );
        }
        "chunks" => {
            let t = cipher::file_chunks(&a, &b, count << 20)?;
            println!("{:.3} GB/s", stats::gb_per_sec(count << 20, t));
        }
        "rsa" => {
            let (ours, ring) = cipher::rsa_verify(&a, count as u32)?;
            println!("RSA-PSS verify: protocol crate {ours:?}, ring {ring:?}");
        }
        other => {
            anyhow::bail!("unknown profile target {other:?} (handshake, chunks, rsa, history)")
        }
    }
    Ok(())
}

async fn bench(opts: BenchOpts) -> anyhow::Result<()> {
    let started = Instant::now();
    let machine = machine::Machine::describe();
    println!("peerchat-bench on {machine}");
    let work = match &opts.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("peerchat-bench-")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("peerchat-bench-")
            .tempdir()?,
    };
    println!("work directory {}", work.path().display());
    let wanted: BTreeSet<u8> = opts.scenarios.iter().copied().collect();
    let local = tokio::task::spawn_blocking(|| {
        peerchat_proto::LocalIdentity::new(peerchat_proto::test_keys::identity(0))
    })
    .await??;

    let mut rows: Vec<Row> = Vec::new();
    report::print_header();
    let mut printed = 0;
    let mut flush = |rows: &Vec<Row>| {
        for r in &rows[printed..] {
            report::print_row(r);
        }
        printed = rows.len();
    };
    let mut failures = Vec::new();

    if wanted.contains(&1) || wanted.contains(&2) {
        let tmpfs = wanted.contains(&1).then_some(opts.file_size);
        match scenario::file_transfer::PeerFixture::start(work.path(), tmpfs).await {
            Ok(mut fx) => {
                if wanted.contains(&1) {
                    if let Err(e) = scenario::file_transfer::run(
                        &mut fx,
                        work.path(),
                        opts.file_size,
                        &local,
                        &mut rows,
                    )
                    .await
                    {
                        failures.push(format!("scenario 1: {e:#}"));
                    }
                    flush(&rows);
                }
                if wanted.contains(&2) {
                    if let Err(e) = scenario::chat::run(
                        &mut fx,
                        work.path(),
                        opts.messages,
                        opts.payload,
                        Duration::from_secs_f64(opts.chat_seconds),
                        &mut rows,
                    )
                    .await
                    {
                        failures.push(format!("scenario 2: {e:#}"));
                    }
                    flush(&rows);
                }
                fx.stop().await;
            }
            Err(e) => failures.push(format!("scenarios 1 and 2 (set-up): {e:#}")),
        }
    }
    if wanted.contains(&3) {
        let o = scenario::server_scale::ScaleOpts {
            clients: opts.clients,
            fanout_friends: opts.fanout_friends,
            fanout_rounds: opts.fanout_rounds,
            concurrency: opts.concurrency,
        };
        if let Err(e) = scenario::server_scale::run(&o, work.path(), &local, &mut rows).await {
            failures.push(format!("scenario 3: {e:#}"));
        }
        flush(&rows);
    }
    if wanted.contains(&4) {
        let o = scenario::auth_rate::RateOpts {
            duration: Duration::from_secs_f64(opts.rate_seconds),
            per_thread: opts.rate_conns,
            friends: opts.rate_friends,
        };
        if let Err(e) = scenario::auth_rate::run(&o, work.path(), &local, &mut rows).await {
            failures.push(format!("scenario 4: {e:#}"));
        }
        flush(&rows);
    }
    if wanted.contains(&5) {
        let o = scenario::cluster::ClusterOpts {
            nodes: opts.cluster_nodes,
            sessions: opts.cluster_sessions,
            friends: opts.cluster_friends,
            rounds: opts.cluster_rounds,
            password_logins: opts.cluster_password_logins,
            concurrency: opts.concurrency,
        };
        if let Err(e) = scenario::cluster::run(&o, work.path(), &local, &mut rows).await {
            failures.push(format!("scenario 5: {e:#}"));
        }
        flush(&rows);
    }
    if wanted.contains(&6) {
        let o = scenario::cli_rounds::CliOpts {
            rounds: opts.rounds,
            cli: opts.cli.clone(),
        };
        if let Err(e) = scenario::cli_rounds::run(&o, work.path(), opts.file_size, &mut rows).await
        {
            failures.push(format!("scenario 6: {e:#}"));
        }
        flush(&rows);
    }

    let elapsed = started.elapsed();
    println!("finished in {:.1} s", elapsed.as_secs_f64());
    if let Some(path) = &opts.json {
        let options = serde_json::to_value(&opts)?;
        report::write_json(
            path,
            &report::Report {
                machine: &machine,
                options: &options,
                elapsed_s: elapsed.as_secs_f64(),
                rows: &rows,
                failures: &failures,
            },
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &opts.markdown {
        report::write_markdown(path, &machine, &rows)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        anyhow::bail!("{} scenario(s) failed", failures.len());
    }
    Ok(())
}
