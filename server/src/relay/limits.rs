//! Relay byte-rate limits (SPEC.md §7.7 rule 2): `RELAY_LINK_RATE` per link and direction,
//! `RELAY_SERVER_RATE` for all links together, enforced by reading no faster.
//!
//! A [`ByteBucket`] lets a read go into debt and says how long the reader must pause before
//! its next read; the pump never holds more than one read's worth of bytes, so TCP
//! back-pressure slows the sender and nothing is dropped. Pure: `now` is an argument.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A byte-rate bucket that may go into debt by one read.
#[derive(Debug, Clone)]
pub struct ByteBucket {
    /// Bytes per second.
    rate: f64,
    /// Most tokens saved up while idle: a tenth of a second's worth (at least one byte), so a
    /// link that was quiet cannot burst far above its rate.
    capacity: f64,
    /// May be negative: bytes already moved that the rate has not yet paid for.
    tokens: f64,
    last: Instant,
}

impl ByteBucket {
    /// A full bucket for `rate` bytes per second (0 is read as 1).
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1) as f64;
        let capacity = (rate / 10.0).max(1.0);
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// How many bytes one read should ask for at most, so that one read's debt stays small
    /// compared with a second's worth: an eighth of the rate, between 1 byte and `max`.
    pub fn read_size(&self, max: usize) -> usize {
        ((self.rate / 8.0) as usize).clamp(1, max.max(1))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Charges `n` bytes just moved at `now`; returns how long to wait before reading again
    /// (zero while the bucket is not in debt).
    pub fn consume(&mut self, n: usize, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n as f64;
        self.wait(now)
    }

    /// How long from `now` until the bucket is out of debt.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The server-wide bucket, shared by every relay pump.
#[derive(Debug, Clone)]
pub struct SharedBucket(Arc<Mutex<ByteBucket>>);

impl SharedBucket {
    /// A bucket for `rate` bytes per second.
    pub fn new(rate: u64) -> Self {
        Self(Arc::new(Mutex::new(ByteBucket::new(rate, Instant::now()))))
    }

    /// See [`ByteBucket::consume`].
    pub fn consume(&self, n: usize, now: Instant) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .consume(n, now)
    }

    /// See [`ByteBucket::wait`].
    pub fn wait(&self, now: Instant) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .wait(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn within_the_saved_tokens_no_wait() {
        let t0 = Instant::now();
        let mut b = ByteBucket::new(1000, t0);
        // capacity = 100 bytes
        assert_eq!(b.consume(100, t0), Duration::ZERO);
        assert_eq!(b.consume(1, t0), ms(1));
    }

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let t0 = Instant::now();
        let mut b = ByteBucket::new(1000, t0);
        // 100 saved, 600 read: 500 bytes of debt = 500 ms at 1000 B/s.
        assert_eq!(b.consume(600, t0), ms(500));
        assert_eq!(b.wait(t0 + ms(200)), ms(300));
        assert_eq!(b.wait(t0 + ms(500)), Duration::ZERO);
    }

    #[test]
    fn average_rate_over_many_reads_is_the_rate() {
        // A pump that reads 125 bytes, then waits as told, moves 1000 B/s on a virtual clock.
        let t0 = Instant::now();
        let mut b = ByteBucket::new(1000, t0);
        let size = b.read_size(65536);
        assert_eq!(size, 125);
        let mut now = t0;
        let mut moved = 0usize;
        while now < t0 + Duration::from_secs(10) {
            moved += size;
            now += b.consume(size, now);
        }
        // 10 s at 1000 B/s plus the 100 bytes saved at the start and one read.
        assert!((10_000..=10_000 + 100 + size).contains(&moved), "{moved}");
    }

    #[test]
    fn idle_time_saves_only_a_tenth_of_a_second() {
        let t0 = Instant::now();
        let mut b = ByteBucket::new(1000, t0);
        b.consume(100, t0);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.consume(100, later), Duration::ZERO);
        assert_eq!(b.consume(50, later), ms(50));
    }

    #[test]
    fn read_size_is_bounded() {
        let t0 = Instant::now();
        assert_eq!(ByteBucket::new(8 << 20, t0).read_size(65536), 65536);
        assert_eq!(ByteBucket::new(0, t0).read_size(65536), 1);
    }

    #[test]
    fn shared_bucket_charges_everyone() {
        let t0 = Instant::now();
        let s = SharedBucket(Arc::new(Mutex::new(ByteBucket::new(1000, t0))));
        let s2 = s.clone();
        assert_eq!(s.consume(100, t0), Duration::ZERO);
        assert_eq!(s2.consume(100, t0), ms(100));
        assert_eq!(s.wait(t0), ms(100));
    }
}
