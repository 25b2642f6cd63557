//! Exponential back-off for reconnecting (no clock of its own).

use std::time::Duration;

/// Doubles the delay after every failure, from `min` up to `max`; a success resets it.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt; the one after will be twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The link works again: the next failure starts from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Scales `d` by `factor` clamped to [0.5, 1.0] (SPEC.md §6.10: every reconnect wait is
/// multiplied by a random factor in that range, so clients do not retry in lockstep). The
/// caller draws the factor, so the rule stays testable.
pub fn jittered(d: Duration, factor: f64) -> Duration {
    d.mul_f64(factor.clamp(0.5, 1.0))
}

/// How long to wait before the next automatic login after the server refused one with
/// `ERROR_CODE_RATE_LIMITED` (SPEC.md §6.10): the server's `retry_after` when it is longer
/// than our own back-off step, but never longer than `cap` (`RECONNECT_BACKOFF_MAX`). A
/// rate-limited answer costs nothing and counts as no failure (§5.1.7 rule 6), so trying again
/// after `cap` is harmless and gets the owner in as soon as the limit that hit them ends;
/// the bound also keeps a hostile `retry_after` from parking the client for days.
pub fn login_retry_delay(retry_after: Option<Duration>, step: Duration, cap: Duration) -> Duration {
    retry_after.unwrap_or_default().max(step).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_login_waits_the_longer_of_retry_after_and_the_step_within_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(login_retry_delay(None, s(2), s(60)), s(2));
        assert_eq!(login_retry_delay(Some(s(7)), s(2), s(60)), s(7));
        assert_eq!(login_retry_delay(Some(s(1)), s(4), s(60)), s(4));
        assert_eq!(login_retry_delay(Some(s(900)), s(4), s(60)), s(60));
        assert_eq!(login_retry_delay(Some(Duration::MAX), s(4), s(60)), s(60));
        assert_eq!(jittered(s(10), 0.7), Duration::from_millis(7000));
        assert_eq!(jittered(s(10), 0.1), s(5));
        assert_eq!(jittered(s(10), 3.0), s(10));
    }

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let v: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(v, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
