//! Hash maps and sets for the per-message path, with a faster hasher than std's.
//!
//! Why: a chat message passes a dozen map lookups on each side (the friend's link, queue,
//! budget and directory entry by name; the message's id in the sets of ids being stored,
//! acknowledged or recently seen). With std's SipHash-1-3 the hashing and probing of those
//! maps were 7–10 % of both clients' CPU in a chat flood (issue #14, session 16 profile).
//! foldhash hashes short keys several times faster.
//!
//! It is still seeded at random per process and per map, so a friend cannot precompute ids
//! that collide; its authors call it "minimally DoS-resistant", not cryptographic. That is
//! enough here because every map a friend's input reaches is also bounded by count
//! (`RECENT_PER_FRIEND`, `DISCARD_SET_MAX`, the send and receive budgets): colliding keys
//! could at worst make those bounded maps slower, never larger.

use std::collections::{HashMap, HashSet};

/// The hasher of [`FastMap`] and [`FastSet`]: a random seed per map.
pub(crate) type FastState = foldhash::fast::RandomState;

/// A `HashMap` with [`FastState`]; build it with `FastMap::default()`.
pub(crate) type FastMap<K, V> = HashMap<K, V, FastState>;

/// A `HashSet` with [`FastState`]; build it with `FastSet::default()`.
pub(crate) type FastSet<T> = HashSet<T, FastState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_find_by_borrowed_keys_as_std_maps_do() {
        let mut m: FastMap<String, u32> = FastMap::default();
        m.insert("bob".to_owned(), 1);
        assert_eq!(m.get("bob"), Some(&1));
        assert_eq!(m.remove("bob"), Some(1));
        assert!(m.is_empty());
        let mut s: FastSet<[u8; 16]> = FastSet::default();
        assert!(s.insert([1; 16]) && !s.insert([1; 16]));
    }
}
