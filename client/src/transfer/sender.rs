//! The sending end of one file transfer, without I/O (SPEC.md §8.3).
//!
//! The tokio layer feeds it what happened (accept, complete, cancel, connection lost, pump
//! finished) and does what it answers: send an offer, start streaming from an offset, report
//! completion. Resuming is the same path as a first offer: after a dropped connection the
//! transfer returns to [`SenderState::Pending`] and the same id is offered again.
//!
//! Two kinds of offer (SPEC.md §8.3.1): with the SHA-256 of the file (version 1; the hash is
//! computed by the I/O layer only when a connection without `file-blake3` needs it), or
//! streamed-hash, where the pump hashes BLAKE3 while it sends and ends with FileDigest. A
//! transfer keeps the kind of its first offer.

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

/// What the I/O layer must do to offer a pending transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferStep {
    /// Send this offer (state becomes `Offered`).
    Send(FileOfferFrame),
    /// The connection cannot take a streamed-hash offer and the SHA-256 is not known yet:
    /// hash the file, give the result to [`FileSender::set_sha256`], then offer again.
    NeedSha256,
    /// A streamed-hash transfer cannot be re-offered on a connection without `file-blake3`
    /// (the friend's client changed): cancel it; the user sends the file again (SPEC.md
    /// §8.3.1 rule 1).
    Unsupported,
    /// Nothing to offer (not pending).
    Nothing,
}

/// How an offer's hash is given (SPEC.md §8.3, §8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// Not offered yet: decided at the first offer.
    Undecided,
    /// SHA-256 in the offer.
    Sha256,
    /// BLAKE3 in FileDigest after the last chunk.
    Streamed,
}

/// What the I/O layer must do after an accepted offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStep {
    /// Stream bytes `from..size` (for a streamed-hash transfer, hash `0..from` first and end
    /// with FileDigest; `from` may then equal the size).
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
    sha256: Option<[u8; 32]>,
    kind: HashKind,
    state: SenderState,
    /// Bytes the receiver holds according to its last FileAccept plus what we streamed since.
    sent: u64,
}

impl FileSender {
    /// A transfer not yet offered. `sha256`: the hash if the caller already has it (a
    /// transfer restored from history, or a caller that vouches for it); such a transfer is
    /// offered with it, so that a re-offer after a restart equals the first offer.
    pub fn new(id: TransferId, name: String, size: u64, sha256: Option<[u8; 32]>) -> Self {
        Self {
            id,
            name,
            size,
            sha256,
            kind: if sha256.is_some() {
                HashKind::Sha256
            } else {
                HashKind::Undecided
            },
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

    /// How this transfer's hash is given.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// The SHA-256, if known.
    pub fn sha256(&self) -> Option<[u8; 32]> {
        self.sha256
    }

    /// The I/O layer computed the SHA-256 ([`OfferStep::NeedSha256`]).
    pub fn set_sha256(&mut self, sha256: [u8; 32]) {
        self.sha256 = Some(sha256);
    }

    /// What to do to offer the transfer on a connection where `streamed_ok` says whether
    /// both hellos named `file-blake3`. A new transfer is offered streamed where it can be
    /// (no pre-hash pass); one first offered with a SHA-256 keeps it (SPEC.md §8.3.1 rule 1).
    pub fn offer(&mut self, streamed_ok: bool) -> OfferStep {
        if self.state != SenderState::Pending {
            return OfferStep::Nothing;
        }
        let kind = match self.kind {
            HashKind::Undecided if streamed_ok => HashKind::Streamed,
            HashKind::Undecided => HashKind::Sha256,
            HashKind::Streamed if !streamed_ok => return OfferStep::Unsupported,
            k => k,
        };
        let sha256 = match kind {
            HashKind::Streamed => None,
            _ => match self.sha256 {
                Some(h) => Some(h),
                None => return OfferStep::NeedSha256,
            },
        };
        self.kind = kind;
        self.state = SenderState::Offered;
        OfferStep::Send(FileOfferFrame {
            id: self.id.0,
            name: self.name.clone(),
            size: self.size,
            sha256,
        })
    }

    /// True if this transfer's pump must hash and end with FileDigest.
    pub fn streams_digest(&self) -> bool {
        self.kind == HashKind::Streamed
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
        if offset == self.size && self.kind != HashKind::Streamed {
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
        FileSender::new(TransferId([1; 16]), "a.bin".into(), size, Some([9; 32]))
    }

    fn sent(step: OfferStep) -> FileOfferFrame {
        match step {
            OfferStep::Send(o) => o,
            other => panic!("expected an offer, got {other:?}"),
        }
    }

    #[test]
    fn offer_accept_stream_complete() {
        let mut s = sender(1000);
        let offer = sent(s.offer(false));
        assert_eq!(
            (offer.size, offer.name.as_str(), offer.sha256),
            (1000, "a.bin", Some([9; 32]))
        );
        assert_eq!(
            s.offer(false),
            OfferStep::Nothing,
            "offered only once per connection"
        );
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
        s.offer(false);
        assert!(s.on_accept(0).is_ok());
        s.on_streamed(300);
        s.on_disconnect();
        assert_eq!(s.state(), &SenderState::Pending);
        let again = sent(s.offer(false));
        assert_eq!(again.id, [1; 16]);
        assert_eq!(s.on_accept(300), Ok(AcceptStep::Stream { from: 300 }));
        assert_eq!(s.sent(), 300);
    }

    #[test]
    fn accept_rules() {
        let mut s = sender(10);
        assert!(s.on_accept(0).is_err(), "accept before offer");
        s.offer(false);
        assert!(s.on_accept(11).is_err(), "offset beyond size");
        assert_eq!(s.on_accept(10), Ok(AcceptStep::NothingToSend));
        assert!(s.on_accept(0).is_err(), "second accept");
        assert!(s.on_complete().is_ok());
    }

    #[test]
    fn empty_file_needs_no_chunks() {
        let mut s = sender(0);
        s.offer(false);
        assert_eq!(s.on_accept(0), Ok(AcceptStep::NothingToSend));
        assert_eq!(chunk_ranges(0, 0, 4).count(), 0);
    }

    #[test]
    fn complete_after_reoffer_when_receiver_already_finished() {
        let mut s = sender(5);
        s.offer(false);
        assert!(s.on_complete().is_ok());
        let mut fresh = sender(5);
        assert!(fresh.on_complete().is_err(), "complete before any offer");
    }

    #[test]
    fn cancel_is_final() {
        let mut s = sender(5);
        s.offer(false);
        s.on_cancel(FileCancelReason::Declined);
        s.on_disconnect();
        assert_eq!(
            s.state(),
            &SenderState::Cancelled(FileCancelReason::Declined)
        );
        assert_eq!(s.offer(false), OfferStep::Nothing);
    }

    #[test]
    fn streamed_offers_need_no_hash_and_keep_their_kind() {
        let mut s = FileSender::new(TransferId([1; 16]), "a.bin".into(), 10, None);
        assert_eq!(sent(s.offer(true)).sha256, None, "no pre-hash pass");
        assert!(s.streams_digest());
        assert_eq!(
            s.on_accept(10),
            Ok(AcceptStep::Stream { from: 10 }),
            "all held: the pump still sends FileDigest"
        );
        s.on_disconnect();
        assert_eq!(
            s.offer(false),
            OfferStep::Unsupported,
            "a connection without the feature cannot take the streamed re-offer (SPEC.md \
             §8.3.1 rule 1)"
        );
        assert_eq!(sent(s.offer(true)).sha256, None);
    }

    #[test]
    fn sha256_offers_wait_for_the_hash_and_stay_sha256() {
        let mut s = FileSender::new(TransferId([1; 16]), "a.bin".into(), 10, None);
        assert_eq!(s.offer(false), OfferStep::NeedSha256);
        assert_eq!(s.state(), &SenderState::Pending);
        s.set_sha256([5; 32]);
        assert_eq!(sent(s.offer(false)).sha256, Some([5; 32]));
        s.on_disconnect();
        assert_eq!(
            sent(s.offer(true)).sha256,
            Some([5; 32]),
            "the re-offer is identical even where streaming is possible"
        );
        assert!(!s.streams_digest());
    }

    #[test]
    fn chunking_covers_the_range_exactly() {
        let v: Vec<_> = chunk_ranges(5, 20, 6).collect();
        assert_eq!(v, vec![(5, 6), (11, 6), (17, 3)]);
    }
}
