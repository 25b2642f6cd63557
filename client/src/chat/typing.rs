//! Typing-indicator timing (SPEC.md §8.2), with the clock passed in.

use std::collections::HashMap;
use std::time::Instant;

use peerchat_proto::limits::{TYPING_EXPIRY, TYPING_INTERVAL};

/// Rate-limits our Typing{active} frames and expires the friends' ones.
#[derive(Debug, Default)]
pub struct TypingTracker {
    sent_at: HashMap<String, Instant>,
    remote_until: HashMap<String, Instant>,
}

impl TypingTracker {
    /// The user is typing to `friend` at `now`: true if a Typing{active:true} should go out
    /// (at most one per TYPING_INTERVAL).
    pub fn should_send_active(&mut self, friend: &str, now: Instant) -> bool {
        match self.sent_at.get(friend) {
            Some(t) if now.saturating_duration_since(*t) < TYPING_INTERVAL => false,
            _ => {
                self.sent_at.insert(friend.to_owned(), now);
                true
            }
        }
    }

    /// The user stopped typing (or sent the message): the next keystroke sends again.
    pub fn stopped(&mut self, friend: &str) {
        self.sent_at.remove(friend);
    }

    /// `friend` sent Typing{active} at `now`. Returns true if the UI state changed.
    pub fn on_remote(&mut self, friend: &str, active: bool, now: Instant) -> bool {
        if active {
            self.remote_until
                .insert(friend.to_owned(), now + TYPING_EXPIRY)
                .is_none()
        } else {
            self.remote_until.remove(friend).is_some()
        }
    }

    /// `friend`'s indicator is hidden for another reason (a message from them, the link
    /// closed: SPEC.md §8.5.2 C13).
    pub fn hide(&mut self, friend: &str) {
        self.remote_until.remove(friend);
    }

    /// When the next indicator expires (for a sans-IO caller's timer).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.remote_until.values().min().copied()
    }

    /// Friends whose typing indicator expired at `now` (each reported once).
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .remote_until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(f, _)| f.clone())
            .collect();
        for f in &gone {
            self.remote_until.remove(f);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sends_at_most_every_interval() {
        let t = Instant::now();
        let mut tr = TypingTracker::default();
        assert!(tr.should_send_active("bob", t));
        assert!(!tr.should_send_active("bob", t + Duration::from_secs(1)));
        assert!(tr.should_send_active("bob", t + TYPING_INTERVAL));
        tr.stopped("bob");
        assert!(tr.should_send_active("bob", t + TYPING_INTERVAL + Duration::from_millis(1)));
    }

    #[test]
    fn remote_typing_expires() {
        let t = Instant::now();
        let mut tr = TypingTracker::default();
        assert!(tr.on_remote("bob", true, t));
        assert!(
            !tr.on_remote("bob", true, t + Duration::from_secs(1)),
            "refresh is not a change"
        );
        assert!(tr.expire(t + Duration::from_secs(2)).is_empty());
        assert_eq!(
            tr.expire(t + Duration::from_secs(1) + TYPING_EXPIRY),
            vec!["bob".to_owned()]
        );
        assert!(tr.expire(t + Duration::from_secs(60)).is_empty());
        assert!(!tr.on_remote("bob", false, t));
    }
}
