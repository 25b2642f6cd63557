//! A set that remembers at most a fixed number of values, forgetting the oldest first.
//!
//! Why: the peer side keeps sets of ids it has seen from a friend (the transfer ids a link
//! discards, the chat ids just stored). Each entry comes from the friend, so an unbounded
//! set would let a friend grow our memory without end; these sets are shortcuts whose
//! forgotten entries cost a little work later, never a wrong answer (their users say why).

use std::collections::VecDeque;
use std::hash::Hash;

use crate::fast_hash::FastSet;

/// At most `cap` values; inserting one more forgets the oldest.
#[derive(Debug, Clone)]
pub(crate) struct BoundedSet<T> {
    pub(crate) set: FastSet<T>,
    pub(crate) order: VecDeque<T>,
    cap: usize,
}

impl<T: Hash + Eq + Clone> BoundedSet<T> {
    /// An empty set that keeps at most `cap` values.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            set: FastSet::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Remembers `value`; true if it was not remembered yet. A value already remembered
    /// keeps its place (it is not made newer).
    pub(crate) fn insert(&mut self, value: T) -> bool {
        if !self.set.insert(value.clone()) {
            return false;
        }
        self.order.push_back(value);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// True if `value` is remembered.
    pub(crate) fn contains<Q>(&self, value: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.set.contains(value)
    }

    /// How many values are remembered.
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_first_and_never_grows_past_its_cap() {
        let mut s = BoundedSet::new(3);
        assert!(s.insert(1));
        assert!(!s.insert(1), "already remembered");
        for n in 2..=5 {
            assert!(s.insert(n));
        }
        assert_eq!(s.len(), 3);
        assert!(!s.contains(&1) && !s.contains(&2));
        assert!((3..=5).all(|n| s.contains(&n)));
    }
}
