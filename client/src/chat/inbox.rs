//! The receiver's side of exactly-once delivery (SPEC.md §8.1): store a message the first
//! time its id arrives, acknowledge it every time.
//!
//! The database is the authority on which ids are stored: its unique index refuses a second
//! copy, and says so (`fresh: false`), for as long as the history keeps the message. This
//! set answers from memory for the ids stored most recently, so the duplicates a reconnect
//! brings (the friend re-sends what it had not seen acknowledged, at most `OUTBOX_WINDOW`
//! of text) cost no write. It keeps [`RECENT_PER_FRIEND`] ids per friend, oldest out first:
//! one entry per message ever received made it grow with every message of a run, which a
//! friend sending without pause could turn into memory without bound (found in session 13).
//! An older duplicate goes to the database, which answers the same.

use crate::bounded_set::BoundedSet;
use crate::fast_hash::FastMap;
use crate::ids::MessageId;

/// Ids remembered per friend. A reconnect re-sends at most the unacknowledged window, 1 MiB
/// of text: about 10,000 messages of 100 bytes, of which only those stored before the link
/// broke and not acknowledged are duplicates, usually a handful. The rest is answered by
/// the database. About 40 KiB per friend.
pub const RECENT_PER_FRIEND: usize = 1024;

/// What to do with an incoming chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxAction {
    /// Store and show it (false for a duplicate).
    pub store: bool,
    /// Acknowledge this id (always).
    pub ack: MessageId,
}

/// Recently stored message ids, per friend.
#[derive(Debug, Default)]
pub struct Inbox {
    friends: FastMap<String, BoundedSet<MessageId>>,
}

impl Inbox {
    /// Decides for a message whose id is `id`, from memory only: `store` is false for an id
    /// remembered here (see the module documentation for what the database adds).
    pub fn on_chat(&mut self, friend: &str, id: MessageId) -> InboxAction {
        InboxAction {
            store: self.remember_new(friend, id),
            ack: id,
        }
    }

    /// Records an id known to be stored.
    pub fn remember(&mut self, friend: &str, id: MessageId) {
        self.remember_new(friend, id);
    }

    /// True if `id` is remembered as stored.
    pub fn contains(&self, friend: &str, id: MessageId) -> bool {
        self.friends.get(friend).is_some_and(|r| r.contains(&id))
    }

    /// Remembers `id`; true if it was not remembered yet. Finds the friend by `&str`, so
    /// only a friend's first message allocates the name (issue #14).
    fn remember_new(&mut self, friend: &str, id: MessageId) -> bool {
        match self.friends.get_mut(friend) {
            Some(r) => r.insert(id),
            None => self
                .friends
                .entry(friend.to_owned())
                .or_insert_with(|| BoundedSet::new(RECENT_PER_FRIEND))
                .insert(id),
        }
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

    /// Memory stays bounded however many messages a friend sends: the oldest ids go first,
    /// and only that friend's.
    #[test]
    fn remembers_the_most_recent_ids_per_friend() {
        let mut i = Inbox::default();
        let id = |n: usize| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&(n as u64).to_be_bytes());
            MessageId(b)
        };
        i.remember("carol", id(0));
        for n in 0..RECENT_PER_FRIEND + 10 {
            i.remember("bob", id(n));
        }
        i.remember("bob", id(RECENT_PER_FRIEND)); // again: no eviction for a known id
        assert!(
            (0..10).all(|n| !i.contains("bob", id(n))),
            "the oldest are gone"
        );
        assert!((10..RECENT_PER_FRIEND + 10).all(|n| i.contains("bob", id(n))));
        assert!(i.contains("carol", id(0)), "another friend's ids stay");
        let bob = i.friends.get("bob").map(|r| (r.set.len(), r.order.len()));
        assert_eq!(bob, Some((RECENT_PER_FRIEND, RECENT_PER_FRIEND)));
    }
}
