//! `PersistOp`s on the history database, in batches (issue #14, group commit): the driver
//! hands over every `Persist` action the machine queued in a row, [`History::apply_batch`]
//! writes them in one transaction with one sync, and only then are the results fed back
//! through `handle_persisted` — so what the machine orders, history first and then the ack
//! (C1), the outbox entry written before the message counts as delivered (C8), holds on disk
//! too, with one sync per burst instead of one per message. (Our own messages do not wait
//! for their outbox write to be sent, §8.1 r2: see `Core::drain`.)
//!
//! [`History::apply_batch`]: crate::history::History::apply_batch

use std::time::Instant;

use super::Core;
use crate::machine::{PersistOp, Persisted};

impl Core {
    /// Writes the waiting delivered marks on their own (`Core::marks`).
    pub(super) async fn write_marks(&mut self) {
        self.marks_due = None;
        if !self.marks.is_empty() {
            let marks = std::mem::take(&mut self.marks);
            self.persist_batch(marks).await;
        }
    }

    /// Writes `ops` on the writer thread, while this thread's other tasks go on (the
    /// messages of ours they send, the bursts they read).
    pub(super) async fn persist_batch(&mut self, ops: Vec<PersistOp>) {
        let results = self.history.apply_batch(ops).await;
        self.persisted(results);
    }

    /// Writes `ops` on this thread, which waits for the sync: for a conversation's lone
    /// message (`Core::lone`, [`INLINE_OPS`]), whose result is all anything waits for. It
    /// saves the hand-off's two thread wake-ups (issue #14).
    ///
    /// [`INLINE_OPS`]: super::INLINE_OPS
    pub(super) fn persist_batch_here(&mut self, ops: &[PersistOp]) {
        let results = self.history.apply_batch_here(ops);
        self.persisted(results);
    }

    /// Feeds a batch's results back to the machine.
    fn persisted(&mut self, results: Vec<crate::history::BatchResult>) {
        let now = Instant::now();
        for r in results {
            if let Some(e) = r.error {
                match r.persisted {
                    // The machine tells the user (its result says `ok: false`). The message
                    // stays in its outbox and is delivered in this run: it may be on its way
                    // already (§8.1 r2), so it is neither withdrawn nor reported as failed.
                    Some(Persisted::Outbox { .. }) => {
                        tracing::warn!(error = %e, "outbox entry not written");
                    }
                    // C7: an incoming message not stored is not acknowledged; the friend
                    // sends it again. A lost transfer row or delivered mark is logged.
                    _ => self.error(e.to_string()),
                }
            }
            if let Some(p) = r.persisted {
                self.machine.handle_persisted(p, now);
            }
        }
    }
}
