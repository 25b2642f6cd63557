//! The §3.6 idle timers of a peer link as a pure decision (SPEC.md §8.5.1 rows L40–L43):
//! a Ping at `IDLE_PING_AFTER` of silence, another at twice that, and Close `IDLE_TIMEOUT`
//! at `IDLE_TIMEOUT`. Silence is measured from the last received frame (of any type), so
//! every frame starts the count again.

use std::time::Duration;

use peerchat_proto::limits::{IDLE_PING_AFTER, IDLE_TIMEOUT};

/// The two timers; tests shorten them (the CLI's test-only `--test-idle-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleTimers {
    /// Silence before the first Ping (the second comes at twice this).
    pub ping_after: Duration,
    /// Silence after which the link is closed.
    pub timeout: Duration,
}

impl Default for IdleTimers {
    fn default() -> Self {
        Self {
            ping_after: IDLE_PING_AFTER,
            timeout: IDLE_TIMEOUT,
        }
    }
}

impl IdleTimers {
    /// How often the link task should look at the clock: often enough that a Ping is
    /// at most a quarter of `ping_after` late, at most once a second.
    pub fn tick(&self) -> Duration {
        (self.ping_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// What the link must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// Nothing.
    Wait,
    /// Send a `Ping` with a new nonce (L40, L41).
    Ping,
    /// Close with `IDLE_TIMEOUT` (L42).
    Close,
}

/// The decision after `silence` since the last received frame, `pings_sent` Pings having
/// been sent in this silence. The caller counts the Ping it sends and resets the count
/// when a frame arrives (L43).
pub fn decide(timers: IdleTimers, silence: Duration, pings_sent: u32) -> IdleAction {
    if silence >= timers.timeout {
        return IdleAction::Close;
    }
    let due = match pings_sent {
        0 => Some(timers.ping_after),
        1 => Some(timers.ping_after * 2),
        _ => None,
    };
    match due {
        Some(at) if silence >= at => IdleAction::Ping,
        _ => IdleAction::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: IdleTimers = IdleTimers {
        ping_after: Duration::from_secs(30),
        timeout: Duration::from_secs(90),
    };
    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn l40_first_ping_after_30_s() {
        assert_eq!(decide(T, s(29), 0), IdleAction::Wait);
        assert_eq!(decide(T, s(30), 0), IdleAction::Ping);
        assert_eq!(
            decide(T, s(45), 0),
            IdleAction::Ping,
            "a late tick still pings"
        );
    }

    #[test]
    fn l41_second_ping_after_60_s_and_no_third() {
        assert_eq!(decide(T, s(30), 1), IdleAction::Wait);
        assert_eq!(decide(T, s(59), 1), IdleAction::Wait);
        assert_eq!(decide(T, s(60), 1), IdleAction::Ping);
        assert_eq!(decide(T, s(89), 2), IdleAction::Wait);
    }

    #[test]
    fn l42_close_at_90_s_whatever_was_sent() {
        for pings in 0..3 {
            assert_eq!(decide(T, s(90), pings), IdleAction::Close);
        }
    }

    #[test]
    fn l43_a_frame_restarts_the_count() {
        // The caller resets silence and the count to zero on every received frame.
        assert_eq!(decide(T, s(0), 0), IdleAction::Wait);
        assert_eq!(decide(T, s(30), 0), IdleAction::Ping);
    }

    #[test]
    fn tick_is_fine_enough_for_short_timers() {
        assert_eq!(T.tick(), s(1));
        let short = IdleTimers {
            ping_after: Duration::from_millis(1000),
            timeout: Duration::from_millis(3000),
        };
        assert_eq!(short.tick(), Duration::from_millis(250));
    }
}
