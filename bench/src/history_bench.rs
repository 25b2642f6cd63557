//! `peerchat-bench __profile history N`: the history database's group commit (issue 14)
//! against one transaction per op, in the same run, on the same disk.
//!
//! Why here and not in scenario 2: scenario 2 measures the client as it is driven today
//! (one op per transaction); this measures what `History::apply_batch` allows once the
//! driver hands it every persist op of a turn (docs/PERFORMANCE.md, "Group commit"). Each
//! side of a chat link is timed: the receiver's `StoreIncoming`, and the sender's
//! `AppendOutbox` followed by the ack's `MarkDelivered`. Files go to a temporary directory
//! under `TMPDIR` (on this machine the virtual disk, so syncs are real).

use std::time::{Duration, Instant};

use peerchat_client::history::History;
use peerchat_client::machine::PersistOp;
use peerchat_client::MessageId;
use peerchat_proto::message::ChatFrame;

/// Ops applied one per transaction: enough to average the disk's sync jitter, few enough
/// to finish in seconds at ~1 ms per sync.
const ONE_BY_ONE: u64 = 1000;

/// Message `n` of a burst, with a time-ordered id as the client makes them
/// (`MessageId::time_ordered`, SPEC.md §8.1 r1): ten messages per millisecond, the low bytes
/// unique (the client's are random).
fn frame(n: u64) -> ChatFrame {
    let sent_at_unix_ms = 1_700_000_000_000 + n / 10;
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&sent_at_unix_ms.to_be_bytes()[2..]);
    id[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    ChatFrame {
        id,
        sent_at_unix_ms,
        text: "x".repeat(100),
    }
}

async fn fresh_history(dir: &tempfile::TempDir, name: &str) -> anyhow::Result<History> {
    Ok(History::open(&dir.path().join(name)).await?)
}

/// What [`apply`] measured.
struct Applied {
    /// Ops per second of wall-clock time (disk syncs included).
    per_sec: f64,
    /// CPU time of this process per op, µs (all threads: the async side and SQLite's):
    /// steadier than the wall clock on a shared machine whose disk syncs vary.
    cpu_us_per_op: f64,
}

/// Applies `ops` in batches of `batch` (1: one transaction each).
async fn apply(h: &History, ops: &[PersistOp], batch: usize) -> anyhow::Result<Applied> {
    // The batches are made before the clock starts: `apply_batch` takes its ops by value
    // (they go to the writer thread), and the copies are not what is measured.
    let batches: Vec<Vec<PersistOp>> = ops.chunks(batch.max(1)).map(<[_]>::to_vec).collect();
    let me = std::process::id();
    let cpu0 = crate::procfs::cpu_time(me)?;
    let t0 = Instant::now();
    for chunk in batches {
        for r in h.apply_batch(chunk).await {
            if let Some(e) = r.error {
                anyhow::bail!("history op failed: {e}");
            }
        }
    }
    let wall = t0.elapsed().max(Duration::from_nanos(1));
    let cpu = crate::procfs::cpu_time(me)?.saturating_sub(cpu0);
    let n = ops.len().max(1) as f64;
    Ok(Applied {
        per_sec: n / wall.as_secs_f64(),
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / n,
    })
}

/// Runs both sides, `n` ops batched by `batch` against [`ONE_BY_ONE`] ops one at a time,
/// and prints the figures.
///
/// # Errors
/// The database fails.
pub async fn run(n: u64, batch: usize) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("peerchat-history-bench-")
        .tempdir()?;
    println!(
        "history group commit, files in {} ({} ops one by one, {n} batched by {batch})",
        dir.path().display(),
        ONE_BY_ONE.min(n)
    );
    let incoming = |range: std::ops::Range<u64>| -> Vec<PersistOp> {
        range
            .map(|i| PersistOp::StoreIncoming {
                friend: "alice".into(),
                frame: frame(i),
                received_at_unix_ms: 1_700_000_000_000,
            })
            .collect()
    };
    // The sender's ops of a burst: its appends, then the acks of the same messages.
    let sending = |range: std::ops::Range<u64>| -> Vec<PersistOp> {
        let mut ops: Vec<PersistOp> = range
            .clone()
            .map(|i| PersistOp::AppendOutbox {
                friend: "bob".into(),
                frame: frame(i),
            })
            .collect();
        ops.extend(range.map(|i| PersistOp::MarkDelivered {
            friend: "bob".into(),
            id: MessageId(frame(i).id),
        }));
        ops
    };
    let single = ONE_BY_ONE.min(n);
    for (k, (side, ops_single, ops_batched, per_message)) in [
        (
            "receiver: StoreIncoming",
            incoming(0..single),
            incoming(0..n),
            1.0,
        ),
        (
            "sender: AppendOutbox + MarkDelivered",
            sending(0..single),
            sending(0..n),
            2.0,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let h = fresh_history(&dir, &format!("one-{k}.db")).await?;
        let one = apply(&h, &ops_single, 1).await?;
        let h = fresh_history(&dir, &format!("batch-{k}.db")).await?;
        let many = apply(&h, &ops_batched, batch).await?;
        println!(
            "{side:40} one by one {:>10.0} ops/s ({:>8.0} msg/s)   batched {:>10.0} ops/s ({:>8.0} msg/s, {:.1} CPU µs/op)   {:.0}×",
            one.per_sec,
            one.per_sec / per_message,
            many.per_sec,
            many.per_sec / per_message,
            many.cpu_us_per_op,
            many.per_sec / one.per_sec
        );
    }
    Ok(())
}
