//! A map keyed by (friend, message id) that looks up by `&str`, without building a key.
//!
//! Why: the chat state tracks messages in flight by friend and id (being stored, waiting
//! for their outbox write; the history writer's rows not marked delivered yet). Keyed by a
//! `(String, MessageId)` tuple, each lookup had to allocate the friend's name to build the
//! key, and a chat flood did that several times per message on each side: the allocator
//! and hashing of those keys were among the receiver's largest costs outside SQLite (issue
//! #14, session 13 profile). A map per friend is found by `&str` (`String: Borrow<str>`)
//! and then by the 16-byte id.
//!
//! A friend's inner map stays when it runs empty: a conversation fills and empties it for
//! every message, and rebuilding it each time would cost the allocation saved. So it holds
//! one (possibly empty) map per friend seen in this run, which the friends a user has had
//! bound.

use crate::fast_hash::FastMap;
use crate::ids::MessageId;

/// Values by friend (the normalised key) and message id.
#[derive(Debug)]
pub(crate) struct ByFriend<V> {
    friends: FastMap<String, FastMap<MessageId, V>>,
}

impl<V> Default for ByFriend<V> {
    fn default() -> Self {
        Self {
            friends: FastMap::default(),
        }
    }
}

impl<V> ByFriend<V> {
    /// Inserts, returning the value it replaced. Allocates the friend's name only the first
    /// time the friend is seen.
    pub(crate) fn insert(&mut self, friend: &str, id: MessageId, value: V) -> Option<V> {
        match self.friends.get_mut(friend) {
            Some(m) => m.insert(id, value),
            None => {
                self.friends
                    .entry(friend.to_owned())
                    .or_default()
                    .insert(id, value);
                None
            }
        }
    }

    pub(crate) fn contains(&self, friend: &str, id: MessageId) -> bool {
        self.friends
            .get(friend)
            .is_some_and(|m| m.contains_key(&id))
    }

    pub(crate) fn get_mut(&mut self, friend: &str, id: MessageId) -> Option<&mut V> {
        self.friends.get_mut(friend)?.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, friend: &str, id: MessageId) -> Option<V> {
        self.friends.get_mut(friend)?.remove(&id)
    }

    /// Entries of every friend.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.friends.values().map(FastMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_per_friend_and_id() {
        let mut m = ByFriend::default();
        let (a, b) = (MessageId([1; 16]), MessageId([2; 16]));
        assert_eq!(m.insert("bob", a, 1), None);
        assert_eq!(
            m.insert("bob", a, 2),
            Some(1),
            "same friend and id: replaced"
        );
        assert_eq!(m.insert("carol", a, 3), None, "same id, another friend");
        assert!(m.contains("bob", a) && !m.contains("bob", b) && !m.contains("dave", a));
        if let Some(v) = m.get_mut("carol", a) {
            *v = 4;
        }
        assert_eq!(m.remove("carol", a), Some(4));
        assert_eq!(m.remove("carol", a), None);
        assert_eq!(m.remove("dave", a), None);
        assert_eq!(m.len(), 1);
    }
}
