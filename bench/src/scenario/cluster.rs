//! Scenario 5: a cluster of server nodes on one PostgreSQL (issue 12, SPEC.md §6.11).
//!
//! The benchmark starts a private PostgreSQL of its own (`peerchat_server::pg_harness`:
//! initdb in a temporary directory, its own port, stopped at the end) and measures, on a
//! fresh database each, `--cluster-nodes` nodes (default 3) and then one node — the baseline,
//! in the same run, on the same engine, also in cluster mode. Every node is a child process
//! (`__server --cluster-node`), so its CPU time is its own.
//!
//! - Sessions are spread over the nodes round-robin (session `i` on node `i mod N`).
//! - Presence: in each round a user with K online friends (the first K sessions, so spread
//!   over every node) logs in on node `round mod N`; each friend's latency is the time from
//!   sending KeyLogin until that friend decoded `FriendOnline`. Friends on another node than
//!   the login's are "cross-node": with N nodes, (N-1)/N of them. The user then logs out and
//!   the `FriendOffline` wave is awaited, so rounds do not overlap.
//! - Login throughput: the sessions' bring-up (connect + Noise XX + KeyLogin, spread over
//!   the nodes) and a burst of concurrent password Logins (argon2id-bound).
//! - Bus cost: this process `LISTEN`s on the cluster channel during the presence rounds and
//!   counts the `NOTIFY` messages and payload bytes; plus the nodes' CPU time (user+system
//!   from /proc, summed over the nodes). Both per presence change (a login or a logout).
//!
//! Caveats, repeated in the notes: everything shares this machine's cores (nodes,
//! PostgreSQL, and the clients in this process), so N nodes on one machine cannot show the
//! throughput N machines would; PostgreSQL's own CPU is not counted; accounts are seeded
//! straight into the database, as in scenario 3.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::future::BoxFuture;
use peerchat_proto::LocalIdentity;
use peerchat_server::pg_harness::{PgCluster, PgHarnessError};
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::procfs;
use crate::report::{Better, Row};
use crate::scenario::server_scale::bring_up;
use crate::seed::{self, Seed};
use crate::server_proc::ServerProc;
use crate::stats::{per_sec, Percentiles};
use crate::wire_client::{self, PresenceSeen};

const SCENARIO: &str = "5 cluster";
/// How long to wait for one presence wave before giving up.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

/// Scenario 5 options.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    /// Nodes of the measured cluster (the baseline is one node).
    pub nodes: usize,
    /// Logged-in sessions spread over the nodes.
    pub sessions: usize,
    /// Online friends of the user whose login is measured (at most `sessions`).
    pub friends: usize,
    /// Presence rounds (one login and one logout each).
    pub rounds: usize,
    /// Concurrent password Logins for the throughput figure.
    pub password_logins: usize,
    /// Connects+handshakes in flight during bring-up.
    pub concurrency: usize,
}

/// One deployment's figures (N nodes or the one-node baseline).
#[derive(Debug, Default)]
struct Side {
    bring_up: Duration,
    /// After the last login of the bring-up, until the bus had carried every Online.
    bus_lag: Duration,
    sessions: usize,
    failures: usize,
    /// Per-friend latencies, friend on another node than the login.
    cross: Vec<Duration>,
    /// Per-friend latencies, friend on the login's node.
    same: Vec<Duration>,
    /// Time until the last friend of a login was told, per round.
    all_told: Vec<Duration>,
    password_logins: usize,
    password_time: Duration,
    bus_messages: u64,
    bus_bytes: u64,
    /// Presence changes the bus figures and CPU cover.
    changes: u64,
    node_cpu: Duration,
}

/// Runs the scenario and appends its rows; without PostgreSQL its rows are skipped.
///
/// # Errors
/// Set-up failures (PostgreSQL, child processes, seeding).
pub async fn run(
    opts: &ClusterOpts,
    work: &Path,
    local: &LocalIdentity,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let pg = match tokio::task::spawn_blocking(PgCluster::start).await? {
        Ok(pg) => pg,
        Err(PgHarnessError::NotInstalled) => {
            for m in ["cross-node presence p99", "KeyLogins/s", "bus cost"] {
                rows.push(Row::skipped(
                    SCENARIO,
                    m,
                    "",
                    "skipped: PostgreSQL is not installed (apt-get install postgresql, or set PEERCHAT_PG_BINDIR)",
                ));
            }
            return Ok(());
        }
        Err(e) => return Err(e).context("starting PostgreSQL"),
    };
    let need = (opts.sessions + opts.rounds + opts.password_logins) as u64 * 2 + 4096;
    crate::rlimit::raise_nofile(need);
    let n = opts.nodes.max(2);
    let multi = side(opts, n, &pg, work, local)
        .await
        .with_context(|| format!("{n} nodes"))?;
    let single = side(opts, 1, &pg, work, local).await.context("1 node")?;
    drop(pg);

    let base_name = "1 node, same PostgreSQL";
    let k = opts.friends.min(opts.sessions);
    let cross = Percentiles::of(&mut multi.cross.clone());
    let same = Percentiles::of(&mut multi.same.clone());
    let one = Percentiles::of(&mut single.same.clone());
    let all = Percentiles::of(&mut multi.all_told.clone());
    let ms = |us: f64| us / 1000.0;
    rows.push(
        Row::new(SCENARIO, &format!("cross-node presence ({n} nodes), p50"), ms(cross.p50_us), "ms", Better::Lower)
            .baseline(base_name, ms(one.p50_us))
            .note(&format!(
                "{} rounds: a user with {k} online friends spread over the nodes logs in (KeyLogin); per friend on another node, KeyLogin sent -> FriendOnline decoded; {} cross-node samples; same-node friends in the cluster p50 {:.2} ms p99 {:.2} ms",
                opts.rounds,
                cross.n,
                ms(same.p50_us),
                ms(same.p99_us)
            )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            &format!("cross-node presence ({n} nodes), p99"),
            ms(cross.p99_us),
            "ms",
            Better::Lower,
        )
        .baseline(base_name, ms(one.p99_us))
        .target_value("< 200 ms", 200.0)
        .note(&format!(
            "until the last of the {k} friends was told: cluster p50 {:.2} ms p99 {:.2} ms",
            ms(all.p50_us),
            ms(all.p99_us)
        )),
    );
    rows.push(
        Row::new(SCENARIO, &format!("KeyLogin sessions/s ({n} nodes)"), per_sec(multi.sessions as u64, multi.bring_up), "1/s", Better::Higher)
            .baseline(base_name, per_sec(single.sessions as u64, single.bring_up))
            .note(&format!(
                "bring-up of {} sessions spread over the nodes, connect+Noise XX+KeyLogin, {} in flight; {} / {} failures; the bus carried the last Online {:.0} / {:.0} ms after the last LoginOk; every process shares this machine's cores",
                opts.sessions, opts.concurrency, multi.failures, single.failures,
                multi.bus_lag.as_secs_f64() * 1000.0, single.bus_lag.as_secs_f64() * 1000.0
            )),
    );
    rows.push(
        Row::new(SCENARIO, &format!("password Logins/s ({n} nodes)"), per_sec(multi.password_logins as u64, multi.password_time), "1/s", Better::Higher)
            .baseline(base_name, per_sec(single.password_logins as u64, single.password_time))
            .note(&format!(
                "{} concurrent Logins spread over the nodes, argon2id-bound: on one machine the nodes share the same cores",
                opts.password_logins
            )),
    );
    let per_change = |x: u64, s: &Side| x as f64 / s.changes.max(1) as f64;
    rows.push(
        Row::new(SCENARIO, &format!("bus NOTIFYs per presence change ({n} nodes)"), per_change(multi.bus_messages, &multi), "msg", Better::Lower)
            .baseline(base_name, per_change(single.bus_messages, &single))
            .note(&format!(
                "counted by a LISTEN of this process over {} logins+logouts of a user with {k} friends; each message is delivered to every node",
                multi.changes
            )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            &format!("bus bytes per presence change ({n} nodes)"),
            per_change(multi.bus_bytes, &multi),
            "B",
            Better::Lower,
        )
        .baseline(base_name, per_change(single.bus_bytes, &single))
        .note("NOTIFY payload bytes (JSON with hex-encoded pushes)"),
    );
    rows.push(
        Row::new(
            SCENARIO,
            &format!("node CPU per presence change ({n} nodes)"),
            multi.node_cpu.as_secs_f64() * 1000.0 / multi.changes.max(1) as f64,
            "ms",
            Better::Lower,
        )
        .baseline(
            base_name,
            single.node_cpu.as_secs_f64() * 1000.0 / single.changes.max(1) as f64,
        )
        .note("user+system CPU of the node processes during the presence rounds, summed over the nodes; PostgreSQL's own CPU not counted"),
    );
    Ok(())
}

/// Counts the cluster bus's messages and payload bytes (a `LISTEN` of our own).
struct BusCounter {
    messages: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BusCounter {
    async fn start(url: &str) -> anyhow::Result<Self> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(peerchat_server::cluster::CHANNEL).await?;
        let (messages, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (m, b) = (messages.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok(n) = listener.recv().await {
                m.fetch_add(1, Ordering::Relaxed);
                b.fetch_add(n.payload().len() as u64, Ordering::Relaxed);
            }
        });
        Ok(Self {
            messages,
            bytes,
            task,
        })
    }

    fn read(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

impl Drop for BusCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback source address of its own for connection `i` (127.2.0.1, 127.2.0.2, ...). A
/// cluster's login limiter reserves each attempt in the shared table before the work
/// (SPEC.md §6.11 rule 4), so 64 logins in flight from one address would hit the per-address
/// budget; one address per simulated user keeps the measurement about the cluster.
fn session_ip(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(
        127,
        2 + (i / 62_500 % 250) as u8,
        (i / 250 % 250) as u8,
        (i % 250) as u8 + 1,
    )
}

/// CPU time used so far by all `nodes`.
fn nodes_cpu(nodes: &[ServerProc]) -> anyhow::Result<Duration> {
    let pids = nodes
        .iter()
        .map(|n| n.pid().context("node exited"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(procfs::cpu_time_sum(pids)?)
}

/// Measures one deployment of `n` nodes on a fresh database of `pg`.
async fn side(
    opts: &ClusterOpts,
    n: usize,
    pg: &PgCluster,
    work: &Path,
    local: &LocalIdentity,
) -> anyhow::Result<Side> {
    let (s, r, p) = (opts.sessions, opts.rounds, opts.password_logins);
    let k = opts.friends.min(s).min(peerchat_proto::limits::MAX_FRIENDS);
    let url = pg.create_database().await?;
    let mut plan = Seed {
        users: (0..s).map(|i| format!("user{i}")).collect(),
        friendships: Vec::new(),
    };
    plan.users.extend((0..r).map(|h| format!("hub{h}")));
    plan.users.extend((0..p).map(|i| format!("pw{i}")));
    for h in 0..r {
        plan.friendships.extend((0..k).map(|i| (s + h, i)));
    }
    let phc = seed::password_phc().await?;
    seed::seed_url(&url, &plan, &local.public_key().to_der(), &phc).await?;

    let mut nodes = Vec::new();
    for i in 0..n {
        let dir = work.join(format!("cluster-{n}-node{i}"));
        let node = format!("node{i}");
        nodes.push(
            ServerProc::spawn_node(&dir, s + r + p + 1024, false, Some((&url, &node)))
                .await
                .with_context(|| format!("starting {node}"))?,
        );
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|x| x.addr).collect();
    let node_of = |i: usize| i % n;

    // Counts from before the bring-up: each login's Online announcement is one NOTIFY.
    let counter = BusCounter::start(&url).await?;
    // Sessions, spread over the nodes.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(usize, PresenceSeen)>();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let (bring_up, failures, errors) = bring_up(s, opts.concurrency, &mut tasks, |i| {
        let (local, seen_tx, stop, addr) = (
            local.clone(),
            seen_tx.clone(),
            stop.clone(),
            addrs[node_of(i)],
        );
        async move {
            let mut ch = wire_client::connect(session_ip(i), addr, &local).await?;
            wire_client::request(&mut ch, 1, wire_client::key_login(&format!("user{i}"))).await?;
            let then: BoxFuture<'static, ()> = Box::pin(wire_client::idle_with(
                ch,
                move |p| {
                    let _ = seen_tx.send((i, p));
                    true
                },
                stop,
            ));
            Ok(then)
        }
    })
    .await;
    if failures > 0 {
        // Which ones failed is not known, so neither is how many friends a login reaches.
        bail!("{failures} of {s} sessions did not come up, e.g. {errors:?}");
    }
    // The nodes publish one NOTIFY at a time: wait until every session's Online has been
    // through the bus, so the presence rounds do not queue behind the bring-up.
    let up = Instant::now();
    let deadline = up + ROUND_LIMIT;
    while counter.read().0 < s as u64 {
        if Instant::now() > deadline {
            bail!(
                "only {} of {s} Online announcements reached the bus",
                counter.read().0
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bus_lag = up.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut side = Side {
        bring_up,
        sessions: s - failures,
        failures,
        bus_lag,
        ..Side::default()
    };
    let cpu0 = nodes_cpu(&nodes)?;
    let (m0, b0) = counter.read();
    for h in 0..r {
        let hub = format!("hub{h}");
        let at_node = h % n;
        let mut ch = wire_client::connect(session_ip(s + h), addrs[at_node], local).await?;
        while seen.try_recv().is_ok() {}
        let t0 = Instant::now();
        wire_client::request(&mut ch, 1, wire_client::key_login(&hub)).await?;
        let told = collect(&mut seen, &hub, true, k).await?;
        let mut last = Duration::ZERO;
        for (i, at) in told {
            let d = at - t0;
            last = last.max(d);
            if node_of(i) == at_node {
                side.same.push(d);
            } else {
                side.cross.push(d);
            }
        }
        side.all_told.push(last);
        wire_client::request(&mut ch, 2, peerchat_proto::message::Request::Logout).await?;
        collect(&mut seen, &hub, false, k).await?;
    }
    // The last Offline announcement may still be on its way to our listener.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (m1, b1) = counter.read();
    side.node_cpu = nodes_cpu(&nodes)?.saturating_sub(cpu0);
    side.bus_messages = m1 - m0;
    side.bus_bytes = b1 - b0;
    side.changes = 2 * r as u64;
    drop(counter);

    // Password logins: connected and handshaken first, then all Login at once.
    let mut chans = Vec::with_capacity(p);
    for i in 0..p {
        let src = session_ip(s + r + i);
        chans.push(wire_client::connect(src, addrs[node_of(i)], local).await?);
    }
    let t0 = Instant::now();
    let mut logins = JoinSet::new();
    for (i, mut ch) in chans.into_iter().enumerate() {
        logins.spawn(async move {
            wire_client::request(
                &mut ch,
                1,
                wire_client::login(&format!("pw{i}"), seed::PASSWORD),
            )
            .await
            .map(|_| ch)
        });
    }
    let mut done = Vec::new();
    while let Some(j) = logins.join_next().await {
        done.push(j??);
    }
    side.password_time = t0.elapsed();
    side.password_logins = done.len();
    drop(done);

    stop.cancel();
    while tasks.join_next().await.is_some() {}
    for node in nodes {
        node.stop().await;
    }
    Ok(side)
}

/// Waits for `k` presence pushes about `hub` with the given `online` state; returns who saw
/// each and when.
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<(usize, PresenceSeen)>,
    hub: &str,
    online: bool,
    k: usize,
) -> anyhow::Result<Vec<(usize, Instant)>> {
    let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
    let mut at = Vec::with_capacity(k);
    while at.len() < k {
        let (i, p) = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .with_context(|| format!("only {} of {k} friends were told about {hub}", at.len()))?
            .context("client tasks gone")?;
        if p.friend == hub && p.online == online {
            at.push((i, p.at));
        }
    }
    Ok(at)
}
