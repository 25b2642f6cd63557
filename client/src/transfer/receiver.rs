//! The receiving end of one file transfer, without I/O (SPEC.md §8.3).
//!
//! It decides which offset to accept from, checks every chunk against the byte it expects
//! next, and says when all bytes are in so that the I/O layer verifies the hash: the offered
//! SHA-256, or for a streamed-hash offer the BLAKE3 that FileDigest brings after the last
//! chunk (SPEC.md §8.3.1). The bytes themselves never pass through it.

use std::time::{Duration, Instant};

use peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
use peerchat_proto::message::FileOfferFrame;
use peerchat_proto::wire::FileCancelReason;

use super::Violation;
use crate::ids::TransferId;

/// Whether a new offer fits the receiver's budgets (SPEC.md §8.3 rule 3): `in_flight`
/// unfinished transfers from this friend already, `size` offered, `free` bytes on the
/// download volume if known. `None`: it may be accepted (or asked about).
pub fn refuse_offer(in_flight: usize, size: u64, free: Option<u64>) -> Option<FileCancelReason> {
    if in_flight >= MAX_OFFERS_IN_FLIGHT {
        Some(FileCancelReason::TooManyOffers)
    } else if size == u64::MAX || free.is_some_and(|free| size > free) {
        Some(FileCancelReason::TooLarge)
    } else {
        None
    }
}

/// True if an accepted transfer has waited for data too long (SPEC.md §8.3 rule 3a): the
/// clock runs from the accept or from the friend's last chunk of any transfer, whichever is
/// later.
pub fn is_silent(
    now: Instant,
    accepted_at: Instant,
    friend_last_chunk: Option<Instant>,
    timeout: Duration,
) -> bool {
    let since = friend_last_chunk.map_or(accepted_at, |c| c.max(accepted_at));
    now.saturating_duration_since(since) >= timeout
}

/// Where an incoming transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverState {
    /// Offered; the user has not decided yet.
    AwaitingDecision,
    /// Accepted; the next chunk must start at `next`.
    Receiving {
        /// The expected offset of the next chunk.
        next: u64,
    },
    /// Accepted, but the link it was receiving on closed (SPEC.md §8.3 SUSPENDED, §8.5.4
    /// R53): the bytes held are kept, the identical re-offer resumes from `next` (R9), and a
    /// chunk before that re-offer ends the transfer (R23).
    Suspended {
        /// Bytes held: the offset the re-offer is accepted from.
        next: u64,
    },
    /// All bytes are written; the hash is being checked.
    Verifying,
    /// Verified and moved to its final name.
    Complete,
    /// Stopped for good (declined, cancelled, hash mismatch, invalid...).
    Cancelled(FileCancelReason),
}

/// What a valid chunk means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Write it; more are expected.
    More,
    /// Write it; it was the last: verify afterwards.
    Last,
}

/// One incoming file.
#[derive(Debug, Clone)]
pub struct FileReceiver {
    offer: FileOfferFrame,
    state: ReceiverState,
    /// A FileDigest was handed to the writer (streamed-hash offers only).
    digest_seen: bool,
}

impl FileReceiver {
    /// A new offer, waiting for a decision.
    pub fn new(offer: FileOfferFrame) -> Self {
        Self {
            offer,
            state: ReceiverState::AwaitingDecision,
            digest_seen: false,
        }
    }

    /// The transfer id.
    pub fn id(&self) -> TransferId {
        TransferId(self.offer.id)
    }

    /// The offer as received (the name is untrusted).
    pub fn offer(&self) -> &FileOfferFrame {
        &self.offer
    }

    /// The current state.
    pub fn state(&self) -> &ReceiverState {
        &self.state
    }

    /// Bytes held so far.
    pub fn held(&self) -> u64 {
        match self.state {
            ReceiverState::Receiving { next } | ReceiverState::Suspended { next } => next,
            ReceiverState::Verifying | ReceiverState::Complete => self.offer.size,
            _ => 0,
        }
    }

    /// True once complete or cancelled.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            ReceiverState::Complete | ReceiverState::Cancelled(_)
        )
    }

    /// Accepts, given `held` bytes already on disk from an earlier attempt. Returns the
    /// offset to put in FileAccept and whether all bytes are already there (verify now).
    /// More bytes on disk than the offer's size cannot be a prefix of this file: start over.
    ///
    /// # Errors
    /// [`Violation`] unless the offer is waiting for a decision.
    pub fn accept(&mut self, held: u64) -> Result<(u64, ChunkOutcome), Violation> {
        if self.state != ReceiverState::AwaitingDecision {
            return Err(Violation(format!("accept in state {:?}", self.state)));
        }
        let held = if held > self.offer.size { 0 } else { held };
        if held == self.offer.size {
            self.state = ReceiverState::Verifying;
            Ok((held, ChunkOutcome::Last))
        } else {
            self.state = ReceiverState::Receiving { next: held };
            Ok((held, ChunkOutcome::More))
        }
    }

    /// The sender offered the same transfer id again (after a dropped connection).
    ///
    /// # Errors
    /// [`Violation`] if the offer differs from the first one in size or hash.
    pub fn on_reoffer(&self, offer: &FileOfferFrame) -> Result<(), Violation> {
        if offer.size != self.offer.size || offer.sha256 != self.offer.sha256 {
            return Err(Violation("re-offer differs from the original offer".into()));
        }
        Ok(())
    }

    /// True for a streamed-hash offer: the hash comes in FileDigest (SPEC.md §8.3.1).
    pub fn is_streamed(&self) -> bool {
        self.offer.sha256.is_none()
    }

    /// True while every byte is in but the streamed-hash transfer still waits for its
    /// FileDigest: it counts as waiting for data (SPEC.md §8.3 rule 3a, §8.3.1 rule 4).
    pub fn awaits_digest(&self) -> bool {
        self.is_streamed() && self.state == ReceiverState::Verifying && !self.digest_seen
    }

    /// A FileDigest arrived. `Ok(true)`: hand it to the writer; `Ok(false)`: a repeat while
    /// still verifying (the sender re-sent it after a reconnect): ignore it.
    ///
    /// # Errors
    /// [`Violation`] for an offer with a SHA-256, or before all bytes arrived (SPEC.md
    /// §8.3.1 rule 4).
    pub fn on_digest(&mut self) -> Result<bool, Violation> {
        if !self.is_streamed() {
            return Err(Violation(
                "FileDigest for a transfer offered with a SHA-256".into(),
            ));
        }
        if self.state != ReceiverState::Verifying {
            return Err(Violation(format!("FileDigest in state {:?}", self.state)));
        }
        let first = !self.digest_seen;
        self.digest_seen = true;
        Ok(first)
    }

    /// A chunk of `len` bytes at `offset` arrived.
    ///
    /// # Errors
    /// [`Violation`] if the transfer is not receiving, or the chunk is not the next expected
    /// bytes, or it runs past the size.
    pub fn on_chunk(&mut self, offset: u64, len: usize) -> Result<ChunkOutcome, Violation> {
        let ReceiverState::Receiving { next } = self.state else {
            return Err(Violation(format!("FileChunk in state {:?}", self.state)));
        };
        if offset != next {
            return Err(Violation(format!(
                "FileChunk at offset {offset}, expected {next}"
            )));
        }
        let end = offset
            .checked_add(len as u64)
            .filter(|e| *e <= self.offer.size)
            .ok_or_else(|| {
                Violation(format!("FileChunk runs past the size {}", self.offer.size))
            })?;
        if end == self.offer.size {
            self.state = ReceiverState::Verifying;
            Ok(ChunkOutcome::Last)
        } else {
            self.state = ReceiverState::Receiving { next: end };
            Ok(ChunkOutcome::More)
        }
    }

    /// The hash check finished: `Ok(())` if it matched, else the transfer is cancelled with
    /// HASH_MISMATCH.
    pub fn on_verified(&mut self, matched: bool) {
        if self.state == ReceiverState::Verifying {
            self.state = if matched {
                ReceiverState::Complete
            } else {
                ReceiverState::Cancelled(FileCancelReason::HashMismatch)
            };
        }
    }

    /// Its link closed: RECEIVING becomes SUSPENDED (R53); true if it did.
    pub fn suspend(&mut self) -> bool {
        if let ReceiverState::Receiving { next } = self.state {
            self.state = ReceiverState::Suspended { next };
            return true;
        }
        false
    }

    /// The identical re-offer on a new link (R9): SUSPENDED becomes RECEIVING; returns the
    /// offset to accept from.
    pub fn resume(&mut self) -> Option<u64> {
        if let ReceiverState::Suspended { next } = self.state {
            self.state = ReceiverState::Receiving { next };
            return Some(next);
        }
        None
    }

    /// Stops the transfer for `reason` (from either side).
    pub fn on_cancel(&mut self, reason: FileCancelReason) {
        if !self.is_finished() {
            self.state = ReceiverState::Cancelled(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(size: u64) -> FileOfferFrame {
        FileOfferFrame {
            id: [3; 16],
            name: "x".into(),
            size,
            sha256: Some([7; 32]),
        }
    }

    #[test]
    fn chunks_must_be_contiguous_and_within_size() {
        let mut r = FileReceiver::new(offer(10));
        assert!(r.on_chunk(0, 1).is_err(), "chunk before accept");
        assert_eq!(r.accept(0), Ok((0, ChunkOutcome::More)));
        assert_eq!(r.on_chunk(0, 4), Ok(ChunkOutcome::More));
        assert!(r.on_chunk(0, 4).is_err(), "replayed chunk");
        let mut r2 = r.clone();
        assert!(r2.on_chunk(5, 1).is_err(), "gap");
        let mut r3 = r.clone();
        assert!(r3.on_chunk(4, 7).is_err(), "past the end");
        assert_eq!(r.on_chunk(4, 6), Ok(ChunkOutcome::Last));
        assert_eq!(r.state(), &ReceiverState::Verifying);
        assert_eq!(r.held(), 10);
        r.on_verified(true);
        assert_eq!(r.state(), &ReceiverState::Complete);
    }

    #[test]
    fn r53_a_lost_link_suspends_and_r9_the_reoffer_resumes_and_r23_chunks_in_between_fail() {
        let mut r = FileReceiver::new(offer(10));
        assert!(!r.suspend(), "nothing to suspend before the accept");
        assert_eq!(r.accept(0), Ok((0, ChunkOutcome::More)));
        assert_eq!(r.on_chunk(0, 4), Ok(ChunkOutcome::More));
        assert!(r.suspend());
        assert_eq!(r.state(), &ReceiverState::Suspended { next: 4 });
        assert_eq!(r.held(), 4);
        assert!(
            r.clone().on_chunk(4, 1).is_err(),
            "R23: a chunk while suspended"
        );
        assert_eq!(r.resume(), Some(4));
        assert_eq!(r.on_chunk(4, 6), Ok(ChunkOutcome::Last));
        assert_eq!(r.resume(), None);
    }

    #[test]
    fn resume_accepts_from_the_bytes_on_disk() {
        let mut r = FileReceiver::new(offer(10));
        assert_eq!(r.accept(6), Ok((6, ChunkOutcome::More)));
        assert!(r.on_chunk(0, 1).is_err());
        assert_eq!(r.on_chunk(6, 4), Ok(ChunkOutcome::Last));
    }

    #[test]
    fn oversized_part_restarts_and_full_part_verifies_at_once() {
        let mut r = FileReceiver::new(offer(10));
        assert_eq!(r.accept(11), Ok((0, ChunkOutcome::More)));
        let mut r = FileReceiver::new(offer(10));
        assert_eq!(r.accept(10), Ok((10, ChunkOutcome::Last)));
        let mut empty = FileReceiver::new(offer(0));
        assert_eq!(empty.accept(0), Ok((0, ChunkOutcome::Last)));
    }

    #[test]
    fn hash_mismatch_cancels() {
        let mut r = FileReceiver::new(offer(1));
        assert!(r.accept(0).is_ok());
        assert_eq!(r.on_chunk(0, 1), Ok(ChunkOutcome::Last));
        r.on_verified(false);
        assert_eq!(
            r.state(),
            &ReceiverState::Cancelled(FileCancelReason::HashMismatch)
        );
        assert!(r.is_finished());
    }

    #[test]
    fn reoffer_must_match() {
        let r = FileReceiver::new(offer(10));
        assert!(r.on_reoffer(&offer(10)).is_ok());
        assert!(r.on_reoffer(&offer(11)).is_err());
        let mut other = offer(10);
        other.sha256 = Some([0; 32]);
        assert!(r.on_reoffer(&other).is_err());
        other.sha256 = None;
        assert!(
            r.on_reoffer(&other).is_err(),
            "a transfer keeps the kind of its first offer"
        );
    }

    #[test]
    fn a_streamed_offer_verifies_after_its_digest() {
        let mut o = offer(10);
        o.sha256 = None;
        let mut r = FileReceiver::new(o);
        assert!(r.is_streamed());
        assert_eq!(r.accept(0), Ok((0, ChunkOutcome::More)));
        assert!(r.on_digest().is_err(), "digest before the last byte");
        assert!(!r.awaits_digest());
        assert_eq!(r.on_chunk(0, 10), Ok(ChunkOutcome::Last));
        assert!(r.awaits_digest(), "silence is timed until the digest");
        assert_eq!(r.on_digest(), Ok(true));
        assert!(!r.awaits_digest());
        assert_eq!(r.on_digest(), Ok(false), "a repeat is ignored");
        r.on_verified(true);
        assert!(r.on_digest().is_err(), "after the end");

        let mut sha = FileReceiver::new(offer(1));
        assert!(sha.accept(1).is_ok());
        assert!(
            sha.on_digest().is_err(),
            "no FileDigest for a SHA-256 offer"
        );
    }

    #[test]
    fn offers_beyond_the_cap_or_the_disk_are_refused() {
        let cap = MAX_OFFERS_IN_FLIGHT;
        assert_eq!(refuse_offer(0, 10, Some(100)), None);
        assert_eq!(refuse_offer(cap - 1, 100, Some(100)), None, "exactly fits");
        assert_eq!(
            refuse_offer(cap, 1, Some(100)),
            Some(FileCancelReason::TooManyOffers)
        );
        assert_eq!(
            refuse_offer(0, 101, Some(100)),
            Some(FileCancelReason::TooLarge)
        );
        assert_eq!(
            refuse_offer(0, u64::MAX, None),
            Some(FileCancelReason::TooLarge),
            "2^64-1 bytes even when the free space is unknown"
        );
        assert_eq!(refuse_offer(0, 1 << 40, None), None, "unknown free space");
    }

    #[test]
    fn silence_counts_from_the_accept_or_the_friends_last_chunk() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let limit = s(60);
        assert!(!is_silent(t0 + s(59), t0, None, limit));
        assert!(is_silent(t0 + s(60), t0, None, limit));
        assert!(
            !is_silent(t0 + s(100), t0, Some(t0 + s(50)), limit),
            "the friend is streaming another file"
        );
        assert!(
            !is_silent(t0 + s(30), t0, Some(t0 - s(500)), limit),
            "an old chunk does not shorten a new accept's wait"
        );
    }

    #[test]
    fn cancel_is_final() {
        let mut r = FileReceiver::new(offer(10));
        r.on_cancel(FileCancelReason::Declined);
        assert!(r.accept(0).is_err());
        assert!(r.on_chunk(0, 1).is_err());
        assert_eq!(
            r.state(),
            &ReceiverState::Cancelled(FileCancelReason::Declined)
        );
    }
}
