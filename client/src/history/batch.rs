//! Group commit (issue 14): many [`PersistOp`]s of the sans-IO machine in one transaction
//! with one disk sync.
//!
//! Why: SPEC.md §8.1 asks for a message to be durable before it is acknowledged (receiver,
//! rule 8) and before it counts as delivered (sender, rules 2–3). One transaction per message
//! costs one disk sync per message on each side — 0.5–2 ms on the benchmark's virtual disk,
//! so ~450 messages/s whatever the CPU. The durability rule says *before the ack*, not
//! *alone*: a driver that collects every `Action::Persist` the machine produced in one turn
//! (all frames one read of the link delivered, all messages the user queued meanwhile),
//! applies them here in one transaction and only then feeds the results back
//! ([`ClientMachine::handle_persisted`](crate::machine::ClientMachine::handle_persisted), which
//! releases the acks and the "delivered" reports), keeps the rule with one sync per burst.
//!
//! Durability levels, and why:
//! - A batch holding any `StoreIncoming`, `AppendOutbox` or `Transfer` op commits with
//!   `synchronous = FULL`: one WAL fsync for the whole batch, before any of its acks leave
//!   (§8.1 r8) and before any of its outgoing messages counts as delivered (r2–r3).
//! - `MarkDelivered` has no durability promise (§8.1 r3 only says the entry leaves the
//!   outbox): if a mark is lost in a power cut, the message is still in the outbox, is sent
//!   again on the next link, and the receiver acknowledges it again without showing it twice
//!   (§8.1 r7). So a batch of nothing but delivered marks commits with
//!   `synchronous = NORMAL`, without a sync of its own; in a mixed batch the
//!   marks ride along in the batch's one sync. In WAL mode a NORMAL commit survives a crash
//!   of the process (it is in the log), and the next FULL commit's sync of the same log makes
//!   it durable against power loss too.
//!
//! All batches run on one connection, the history's writer, on a thread of its own or, for a
//! batch nothing can overlap, on the caller's (`writer.rs` says why), whose level is set
//! before each transaction that needs another one.
//!
//! Within a batch, runs of consecutive ops of one kind become multi-row statements (an
//! `INSERT` of up to 100 rows, an `UPDATE … WHERE seq IN (…)`), so a burst of a thousand
//! messages is a handful of statements, not thousands; the order between kinds is kept. The
//! statements are SQL text bound to borrowed values (`sql.rs` says why); delivered marks find
//! their rows by `seq` where the writer knows it ([`OutboxRows`]).

use std::collections::BTreeMap;
use std::time::Instant;

use peerchat_proto::message::ChatFrame;
use rusqlite::{Connection, TransactionBehavior};

use super::sql::{self, MessageRow};
use super::{to_i64, History, HistoryError, Writer};
use crate::chat::by_friend::ByFriend;
use crate::ids::MessageId;
use crate::machine::{PersistOp, Persisted};
use crate::transfer::Direction;

/// The outcome of one [`PersistOp`] of a batch, in the order of the ops.
#[derive(Debug)]
pub struct BatchResult {
    /// What to feed back to
    /// [`ClientMachine::handle_persisted`](crate::machine::ClientMachine::handle_persisted):
    /// `Some` for `StoreIncoming` (`fresh`: `Some(true)` stored now, `Some(false)` stored
    /// before, `None` failed) and `AppendOutbox` (`ok`); `None` for `MarkDelivered` and
    /// `Transfer`, which the machine does not wait for.
    pub persisted: Option<Persisted>,
    /// Why this op failed, if it did (for the log; `persisted` already says so).
    pub error: Option<HistoryError>,
}

/// Which multi-row statement an op joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Incoming,
    Outbox,
    Delivered,
    Transfer,
}

fn kind(op: &PersistOp) -> Kind {
    match op {
        PersistOp::StoreIncoming { .. } => Kind::Incoming,
        PersistOp::AppendOutbox { .. } => Kind::Outbox,
        PersistOp::MarkDelivered { .. } => Kind::Delivered,
        PersistOp::Transfer(_) => Kind::Transfer,
    }
}

impl History {
    /// Applies `ops` in order, in one transaction with (at most) one disk sync, and returns
    /// one [`BatchResult`] per op. The ops go to the writer thread and come back as results.
    ///
    /// A batch of nothing but `MarkDelivered` is committed without a sync (see the module
    /// documentation for why that keeps SPEC.md §8.1). If the transaction fails, each op is
    /// tried again in a transaction of its own, so that one bad op (a duplicate outbox id, say)
    /// fails alone; the fallback costs one sync per op, which only a failure pays.
    ///
    /// The driver must not send an acknowledgement or a message of this batch before this
    /// returns (that is what the results fed back to the machine release).
    pub async fn apply_batch(&self, ops: Vec<PersistOp>) -> Vec<BatchResult> {
        if ops.is_empty() {
            return Vec::new();
        }
        self.writer.apply(ops).await
    }

    /// As [`History::apply_batch`], but on the calling thread, which blocks until the batch
    /// is written and synced (it first waits for a batch the writer thread is running).
    ///
    /// For a batch that nothing else waits beside, such as a conversation's message, whose
    /// ack (or "delivered") waits for it anyway: it saves the two thread wake-ups of the
    /// hand-off (`writer.rs` says what they cost). Everything else on the calling thread waits
    /// for the sync too, so a batch whose write can overlap other work (a flood's burst)
    /// belongs on the writer thread.
    pub fn apply_batch_here(&self, ops: &[PersistOp]) -> Vec<BatchResult> {
        if ops.is_empty() {
            return Vec::new();
        }
        self.writer.apply_here(ops)
    }
}

impl BatchResult {
    /// `op` failed because the writer thread is gone.
    pub(super) fn writer_gone(op: &PersistOp) -> Self {
        failed(op, HistoryError::WriterGone)
    }

    /// An op whose batch the writer thread took but never answered: no feedback.
    pub(super) fn unanswered() -> Self {
        Self {
            persisted: None,
            error: Some(HistoryError::WriterGone),
        }
    }
}

/// The `seq` (rowid) of each of our messages written in this run and not marked delivered
/// yet, by friend and id: its mark then updates the row by integer key instead of seeking
/// the text index on friend, direction and id (in a microbenchmark of the statements, 0.75
/// against 2.0 µs per mark, the larger part of the sender's writes in a chat flood; issue
/// #14, session 13).
///
/// Only committed rows are recorded: a rolled-back insert's `seq` could be given to another
/// row. Rows are never deleted and `seq` is `AUTOINCREMENT` (never reused), so a recorded
/// `seq` names its message for good. A mark of a message not recorded (written in an earlier
/// run) takes the text index. The map holds what the machine's outbox holds, our messages not
/// acknowledged yet, except for friends removed in this run, whose entries stay until the
/// process ends.
pub(super) type OutboxRows = ByFriend<i64>;

/// Rows a batch's statements inserted for our messages, recorded in [`OutboxRows`] once the
/// batch is committed.
type Appended<'o> = Vec<(&'o str, MessageId, i64)>;

/// [`History::apply_batch`] on the writer thread: `level` is the connection's `synchronous`
/// level, kept up to date here; `rows` is the writer's [`OutboxRows`].
pub(super) fn apply(
    conn: &mut Connection,
    level: &mut Writer,
    rows: &mut OutboxRows,
    ops: &[PersistOp],
) -> Vec<BatchResult> {
    let started = Instant::now();
    let want = level_for(ops);
    let result = set_level(conn, level, want).and_then(|()| match ops {
        [op] => apply_alone(conn, rows, op),
        _ => apply_in_one_transaction(conn, rows, ops),
    });
    tracing::debug!(
        ops = ops.len(),
        synced = want == Writer::Synced,
        micros = started.elapsed().as_micros() as u64,
        "history batch"
    );
    match result {
        Ok(fresh) => ops
            .iter()
            .zip(fresh)
            .map(|(op, f)| succeeded(op, f))
            .collect(),
        Err(e) if ops.len() == 1 => vec![failed(&ops[0], e)],
        Err(e) => {
            tracing::warn!(error = %e, ops = ops.len(), "history batch failed; applying its ops one by one");
            ops.iter()
                .map(|op| {
                    let one = std::slice::from_ref(op);
                    let r = set_level(conn, level, level_for(one))
                        .and_then(|()| apply_in_one_transaction(conn, rows, one));
                    match r {
                        Ok(f) => succeeded(op, f.into_iter().next().flatten()),
                        Err(e) => failed(op, e),
                    }
                })
                .collect()
        }
    }
}

/// Sets the connection's `synchronous` level to `want` unless it is there already; outside
/// any transaction, as SQLite refuses to change it inside one.
fn set_level(conn: &Connection, level: &mut Writer, want: Writer) -> Result<(), HistoryError> {
    if *level != want {
        *level = Writer::Unknown;
        conn.pragma_update(None, "synchronous", want.pragma_value())?;
        *level = want;
    }
    Ok(())
}

/// Synced unless every op is a delivered mark.
fn level_for(ops: &[PersistOp]) -> Writer {
    if ops.iter().all(|op| kind(op) == Kind::Delivered) {
        Writer::Unsynced
    } else {
        Writer::Synced
    }
}

fn succeeded(op: &PersistOp, fresh: Option<bool>) -> BatchResult {
    BatchResult {
        persisted: feedback(op, fresh, true),
        error: None,
    }
}

fn failed(op: &PersistOp, e: HistoryError) -> BatchResult {
    BatchResult {
        persisted: feedback(op, None, false),
        error: Some(e),
    }
}

fn feedback(op: &PersistOp, fresh: Option<bool>, ok: bool) -> Option<Persisted> {
    match op {
        PersistOp::StoreIncoming { friend, frame, .. } => Some(Persisted::Incoming {
            friend: friend.clone(),
            id: MessageId(frame.id),
            fresh: if ok { fresh } else { None },
        }),
        PersistOp::AppendOutbox { friend, frame } => Some(Persisted::Outbox {
            friend: friend.clone(),
            id: MessageId(frame.id),
            ok,
        }),
        PersistOp::MarkDelivered { .. } | PersistOp::Transfer(_) => None,
    }
}

/// One transaction over all of `ops`; per op, `Some(fresh)` for a `StoreIncoming`.
/// `IMMEDIATE`: the write lock is taken (or waited for) at the start, so another
/// connection's write can never make this one fail half-way as a busy snapshot.
fn apply_in_one_transaction(
    conn: &mut Connection,
    rows: &mut OutboxRows,
    ops: &[PersistOp],
) -> Result<Vec<Option<bool>>, HistoryError> {
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // On an error the transaction rolls back as `txn` is dropped, before the fallback that
    // applies the ops one by one uses the connection again.
    let mut appended = Vec::new();
    let fresh = apply_ops(&txn, rows, &mut appended, ops)?;
    txn.commit()?;
    record(rows, appended);
    Ok(fresh)
}

/// Records committed rows of our messages (see [`OutboxRows`]).
fn record(rows: &mut OutboxRows, appended: Appended<'_>) {
    for (friend, id, seq) in appended {
        rows.insert(friend, id, seq);
    }
}

/// The history row of a message in `direction`, stored at `stored_at` (Unix ms). A received
/// message counts as acked; one we wrote is not until the friend acks it, and until then the
/// row is also its outbox entry ([`History::outbox`]).
fn message_row<'a>(
    friend: &'a str,
    frame: &'a ChatFrame,
    direction: Direction,
    stored_at: i64,
) -> MessageRow<'a> {
    MessageRow {
        id_hex: MessageId(frame.id).to_hex(),
        friend,
        direction: direction.as_str(),
        text: &frame.text,
        sent_at: to_i64(frame.sent_at_unix_ms),
        acked: direction == Direction::Incoming,
        stored_at,
    }
}

/// One op as one statement in SQLite's autocommit: atomic and, on the synced level, durable
/// by itself. Why: a round trip is a batch of one on each side, and `BEGIN` and `COMMIT`
/// were two more statements each (issue #14, RTT).
fn apply_alone(
    c: &Connection,
    rows: &mut OutboxRows,
    op: &PersistOp,
) -> Result<Vec<Option<bool>>, HistoryError> {
    let mut fresh = [None];
    let mut appended = Vec::new();
    apply_run(c, rows, &mut appended, std::slice::from_ref(op), &mut fresh)?;
    record(rows, appended);
    Ok(fresh.to_vec())
}

/// The statements of [`apply_in_one_transaction`], inside its transaction.
fn apply_ops<'o>(
    c: &Connection,
    rows: &mut OutboxRows,
    appended: &mut Appended<'o>,
    ops: &'o [PersistOp],
) -> Result<Vec<Option<bool>>, HistoryError> {
    let mut fresh = vec![None; ops.len()];
    let mut i = 0;
    while i < ops.len() {
        let k = kind(&ops[i]);
        let mut j = i + 1;
        while j < ops.len() && kind(&ops[j]) == k {
            j += 1;
        }
        apply_run(c, rows, appended, &ops[i..j], &mut fresh[i..j])?;
        i = j;
    }
    Ok(fresh)
}

/// A run of ops of one kind (see [`kind`]).
fn apply_run<'o>(
    c: &Connection,
    rows: &mut OutboxRows,
    appended: &mut Appended<'o>,
    run: &'o [PersistOp],
    fresh: &mut [Option<bool>],
) -> Result<(), HistoryError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    match kind(first) {
        Kind::Incoming => store_incoming(c, run, fresh),
        Kind::Outbox => append_outbox(c, appended, run),
        Kind::Delivered => mark_delivered(c, rows, run),
        Kind::Transfer => {
            for op in run {
                if let PersistOp::Transfer(t) = op {
                    sql::upsert_transfer(c, t)?;
                }
            }
            Ok(())
        }
    }
}

/// Received messages, each unless already stored from that friend (§8.1 r7): multi-row
/// inserts that skip what the unique index already holds and say what they inserted. A
/// second copy of an id in the same run counts as already stored.
fn store_incoming(
    c: &Connection,
    run: &[PersistOp],
    fresh: &mut [Option<bool>],
) -> Result<(), HistoryError> {
    let rows: Vec<MessageRow<'_>> = run
        .iter()
        .filter_map(|op| match op {
            PersistOp::StoreIncoming {
                friend,
                frame,
                received_at_unix_ms,
            } => Some(message_row(
                friend,
                frame,
                Direction::Incoming,
                to_i64(*received_at_unix_ms),
            )),
            _ => None,
        })
        .collect();
    let inserted = sql::insert_new_messages(c, &rows)?;
    // `rows` holds one row per op of the run, in order (the run is all StoreIncoming).
    for (slot, new) in fresh.iter_mut().zip(inserted) {
        *slot = Some(new);
    }
    Ok(())
}

/// Messages we wrote, as multi-row inserts in the order given (the outbox's sending order,
/// §8.1 r4): unacknowledged, each row is also its outbox entry. Their rows go to `appended`.
fn append_outbox<'o>(
    c: &Connection,
    appended: &mut Appended<'o>,
    run: &'o [PersistOp],
) -> Result<(), HistoryError> {
    let now = to_i64(super::now_ms());
    let mut ids = Vec::with_capacity(run.len());
    let rows: Vec<MessageRow<'_>> = run
        .iter()
        .filter_map(|op| match op {
            PersistOp::AppendOutbox { friend, frame } => {
                ids.push((friend.as_str(), MessageId(frame.id)));
                Some(message_row(friend, frame, Direction::Outgoing, now))
            }
            _ => None,
        })
        .collect();
    let seqs = sql::insert_messages(c, &rows)?;
    appended.extend(ids.into_iter().zip(seqs).map(|((f, id), seq)| (f, id, seq)));
    Ok(())
}

/// Acknowledged messages: marked acked, which also takes them out of the outbox
/// (`History::outbox`): by row for those whose row this writer recorded ([`OutboxRows`]),
/// by friend and id for the others.
fn mark_delivered(
    c: &Connection,
    rows: &mut OutboxRows,
    run: &[PersistOp],
) -> Result<(), HistoryError> {
    let mut seqs = Vec::with_capacity(run.len());
    let mut by_friend: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for op in run {
        if let PersistOp::MarkDelivered { friend, id } = op {
            // Taken out now: if the transaction fails, a later mark of it takes the index,
            // which is slower but as right.
            match rows.remove(friend, *id) {
                Some(seq) => seqs.push(seq),
                None => by_friend.entry(friend).or_default().push(id.to_hex()),
            }
        }
    }
    sql::mark_acked_rows(c, &seqs)?;
    for (friend, ids) in by_friend {
        sql::mark_acked(c, friend, Direction::Outgoing.as_str(), &ids)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_proto::message::ChatFrame;

    fn frame(n: u8, text: &str) -> ChatFrame {
        ChatFrame {
            id: [n; 16],
            sent_at_unix_ms: 1000 + u64::from(n),
            text: text.into(),
        }
    }

    fn incoming(friend: &str, n: u8) -> PersistOp {
        PersistOp::StoreIncoming {
            friend: friend.into(),
            frame: frame(n, "hi"),
            received_at_unix_ms: 5000,
        }
    }

    fn outgoing(friend: &str, n: u8) -> PersistOp {
        PersistOp::AppendOutbox {
            friend: friend.into(),
            frame: frame(n, &format!("m{n}")),
        }
    }

    fn delivered(friend: &str, n: u8) -> PersistOp {
        PersistOp::MarkDelivered {
            friend: friend.into(),
            id: MessageId([n; 16]),
        }
    }

    async fn open() -> Result<(tempfile::TempDir, History), HistoryError> {
        let (dir, path) = crate::history::temp_db()?;
        let h = History::open(&path).await?;
        Ok((dir, h))
    }

    fn fresh_flags(r: &[BatchResult]) -> Vec<Option<bool>> {
        r.iter()
            .filter_map(|b| match &b.persisted {
                Some(Persisted::Incoming { fresh, .. }) => Some(*fresh),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn incoming_batch_reports_fresh_per_op_and_stores_each_once() -> Result<(), HistoryError>
    {
        let (_d, h) = open().await?;
        assert_eq!(
            fresh_flags(&h.apply_batch(vec![incoming("bob", 1)]).await),
            vec![Some(true)]
        );
        let r = h
            .apply_batch(vec![
                incoming("bob", 1),   // stored before the batch
                incoming("bob", 2),   // new
                incoming("bob", 2),   // the same again in this batch
                incoming("carol", 2), // same id, another friend
            ])
            .await;
        assert_eq!(
            fresh_flags(&r),
            vec![Some(false), Some(true), Some(false), Some(true)]
        );
        assert!(r.iter().all(|b| b.error.is_none()));
        assert_eq!(h.messages("bob", 10).await?.len(), 2);
        assert_eq!(h.messages("carol", 10).await?.len(), 1);
        Ok(())
    }

    /// A run longer than one statement (here chunks of 100, 100, 1, 1, 1, 1 rows): a copy of
    /// an id in the same chunk or in a later one is not fresh; every other op is, once.
    #[tokio::test]
    async fn duplicates_across_statement_chunks_are_not_fresh() -> Result<(), HistoryError> {
        let (_d, h) = open().await?;
        let mut ops: Vec<PersistOp> = (0..=200).map(|n| incoming("bob", n)).collect();
        ops[50] = incoming("bob", 10); // same as op 10, in the same 100-row chunk
        ops.push(incoming("bob", 3)); // op 201: same as op 3, in a later chunk
        ops.push(incoming("bob", 201));
        ops.push(incoming("bob", 201)); // op 203: same as op 202
        let r = h.apply_batch(ops.clone()).await;
        assert!(r.iter().all(|b| b.error.is_none()));
        let mut want = vec![Some(true); 201];
        want[50] = Some(false);
        want.extend([Some(false), Some(true), Some(false)]);
        assert_eq!(fresh_flags(&r), want);
        // Ids 0..=200 but 50, and 201.
        assert_eq!(h.messages("bob", 1000).await?.len(), 201);
        Ok(())
    }

    #[tokio::test]
    async fn outbox_and_delivered_marks_in_one_batch_keep_order() -> Result<(), HistoryError> {
        let (_d, h) = open().await?;
        let mut ops: Vec<PersistOp> = (1..=250).map(|n| outgoing("bob", n)).collect();
        // Acks of some, in the same batch, after their appends.
        ops.extend((1..=100).map(|n| delivered("bob", n)));
        ops.push(outgoing("carol", 251));
        let r = h.apply_batch(ops.clone()).await;
        assert_eq!(r.len(), ops.len());
        assert!(r.iter().all(|b| b.error.is_none()));
        let oks = r
            .iter()
            .filter(|b| matches!(b.persisted, Some(Persisted::Outbox { ok: true, .. })))
            .count();
        assert_eq!(oks, 251);
        let out = h.outbox().await?;
        let ids: Vec<u8> = out.iter().map(|(_, f)| f.id[0]).collect();
        let want: Vec<u8> = (101..=251).collect();
        assert_eq!(ids, want, "outbox order is sending order");
        let msgs = h.messages("bob", 1000).await?;
        assert_eq!(msgs.len(), 250);
        assert_eq!(msgs.iter().filter(|m| m.acked).count(), 100);
        Ok(())
    }

    #[tokio::test]
    async fn delivered_only_batch_commits_unsynced() -> Result<(), HistoryError> {
        let (_d, h) = open().await?;
        h.apply_batch(vec![outgoing("bob", 1), outgoing("bob", 2)])
            .await;
        let ops = vec![delivered("bob", 1), delivered("bob", 9)];
        assert_eq!(level_for(&ops), Writer::Unsynced);
        assert_eq!(
            level_for(&[delivered("bob", 1), incoming("bob", 3)]),
            Writer::Synced
        );
        let r = h.apply_batch(ops).await;
        assert!(r.iter().all(|b| b.persisted.is_none() && b.error.is_none()));
        // SQLite: 1 = NORMAL, 2 = FULL, as the writer's own connection reports it.
        assert_eq!(h.writer.level().await?, 1);
        let out = h.outbox().await?;
        assert_eq!(out.len(), 1, "an ack of an unknown id is ignored (§8.1 r3)");
        // What the writer wrote unsynced is what the other connections read.
        let msgs = h.messages("bob", 10).await?;
        assert!(msgs[0].acked && !msgs[1].acked);
        // The next durable batch sets the level back before its transaction.
        h.apply_batch(vec![outgoing("bob", 3)]).await;
        assert_eq!(h.writer.level().await?, 2);
        Ok(())
    }

    /// A batch on the caller's thread (`apply_batch_here`) uses the writer thread's
    /// connection: it sees what the thread wrote (duplicates, the outbox rows a mark finds by
    /// `seq`), and the `synchronous` level either one sets is the other's too.
    #[tokio::test]
    async fn batches_here_and_on_the_writer_thread_share_one_connection() -> Result<(), HistoryError>
    {
        let (_d, h) = open().await?;
        h.apply_batch(vec![incoming("bob", 1), outgoing("bob", 2)])
            .await;
        assert_eq!(
            fresh_flags(&h.apply_batch_here(&[incoming("bob", 1)])),
            vec![Some(false)],
            "stored on the writer thread before"
        );
        let r = h.apply_batch_here(&[delivered("bob", 2)]);
        assert!(r.iter().all(|b| b.error.is_none()));
        assert_eq!(h.writer.level().await?, 1, "set here, seen by the thread");
        assert!(h.outbox().await?.is_empty());
        assert!(h.messages("bob", 10).await?.iter().any(|m| m.acked));
        assert_eq!(
            fresh_flags(&h.apply_batch_here(&[incoming("bob", 3)])),
            vec![Some(true)]
        );
        assert_eq!(h.writer.level().await?, 2, "a durable batch here syncs");
        assert!(h.apply_batch_here(&[]).is_empty());
        assert_eq!(h.messages("bob", 10).await?.len(), 3);
        Ok(())
    }

    /// A transfer written on its own (`record_machine_transfer`) is a durable write too.
    #[tokio::test]
    async fn a_transfer_alone_is_written_synced() -> Result<(), HistoryError> {
        let (_d, h) = open().await?;
        h.apply_batch(vec![delivered("bob", 1)]).await;
        assert_eq!(h.writer.level().await?, 1);
        let t = crate::transfer::TransferRecord {
            friend: "bob".into(),
            id: crate::ids::TransferId([3; 16]),
            direction: Direction::Outgoing,
            offered_name: "a.txt".into(),
            size: 5,
            sha256: None,
            state: "OFFERED",
            end_reason: None,
            bytes: 0,
            cancel_unsent: false,
        };
        h.record_machine_transfer(&t).await?;
        assert_eq!(h.writer.level().await?, 2);
        Ok(())
    }

    #[tokio::test]
    async fn one_failing_op_fails_alone() -> Result<(), HistoryError> {
        let (_d, h) = open().await?;
        h.apply_batch(vec![outgoing("bob", 1)]).await;
        // Appending id 1 again breaks the unique index: that op fails, the others stand.
        let r = h
            .apply_batch(vec![
                incoming("bob", 7),
                outgoing("bob", 1),
                outgoing("bob", 2),
            ])
            .await;
        assert_eq!(fresh_flags(&r), vec![Some(true)]);
        assert!(matches!(
            r[1].persisted,
            Some(Persisted::Outbox { ok: false, .. })
        ));
        assert!(r[1].error.is_some());
        assert!(matches!(
            r[2].persisted,
            Some(Persisted::Outbox { ok: true, .. })
        ));
        assert_eq!(h.outbox().await?.len(), 2);
        assert_eq!(h.messages("bob", 10).await?.len(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn batches_survive_reopen() -> Result<(), HistoryError> {
        let (_dir, path) = crate::history::temp_db()?;
        {
            let h = History::open(&path).await?;
            h.apply_batch(vec![incoming("bob", 1), outgoing("bob", 2)])
                .await;
            h.apply_batch(vec![delivered("bob", 2)]).await;
        }
        let h = History::open(&path).await?;
        assert!(h.outbox().await?.is_empty());
        assert_eq!(
            fresh_flags(&h.apply_batch(vec![incoming("bob", 1)]).await),
            vec![Some(false)],
            "duplicate suppression survives a restart (§8.1 r7)"
        );
        Ok(())
    }

    /// A mark finds its row by the `seq` this writer recorded when it inserted it, or by id
    /// for a message an earlier run wrote; either way only that friend's message is marked.
    #[tokio::test]
    async fn marks_find_rows_of_this_run_and_of_earlier_runs() -> Result<(), HistoryError> {
        let (_dir, path) = crate::history::temp_db()?;
        {
            let h = History::open(&path).await?;
            h.apply_batch(vec![
                outgoing("bob", 1),
                outgoing("bob", 2),
                outgoing("carol", 1),
            ])
            .await;
        }
        let h = History::open(&path).await?;
        h.apply_batch(vec![outgoing("bob", 3), outgoing("bob", 4)])
            .await;
        // Bob's 1 from the earlier run (by id), his 3 from this one (by row), in one batch
        // with a write of another kind; carol's message with the same id stays.
        let r = h
            .apply_batch(vec![
                delivered("bob", 1),
                delivered("bob", 3),
                incoming("bob", 9),
            ])
            .await;
        assert!(r.iter().all(|b| b.error.is_none()));
        let outbox = |h: History| async move {
            Ok::<_, HistoryError>(
                h.outbox()
                    .await?
                    .into_iter()
                    .map(|(f, m)| (f, m.id[0]))
                    .collect::<Vec<_>>(),
            )
        };
        let want = vec![
            ("bob".to_owned(), 2),
            ("carol".to_owned(), 1),
            ("bob".to_owned(), 4),
        ];
        assert_eq!(outbox(h.clone()).await?, want);
        // A mark of the same message again, or of one the writer alone marked (a batch of
        // one), changes only what it names.
        h.apply_batch(vec![delivered("bob", 3)]).await;
        h.apply_batch(vec![delivered("bob", 4)]).await;
        assert_eq!(outbox(h.clone()).await?, want[..2].to_vec());
        Ok(())
    }

    #[tokio::test]
    async fn empty_batch_does_nothing() -> Result<(), HistoryError> {
        let (_d, h) = open().await?;
        assert!(h.apply_batch(vec![]).await.is_empty());
        Ok(())
    }
}
