//! The sending end of one file transfer, without I/O (SPEC.md §8.3).
//!
//! The tokio layer feeds it what happened (accept, complete, cancel, connection lost, pump
//! finished) and does what it answers: send an offer, start streaming from an offset, report
//! completion. Resuming is the same path as a first offer: after a dropped connection the
//! transfer returns to [`SenderState::Pending`] and the same id is offered again.

use peerchat_proto::message::FileOfferFrame;
use peerchat_proto::wire::FileCancelReason;

use super::Violation;
use crate::ids::TransferId;

/// Where an outgoing transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderState {
    /// Not offered on the current connection (new, or the connection dropped): offer it when
    /// a connection to the friend is up.
    Pending,
    /// Offered; waiting for FileAccept or FileCancel.
    Offered,
    /// Accepted; chunks from `from` up to the size are being streamed.
    Streaming {
        /// The offset the receiver asked for.
        from: u64,
    },
    /// Every byte was handed to the connection; waiting for FileComplete.
    AwaitingComplete,
    /// The receiver confirmed the verified file.
    Complete,
    /// Stopped for good.
    Cancelled(FileCancelReason),
}

/// What the I/O layer must do after an accepted offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStep {
    /// Stream bytes `from..size`.
    Stream {
        /// First byte to send.
        from: u64,
    },
    /// The receiver already holds everything: send nothing and wait for FileComplete.
    NothingToSend,
}

/// One outgoing file.
#[derive(Debug, Clone)]
pub struct FileSender {
    id: TransferId,
    name: String,
    size: u64,
    sha256: [u8; 32],
    state: SenderState,
    /// Bytes the receiver holds according to its last FileAccept plus what we streamed since.
    sent: u64,
}

impl FileSender {
    /// A transfer not yet offered.
    pub fn new(id: TransferId, name: String, size: u64, sha256: [u8; 32]) -> Self {
        Self {
            id,
            name,
            size,
            sha256,
            state: SenderState::Pending,
            sent: 0,
        }
    }

    /// The transfer id.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The offered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> &SenderState {
        &self.state
    }

    /// Bytes handed to the connection so far (counting what the receiver already held).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// True once complete or cancelled.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            SenderState::Complete | SenderState::Cancelled(_)
        )
    }

    /// The offer to send now, if the transfer waits for one (state becomes `Offered`).
    pub fn offer(&mut self) -> Option<FileOfferFrame> {
        if self.state != SenderState::Pending {
            return None;
        }
        self.state = SenderState::Offered;
        Some(FileOfferFrame {
            id: self.id.0,
            name: self.name.clone(),
            size: self.size,
            sha256: self.sha256,
        })
    }

    /// The receiver accepted from `offset`.
    ///
    /// # Errors
    /// [`Violation`] if no offer is outstanding or the offset is beyond the size.
    pub fn on_accept(&mut self, offset: u64) -> Result<AcceptStep, Violation> {
        if self.state != SenderState::Offered {
            return Err(Violation(format!("FileAccept in state {:?}", self.state)));
        }
        if offset > self.size {
            return Err(Violation(format!(
                "FileAccept offset {offset} beyond size {}",
                self.size
            )));
        }
        self.sent = offset;
        if offset == self.size {
            self.state = SenderState::AwaitingComplete;
            Ok(AcceptStep::NothingToSend)
        } else {
            self.state = SenderState::Streaming { from: offset };
            Ok(AcceptStep::Stream { from: offset })
        }
    }

    /// The pump handed `len` more bytes to the connection.
    pub fn on_streamed(&mut self, len: u64) {
        if matches!(self.state, SenderState::Streaming { .. }) {
            self.sent = (self.sent + len).min(self.size);
        }
    }

    /// The pump handed the last byte to the connection.
    pub fn on_stream_done(&mut self) {
        if matches!(self.state, SenderState::Streaming { .. }) {
            self.sent = self.size;
            self.state = SenderState::AwaitingComplete;
        }
    }

    /// The receiver reported the verified file. Also valid right after an offer (the
    /// receiver finished on an earlier connection but our copy of FileComplete was lost) and
    /// while streaming (the pump's last report may still be on its way).
    ///
    /// # Errors
    /// [`Violation`] when nothing was offered.
    pub fn on_complete(&mut self) -> Result<(), Violation> {
        match self.state {
            SenderState::Offered
            | SenderState::Streaming { .. }
            | SenderState::AwaitingComplete => {
                self.sent = self.size;
                self.state = SenderState::Complete;
                Ok(())
            }
            ref s => Err(Violation(format!("FileComplete in state {s:?}"))),
        }
    }

    /// The receiver (or we) stopped the transfer.
    pub fn on_cancel(&mut self, reason: FileCancelReason) {
        if !self.is_finished() {
            self.state = SenderState::Cancelled(reason);
        }
    }

    /// The connection carrying the transfer is gone: offer again on the next one.
    pub fn on_disconnect(&mut self) {
        if !self.is_finished() {
            self.state = SenderState::Pending;
        }
    }
}

/// Splits `from..size` into chunk ranges of at most `chunk` bytes, in order.
pub fn chunk_ranges(from: u64, size: u64, chunk: usize) -> impl Iterator<Item = (u64, usize)> {
    let chunk = chunk.max(1) as u64;
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= size {
            return None;
        }
        let len = chunk.min(size - at);
        let r = (at, len as usize);
        at += len;
        Some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(size: u64) -> FileSender {
        FileSender::new(TransferId([1; 16]), "a.bin".into(), size, [9; 32])
    }

    #[test]
    fn offer_accept_stream_complete() {
        let mut s = sender(1000);
        let offer = s.offer().unwrap_or_else(|| panic!("offer"));
        assert_eq!(
            (offer.size, offer.name.as_str(), offer.sha256),
            (1000, "a.bin", [9; 32])
        );
        assert_eq!(s.offer(), None, "offered only once per connection");
        assert_eq!(s.on_accept(0), Ok(AcceptStep::Stream { from: 0 }));
        s.on_streamed(600);
        assert_eq!(s.sent(), 600);
        s.on_stream_done();
        assert_eq!(s.state(), &SenderState::AwaitingComplete);
        assert_eq!(s.on_complete(), Ok(()));
        assert!(s.is_finished());
    }

    #[test]
    fn resume_offers_the_same_id_and_streams_from_the_receivers_offset() {
        let mut s = sender(1000);
        s.offer();
        assert!(s.on_accept(0).is_ok());
        s.on_streamed(300);
        s.on_disconnect();
        assert_eq!(s.state(), &SenderState::Pending);
        let again = s.offer().unwrap_or_else(|| panic!("re-offer"));
        assert_eq!(again.id, [1; 16]);
        assert_eq!(s.on_accept(300), Ok(AcceptStep::Stream { from: 300 }));
        assert_eq!(s.sent(), 300);
    }

    #[test]
    fn accept_rules() {
        let mut s = sender(10);
        assert!(s.on_accept(0).is_err(), "accept before offer");
        s.offer();
        assert!(s.on_accept(11).is_err(), "offset beyond size");
        assert_eq!(s.on_accept(10), Ok(AcceptStep::NothingToSend));
        assert!(s.on_accept(0).is_err(), "second accept");
        assert!(s.on_complete().is_ok());
    }

    #[test]
    fn empty_file_needs_no_chunks() {
        let mut s = sender(0);
        s.offer();
        assert_eq!(s.on_accept(0), Ok(AcceptStep::NothingToSend));
        assert_eq!(chunk_ranges(0, 0, 4).count(), 0);
    }

    #[test]
    fn complete_after_reoffer_when_receiver_already_finished() {
        let mut s = sender(5);
        s.offer();
        assert!(s.on_complete().is_ok());
        let mut fresh = sender(5);
        assert!(fresh.on_complete().is_err(), "complete before any offer");
    }

    #[test]
    fn cancel_is_final() {
        let mut s = sender(5);
        s.offer();
        s.on_cancel(FileCancelReason::Declined);
        s.on_disconnect();
        assert_eq!(
            s.state(),
            &SenderState::Cancelled(FileCancelReason::Declined)
        );
        assert_eq!(s.offer(), None);
    }

    #[test]
    fn chunking_covers_the_range_exactly() {
        let v: Vec<_> = chunk_ranges(5, 20, 6).collect();
        assert_eq!(v, vec![(5, 6), (11, 6), (17, 3)]);
    }
}
