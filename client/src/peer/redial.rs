//! When to dial a friend again (SPEC.md §7.4 rule 4, §8.5.1 L30–L35), as a pure policy: the
//! caller passes `now` to every call, so each rule below is a unit test.
//!
//! - A failed attempt (the whole connection order of §7.6 ran out) makes the next one wait:
//!   1 s, then 2, 4 … up to 60 s (`RECONNECT_BACKOFF_MIN` → `_MAX`). The wait grows with
//!   **attempts over time**, not with calls: a failure reported while the previous wait has
//!   not run out (an attempt that was already under way, a second report of the same one)
//!   does not double it again, and no attempt starts before the wait runs out, however many
//!   messages are queued meanwhile.
//! - The friend coming back resets it: `FriendOnline`, a changed endpoint or key, a new
//!   friend list, and any link that reaches OPEN (an incoming one included).
//! - A link the friend closed with `Close{NORMAL}`, `{IDLE_TIMEOUT}` or
//!   `{DUPLICATE_CONNECTION}` may be redialled at once when something is pending (L30–L32);
//!   after `Close{NOT_A_FRIEND}` no dial until the friend list, key or endpoint changes (L33);
//!   after any other reason (L34, L35) or an end without `Close` (L6), no sooner than a failed
//!   attempt's wait — a friend that keeps dropping our links is not redialled in a loop.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use peerchat_proto::wire::CloseReason;

/// One friend's redial state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The wait after the next failed attempt.
    next_wait: Duration,
    /// No attempt before this.
    not_before: Option<Instant>,
    /// The friend closed with NOT_A_FRIEND: no attempt until [`Redial::reset`].
    refused: bool,
}

/// Redial decisions for every friend.
#[derive(Debug, Clone)]
pub struct Redial {
    min: Duration,
    max: Duration,
    friends: HashMap<String, Entry>,
}

impl Redial {
    /// Waits from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            friends: HashMap::new(),
        }
    }

    /// Whether an attempt toward `k` may start now (the caller also checks that no link is
    /// open and no attempt runs).
    pub fn may_dial(&self, k: &str, now: Instant) -> bool {
        self.friends
            .get(k)
            .is_none_or(|e| !e.refused && e.not_before.is_none_or(|at| at <= now))
    }

    /// The instant before which no attempt toward `k` starts, if any.
    pub fn not_before(&self, k: &str) -> Option<Instant> {
        self.friends.get(k).and_then(|e| e.not_before)
    }

    /// True if `k` closed with NOT_A_FRIEND and nothing changed since (L33).
    pub fn is_refused(&self, k: &str) -> bool {
        self.friends.get(k).is_some_and(|e| e.refused)
    }

    /// An attempt toward `k` failed at `now`.
    pub fn on_attempt_failed(&mut self, k: &str, now: Instant) {
        let min = self.min;
        let max = self.max;
        let e = self.entry(k);
        if e.not_before.is_some_and(|at| now < at) {
            // Still inside the previous wait: the same round, not a new one.
            return;
        }
        e.not_before = Some(now + e.next_wait);
        e.next_wait = (e.next_wait * 2).clamp(min, max);
    }

    /// An OPEN link with `k` closed at `now`; `friend_close` is the reason of the friend's
    /// `Close`, if it sent one.
    pub fn on_link_closed(&mut self, k: &str, now: Instant, friend_close: Option<CloseReason>) {
        match friend_close {
            Some(
                CloseReason::Normal | CloseReason::IdleTimeout | CloseReason::DuplicateConnection,
            ) => {}
            Some(CloseReason::NotAFriend) => self.entry(k).refused = true,
            _ => self.on_attempt_failed(k, now),
        }
    }

    /// The friend is back or changed (FriendOnline, endpoint or key change, friend list) or
    /// a link with it reached OPEN: the next attempt may start at once, from the shortest
    /// wait.
    pub fn reset(&mut self, k: &str) {
        self.friends.remove(k);
    }

    /// The user logged out: nothing is dialled until the next login, and every friend's
    /// next attempt then starts from the shortest wait.
    pub fn clear(&mut self) {
        self.friends.clear();
    }

    /// Friends whose wait ran out by `now` (the caller dials those with something pending,
    /// and calls [`Redial::settle`] for the others).
    pub fn due(&self, now: Instant) -> Vec<String> {
        self.friends
            .iter()
            .filter(|(_, e)| !e.refused && e.not_before.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Nothing is pending for `k` any more: its wait no longer needs watching (the back-off
    /// itself is kept until a reset, so the next failure still waits longer).
    pub fn settle(&mut self, k: &str) {
        if let Some(e) = self.friends.get_mut(k) {
            e.not_before = None;
        }
    }

    fn entry(&mut self, k: &str) -> &mut Entry {
        let min = self.min;
        self.friends.entry(k.to_owned()).or_insert(Entry {
            next_wait: min,
            not_before: None,
            refused: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> (Redial, Instant) {
        (
            Redial::new(Duration::from_secs(1), Duration::from_secs(60)),
            Instant::now(),
        )
    }
    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_friend_never_tried_may_be_dialled() {
        let (r, t) = policy();
        assert!(r.may_dial("bob", t));
        assert_eq!(r.not_before("bob"), None);
    }

    #[test]
    fn failed_attempts_wait_1_2_4_up_to_60_s_over_time() {
        let (mut r, mut t) = policy();
        let mut waits = Vec::new();
        for _ in 0..9 {
            r.on_attempt_failed("bob", t);
            let Some(at) = r.not_before("bob") else {
                panic!("a failed attempt sets a wait")
            };
            waits.push((at - t).as_secs());
            assert!(!r.may_dial("bob", t), "no attempt inside the wait");
            t = at;
            assert!(r.may_dial("bob", t), "an attempt when the wait ran out");
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn failures_reported_inside_the_wait_do_not_double_it() {
        // The bug: 27 refused dials in 0.1 s reached the 60 s cap.
        let (mut r, t) = policy();
        for i in 0..27 {
            r.on_attempt_failed("bob", t + Duration::from_millis(i * 3));
        }
        assert_eq!(r.not_before("bob"), Some(t + s(1)));
        r.on_attempt_failed("bob", t + s(1));
        assert_eq!(
            r.not_before("bob"),
            Some(t + s(3)),
            "the next round waits 2 s"
        );
    }

    #[test]
    fn queued_messages_do_not_start_attempts_inside_the_wait() {
        let (mut r, t) = policy();
        r.on_attempt_failed("bob", t);
        for ms in [1, 10, 500, 999] {
            assert!(!r.may_dial("bob", t + Duration::from_millis(ms)));
        }
        assert!(r.may_dial("bob", t + s(1)));
    }

    #[test]
    fn friend_online_or_a_link_resets_the_wait() {
        let (mut r, mut t) = policy();
        for _ in 0..6 {
            r.on_attempt_failed("bob", t);
            t = r.not_before("bob").unwrap_or(t);
        }
        r.on_attempt_failed("bob", t);
        assert!(!r.may_dial("bob", t));
        r.reset("bob");
        assert!(r.may_dial("bob", t), "FriendOnline: dial at once");
        r.on_attempt_failed("bob", t);
        assert_eq!(
            r.not_before("bob"),
            Some(t + s(1)),
            "from the shortest wait again"
        );
    }

    #[test]
    fn l30_l31_l32_a_link_closed_normally_may_be_redialled_at_once() {
        let (mut r, t) = policy();
        for reason in [
            CloseReason::Normal,
            CloseReason::IdleTimeout,
            CloseReason::DuplicateConnection,
        ] {
            r.on_link_closed("bob", t, Some(reason));
            assert!(r.may_dial("bob", t), "{reason:?}");
        }
    }

    #[test]
    fn l35_l6_other_reasons_and_a_dropped_link_wait_like_a_failed_attempt() {
        for reason in [
            None,
            Some(CloseReason::ProtocolError),
            Some(CloseReason::MalformedFrame),
            Some(CloseReason::Unspecified),
            Some(CloseReason::SlowConsumer),
        ] {
            let (mut r, t) = policy();
            r.on_link_closed("bob", t, reason);
            assert!(!r.may_dial("bob", t), "{reason:?}");
            assert!(r.may_dial("bob", t + s(1)), "{reason:?}");
        }
    }

    #[test]
    fn l33_not_a_friend_stops_dialling_until_something_changes() {
        let (mut r, t) = policy();
        r.on_link_closed("bob", t, Some(CloseReason::NotAFriend));
        assert!(r.is_refused("bob"));
        assert!(!r.may_dial("bob", t + s(3600)));
        assert!(r.due(t + s(3600)).is_empty());
        r.reset("bob");
        assert!(r.may_dial("bob", t));
    }

    #[test]
    fn l34_rate_limited_waits_like_a_failed_attempt() {
        let (mut r, t) = policy();
        r.on_link_closed("bob", t, Some(CloseReason::RateLimited));
        assert!(!r.may_dial("bob", t));
        assert!(r.may_dial("bob", t + s(1)));
    }

    #[test]
    fn due_lists_waits_that_ran_out_and_settle_stops_watching() {
        let (mut r, t) = policy();
        r.on_attempt_failed("bob", t);
        r.on_attempt_failed("carol", t);
        r.on_attempt_failed("carol", t + s(1));
        let mut due = r.due(t + s(1));
        due.sort();
        assert_eq!(due, vec!["bob".to_string()]);
        r.settle("bob");
        assert!(r.due(t + s(10)).iter().all(|k| k != "bob"));
        r.on_attempt_failed("bob", t + s(10));
        assert_eq!(r.not_before("bob"), Some(t + s(12)), "the back-off is kept");
    }
}
