//! The receiver's side of exactly-once delivery (SPEC.md §8.1): store a message the first
//! time its id arrives, acknowledge it every time.
//!
//! The database is the authority on which ids are stored (it survives restarts); this set
//! answers from memory for ids seen in this run, so duplicates after a reconnect cost no
//! query.

use super::by_friend::ByFriend;
use crate::ids::MessageId;

/// What to do with an incoming chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxAction {
    /// Store and show it (false for a duplicate).
    pub store: bool,
    /// Acknowledge this id (always).
    pub ack: MessageId,
}

/// (friend, id) pairs of messages already stored, seen in this run.
#[derive(Debug, Default)]
pub struct Inbox {
    seen: ByFriend<()>,
}

impl Inbox {
    /// Decides for a message whose id is `id` (the caller has already checked the database
    /// for ids from earlier runs and recorded them with [`Inbox::remember`]).
    pub fn on_chat(&mut self, friend: &str, id: MessageId) -> InboxAction {
        InboxAction {
            store: self.seen.insert(friend, id, ()).is_none(),
            ack: id,
        }
    }

    /// Records an id known to be stored.
    pub fn remember(&mut self, friend: &str, id: MessageId) {
        self.seen.insert(friend, id, ());
    }

    /// True if `id` is known to be stored.
    pub fn contains(&self, friend: &str, id: MessageId) -> bool {
        self.seen.contains(friend, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_acked_but_not_stored() {
        let mut i = Inbox::default();
        let id = MessageId([4; 16]);
        assert_eq!(
            i.on_chat("bob", id),
            InboxAction {
                store: true,
                ack: id
            }
        );
        assert_eq!(
            i.on_chat("bob", id),
            InboxAction {
                store: false,
                ack: id
            }
        );
        assert!(i.on_chat("carol", id).store, "ids are per sender");
        let old = MessageId([5; 16]);
        i.remember("bob", old);
        assert!(i.contains("bob", old));
        assert!(!i.on_chat("bob", old).store);
    }
}
