//! Scenario 6: a file between two real `peerchat-cli` processes, in rounds interleaved with
//! the peers of issue 14 (scp aes128-gcm and chacha20-poly1305 against a private sshd,
//! socat, magic-wormhole through a local relay), to tmpfs and to disk; medians of the
//! rounds, with each end's CPU-seconds per GB and peak RSS.
//!
//! Why rounds: on a machine shared with other work one copy's figure moves by ±30 % from
//! minute to minute. Every round runs every contender once per place, one after the other
//! (the order rotates each round so no contender always follows the same one), and the
//! ratio reported is the median of the ratios *within* a round: contenders of one round saw
//! about the same load.
//!
//! What is timed, for Peerchat: from the `/send` line typed into the sender's session until
//! the sender's session prints `transfer_complete`, which it does after the receiver wrote
//! every byte, `fsync`ed the file, matched its BLAKE3 (or SHA-256) and said FileComplete;
//! the peer link is up before (a warm-up message), as scp's timing includes its own SSH
//! connection set-up. Every received file, Peerchat's and the peers', is checked against
//! the source's SHA-256 afterwards (outside the timing), and every peer copy ends with an
//! fsync like Peerchat's.
//!
//! CPU per end: the CLI processes' utime+stime (`/proc/<pid>/stat`) over the transfer; for
//! the peers, `wait4` of the processes of each end (scp with its ssh; socat; wormhole) and,
//! for sshd's side, the growth of the daemon's reaped-children time. Peak RSS per end: the
//! CLI process's VmHWM (reset before each transfer), the peers' `ru_maxrss` (the largest
//! process of the end), sshd's side sampled from `/proc` while it runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};

use crate::baseline::{scp, socat, wormhole, PeerRun};
use crate::cli_proc::{self, CliProfile, CliSession};
use crate::procfs::{mib, Usage};
use crate::report::{Better, Row};
use crate::server_proc::ServerProc;
use crate::stats::{gb_per_sec, Spread};
use crate::testfile;

const SCENARIO: &str = "6 cli";
/// The contender every ratio is taken against for the goals.
const SCP_AES: &str = "scp aes128-gcm";
const PEERCHAT: &str = "peerchat-cli";

/// Options of scenario 6.
#[derive(Debug, Clone)]
pub struct CliOpts {
    /// Rounds (the issue asks for medians of 5).
    pub rounds: usize,
    /// The `peerchat-cli` executable (`None`: beside this one).
    pub cli: Option<PathBuf>,
}

/// One copy's figures.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    sender: Usage,
    receiver: Usage,
    middle_cpu: Duration,
}

impl Sample {
    fn of(size: u64, run: PeerRun) -> Self {
        Self {
            rate: gb_per_sec(size, run.wall),
            sender: run.sender,
            receiver: run.receiver,
            middle_cpu: run.middle_cpu,
        }
    }

    /// CPU-seconds per GB (10^9 bytes) of both ends.
    fn cpu_per_gb(&self, size: u64) -> f64 {
        (self.sender.cpu + self.receiver.cpu).as_secs_f64() / (size as f64 / 1e9)
    }
}

/// Every sample of one contender at one place, one per round (`None`: it failed that round).
struct Series {
    contender: String,
    place: &'static str,
    samples: Vec<Option<Sample>>,
    failure: Option<String>,
}

/// The set-up of the Peerchat side: a server, a sender and a receiver per place.
struct CliFixture {
    server: ServerProc,
    alice: CliSession,
    receivers: Vec<(&'static str, CliSession, PathBuf)>,
    _tmpfs: Option<tempfile::TempDir>,
}

impl CliFixture {
    async fn start(
        cli: &Path,
        work: &Path,
        size: u64,
        log: &mut dyn FnMut(String),
    ) -> anyhow::Result<Self> {
        let server = ServerProc::spawn(&work.join("cli-server"), 1024, false).await?;
        let addr = server.addr.to_string();
        let alice = CliProfile::register(cli, &addr, &work.join("cli-alice"), "alice", 1).await?;
        let mut places: Vec<(&'static str, PathBuf, Option<tempfile::TempDir>)> = Vec::new();
        let shm = Path::new("/dev/shm");
        if testfile::free_bytes(shm) > size + size / 4 + (256 << 20) {
            let dir = tempfile::Builder::new()
                .prefix("peerchat-bench-cli-")
                .tempdir_in(shm)?;
            places.push(("tmpfs", dir.path().to_owned(), Some(dir)));
        } else {
            log("scenario 6: /dev/shm missing or too small, disk only".into());
        }
        let disk = work.join("cli-downloads");
        std::fs::create_dir_all(&disk)?;
        places.push(("disk", disk, None));

        let mut receivers = Vec::new();
        let mut keep = None;
        for (i, (place, dir, tmp)) in places.into_iter().enumerate() {
            let name = format!("rcv{i}{place}");
            let p =
                CliProfile::register(cli, &addr, &work.join(format!("cli-{name}")), &name, 2 + i)
                    .await?;
            cli_proc::befriend(&alice, &p).await?;
            let s = p
                .session(&dir, &work.join(format!("cli-{name}.log")))
                .await?;
            receivers.push((place, s, dir));
            if tmp.is_some() {
                keep = tmp;
            }
        }
        let mut alice = alice
            .session(&work.join("cli-alice-dl"), &work.join("cli-alice.log"))
            .await?;
        for (_, r, _) in &receivers {
            // Brings each peer link up before anything is timed.
            alice.message(&r.userid, "warm-up").await?;
        }
        Ok(Self {
            server,
            alice,
            receivers,
            _tmpfs: keep,
        })
    }

    async fn stop(self) {
        self.alice.stop().await;
        for (_, r, _) in self.receivers {
            r.stop().await;
        }
        self.server.stop().await;
    }
}

/// One Peerchat transfer between the two CLI processes.
async fn cli_transfer(
    alice: &mut CliSession,
    to: &mut CliSession,
    src: &Path,
    size: u64,
    want: &[u8; 32],
) -> anyhow::Result<Sample> {
    alice.reset_peak();
    to.reset_peak();
    let cpu = |pid| crate::procfs::cpu_time(pid).context("CLI process gone");
    let (a0, b0) = (cpu(alice.pid)?, cpu(to.pid)?);
    let t0 = Instant::now();
    alice
        .line(&format!("/send {} {}", to.userid, src.display()))
        .await?;
    alice
        .wait_event(|e| e["event"] == "transfer_complete" && e["direction"] == "outgoing")
        .await?;
    let wall = t0.elapsed();
    let got = to
        .wait_event(|e| e["event"] == "transfer_complete" && e["direction"] == "incoming")
        .await?;
    let (a1, b1) = (cpu(alice.pid)?, cpu(to.pid)?);
    let peak = |pid| crate::procfs::memory(Some(pid)).map(|m| m.hwm).unwrap_or(0);
    let sample = Sample {
        rate: gb_per_sec(size, wall),
        sender: Usage {
            cpu: a1.saturating_sub(a0),
            peak_rss: peak(alice.pid),
        },
        receiver: Usage {
            cpu: b1.saturating_sub(b0),
            peak_rss: peak(to.pid),
        },
        middle_cpu: Duration::ZERO,
    };
    let path = PathBuf::from(
        got["path"]
            .as_str()
            .context("no path in transfer_complete")?,
    );
    verify_and_remove(&path, want).await?;
    Ok(sample)
}

async fn verify_and_remove(path: &Path, want: &[u8; 32]) -> anyhow::Result<()> {
    let p = path.to_owned();
    let got = tokio::task::spawn_blocking(move || testfile::sha256(&p)).await??;
    let _ = std::fs::remove_file(path);
    ensure!(
        &got == want,
        "received file {} does not match the source",
        path.display()
    );
    Ok(())
}

/// The peers, started once for all rounds.
struct Peers {
    sshd: Result<scp::PrivateSshd, String>,
    socat: Option<String>,
    wormhole: Result<wormhole::LocalWormhole, String>,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// Runs the scenario and appends its rows.
///
/// # Errors
/// Set-up failures, or a Peerchat transfer that fails or arrives corrupted.
pub async fn run(o: &CliOpts, work: &Path, size: u64, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let metric_label = if size >= 1 << 30 {
        format!("{:.0} GiB", size as f64 / f64::from(1u32 << 30))
    } else {
        format!("{} MiB", size >> 20)
    };
    let cli = match cli_proc::locate(o.cli.as_deref()) {
        Ok(c) => c,
        Err(why) => {
            rows.push(Row::skipped(
                SCENARIO,
                &format!("{metric_label} between two peerchat-cli processes"),
                "GB/s",
                &why,
            ));
            return Ok(());
        }
    };
    let mut log = |line: String| eprintln!("{line}");
    let src = work.join("cli-bench-file.bin");
    let want = tokio::task::spawn_blocking({
        let s = src.clone();
        move || -> std::io::Result<[u8; 32]> {
            let h = testfile::create(&s, size)?;
            // SAFETY: sync() takes no arguments and cannot fail.
            unsafe { libc::sync() };
            Ok(h)
        }
    })
    .await??;
    let mut fx = CliFixture::start(&cli, work, size, &mut log).await?;
    let w = work.to_owned();
    let peers = tokio::task::spawn_blocking(move || Peers {
        sshd: scp::PrivateSshd::start(&w),
        socat: socat::unavailable(),
        wormhole: wormhole::LocalWormhole::start(&w),
    })
    .await?;
    let result = rounds(o, &mut fx, &peers, &src, size, &want, &mut log).await;
    fx.stop().await;
    drop(peers);
    let _ = std::fs::remove_file(&src);
    let (series, loads) = result?;
    report(&series, &loads, size, &metric_label, o.rounds, rows);
    Ok(())
}

/// The contenders in this round's order.
fn contenders(round: usize) -> Vec<&'static str> {
    let mut all = vec![PEERCHAT, SCP_AES, "scp chacha20", "socat", "magic-wormhole"];
    let n = all.len();
    all.rotate_left(round % n);
    all
}

#[allow(clippy::too_many_arguments)]
async fn rounds(
    o: &CliOpts,
    fx: &mut CliFixture,
    peers: &Peers,
    src: &Path,
    size: u64,
    want: &[u8; 32],
    log: &mut dyn FnMut(String),
) -> anyhow::Result<(Vec<Series>, Vec<String>)> {
    let mut series: Vec<Series> = Vec::new();
    let mut loads = Vec::new();
    let places: Vec<(&'static str, PathBuf)> = fx
        .receivers
        .iter()
        .map(|(p, _, d)| (*p, d.clone()))
        .collect();
    for round in 0..o.rounds {
        let load = loadavg();
        log(format!(
            "scenario 6: round {} of {}, load average {load}",
            round + 1,
            o.rounds
        ));
        loads.push(load);
        for (pi, (place, dir)) in places.iter().enumerate() {
            for name in contenders(round) {
                let s: anyhow::Result<Sample> = if name == PEERCHAT {
                    let (_, to, _) = &mut fx.receivers[pi];
                    cli_transfer(&mut fx.alice, to, src, size, want)
                        .await
                        .with_context(|| format!("peerchat-cli transfer to {place}"))
                } else {
                    peer_copy(peers, name, src, dir, size, want).await
                };
                let idx = match series
                    .iter()
                    .position(|x| x.contender == name && x.place == *place)
                {
                    Some(i) => i,
                    None => {
                        series.push(Series {
                            contender: name.to_owned(),
                            place,
                            samples: Vec::new(),
                            failure: None,
                        });
                        series.len() - 1
                    }
                };
                let entry = &mut series[idx];
                match s {
                    Ok(s) => {
                        log(format!(
                            "scenario 6: round {} {place:5} {name:16} {:.3} GB/s, CPU {:.2} + {:.2} s, peak {:.1} / {:.1} MiB",
                            round + 1,
                            s.rate,
                            s.sender.cpu.as_secs_f64(),
                            s.receiver.cpu.as_secs_f64(),
                            mib(s.sender.peak_rss),
                            mib(s.receiver.peak_rss)
                        ));
                        entry.samples.push(Some(s));
                    }
                    // Peerchat must work; a peer may be missing or fail.
                    Err(e) if name == PEERCHAT => return Err(e),
                    Err(e) => {
                        log(format!(
                            "scenario 6: round {} {place} {name}: {e:#}",
                            round + 1
                        ));
                        entry.samples.push(None);
                        entry.failure = Some(format!("{e:#}"));
                    }
                }
            }
        }
    }
    Ok((series, loads))
}

async fn peer_copy(
    peers: &Peers,
    name: &str,
    src: &Path,
    dir: &Path,
    size: u64,
    want: &[u8; 32],
) -> anyhow::Result<Sample> {
    let dst = dir.join("peer-copy.bin");
    let run = tokio::task::block_in_place(|| -> anyhow::Result<PeerRun> {
        match name {
            "socat" => match &peers.socat {
                None => socat::copy(src, &dst),
                Some(why) => anyhow::bail!("{why}"),
            },
            "magic-wormhole" => match &peers.wormhole {
                Ok(w) => w.copy(src, &dst),
                Err(why) => anyhow::bail!("{why}"),
            },
            scp_name => {
                let cipher = scp::CIPHERS
                    .iter()
                    .find(|(n, _)| scp_name.strip_prefix("scp ") == Some(n))
                    .map(|(_, c)| *c)
                    .context("unknown contender")?;
                match &peers.sshd {
                    Ok(s) => s.copy(src, &dst, cipher),
                    Err(why) => anyhow::bail!("{why}"),
                }
            }
        }
    });
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&dst);
            return Err(e);
        }
    };
    verify_and_remove(&dst, want).await?;
    Ok(Sample::of(size, run))
}

/// The per-round values of `f` for two series, paired by round (rounds where either
/// failed are left out).
fn paired(a: &Series, b: &Series, f: impl Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    a.samples
        .iter()
        .zip(&b.samples)
        .filter_map(|(x, y)| Some((f(x.as_ref()?), f(y.as_ref()?))))
        .collect()
}

fn values(s: &Series, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
    s.samples.iter().flatten().map(f).collect()
}

fn fmt_spread(s: &Spread, digits: usize) -> String {
    format!("{:.d$} [{:.d$}–{:.d$}]", s.median, s.min, s.max, d = digits)
}

fn report(
    series: &[Series],
    loads: &[String],
    size: u64,
    label: &str,
    rounds: usize,
    rows: &mut Vec<Row>,
) {
    let gb = size as f64 / 1e9;
    let loads = loads.join(" ");
    for pc in series.iter().filter(|s| s.contender == PEERCHAT) {
        let place = pc.place;
        let peers_here: Vec<&Series> = series
            .iter()
            .filter(|s| s.place == place && s.contender != PEERCHAT)
            .collect();
        let pc_rate = Spread::of(&values(pc, |s| s.rate));
        for peer in &peers_here {
            let metric = format!("{label} to {place}, two peerchat-cli vs {}", peer.contender);
            let pairs = paired(pc, peer, |s| s.rate);
            if pairs.is_empty() {
                rows.push(Row::skipped(
                    SCENARIO,
                    &metric,
                    "GB/s",
                    &format!(
                        "skipped: {}",
                        peer.failure.as_deref().unwrap_or("no successful round")
                    ),
                ));
                continue;
            }
            let ratios: Vec<f64> = pairs.iter().map(|(a, b)| a / b).collect();
            let r = Spread::of(&ratios);
            let peer_rate = Spread::of(&values(peer, |s| s.rate));
            let target = match peer.contender.as_str() {
                SCP_AES => Some(("≥ 1.5× scp aes128-gcm", 1.5)),
                "socat" => Some(("≥ 0.5× socat", 0.5)),
                _ => None,
            };
            let mut row = Row::new(SCENARIO, &metric, pc_rate.median, "GB/s", Better::Higher)
                .baseline(&format!("{}, + fsync (median)", peer.contender), peer_rate.median)
                .ratio(r.median)
                .note(&format!(
                    "medians of {} interleaved rounds [min–max]: peerchat-cli {} GB/s, {} {} GB/s; ratio per round {}; load {loads}",
                    pairs.len(),
                    fmt_spread(&pc_rate, 3),
                    peer.contender,
                    fmt_spread(&peer_rate, 3),
                    fmt_spread(&r, 2)
                ));
            if let Some((text, limit)) = target {
                row = row.target_ratio(text, limit);
            }
            rows.push(row);
        }

        // CPU-seconds per GB, both ends, beside each peer's.
        let pc_cpu = Spread::of(&values(pc, |s| s.cpu_per_gb(size)));
        let pc_snd = Spread::of(&values(pc, |s| s.sender.cpu.as_secs_f64() / gb));
        let pc_rcv = Spread::of(&values(pc, |s| s.receiver.cpu.as_secs_f64() / gb));
        for peer in &peers_here {
            let pairs = paired(pc, peer, |s| s.cpu_per_gb(size));
            if pairs.is_empty() {
                continue;
            }
            let r = Spread::of(&pairs.iter().map(|(a, b)| a / b).collect::<Vec<_>>());
            let p_snd = Spread::of(&values(peer, |s| s.sender.cpu.as_secs_f64() / gb));
            let p_rcv = Spread::of(&values(peer, |s| s.receiver.cpu.as_secs_f64() / gb));
            let mid = Spread::of(&values(peer, |s| s.middle_cpu.as_secs_f64() / gb));
            let mut row = Row::new(
                SCENARIO,
                &format!("{label} to {place}, CPU-s per GB both ends vs {}", peer.contender),
                pc_cpu.median,
                "s/GB",
                Better::Lower,
            )
            .baseline(&format!("{} (median)", peer.contender), Spread::of(&values(peer, |s| s.cpu_per_gb(size))).median)
            .ratio(r.median)
            .note(&format!(
                "per end, medians [min–max]: peerchat-cli sender {} + receiver {} s/GB; {} sender {} + receiver {} s/GB{}; ratio per round {}",
                fmt_spread(&pc_snd, 2),
                fmt_spread(&pc_rcv, 2),
                peer.contender,
                fmt_spread(&p_snd, 2),
                fmt_spread(&p_rcv, 2),
                if mid.max > 0.0 {
                    format!(" (+ relay and mailbox {} s/GB, in neither end)", fmt_spread(&mid, 2))
                } else {
                    String::new()
                },
                fmt_spread(&r, 2)
            ));
            if peer.contender == SCP_AES {
                row = row.target_ratio("≤ scp's CPU per GB", 1.0);
            }
            rows.push(row);
        }

        // Peak RSS of each end, beside scp aes128-gcm's ends.
        let scp = peers_here.iter().find(|s| s.contender == SCP_AES);
        for (end, pick) in [
            (
                "sender",
                (|s: &Sample| s.sender.peak_rss) as fn(&Sample) -> u64,
            ),
            ("receiver", |s: &Sample| s.receiver.peak_rss),
        ] {
            let v = Spread::of(&values(pc, |s| mib(pick(s))));
            let mut row = Row::new(
                SCENARIO,
                &format!("{label} to {place}, peerchat-cli {end} peak RSS"),
                v.max,
                "MiB",
                Better::Lower,
            );
            if let Some(scp) = scp.filter(|s| s.samples.iter().flatten().count() > 0) {
                let p = Spread::of(&values(scp, |s| mib(pick(s))));
                row = row.baseline(&format!("{SCP_AES} {end} end (largest)"), p.max);
            }
            rows.push(
                row.target_value("< 32 MiB", 32.0).note(&format!(
                    "largest of {} rounds (median {:.1} MiB); VmHWM of the CLI process, reset before each transfer; scp's end: the largest VmHWM among its processes, sampled every 10 ms",
                    v.n,
                    v.median
                )),
            );
        }
    }
    if series.is_empty() {
        rows.push(Row::skipped(
            SCENARIO,
            &format!("{label} between two peerchat-cli processes"),
            "GB/s",
            &format!("no round ran ({rounds} asked)"),
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(rate: f64) -> Option<Sample> {
        Some(Sample {
            rate,
            sender: Usage::default(),
            receiver: Usage::default(),
            middle_cpu: Duration::ZERO,
        })
    }

    #[test]
    fn every_contender_leads_once_in_as_many_rounds() {
        let n = contenders(0).len();
        let firsts: std::collections::BTreeSet<_> = (0..n).map(|r| contenders(r)[0]).collect();
        assert_eq!(firsts.len(), n);
    }

    #[test]
    fn ratios_pair_rounds_and_skip_failed_ones() {
        let a = Series {
            contender: PEERCHAT.into(),
            place: "disk",
            samples: vec![s(2.0), s(3.0), s(4.0)],
            failure: None,
        };
        let b = Series {
            contender: SCP_AES.into(),
            place: "disk",
            samples: vec![s(1.0), None, s(2.0)],
            failure: None,
        };
        assert_eq!(paired(&a, &b, |x| x.rate), vec![(2.0, 1.0), (4.0, 2.0)]);
    }
}
