//! One connection per friend pair (SPEC.md §7.3), without I/O.
//!
//! Both users may dial each other at the same moment. Each side runs this same rule on the
//! connections it sees, so both keep the same one: the connection initiated by the user
//! whose userid is lower (ASCII-lowercase comparison) wins, the other is closed with
//! DUPLICATE_CONNECTION. Two connections initiated by the same side can only mean the older
//! one is stale (its user reconnected before we noticed the drop), so the newer one wins.
//!
//! One rule comes first (SPEC.md §7.8): a link that is not relayed always wins over a relayed
//! one, so a punch that succeeds while a relayed link is up replaces it on both sides.

use crate::fast_hash::FastMap;

use super::traversal::LinkPath;

/// Identifies one peer connection within this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

#[derive(Debug, Clone, Copy)]
struct Active {
    conn: ConnId,
    initiated_by_me: bool,
    path: LinkPath,
}

/// The registry's verdict on a connection that finished its hello exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Use it; close `replaced` (DUPLICATE_CONNECTION) if set.
    Admitted {
        /// The connection it displaced.
        replaced: Option<ConnId>,
    },
    /// Close it with DUPLICATE_CONNECTION: the existing one wins.
    Duplicate,
}

/// The active connection to each friend.
#[derive(Debug)]
pub struct PeerRegistry {
    me: String,
    active: FastMap<String, Active>,
}

impl PeerRegistry {
    /// A registry for the user `me`.
    pub fn new(me: &str) -> Self {
        Self {
            me: me.to_ascii_lowercase(),
            active: FastMap::default(),
        }
    }

    /// Changes our userid (after logging in as someone).
    pub fn set_me(&mut self, me: &str) {
        self.me = me.to_ascii_lowercase();
    }

    /// Decides whether `conn` to `friend`, made by `path`, becomes the active connection.
    pub fn admit(
        &mut self,
        friend: &str,
        conn: ConnId,
        initiated_by_me: bool,
        path: LinkPath,
    ) -> Admission {
        let key = friend.to_ascii_lowercase();
        let new = Active {
            conn,
            initiated_by_me,
            path,
        };
        let Some(old) = self.active.get(&key).copied() else {
            self.active.insert(key, new);
            return Admission::Admitted { replaced: None };
        };
        let old_relayed = old.path == LinkPath::Relayed;
        let new_relayed = path == LinkPath::Relayed;
        let new_wins = if old_relayed != new_relayed {
            old_relayed
        } else if old.initiated_by_me == initiated_by_me {
            true
        } else {
            let i_am_lower = self.me < key;
            initiated_by_me == i_am_lower
        };
        if new_wins {
            self.active.insert(key, new);
            Admission::Admitted {
                replaced: Some(old.conn),
            }
        } else {
            Admission::Duplicate
        }
    }

    /// `conn` to `friend` closed. True if it was the active one.
    pub fn remove(&mut self, friend: &str, conn: ConnId) -> bool {
        let key = friend.to_ascii_lowercase();
        match self.active.get(&key) {
            Some(a) if a.conn == conn => {
                self.active.remove(&key);
                true
            }
            _ => false,
        }
    }

    /// How the active connection to `friend` was made.
    pub fn path(&self, friend: &str) -> Option<LinkPath> {
        self.active
            .get(&friend.to_ascii_lowercase())
            .map(|a| a.path)
    }

    /// The active connection to `friend`.
    pub fn active(&self, friend: &str) -> Option<ConnId> {
        self.active
            .get(&friend.to_ascii_lowercase())
            .map(|a| a.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: LinkPath = LinkPath::Direct;

    /// Both sides see both connections, in opposite orders, and must keep the same one.
    #[test]
    fn simultaneous_open_resolves_the_same_way_on_both_sides() {
        // alice < bob, so the connection alice dialled (A) wins everywhere.
        let (a, b) = (ConnId(1), ConnId(2));
        let mut alice = PeerRegistry::new("Alice");
        assert_eq!(
            alice.admit("bob", a, true, D),
            Admission::Admitted { replaced: None }
        );
        assert_eq!(alice.admit("bob", b, false, D), Admission::Duplicate);
        assert_eq!(alice.active("BOB"), Some(a));

        let mut bob = PeerRegistry::new("bob");
        assert_eq!(
            bob.admit("alice", b, true, D),
            Admission::Admitted { replaced: None }
        );
        assert_eq!(
            bob.admit("alice", a, false, D),
            Admission::Admitted { replaced: Some(b) }
        );
        assert_eq!(bob.active("alice"), Some(a));

        // And in the other arrival order.
        let mut alice2 = PeerRegistry::new("alice");
        assert_eq!(
            alice2.admit("bob", b, false, D),
            Admission::Admitted { replaced: None }
        );
        assert_eq!(
            alice2.admit("bob", a, true, D),
            Admission::Admitted { replaced: Some(b) }
        );
        let mut bob2 = PeerRegistry::new("bob");
        assert_eq!(
            bob2.admit("alice", a, false, D),
            Admission::Admitted { replaced: None }
        );
        assert_eq!(bob2.admit("alice", b, true, D), Admission::Duplicate);
    }

    #[test]
    fn comparison_ignores_ascii_case() {
        let mut r = PeerRegistry::new("ZED");
        assert_eq!(
            r.admit("adam", ConnId(1), true, D),
            Admission::Admitted { replaced: None }
        );
        // adam < zed: adam's dial wins over ours.
        assert_eq!(
            r.admit("Adam", ConnId(2), false, D),
            Admission::Admitted {
                replaced: Some(ConnId(1))
            }
        );
    }

    #[test]
    fn newer_connection_from_the_same_side_replaces_a_stale_one() {
        let mut r = PeerRegistry::new("bob");
        r.admit("alice", ConnId(1), false, D);
        assert_eq!(
            r.admit("alice", ConnId(2), false, D),
            Admission::Admitted {
                replaced: Some(ConnId(1))
            }
        );
        assert!(
            !r.remove("alice", ConnId(1)),
            "the stale one is no longer active"
        );
        assert!(r.remove("alice", ConnId(2)));
        assert_eq!(r.active("alice"), None);
    }

    /// SPEC.md §7.8 rule 2: whatever the userids and initiators, a link that is not relayed
    /// wins over a relayed one, on both sides, in either arrival order.
    #[test]
    fn a_link_that_is_not_relayed_beats_a_relayed_one() {
        let (relayed, punched) = (ConnId(1), ConnId(2));
        // alice opened the relay (initiator there); bob won the punch's tie-break. Without
        // the rule, §7.3 would keep alice's (alice < bob) relayed link.
        let mut alice = PeerRegistry::new("alice");
        alice.admit("bob", relayed, true, LinkPath::Relayed);
        assert_eq!(
            alice.admit("bob", punched, false, LinkPath::Punched),
            Admission::Admitted {
                replaced: Some(relayed)
            }
        );
        assert_eq!(alice.path("bob"), Some(LinkPath::Punched));
        let mut bob = PeerRegistry::new("bob");
        bob.admit("alice", punched, true, LinkPath::Punched);
        assert_eq!(
            bob.admit("alice", relayed, false, LinkPath::Relayed),
            Admission::Duplicate
        );
        assert_eq!(bob.active("alice"), Some(punched));
        // Two relayed links: §7.3 as usual (a stale relay replaced by a newer one).
        let mut r = PeerRegistry::new("bob");
        r.admit("alice", ConnId(5), false, LinkPath::Relayed);
        assert_eq!(
            r.admit("alice", ConnId(6), false, LinkPath::Relayed),
            Admission::Admitted {
                replaced: Some(ConnId(5))
            }
        );
    }
}
