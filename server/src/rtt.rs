//! The round-trip-time estimate of one connection (SPEC.md §7.6 "Synchronising the punch").
//!
//! The server times its own Pings: the one it sends right after LoginOk and the idle pings
//! of SPEC.md §3.6. The estimate is TCP's smoothed RTT (RFC 6298: the first sample as is,
//! then 7/8 of the old value plus 1/8 of the new sample), so one delayed Pong does not throw
//! a punch's timing off. Pure: the connection passes `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Pings remembered at once; older ones are forgotten (their Pongs then count for nothing).
const OUTSTANDING: usize = 8;

/// Outstanding Pings and the smoothed RTT of one connection.
#[derive(Debug, Default, Clone)]
pub struct RttEstimator {
    outstanding: VecDeque<(u64, Instant)>,
    smoothed: Option<Duration>,
}

impl RttEstimator {
    /// No sample yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that a Ping with `nonce` left at `now`.
    pub fn ping_sent(&mut self, nonce: u64, now: Instant) {
        if self.outstanding.len() == OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((nonce, now));
    }

    /// Takes a Pong with `nonce` received at `now`. Returns the new estimate if the Pong
    /// answered one of our Pings (a Pong that matches nothing is ignored, SPEC.md §3.6).
    pub fn pong_received(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        let i = self.outstanding.iter().position(|(n, _)| *n == nonce)?;
        let (_, sent) = self.outstanding.remove(i)?;
        // Pings older than the answered one are answered in order or not at all.
        self.outstanding.drain(..i);
        let sample = now.saturating_duration_since(sent);
        let next = match self.smoothed {
            None => sample,
            Some(old) => (old * 7 + sample) / 8,
        };
        self.smoothed = Some(next);
        Some(next)
    }

    /// The current estimate, if any Pong has been timed.
    pub fn estimate(&self) -> Option<Duration> {
        self.smoothed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_then_smoothed() {
        let t0 = Instant::now();
        let mut r = RttEstimator::new();
        assert_eq!(r.estimate(), None);
        r.ping_sent(1, t0);
        assert_eq!(r.pong_received(1, t0 + ms(80)), Some(ms(80)));
        r.ping_sent(2, t0 + ms(1000));
        // 7/8 * 80 + 1/8 * 160 = 90
        assert_eq!(r.pong_received(2, t0 + ms(1160)), Some(ms(90)));
        assert_eq!(r.estimate(), Some(ms(90)));
    }

    #[test]
    fn unknown_and_repeated_pongs_are_ignored() {
        let t0 = Instant::now();
        let mut r = RttEstimator::new();
        r.ping_sent(5, t0);
        assert_eq!(r.pong_received(6, t0 + ms(10)), None);
        assert_eq!(r.pong_received(5, t0 + ms(20)), Some(ms(20)));
        assert_eq!(r.pong_received(5, t0 + ms(30)), None, "answered once only");
        assert_eq!(r.estimate(), Some(ms(20)));
    }

    #[test]
    fn answering_a_later_ping_forgets_the_earlier_ones() {
        let t0 = Instant::now();
        let mut r = RttEstimator::new();
        r.ping_sent(1, t0);
        r.ping_sent(2, t0 + ms(100));
        assert_eq!(r.pong_received(2, t0 + ms(150)), Some(ms(50)));
        assert_eq!(r.pong_received(1, t0 + ms(160)), None);
    }

    #[test]
    fn outstanding_pings_are_bounded() {
        let t0 = Instant::now();
        let mut r = RttEstimator::new();
        for n in 0..20 {
            r.ping_sent(n, t0);
        }
        assert_eq!(r.pong_received(0, t0 + ms(1)), None, "forgotten");
        assert_eq!(r.pong_received(19, t0 + ms(1)), Some(ms(1)));
    }
}
