//! Scenario 3: server scale. N clients connect, handshake and log in; the server's memory
//! per session; presence fan-out latency to K online friends.
//!
//! Baseline, measured in the same run on the same machine: a plain tokio server in its own
//! child process (`__tcp-hold`) that holds the same N idle connections (one task each),
//! answers each connect with one byte and fans one byte out to K of them.
//!
//! Honest caveats, repeated in the report: the accounts are seeded straight into the
//! database (Register would cost 20,000 argon2id hashes); the clients log in with KeyLogin
//! (no argon2: scenario 4 measures that); all simulated users share one RSA identity (the
//! server allows it; the handshake cost is the same); and all N clients live in this one
//! process, which competes with the server for the machine's two cores.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::future::BoxFuture;
use peerchat_proto::LocalIdentity;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::child::ChildProc;
use crate::procfs;
use crate::report::{Better, Row};
use crate::seed::{self, Seed};
use crate::server_proc::ServerProc;
use crate::stats::{per_sec, Percentiles};
use crate::wire_client::{self, PresenceSeen};

const SCENARIO: &str = "3 scale";
/// How long to wait for one fan-out round before giving up.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

/// Scenario 3 options.
#[derive(Debug, Clone)]
pub struct ScaleOpts {
    /// Concurrent logged-in clients.
    pub clients: usize,
    /// Online friends told when a hub user logs in (at most `clients` and MAX_FRIENDS).
    pub fanout_friends: usize,
    /// Hub logins measured (one hub account each).
    pub fanout_rounds: usize,
    /// Connects+handshakes in flight during bring-up.
    pub concurrency: usize,
}

/// One side's figures (Peerchat or the baseline).
#[derive(Debug, Default)]
struct Side {
    bring_up: Duration,
    failures: usize,
    rss_per_conn: f64,
    rss_before: u64,
    rss_after: u64,
    all_told: Vec<Duration>,
    per_friend: Vec<Duration>,
}

/// Runs the scenario and appends its rows.
///
/// # Errors
/// Set-up failures (child processes, seeding); individual client failures are counted.
pub async fn run(
    opts: &ScaleOpts,
    work: &Path,
    local: &LocalIdentity,
    rows: &mut Vec<crate::report::Row>,
) -> anyhow::Result<()> {
    let k = opts
        .fanout_friends
        .min(opts.clients)
        .min(peerchat_proto::limits::MAX_FRIENDS);
    let fd = crate::rlimit::raise_nofile(opts.clients as u64 * 2 + 4096);
    if fd < opts.clients as u64 + 1024 {
        bail!(
            "RLIMIT_NOFILE is {fd} and could not be raised (raising the hard limit needs CAP_SYS_RESOURCE), too low for {} clients: use --clients {} or less, or raise the hard limit first (ulimit -Hn)",
            opts.clients,
            fd.saturating_sub(1100)
        );
    }
    let base = baseline(opts, k, work)
        .await
        .context("plain TCP baseline")?;
    let pc = peerchat(opts, k, work, local).await.context("peerchat")?;
    let n = opts.clients;
    let client_rss = procfs::memory(None).map(|m| m.hwm).unwrap_or(0);

    rows.push(
        Row::new(SCENARIO, &format!("bring up {n} sessions"), pc.bring_up.as_secs_f64(), "s", Better::Lower)
            .baseline("plain TCP connect + 1 round trip", base.bring_up.as_secs_f64())
            .note(&format!(
                "connect+Noise XX+KeyLogin, {} in flight: {:.0} sessions/s; {} failures; clients share this process (and the 2 cores) with the measurement",
                opts.concurrency,
                per_sec(n as u64, pc.bring_up),
                pc.failures
            )),
    );
    rows.push(
        Row::new(SCENARIO, "server RSS per session", pc.rss_per_conn / 1024.0, "KiB", Better::Lower)
            .baseline("plain tokio task per connection", base.rss_per_conn / 1024.0)
            .target_value("< 16 KiB", 16.0)
            .note(&format!(
                "server VmRSS {:.1} -> {:.1} MiB for {n} logged-in sessions (child process); bench client process peak {:.0} MiB",
                procfs::mib(pc.rss_before),
                procfs::mib(pc.rss_after),
                procfs::mib(client_rss)
            )),
    );
    let pc_all = Percentiles::of(&mut pc.all_told.clone());
    let base_all = Percentiles::of(&mut base.all_told.clone());
    let pc_each = Percentiles::of(&mut pc.per_friend.clone());
    let note = format!(
        "{} logins of a user with {k} online friends; per friend p50 {:.2} ms p99 {:.2} ms",
        pc_all.n,
        pc_each.p50_us / 1000.0,
        pc_each.p99_us / 1000.0
    );
    rows.push(
        Row::new(
            SCENARIO,
            &format!("presence fan-out to {k}, p50"),
            pc_all.p50_us / 1000.0,
            "ms",
            Better::Lower,
        )
        .baseline("plain fan-out of 1 byte", base_all.p50_us / 1000.0)
        .note(&note),
    );
    rows.push(
        Row::new(
            SCENARIO,
            &format!("presence fan-out to {k}, p99"),
            pc_all.p99_us / 1000.0,
            "ms",
            Better::Lower,
        )
        .baseline("plain fan-out of 1 byte", base_all.p99_us / 1000.0)
        .target_value("< 100 ms", 100.0)
        .note("time from sending KeyLogin until the last friend decoded FriendOnline"),
    );
    Ok(())
}

/// Brings up `n` connections with `connect`, at most `concurrency` in flight, and returns
/// how long it took until all had answered, plus the failures.
pub(crate) async fn bring_up<F, Fut>(
    n: usize,
    concurrency: usize,
    tasks: &mut JoinSet<()>,
    connect: F,
) -> (Duration, usize, Vec<String>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<BoxFuture<'static, ()>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let t0 = Instant::now();
    for i in 0..n {
        let (permits, ready) = (permits.clone(), ready_tx.clone());
        let fut = connect(i);
        tasks.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let r = fut.await;
            drop(permit);
            match r {
                Ok(then) => {
                    let _ = ready.send(Ok(()));
                    then.await;
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}")));
                }
            }
        });
    }
    drop(ready_tx);
    let (mut failures, mut errors) = (0, Vec::new());
    for _ in 0..n {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                failures += 1;
                if errors.len() < 3 {
                    errors.push(e);
                }
            }
            None => break,
        }
    }
    (t0.elapsed(), failures, errors)
}

async fn baseline(opts: &ScaleOpts, k: usize, work: &Path) -> anyhow::Result<Side> {
    let mut hold = ChildProc::spawn(&["__tcp-hold".to_owned()], &work.join("tcp-hold.log")).await?;
    let addr: SocketAddr = hold
        .expect("LISTEN ", Duration::from_secs(30))
        .await?
        .parse()?;
    let pid = hold.pid().context("tcp-hold exited")?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = procfs::memory(Some(pid))?.rss;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut tasks = JoinSet::new();
    let (bring_up, failures, errors) = bring_up(opts.clients, opts.concurrency, &mut tasks, |i| {
        let tx = tx.clone();
        async move {
            let mut s = wire_client::tcp_from(wire_client::source_ip(i), addr).await?;
            s.write_u32(i as u32).await?;
            if s.read_u8().await? != b'r' {
                bail!("unexpected reply");
            }
            let then: BoxFuture<'static, ()> = Box::pin(async move {
                while let Ok(b) = s.read_u8().await {
                    if b == b'!' {
                        let _ = tx.send((i, Instant::now()));
                    }
                }
            });
            Ok(then)
        }
    })
    .await;
    if failures == opts.clients {
        bail!("no plain connection came up: {errors:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = procfs::memory(Some(pid))?.rss;
    let mut side = Side {
        bring_up,
        failures,
        rss_before: before,
        rss_after: after,
        rss_per_conn: after.saturating_sub(before) as f64 / (opts.clients - failures) as f64,
        ..Side::default()
    };
    for r in 0..opts.fanout_rounds {
        let idx = opts.clients + r;
        let mut hub = wire_client::tcp_from(wire_client::source_ip(idx), addr).await?;
        hub.write_u32(idx as u32).await?;
        hub.read_u8().await?;
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        let mut msg = vec![b'F'];
        msg.extend_from_slice(&(k as u32).to_be_bytes());
        hub.write_all(&msg).await?;
        let mut last = t0;
        for _ in 0..k {
            let (_, at) = tokio::time::timeout(ROUND_LIMIT, rx.recv())
                .await
                .context("plain fan-out round timed out")?
                .context("receivers gone")?;
            side.per_friend.push(at - t0);
            last = last.max(at);
        }
        side.all_told.push(last - t0);
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    hold.finish(Duration::from_secs(10)).await;
    Ok(side)
}

async fn peerchat(
    opts: &ScaleOpts,
    k: usize,
    work: &Path,
    local: &LocalIdentity,
) -> anyhow::Result<Side> {
    let n = opts.clients;
    let data = work.join("scale-server");
    let mut plan = Seed {
        users: (0..n).map(|i| format!("user{i}")).collect(),
        friendships: Vec::new(),
    };
    plan.users
        .extend((0..opts.fanout_rounds).map(|h| format!("hub{h}")));
    for h in 0..opts.fanout_rounds {
        plan.friendships.extend((0..k).map(|i| (n + h, i)));
    }
    let phc = seed::password_phc().await?;
    seed::seed(&data, &plan, &local.public_key().to_der(), &phc).await?;
    let server = ServerProc::spawn(&data, n + opts.fanout_rounds + 1024, false).await?;
    let addr = server.addr;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.memory()?.rss;

    let (seen_tx, mut seen) = mpsc::unbounded_channel::<PresenceSeen>();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let (bring_up, failures, errors) = bring_up(n, opts.concurrency, &mut tasks, |i| {
        let (local, seen_tx, stop) = (local.clone(), seen_tx.clone(), stop.clone());
        async move {
            let mut ch = wire_client::connect(wire_client::source_ip(i), addr, &local).await?;
            wire_client::request(&mut ch, 1, wire_client::key_login(&format!("user{i}"))).await?;
            let then: BoxFuture<'static, ()> = Box::pin(wire_client::idle(ch, seen_tx, stop));
            Ok(then)
        }
    })
    .await;
    if failures == n {
        bail!("no session came up: {errors:?}");
    }
    if failures > 0 {
        eprintln!("scenario 3: {failures} of {n} sessions failed, e.g. {errors:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.memory()?.rss;
    let mut side = Side {
        bring_up,
        failures,
        rss_before: before,
        rss_after: after,
        rss_per_conn: after.saturating_sub(before) as f64 / (n - failures) as f64,
        ..Side::default()
    };

    for h in 0..opts.fanout_rounds {
        let hub = format!("hub{h}");
        let mut ch = wire_client::connect(wire_client::source_ip(n + h), addr, local).await?;
        while seen.try_recv().is_ok() {}
        let t0 = Instant::now();
        wire_client::request(&mut ch, 1, wire_client::key_login(&hub)).await?;
        let told = collect(&mut seen, &hub, true, k).await?;
        side.per_friend.extend(told.iter().map(|at| *at - t0));
        side.all_told
            .push(told.iter().max().map(|at| *at - t0).unwrap_or_default());
        // Log out and wait for the FriendOffline wave, so rounds do not overlap.
        wire_client::request(&mut ch, 2, peerchat_proto::message::Request::Logout).await?;
        collect(&mut seen, &hub, false, k).await?;
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    server.stop().await;
    Ok(side)
}

/// Waits for `k` presence pushes about `hub` with the given `online` state.
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<PresenceSeen>,
    hub: &str,
    online: bool,
    k: usize,
) -> anyhow::Result<Vec<Instant>> {
    let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
    let mut at = Vec::with_capacity(k);
    while at.len() < k {
        let p = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .with_context(|| format!("only {} of {k} friends were told about {hub}", at.len()))?
            .context("client tasks gone")?;
        if p.friend == hub && p.online == online {
            at.push(p.at);
        }
    }
    Ok(at)
}
