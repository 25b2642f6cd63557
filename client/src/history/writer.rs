//! The history's writer: one SQLite connection, on a thread of its own, that applies whole
//! batches of the group commit ([`History::apply_batch`](super::History::apply_batch)).
//!
//! Why a thread of our own instead of sqlx's connection worker: sqlx runs every statement as
//! a round trip between the async task and its connection's thread, and copies every bound
//! value into owned arguments to send it there. A batch of one message (a round trip of a
//! conversation costs one on each side) paid the pool's acquire and a statement's two
//! hand-offs; a flood's batch of a thousand ops, some twenty statements, twenty round trips.
//! Here a batch is one hand-off to this thread and one back, whatever it holds, and its
//! statements bind the ops' values where they lie (issue #14, session 13).
//!
//! Why one connection, as before: in WAL mode a connection drops its whole page cache
//! whenever another connection has written, so batches that alternated between connections
//! re-read their index pages from the file on every transaction. On one connection the cache
//! stays warm; its `synchronous` level is set per batch instead ([`Writer`]). Reads and
//! migrations stay on the sea-orm pool, which sees what this connection committed.
//!
//! The thread ends when the last [`WriterHandle`] is dropped, after the batch it is running;
//! a batch it never got is answered as failed ([`HistoryError::WriterGone`]).
//!
//! The connection can also be borrowed by the caller's thread for a batch
//! ([`WriterHandle::apply_here`]): it sits behind a mutex that the writer thread takes for
//! each job. Why: a hand-off to this thread and back costs two thread wake-ups, and on a
//! virtual machine a wake-up on another vCPU costs ~30 µs (`perf bench sched pipe`: 59.6 µs
//! per round against 5.6 on one CPU, issue #14, session 19) — on a conversation's round trip
//! that was as much as the code path itself. A batch that nothing else waits beside (a
//! conversation's message: the receiver's ack, or the sender's "delivered", waits for it
//! anyway) is cheaper where it is; a flood's burst, written while the next one arrives,
//! still comes here.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::batch::{self, BatchResult};
use super::{sql, HistoryError, Writer};
use crate::machine::PersistOp;

/// How long a batch waits for another connection's write lock (as the pool's connections).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the writer thread is asked to do.
enum Job {
    /// Apply a batch and answer with one result per op.
    Batch {
        ops: Vec<PersistOp>,
        reply: oneshot::Sender<Vec<BatchResult>>,
    },
    /// Report the connection's `PRAGMA synchronous` (1 NORMAL, 2 FULL).
    #[cfg(test)]
    Level {
        reply: oneshot::Sender<rusqlite::Result<i64>>,
    },
}

/// The writer's connection and what it keeps between batches.
struct Writing {
    conn: Connection,
    level: Writer,
    rows: batch::OutboxRows,
}

impl Writing {
    /// Applies one batch ([`batch::apply`]). A panic in a batch fails that batch, not every
    /// later one; the transaction it had open rolls back as its guard unwinds.
    fn apply(&mut self, ops: &[PersistOp]) -> Vec<BatchResult> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch::apply(&mut self.conn, &mut self.level, &mut self.rows, ops)
        }))
        .unwrap_or_else(|_| {
            tracing::error!("the history writer panicked in a batch");
            self.level = Writer::Unknown;
            ops.iter().map(BatchResult::writer_gone).collect()
        })
    }
}

/// The connection, shared by the writer thread and [`WriterHandle::apply_here`].
type Shared = Arc<Mutex<Writing>>;

/// Locks the connection. A panic is caught inside a batch ([`Writing::apply`]), so a
/// poisoned lock can only come from outside one; the connection is still consistent then
/// (SQLite rolled back what was open), so it is used as it is.
fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Writing> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A way to the writer thread; clones share the thread and its connection.
#[derive(Clone)]
pub(super) struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    shared: Shared,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle").finish_non_exhaustive()
    }
}

impl WriterHandle {
    /// Starts the thread and opens its connection to the (already migrated) database at
    /// `path`.
    ///
    /// # Errors
    /// [`HistoryError::Open`] if the thread cannot start or the connection cannot be set up.
    pub(super) async fn start(path: &Path) -> Result<Self, HistoryError> {
        let open_err = |detail: String| HistoryError::Open {
            path: path.display().to_string(),
            detail,
        };
        let (jobs, rx) = mpsc::channel();
        let (ready, opened) = oneshot::channel();
        let file = path.to_owned();
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || match open(&file) {
                Ok(conn) => {
                    let shared = Arc::new(Mutex::new(Writing {
                        conn,
                        level: Writer::Synced,
                        rows: batch::OutboxRows::default(),
                    }));
                    let _ = ready.send(Ok(shared.clone()));
                    run(&shared, &rx);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| open_err(e.to_string()))?;
        match opened.await {
            Ok(Ok(shared)) => Ok(Self { jobs, shared }),
            Ok(Err(e)) => Err(open_err(e.to_string())),
            Err(_) => Err(open_err("the writer thread ended".into())),
        }
    }

    /// Applies `ops` on the writer thread (see [`batch::apply`]): one result per op.
    ///
    /// If the thread is gone, every op fails with [`HistoryError::WriterGone`]. A batch the
    /// thread took and never answered (only if the process is going down: the thread turns
    /// a panic into failed results) has results without feedback for the machine.
    pub(super) async fn apply(&self, ops: Vec<PersistOp>) -> Vec<BatchResult> {
        let n = ops.len();
        let (reply, answer) = oneshot::channel();
        match self.jobs.send(Job::Batch { ops, reply }) {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| (0..n).map(|_| BatchResult::unanswered()).collect()),
            Err(mpsc::SendError(Job::Batch { ops, .. })) => {
                ops.iter().map(BatchResult::writer_gone).collect()
            }
            #[cfg(test)]
            Err(mpsc::SendError(Job::Level { .. })) => Vec::new(),
        }
    }

    /// Applies `ops` on the calling thread, which waits for the connection if the writer
    /// thread is running a batch, and then for this batch's sync. For a batch that nothing
    /// could overlap (the module documentation says why); the caller's other work waits too.
    pub(super) fn apply_here(&self, ops: &[PersistOp]) -> Vec<BatchResult> {
        lock(&self.shared).apply(ops)
    }

    /// The connection's `PRAGMA synchronous`: 1 NORMAL, 2 FULL.
    #[cfg(test)]
    pub(super) async fn level(&self) -> Result<i64, HistoryError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Level { reply })
            .map_err(|_| HistoryError::WriterGone)?;
        Ok(answer.await.map_err(|_| HistoryError::WriterGone)??)
    }
}

/// The writer's connection, set up as the pool's are (WAL, `synchronous = FULL`, foreign
/// keys, the busy timeout), with its statement journals in memory: a batch's multi-row
/// statements each keep one (they may abort inside a longer transaction), and on disk that
/// was a temporary file taking ~480 bytes of `pwrite`s per sent message (issue #14,
/// session 10).
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(sql::STATEMENT_CACHE);
    Ok(conn)
}

/// The thread's loop: one job at a time until every handle is gone.
fn run(shared: &Shared, jobs: &mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Batch { ops, reply } => {
                let results = lock(shared).apply(&ops);
                let _ = reply.send(results);
            }
            #[cfg(test)]
            Job::Level { reply } => {
                let level = lock(shared)
                    .conn
                    .query_row("PRAGMA synchronous", [], |r| r.get(0));
                let _ = reply.send(level);
            }
        }
    }
}
