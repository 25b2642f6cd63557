//! Scenario 2: chat over one peer link between two client cores (child processes): round
//! trip time of `send_message` → MessageAcked, one message at a time, and sustained messages
//! per second with the sender never waiting; beside a plain TCP ping-pong of the same payload
//! size in the same run.
//!
//! A Peerchat round trip includes everything the spec requires: the sender stores the
//! message in its history and outbox (SQLite), seals and sends it; the receiver opens it,
//! stores it durably (SQLite), then acknowledges; the sender marks it delivered. Because
//! durable-before-ack puts a disk sync under every acknowledgement, a second baseline shows
//! that floor: the same ping-pong with the receiver appending each message to a file and
//! syncing it before the ack (one sync per burst under the flood). A third syncs at both
//! ends in sequence, the sender before it sends and the receiver before it acks (r8): the
//! floor of a round trip as version 1 of SPEC.md §8.1 r2 ordered it. Since r2 lets the
//! sender's sync overlap the round trip, the one-sync floor is the one the goal binds to.
//!
//! A fourth overlaps the two syncs as r2 allows: the floor of any r2 sender and receiver
//! that share one disk, as the two clients of this benchmark do.
//!
//! The round trips run in blocks, the floors' and Peerchat's in turn ([`RTT_BLOCKS`]), so that
//! a ratio compares the same stretch of the disk's time.
//!
//! Each phase stops at `messages` or after `cap` seconds, whichever comes first, so that a
//! slow build still finishes in minutes; the rows say how many messages were measured.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::baseline::tcp_pingpong::{self, Durable};
use crate::report::{Better, Row};
use crate::scenario::file_transfer::PeerFixture;
use crate::stats::{Percentiles, Spread};

const SCENARIO: &str = "2 chat";
/// Round trips of each fsync-floor baseline (each costs one or two disk syncs).
const DURABLE_RTTS: usize = 2000;
/// Blocks the round trips are measured in, each floor's block and then Peerchat's in turn.
///
/// Why: this disk's sync time drifts (the one-sync floor's median moved 0.21–0.48 ms between
/// runs of session 18), and a floor measured in one stretch before Peerchat's round trips
/// compared two different moments of the disk. Interleaved, every floor and Peerchat sample
/// the same stretch of time, and each block's ratio shows how much the disk moved.
const RTT_BLOCKS: usize = 20;

/// The round trips of every block, Peerchat's and each floor's.
#[derive(Default)]
struct Blocks(Vec<Block>);

struct Block {
    peerchat: Vec<Duration>,
    durable: Vec<Duration>,
    both: Vec<Duration>,
    overlapped: Vec<Duration>,
}

impl Blocks {
    /// Percentiles over all blocks: Peerchat, the one-sync, sequential and overlapped floors.
    fn summary(&self) -> (Percentiles, Percentiles, Percentiles, Percentiles) {
        let all = |f: fn(&Block) -> &Vec<Duration>| {
            let mut v: Vec<Duration> = self.0.iter().flat_map(|b| f(b).iter().copied()).collect();
            Percentiles::of(&mut v)
        };
        (
            all(|b| &b.peerchat),
            all(|b| &b.durable),
            all(|b| &b.both),
            all(|b| &b.overlapped),
        )
    }

    /// Peerchat's p50 over a floor's, block by block: how steady the ratio was.
    fn ratios(&self, floor: fn(&Block) -> &Vec<Duration>) -> String {
        let p50 = |v: &Vec<Duration>| Percentiles::of(&mut v.clone()).p50_us;
        let r: Vec<f64> = self
            .0
            .iter()
            .map(|b| p50(&b.peerchat) / p50(floor(b)))
            .filter(|r| r.is_finite())
            .collect();
        let s = Spread::of(&r);
        format!(
            "p50 ratio by block {:.2}–{:.2}×, median {:.2}× ({} blocks)",
            s.min, s.max, s.median, s.n
        )
    }
}

/// Runs the scenario and appends its rows.
///
/// # Errors
/// A child fails or a message is never acknowledged.
pub async fn run(
    fx: &mut PeerFixture,
    work: &Path,
    messages: usize,
    payload: usize,
    cap: Duration,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let plain = tcp_pingpong::run(messages, messages, payload, Durable::No).await?;
    let durable_file = work.join("durable-pingpong.log");
    let outbox_file = work.join("durable-pingpong-sender.log");
    let floor = |rtts: usize, flood: usize, durable: Durable| {
        let (a, b) = (durable_file.clone(), outbox_file.clone());
        async move {
            let run = tcp_pingpong::run(rtts, flood, payload, durable).await;
            let _ = std::fs::remove_file(&a);
            let _ = std::fs::remove_file(&b);
            run
        }
    };
    // The durable floor's flood (group commit), on its own: the round trips are in blocks.
    let durable_flood = floor(0, messages, Durable::Receiver(durable_file.clone()))
        .await?
        .flood_per_sec;

    let bob = fx.bob.userid.clone();
    fx.alice.call(&format!("warm {bob} 100"), "OK").await?;
    let secs = cap.as_secs_f64();
    let mut blocks = Blocks::default();
    for i in 0..RTT_BLOCKS {
        // Spread the messages (and the time cap) evenly; the first blocks take the remainder.
        let share = |total: usize| total / RTT_BLOCKS + usize::from(i < total % RTT_BLOCKS);
        let floor_rtts = share(messages.min(DURABLE_RTTS));
        let d = floor(floor_rtts, 0, Durable::Receiver(durable_file.clone())).await?;
        let b = floor(
            floor_rtts,
            0,
            Durable::Both(durable_file.clone(), outbox_file.clone()),
        )
        .await?;
        let o = floor(
            floor_rtts,
            0,
            Durable::Overlapped(durable_file.clone(), outbox_file.clone()),
        )
        .await?;
        let answer = fx
            .alice
            .call(
                &format!(
                    "chat-rtt {bob} {} {payload} {}",
                    share(messages),
                    secs / RTT_BLOCKS as f64
                ),
                "RTT",
            )
            .await?;
        let nanos: Vec<u64> = serde_json::from_str(&answer)?;
        blocks.0.push(Block {
            peerchat: nanos.into_iter().map(Duration::from_nanos).collect(),
            durable: d.rtts,
            both: b.rtts,
            overlapped: o.rtts,
        });
    }
    // CPU time of each client over the flood: on a shared 2-core machine the rate swings
    // with whatever else runs, CPU per message much less (issue #14's flood goal).
    let cpu = |p: &crate::peer_proc::PeerProc| -> anyhow::Result<Duration> {
        let pid = p.pid().context("client exited")?;
        Ok(crate::procfs::cpu_time(pid)?)
    };
    let cpu_before = (cpu(&fx.alice)?, cpu(&fx.bob)?);
    let flood = fx
        .alice
        .call(
            &format!("chat-flood {bob} {messages} {payload} {secs}"),
            "FLOOD",
        )
        .await?;
    let f: Vec<f64> = flood
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [acked_s, sent_s, sent] = f[..] else {
        anyhow::bail!("bad FLOOD answer {flood:?}");
    };
    let per_msg_us = |after: Duration, before: Duration| {
        after.saturating_sub(before).as_secs_f64() * 1e6 / sent.max(1.0)
    };
    let (alice_us, bob_us) = (
        per_msg_us(cpu(&fx.alice)?, cpu_before.0),
        per_msg_us(cpu(&fx.bob)?, cpu_before.1),
    );

    let mut p = plain.rtts;
    let p = Percentiles::of(&mut p);
    let (rtt, d, b, o) = blocks.summary();
    let ms = |us: f64| us / 1000.0;
    let note = format!(
        "{} messages of {payload} bytes one at a time (of {messages}, {secs:.0} s cap) in {RTT_BLOCKS} blocks between the floors' blocks; send → MessageAcked through both client cores",
        rtt.n
    );
    rows.push(
        Row::new(SCENARIO, "RTT p50", ms(rtt.p50_us), "ms", Better::Lower)
            .baseline("plain TCP ping-pong", ms(p.p50_us))
            .note(&note),
    );
    rows.push(
        Row::new(SCENARIO, "RTT p99", ms(rtt.p99_us), "ms", Better::Lower)
            .baseline("plain TCP ping-pong", ms(p.p99_us))
            .target_value("< 1 ms", 1.0),
    );
    rows.push(
        Row::new(SCENARIO, "RTT p99.9", ms(rtt.p999_us), "ms", Better::Lower)
            .baseline("plain TCP ping-pong", ms(p.p999_us))
            .note(&format!(
                "max {:.2} ms (baseline {:.2} ms)",
                ms(rtt.max_us),
                ms(p.max_us)
            )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            "RTT p50 vs the durable-ack floor",
            ms(rtt.p50_us),
            "ms",
            Better::Lower,
        )
        .baseline("TCP ping-pong + fdatasync per msg", ms(d.p50_us))
        .note(&format!(
            "floor p99 {:.2} ms over {} round trips: one disk sync before each ack; {}",
            ms(d.p99_us),
            d.n,
            blocks.ratios(|b| &b.durable)
        )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            "RTT p50 vs the sequential two-sync floor",
            ms(rtt.p50_us),
            "ms",
            Better::Lower,
        )
        .baseline("TCP ping-pong + fdatasync at both ends", ms(b.p50_us))
        .note(&format!(
            "floor p99 {:.2} ms over {} round trips: the sender syncs the message before sending it, the receiver before acking (r8), in sequence as version 1 of §8.1 r2 ordered them; r2 now lets the sender's sync overlap the round trip",
            ms(b.p99_us),
            b.n
        )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            "RTT p50 vs the overlapped two-sync floor",
            ms(rtt.p50_us),
            "ms",
            Better::Lower,
        )
        .baseline("TCP ping-pong + fdatasync at both ends, overlapped", ms(o.p50_us))
        .note(&format!(
            "floor p99 {:.2} ms over {} round trips: §8.1 r2 as it stands, the sender syncing its copy while the message travels and the receiver syncing before the ack; both ends share this machine's one disk, as the two clients do here; {}",
            ms(o.p99_us),
            o.n,
            blocks.ratios(|b| &b.overlapped)
        )),
    );
    let rate = sent / acked_s;
    rows.push(
        Row::new(SCENARIO, "sustained messages/s", rate, "msg/s", Better::Higher)
            .baseline("plain TCP, pipelined", plain.flood_per_sec)
            .target_value("≥ 100,000 msg/s", 100_000.0)
            .note(&format!(
                "{sent:.0} messages sent without waiting (of {messages}, {secs:.0} s cap); last sent after {sent_s:.2} s, last acked after {acked_s:.2} s"
            )),
    );
    rows.push(
        Row::new(
            SCENARIO,
            "sustained messages/s vs durable floor",
            rate,
            "msg/s",
            Better::Higher,
        )
        .baseline("TCP + fdatasync per burst", durable_flood)
        .note("the floor commits every burst that has arrived with one sync (group commit)"),
    );
    const CPU_METRIC: &str = "flood CPU per message, both clients";
    // /proc counts CPU time in clock ticks (10 ms): a short flood (the smoke test's few
    // messages on the one-thread core) may use less than one tick in either client.
    let both_us = alice_us + bob_us;
    rows.push(if both_us > 0.0 {
        Row::new(SCENARIO, CPU_METRIC, both_us, "µs", Better::Lower).note(&format!(
            "sender {alice_us:.1} µs + receiver {bob_us:.1} µs of CPU (user + system, all threads) per message; \
             both on 2 cores allow at most {:.0} msg/s",
            2e6 / both_us
        ))
    } else {
        Row::skipped(
            SCENARIO,
            CPU_METRIC,
            "µs",
            &format!(
                "the {sent} messages used less CPU than one clock tick of /proc's counters in \
                 either client; send more (--messages)"
            ),
        )
    });
    Ok(())
}
