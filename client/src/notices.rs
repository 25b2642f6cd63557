//! Which friend-request notices are news (SPEC.md §6.9 "Queued notices" rule 2).
//!
//! The server delivers `FriendRequestAccepted`, `FriendRequestRefused` and
//! `FriendRequestExpired` to a requester who was offline *at least* once: it deletes them
//! only after the client has answered the Ping that follows them, so a connection that drops
//! right after `LoginOk` gets them again at the next login. The login snapshot before them
//! already reflects their effect, so "is this a change of the friend list?" cannot tell the
//! first delivery from a repeat. This filter remembers what the client knew before each
//! snapshot instead: the friends it had, and the requests it was waiting on. Both come from
//! the saved friend cache at start, so a repeat after a restart is recognised too.

use std::collections::HashSet;

use crate::friends::{key, FriendBook};

/// What the client knew about friends and its own requests, across snapshots.
#[derive(Debug, Default, Clone)]
pub struct NoticeFilter {
    /// Friends we already told the user about.
    known_friends: HashSet<String>,
    /// Users our requests went to and whose answer we have not shown yet.
    awaiting_answer: HashSet<String>,
}

impl NoticeFilter {
    /// Records what `book` knows just before a login snapshot replaces it.
    pub fn before_snapshot(&mut self, book: &FriendBook) {
        self.known_friends = book.friends().map(|f| key(&f.userid)).collect();
        self.awaiting_answer
            .extend(book.outgoing().iter().map(|r| key(&r.userid)));
    }

    /// We sent a request to `userid`.
    pub fn request_sent(&mut self, userid: &str) {
        self.awaiting_answer.insert(key(userid));
    }

    /// We became friends with `userid` by our own action (we accepted, or requests crossed):
    /// the user saw it happen.
    pub fn friend_added(&mut self, userid: &str) {
        self.known_friends.insert(key(userid));
        self.awaiting_answer.remove(&key(userid));
    }

    /// The friendship with `userid` ended: a later acceptance is news again.
    pub fn friend_gone(&mut self, userid: &str) {
        self.known_friends.remove(&key(userid));
    }

    /// `FriendRequestAccepted` from `userid`: true if the user has not been told yet.
    pub fn accepted(&mut self, userid: &str) -> bool {
        self.awaiting_answer.remove(&key(userid));
        self.known_friends.insert(key(userid))
    }

    /// `FriendRequestRefused` / `FriendRequestExpired` for `userid`: true if we were
    /// waiting for that answer (it was not shown before).
    pub fn answered(&mut self, userid: &str, still_listed: bool) -> bool {
        self.awaiting_answer.remove(&key(userid)) || still_listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_proto::message::{FriendInfo, PendingRequest};
    use peerchat_proto::test_keys;

    fn request(u: &str) -> PendingRequest {
        PendingRequest {
            userid: u.into(),
            created_at_unix_ms: 1,
            expires_at_unix_ms: 2,
        }
    }

    fn friend(u: &str, n: usize) -> FriendInfo {
        FriendInfo {
            candidates: vec![],
            userid: u.into(),
            online: false,
            endpoint: None,
            identity_key: test_keys::identity(n).public().clone(),
        }
    }

    #[test]
    fn a_notice_repeated_at_the_next_login_is_not_news() {
        // We asked bob and carol, then went offline; bob accepted, carol refused.
        let mut book = FriendBook::new();
        book.add_outgoing(request("Bob"));
        book.add_outgoing(request("carol"));
        let mut f = NoticeFilter::default();
        // Login 1: the snapshot already lists bob as a friend and neither request.
        f.before_snapshot(&book);
        book.apply_snapshot(&[friend("Bob", 1)], &[], &[]);
        assert!(f.accepted("Bob"));
        assert!(f.answered("carol", false));
        // The same notices again (same session, or the connection dropped before the Pong).
        assert!(!f.accepted("bob"));
        assert!(!f.answered("carol", false));
        f.before_snapshot(&book);
        book.apply_snapshot(&[friend("Bob", 1)], &[], &[]);
        assert!(!f.accepted("BOB"));
        assert!(!f.answered("carol", false));
    }

    #[test]
    fn answers_survive_a_restart_through_the_saved_cache() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("friends.json");
        let mut book = FriendBook::new();
        book.add_outgoing(request("dave"));
        book.save(&path)?;
        // Restarted: only the saved cache knows we asked dave.
        let mut book = FriendBook::load(&path);
        let mut f = NoticeFilter::default();
        f.before_snapshot(&book);
        book.apply_snapshot(&[], &[], &[]);
        assert!(f.answered("dave", false), "the first refusal is shown");
        book.save(&path)?;
        let book = FriendBook::load(&path);
        let mut f = NoticeFilter::default();
        f.before_snapshot(&book);
        assert!(
            !f.answered("dave", false),
            "its repeat after a restart is not"
        );
        Ok(())
    }

    #[test]
    fn live_answers_and_refriending_are_news() {
        let mut f = NoticeFilter::default();
        f.request_sent("erin");
        assert!(f.answered("erin", true));
        assert!(!f.answered("erin", false));
        assert!(f.answered("frank", true), "a request still listed is news");
        f.friend_added("gina");
        assert!(!f.accepted("gina"));
        f.friend_gone("gina");
        assert!(f.accepted("gina"));
    }
}
