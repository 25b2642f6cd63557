//! What one peer connection may cost us (SPEC.md §7.9), without I/O.
//!
//! A friend's client is trusted to be the friend, not to be well-behaved. Two rules live
//! here: the byte budget of a connection's send queue (a peer that does not read must not
//! make our memory grow with our answers to it) and the Ping bucket (a Ping flood is closed
//! with RATE_LIMITED). The session task applies them; the decisions are plain functions of
//! counters and `now`, so they are tested row by row below.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Bookkeeping bytes counted per queued frame on top of its encoded length: a queue of
/// tiny frames (acks, cancels) costs more memory than its wire bytes.
pub const FRAME_OVERHEAD: usize = 64;

/// The bytes queued for one connection and not yet written to its socket (SPEC.md §7.9
/// rule 1). Shared by every sender on the connection and its writer task.
#[derive(Debug)]
pub struct SendBudget {
    queued: AtomicUsize,
    limit: usize,
}

impl SendBudget {
    /// An empty queue allowed to hold `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            limit,
        }
    }

    /// Reserves `cost` bytes for a frame about to be queued. False, and nothing reserved,
    /// when that would exceed the limit: the caller closes the connection as a slow consumer.
    pub fn try_reserve(&self, cost: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(cost).filter(|n| *n <= self.limit)
            })
            .is_ok()
    }

    /// The writer wrote frames worth `cost` bytes to the socket.
    pub fn release(&self, cost: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(cost))
            });
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// The cost of queueing a frame of `encoded_len` bytes.
pub fn frame_cost(encoded_len: usize) -> usize {
    encoded_len + FRAME_OVERHEAD
}

/// Bytes of received frames one friend's connections may have in memory between their readers
/// and the disk: in the peer event queue, in the core, in a disk writer's queue. The readers
/// stop reading (TCP then pushes back on the friend) until frames are dropped. Without it a
/// fast sender filled the 64-event queue with 256 KiB chunks and the receiver's peak RSS was
/// 51-62 MiB (docs/PERFORMANCE.md); 2 MiB is eight chunks, enough to keep the disk busy.
pub const PEER_RECV_BUDGET: usize = 2 * 1024 * 1024;

/// A receive byte budget ([`PEER_RECV_BUDGET`]; one per friend, [`RecvBudgets`]). A frame's
/// bytes carry its share of the budget and give it back when the last copy of them is dropped
/// (after the disk writer wrote them), so the budget counts memory wherever the frame went.
#[derive(Debug, Clone)]
pub struct RecvBudget {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    limit: usize,
}

/// A frame's bytes and the budget they hold (see [`RecvBudget::hold`]).
struct Held {
    bytes: bytes::Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl RecvBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(limit)),
            limit,
        }
    }

    /// Waits until `frame` fits the budget, then returns the same bytes bound to their share
    /// (a frame larger than the whole budget takes all of it).
    pub async fn hold(&self, frame: bytes::Bytes) -> bytes::Bytes {
        let cost = frame_cost(frame.len()).min(self.limit);
        let n = u32::try_from(cost).unwrap_or(u32::MAX);
        match self.permits.clone().acquire_many_owned(n).await {
            Ok(permit) => bytes::Bytes::from_owner(Held {
                bytes: frame,
                _permit: permit,
            }),
            // The semaphore is never closed.
            Err(_) => frame,
        }
    }

    /// Bytes of the budget in use now.
    pub fn in_use(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

/// The receive budgets of every friend, each shared by all of that friend's connections.
///
/// Why per friend and not per connection: a received chunk keeps its share until the disk
/// writer has written it, which may be after its connection closed (the driver never waits
/// on a writer, so the writer's queue is bounded only by these budgets). With a fresh budget
/// per connection, a friend that reconnected as fast as it could, sending a budget's worth
/// of chunks on each connection, could make the queue behind a slow disk grow by a budget
/// per connection. Shared, everything one friend has in flight stays within one budget; a
/// duplicate connection during the overlap of §7.3 waits for the other's chunks to drain.
#[derive(Debug, Clone, Default)]
pub struct RecvBudgets(
    std::sync::Arc<std::sync::Mutex<crate::fast_hash::FastMap<String, RecvBudget>>>,
);

impl RecvBudgets {
    /// The budget of `friend`'s connections (created at the first).
    pub fn of(&self, friend: &str) -> RecvBudget {
        match self.0.lock() {
            Ok(mut map) => map
                .entry(friend.to_owned())
                .or_insert_with(|| RecvBudget::new(PEER_RECV_BUDGET))
                .clone(),
            // Poisoned (a panic elsewhere while holding it): a budget of its own still
            // bounds this connection.
            Err(_) => RecvBudget::new(PEER_RECV_BUDGET),
        }
    }
}

/// The Ping bucket of one connection (SPEC.md §7.9 rule 3): `burst` tokens, refilled at
/// `rate` per second; a Ping that finds it empty ends the connection.
#[derive(Debug, Clone)]
pub struct PingBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl PingBucket {
    /// A full bucket at `now`.
    pub fn new(burst: u32, rate: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate: f64::from(rate),
            at: now,
        }
    }

    /// A Ping arrived at `now`: true if it is within the limit.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at);
        self.at = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a Ping would be accepted again (for logs).
    pub fn wait(&self) -> Duration {
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_friends_connections_share_one_receive_budget() {
        let budgets = RecvBudgets::default();
        let (first, second) = (budgets.of("bob"), budgets.of("bob"));
        let held = first.hold(bytes::Bytes::from(vec![0u8; 1000])).await;
        assert_eq!(
            second.in_use(),
            frame_cost(1000),
            "a reconnect sees what is held"
        );
        assert_eq!(
            budgets.of("carol").in_use(),
            0,
            "another friend has its own"
        );
        drop(held);
        assert_eq!(second.in_use(), 0);
    }

    #[tokio::test]
    async fn received_bytes_hold_the_budget_until_their_last_copy_is_dropped() {
        let b = RecvBudget::new(1000);
        let a = b.hold(bytes::Bytes::from(vec![1u8; 400])).await;
        let slice = a.slice(10..20);
        drop(a);
        assert_eq!(b.in_use(), 464, "a slice still pins the frame");
        let c = b.hold(bytes::Bytes::from(vec![2u8; 400])).await;
        assert_eq!(b.in_use(), 928);
        // A third frame must wait for the first to go.
        let third = b.hold(bytes::Bytes::from(vec![3u8; 100]));
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(slice);
        let t = third.await;
        assert_eq!(&t[..], &[3u8; 100][..]);
        drop((c, t));
        assert_eq!(b.in_use(), 0);
        // Bigger than the budget: takes all of it, never waits forever.
        let big = b.hold(bytes::Bytes::from(vec![0u8; 5000])).await;
        assert_eq!(b.in_use(), 1000);
        drop(big);
    }

    #[test]
    fn the_budget_refuses_what_does_not_fit_and_frees_what_was_written() {
        let b = SendBudget::new(1000);
        assert!(b.try_reserve(600));
        assert!(!b.try_reserve(401), "1001 > 1000: refused");
        assert_eq!(b.queued(), 600, "a refused frame reserves nothing");
        assert!(b.try_reserve(400), "exactly the limit fits");
        b.release(1000);
        assert_eq!(b.queued(), 0);
        b.release(5);
        assert_eq!(b.queued(), 0, "never below zero");
        assert!(!b.try_reserve(usize::MAX), "no overflow");
    }

    #[test]
    fn tiny_frames_cost_their_bookkeeping_too() {
        let b = SendBudget::new(frame_cost(10) * 3);
        assert!((0..3).all(|_| b.try_reserve(frame_cost(10))));
        assert!(!b.try_reserve(frame_cost(0)));
    }

    #[test]
    fn a_ping_flood_empties_the_bucket_and_a_pinger_at_the_rate_never_does() {
        let t0 = Instant::now();
        let mut flood = PingBucket::new(10, 10, t0);
        let accepted = (0..100).filter(|_| flood.take(t0)).count();
        assert_eq!(accepted, 10, "a burst of 10 at one instant");
        assert!(flood.wait() > Duration::ZERO);
        assert!(
            flood.take(t0 + Duration::from_millis(100)),
            "one token back after 100 ms"
        );

        let mut polite = PingBucket::new(10, 10, t0);
        for i in 1..1000u64 {
            assert!(polite.take(t0 + Duration::from_secs(i)), "ping {i}");
        }
    }
}
