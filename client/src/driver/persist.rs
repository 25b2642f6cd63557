//! `PersistOp`s on the history database. Each is awaited before the next action, so that
//! what the machine orders — history first, then the ack (C1); the outbox first, then the
//! send (C21) — holds on disk too; results go back through `handle_persisted`.

use std::time::Instant;

use super::Core;
use crate::ids::MessageId;
use crate::machine::{PersistOp, Persisted};

impl Core {
    pub(super) async fn persist(&mut self, op: PersistOp) {
        match op {
            PersistOp::StoreIncoming { friend, frame, .. } => {
                let id = MessageId(frame.id);
                // Insert-if-absent: `fresh` tells a first delivery from a repeat, also one
                // stored by an earlier run (C2).
                let fresh = match self.history.add_incoming(&friend, &frame).await {
                    Ok(new) => Some(new),
                    Err(e) => {
                        // C7: not stored, so not acknowledged; the friend sends it again.
                        self.error(e.to_string());
                        None
                    }
                };
                self.machine
                    .handle_persisted(Persisted::Incoming { friend, id, fresh }, Instant::now());
            }
            PersistOp::AppendOutbox { friend, frame } => {
                let id = MessageId(frame.id);
                let ok = match self.history.add_outgoing(&friend, &frame).await {
                    Ok(()) => true,
                    Err(e) => {
                        self.outbox_failed.insert(id, e.to_string());
                        false
                    }
                };
                self.machine
                    .handle_persisted(Persisted::Outbox { friend, id, ok }, Instant::now());
            }
            PersistOp::MarkDelivered { friend, id } => {
                if let Err(e) = self.history.mark_acked(&friend, id).await {
                    self.error(e.to_string());
                }
            }
            PersistOp::Transfer(rec) => {
                if let Err(e) = self.history.record_machine_transfer(&rec).await {
                    self.error(e.to_string());
                }
            }
        }
    }
}
