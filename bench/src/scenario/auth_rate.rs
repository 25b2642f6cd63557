//! Scenario 4: handshakes per second and logins per second against the server, measured
//! separately so the handshake's cost (X25519 + RSA-PSS verification on both ends) and the
//! password hash's cost (argon2id, m = 19 MiB, t = 2) can each be seen.
//!
//! The load comes from 1 or 2 OS threads, each running a tokio current_thread runtime with
//! a few connections in flight. The server is a child process with the per-connection
//! request bucket lifted (the default, 20 requests/s per connection, would measure the rate
//! limiter, not the server). On this 2-core machine the client threads and the server share
//! the cores: with 2 client threads the client takes as much CPU as the server.
//!
//! Baselines from the same run: plain TCP connect + 1 round trip + close against a plain
//! tokio server (for handshakes), Ping/Pong round trips on the same kind of connection (for
//! KeyLogin), and raw argon2id verifications in this process on the same number of threads
//! (for password logins: the ceiling the server's hashing allows).
//!
//! The handshake rates and their plain-TCP baseline run in turn, in [`HANDSHAKE_BLOCKS`]
//! blocks, each with the CPU time the processes involved used: a rate ratio compares the
//! same stretch of the machine's time, and the CPU ratio says where it comes from.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::future::LocalBoxFuture;
use peerchat_proto::limits::VERIFIED_BINDINGS_MAX;
use peerchat_proto::message::Request;
use peerchat_proto::LocalIdentity;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Barrier;

use crate::child::ChildProc;
use crate::report::{Better, Row};
use crate::seed::{self, Seed};
use crate::server_proc::ServerProc;
use crate::stats::{per_sec, Spread};
use crate::wire_client;

const SCENARIO: &str = "4 rates";
/// Blocks of the handshake measurements: each runs reconnects, plain connects and new
/// bindings for 1/`HANDSHAKE_BLOCKS` of `--rate-seconds` each.
const HANDSHAKE_BLOCKS: u32 = 10;

/// Scenario 4 options.
#[derive(Debug, Clone)]
pub struct RateOpts {
    /// How long each measurement runs.
    pub duration: Duration,
    /// Connections in flight per client thread.
    pub per_thread: usize,
    /// Friends of each account that logs in (accounts of their own, never online).
    pub friends: usize,
}

/// Source addresses for scenario 4 start here, away from scenario 3's.
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(1_000_000);

fn next_source() -> std::net::Ipv4Addr {
    wire_client::source_ip(NEXT_SOURCE.fetch_add(1, Ordering::Relaxed))
}

/// Runs the scenario and appends its rows.
///
/// # Errors
/// Set-up failures, or a measurement in which every task failed.
pub async fn run(
    opts: &RateOpts,
    work: &Path,
    local: &LocalIdentity,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let accounts = 2 * opts.per_thread;
    let data = work.join("rate-server");
    // The friends are shared: every account that logs in has the same `opts.friends`.
    let plan = Seed {
        users: (0..accounts)
            .map(|i| format!("pw{i}"))
            .chain((0..opts.friends).map(|j| format!("fr{j}")))
            .collect(),
        friendships: (0..accounts)
            .flat_map(|i| (0..opts.friends).map(move |j| (i, accounts + j)))
            .collect(),
    };
    let phc = seed::password_phc().await?;
    seed::seed(&data, &plan, &local.public_key().to_der(), &phc).await?;
    let server = ServerProc::spawn(&data, 16_384, true).await?;
    let mut hold =
        ChildProc::spawn(&["__tcp-hold".to_owned()], &work.join("tcp-hold-rate.log")).await?;
    let hold_addr: SocketAddr = hold
        .expect("LISTEN ", Duration::from_secs(30))
        .await?
        .parse()?;
    let addr = server.addr;
    // The processes whose CPU each phase is charged: this one (the client threads) and the
    // server, or this one and the plain TCP holder.
    let me = std::process::id();
    let peerchat_pids = [me, server.pid().context("server exited")?];
    let plain_pids = [me, hold.pid().context("plain TCP holder exited")?];
    let o = opts.clone();
    let phc = phc.clone();

    let fresh = fresh_bindings(2 * VERIFIED_BINDINGS_MAX).await?;
    // Every measurement blocks this thread while its own runtimes run on fresh threads.
    let local = local.clone();
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for threads in [1, 2] {
            let t = format!("{threads} client thread{}", if threads > 1 { "s" } else { "" });
            let (n, d) = (o.per_thread, o.duration);
            let with_identity = {
                let local = local.clone();
                move |_| {
                    let local = local.clone();
                    async move { Ok(local) }
                }
            };
            // Reconnects, plain connects and new bindings run in turn, block by block
            // (`HANDSHAKE_BLOCKS`), so that each ratio compares the same stretch of the
            // machine's time: the plain phase alone leaves ~130,000 TIME_WAIT sockets (the
            // kernel's limit) that whatever runs next works beside.
            let turn = AtomicUsize::new(0);
            let mut tally = [Tally::default(); 3];
            let mut by_block: [Vec<f64>; 2] = Default::default();
            let block = d / HANDSHAKE_BLOCKS;
            for b in 0..HANDSHAKE_BLOCKS as usize {
                let mut this = [Tally::default(); 3];
                // Each block starts with another of the three, so none always follows plain.
                for k in (0..3).map(|k| (k + b) % 3) {
                    let pids = if k == 1 { plain_pids } else { peerchat_pids };
                    let cpu0 = crate::procfs::cpu_time_sum(pids)?;
                    this[k] = match k {
                        0 => measure(threads, n, block, with_identity.clone(), |local: &mut LocalIdentity| {
                            Box::pin(async move {
                                // Dropped at once: the server sees EOF right after the handshake.
                                wire_client::connect(next_source(), addr, local).await?;
                                Ok(())
                            })
                        })?,
                        1 => measure(threads, n, block, |_| async { Ok(()) }, |_: &mut ()| {
                            Box::pin(async move {
                                let mut s = wire_client::tcp_from(next_source(), hold_addr).await?;
                                s.write_u32(crate::tcp_hold::PROBE).await?;
                                s.read_u8().await?;
                                Ok(())
                            })
                        })?,
                        // Each handshake presents the next of `fresh`'s bindings: between
                        // two uses of one, more others pass than the server remembers.
                        _ => measure(threads, n, block, |_| async { Ok(()) }, |_: &mut ()| {
                            let local = fresh[turn.fetch_add(1, Ordering::Relaxed) % fresh.len()].clone();
                            Box::pin(async move {
                                wire_client::connect(next_source(), addr, &local).await?;
                                Ok(())
                            })
                        })?,
                    };
                    this[k].cpu = crate::procfs::cpu_time_sum(pids)?.saturating_sub(cpu0);
                }
                for (sum, t) in tally.iter_mut().zip(this) {
                    sum.add(t);
                }
                by_block[0].push(this[0].rate() / this[1].rate());
                by_block[1].push(this[2].rate() / this[1].rate());
            }
            let [hs_cpu, plain_cpu, first_cpu] = tally.map(|t| t.cpu_per_step());
            let [hs, plain, first] = tally.map(|t| t.rate());
            let [hs_blocks, first_blocks] = by_block.map(|r| block_note(&r));
            rows.push(
                Row::new(SCENARIO, &format!("handshakes/s, {t}"), hs, "1/s", Better::Higher)
                    .baseline("plain TCP connect+RTT+close", plain)
                    .note(&format!("TCP connect + Noise XX with RSA-PSS identities, then close; {n} in flight per thread; one client process reconnecting, so after its first handshake neither end verifies RSA again (remembered bindings, SPEC.md §4.3); {hs_blocks}")),
            );
            rows.push(
                Row::new(SCENARIO, &format!("handshakes/s, {t}, new bindings"), first, "1/s", Better::Higher)
                    .baseline("plain TCP connect+RTT+close", plain)
                    .note(&format!("as above, but each handshake presents the next of {} identity bindings (static key + signature) in turn, more than the server remembers ({VERIFIED_BINDINGS_MAX}): the server verifies RSA every time, as in a storm of new client processes; {first_blocks}", fresh.len())),
            );

            for (what, cpu) in [("", hs_cpu), (", new bindings", first_cpu)] {
                rows.push(
                    Row::new(SCENARIO, &format!("CPU per handshake, both processes, {t}{what}"), cpu, "µs", Better::Lower)
                        .baseline("plain TCP connect+RTT+close", plain_cpu)
                        .note("user + system time of the client process and the server (the plain holder for the baseline) over the blocks above, per connection; /proc tick resolution (10 ms) per block; both share the 2 cores, so the rate ratio follows roughly the inverse of this one"),
                );
            }

            let connected = {
                let local = local.clone();
                move |i: usize| {
                    let local = local.clone();
                    async move {
                        let ch = wire_client::connect(next_source(), addr, &local).await?;
                        Ok(Conn { ch, user: format!("pw{i}"), next_id: 0 })
                    }
                }
            };
            let key = measure(threads, n, d, connected.clone(), |c: &mut Conn| {
                Box::pin(async move {
                    let id = c.ids();
                    wire_client::request(&mut c.ch, id, wire_client::key_login(&c.user)).await?;
                    wire_client::request(&mut c.ch, id + 1, Request::Logout).await?;
                    Ok(())
                })
            })?
            .rate();
            let pings = measure(threads, n, d, connected.clone(), |c: &mut Conn| {
                Box::pin(async move {
                    let nonce = c.ids();
                    wire_client::ping(&mut c.ch, nonce).await
                })
            })?
            .rate();
            rows.push(
                Row::new(SCENARIO, &format!("KeyLogins/s (+Logout), {t}"), key, "1/s", Better::Higher)
                    .baseline("Ping/Pong round trips/s", pings)
                    .note(&format!("{} established connections; {} offline friends per account; with the KeyLogin cache on (the default), a KeyLogin + Logout of a cached account reads nothing from SQLite", threads * n, o.friends)),
            );

            let pw = measure(threads, n, d, connected, |c: &mut Conn| {
                Box::pin(async move {
                    let id = c.ids();
                    wire_client::request(&mut c.ch, id, wire_client::login(&c.user, seed::PASSWORD)).await?;
                    wire_client::request(&mut c.ch, id + 1, Request::Logout).await?;
                    Ok(())
                })
            })?
            .rate();
            // The server hashes on as many blocking threads as there are cores, whatever
            // the number of client threads: that width is its ceiling.
            let width = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let argon = {
                let phc = phc.clone();
                measure(width, 1, d, move |_| {
                    let phc = phc.clone();
                    async move { Ok(phc) }
                }, |phc: &mut String| {
                    let ok = verify_password(phc);
                    Box::pin(async move { ok })
                })?
                .rate()
            };
            rows.push(
                Row::new(SCENARIO, &format!("password Logins/s (+Logout), {t}"), pw, "1/s", Better::Higher)
                    .baseline(&format!("argon2id verifies/s, {width} threads in-proc"), argon)
                    .note(&format!("argon2id m=19456 KiB t=2 p=1 per login; the server hashes on at most {width} threads (one per core), the baseline likewise")),
            );
        }
        // The pure CPU cost of one handshake, both ends, no sockets.
        let remote = LocalIdentity::new(peerchat_proto::test_keys::identity(14))?;
        let count = 200;
        let t0 = Instant::now();
        for _ in 0..count {
            crate::cipher::handshake(&local, &remote)?;
        }
        let per = t0.elapsed() / count;
        rows.push(
            Row::new(SCENARIO, "handshake CPU, both ends in memory", per.as_secs_f64() * 1e6, "µs", Better::Lower)
                .note(&format!("{:.0} handshakes/s on one core with no sockets; the same two processes again and again (bindings remembered); a first contact adds the 2 RSA-PSS verifications below", 1.0 / per.as_secs_f64())),
        );
        let (ours, ring) = crate::cipher::rsa_verify(&local, 200)?;
        rows.push(
            Row::new(SCENARIO, "RSA-PSS verify (2 per handshake)", ours.as_secs_f64() * 1e6, "µs", Better::Lower)
                .baseline("ring verify, same key and signature", ring.as_secs_f64() * 1e6)
                .note("the protocol crate verifies through ring (the rsa crate only signs, once per process); the baseline calls ring directly"),
        );
        Ok(rows)
    })
    .await??;
    rows.extend(measured);
    hold.finish(Duration::from_secs(10)).await;
    server.stop().await;
    Ok(())
}

/// `count` identities, each with a static key of its own and its signature, over the
/// published test keys in turn (one RSA signature each, made on every core before anything
/// is timed).
async fn fresh_bindings(count: usize) -> anyhow::Result<Arc<Vec<LocalIdentity>>> {
    use peerchat_proto::test_keys;
    let width = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let parts = (0..width).map(|w| {
        tokio::task::spawn_blocking(move || {
            (w..count)
                .step_by(width)
                .map(|i| LocalIdentity::new(test_keys::identity(i % test_keys::COUNT)))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    let mut all = Vec::with_capacity(count);
    for part in futures::future::join_all(parts).await {
        all.extend(part??);
    }
    Ok(Arc::new(all))
}

/// An established connection of the login measurements.
struct Conn {
    ch: peerchat_proto::Channel<tokio::net::TcpStream>,
    user: String,
    next_id: u64,
}

impl Conn {
    /// Two fresh request ids (the first is returned).
    fn ids(&mut self) -> u64 {
        self.next_id += 2;
        self.next_id - 1
    }
}

fn verify_password(phc: &str) -> anyhow::Result<()> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
    let parsed = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("{e}"))?;
    argon2::Argon2::default()
        .verify_password(seed::PASSWORD.as_bytes(), &parsed)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs `threads` OS threads, each a current_thread runtime with `per_thread` tasks. Each
/// task runs `setup` (not timed), waits for every other task, then repeats `step` for
/// `duration`. Returns the completed steps over all tasks and the longest task's time.
fn measure<S, SF, SFut, P>(
    threads: usize,
    per_thread: usize,
    duration: Duration,
    setup: SF,
    step: P,
) -> anyhow::Result<Tally>
where
    SF: Fn(usize) -> SFut + Send + Sync + Clone,
    SFut: Future<Output = anyhow::Result<S>>,
    P: for<'a> Fn(&'a mut S) -> LocalBoxFuture<'a, anyhow::Result<()>> + Send + Sync + Clone,
{
    let tasks = threads * per_thread;
    let barrier = Arc::new(Barrier::new(tasks));
    let results: Vec<anyhow::Result<(u64, Duration)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (setup, step, barrier) = (setup.clone(), step.clone(), barrier.clone());
                scope.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let futs = (0..per_thread).map(|j| {
                        let (setup, step, barrier) = (setup.clone(), step.clone(), barrier.clone());
                        async move {
                            let state = setup(t * per_thread + j).await;
                            barrier.wait().await;
                            let mut state = state?;
                            let t0 = Instant::now();
                            let mut n = 0u64;
                            while t0.elapsed() < duration {
                                step(&mut state).await?;
                                n += 1;
                            }
                            Ok::<_, anyhow::Error>((n, t0.elapsed()))
                        }
                    });
                    rt.block_on(futures::future::join_all(futs))
                        .into_iter()
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(Ok(v)) => v.into_iter().map(Ok).collect::<Vec<_>>(),
                Ok(Err(e)) => vec![Err(e)],
                Err(_) => vec![Err(anyhow::anyhow!("measurement thread panicked"))],
            })
            .collect()
    });
    let mut count = 0;
    let mut longest = Duration::ZERO;
    for r in results {
        let (n, d) = r?;
        count += n;
        longest = longest.max(d);
    }
    Ok(Tally {
        count,
        elapsed: longest,
        cpu: Duration::ZERO,
    })
}

/// Steps completed in a time: one measurement, or the sum of several (pooled, so that a
/// rate over blocks is total steps over total time).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    count: u64,
    elapsed: Duration,
    /// CPU the processes involved used meanwhile (set by the caller).
    cpu: Duration,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.count += other.count;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
    }

    /// CPU per completed step, in µs.
    fn cpu_per_step(self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.count.max(1) as f64
    }

    fn rate(self) -> f64 {
        per_sec(self.count, self.elapsed)
    }
}

/// How the blocks' ratios spread: what a reader needs to judge one pooled ratio.
fn block_note(ratios: &[f64]) -> String {
    let s = Spread::of(ratios);
    format!(
        "ratio by block {:.3}–{:.3}×, median {:.3}× ({} blocks)",
        s.min, s.max, s.median, s.n
    )
}
