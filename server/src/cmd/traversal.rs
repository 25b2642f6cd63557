//! ConnectPeer (SPEC.md §7.6): connection reversal and the RTT-synchronised punch. The server
//! only introduces two friends to each other: it tells the friend who asks and where they
//! are, and when each side should start dialling.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use peerchat_proto::limits::{CONNECT_PEER_BURST, CONNECT_PEER_INTERVAL, PUNCH_DELAY_MAX};
use peerchat_proto::message::{
    ConnectMode, ConnectPeerOk, PeerConnectRequested, PushEvent, ResponseBody, TraversalId,
};
use peerchat_proto::wire::ErrorCode;

use super::{err, lookup, rate_limited, Reply};
use crate::state::{ConnState, Shared};

/// ConnectPeer: INVALID_REQUEST (mode, checked at decoding), NOT_FRIENDS, PEER_OFFLINE,
/// RATE_LIMITED, in this order. On success the friend is pushed PeerConnectRequested, then
/// the requester gets ConnectPeerOk with the same attempt id.
pub async fn connect_peer(
    shared: &Shared,
    conn: &ConnState,
    userid: String,
    mode: ConnectMode,
) -> Reply {
    let Some(login) = &conn.login else {
        return Err(err(ErrorCode::NotLoggedIn, "not logged in"));
    };
    let not_friends = || err(ErrorCode::NotFriends, "this user is not your friend");
    let friend = lookup(shared, &userid).await?.ok_or_else(not_friends)?;
    if friend.id == login.account_id
        || !shared
            .store
            .are_friends(login.account_id, friend.id)
            .await?
    {
        return Err(not_friends());
    }
    // The friend's session: on this node, or (in a cluster) on another one, known from the
    // directory; the push then travels on the bus (SPEC.md §6.11 rule 7).
    let local = shared.hub.get(&friend.userid_lower);
    let remote = match &local {
        Some(_) => None,
        None => shared.hub.remote_presence(&friend.userid_lower),
    };
    let (friend_rtt, friend_candidates) = match (&local, &remote) {
        (Some(s), _) => (s.rtt(), s.candidates()),
        (None, Some(PushEvent::FriendOnline { candidates, .. })) => (None, candidates.clone()),
        _ => return Err(err(ErrorCode::PeerOffline, "this friend is not logged in")),
    };
    shared
        .connect_limits
        .try_take(login.account_id, friend.id, Instant::now())
        .map_err(rate_limited)?;
    let attempt_id: TraversalId = rand::random();
    // Across nodes the friend's round-trip time is not known here: both delays are then 0.
    let (mine, theirs) = punch_delays(mode, login.handle.rtt(), friend_rtt);
    let ev = PushEvent::PeerConnectRequested(PeerConnectRequested {
        userid: login.handle.userid.clone(),
        mode,
        attempt_id,
        candidates: login.handle.candidates(),
        dial_in: theirs,
    });
    match &local {
        Some(session) => {
            session.push(&ev);
        }
        None => {
            shared.hub.push(&friend.userid_lower, &ev);
        }
    }
    tracing::debug!(from = %login.handle.userid, to = %friend.userid, ?mode, "connect-peer relayed");
    Ok(ResponseBody::ConnectPeer(ConnectPeerOk {
        attempt_id,
        candidates: friend_candidates,
        dial_in: mine,
    }))
}

/// The dial delays `(d_requester, d_friend)` of SPEC.md §7.6: for a punch,
/// `d_X = (max(rtt_A, rtt_B) − rtt_X) / 2`, capped at PUNCH_DELAY_MAX, 0 for a side
/// without an estimate; both 0 for a reversal. The side farther from the server starts at
/// once, the nearer one waits, so that both first SYNs leave about when both messages have
/// arrived.
pub fn punch_delays(
    mode: ConnectMode,
    rtt_requester: Option<Duration>,
    rtt_friend: Option<Duration>,
) -> (Duration, Duration) {
    if mode == ConnectMode::Reverse {
        return (Duration::ZERO, Duration::ZERO);
    }
    let max = rtt_requester.max(rtt_friend);
    let delay = |own: Option<Duration>| match (own, max) {
        (Some(own), Some(max)) => (max.saturating_sub(own) / 2).min(PUNCH_DELAY_MAX),
        _ => Duration::ZERO,
    };
    (delay(rtt_requester), delay(rtt_friend))
}

/// The ConnectPeer bucket per (requester, friend) pair of accounts (SPEC.md §7.6):
/// `CONNECT_PEER_BURST` requests at once, one more per `CONNECT_PEER_INTERVAL`.
///
/// Kept as a theoretical arrival time per pair (GCRA, the token bucket's exact twin): a pair
/// whose time has passed holds a full bucket and is forgotten by [`ConnectPeerLimiter::prune`].
#[derive(Debug)]
pub struct ConnectPeerLimiter {
    burst: u32,
    interval: Duration,
    pairs: DashMap<(i64, i64), Instant>,
}

impl Default for ConnectPeerLimiter {
    fn default() -> Self {
        Self::new(CONNECT_PEER_BURST, CONNECT_PEER_INTERVAL)
    }
}

impl ConnectPeerLimiter {
    /// `burst` requests at once, one more per `interval`.
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst: burst.max(1),
            interval,
            pairs: DashMap::new(),
        }
    }

    /// Takes one token for `requester` asking about `friend` at `now`.
    ///
    /// # Errors
    /// How long until a token is back, when the bucket is empty.
    pub fn try_take(&self, requester: i64, friend: i64, now: Instant) -> Result<(), Duration> {
        // The bucket is empty when the arrival time runs more than (burst - 1) intervals
        // ahead of now.
        let tolerance = self.interval * (self.burst - 1);
        let mut tat = self.pairs.entry((requester, friend)).or_insert(now);
        let at = (*tat).max(now);
        let ahead = at.saturating_duration_since(now);
        if ahead > tolerance {
            return Err((ahead - tolerance).max(Duration::from_millis(1)));
        }
        *tat = at + self.interval;
        Ok(())
    }

    /// Forgets pairs whose bucket is full again.
    pub fn prune(&self, now: Instant) {
        self.pairs.retain(|_, tat| *tat > now);
    }

    /// Pairs remembered (for tests).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_one_per_interval() {
        let l = ConnectPeerLimiter::default();
        let t0 = Instant::now();
        for _ in 0..CONNECT_PEER_BURST {
            assert_eq!(l.try_take(1, 2, t0), Ok(()));
        }
        assert_eq!(l.try_take(1, 2, t0), Err(CONNECT_PEER_INTERVAL));
        assert_eq!(l.try_take(1, 2, t0 + ms(4000)), Err(ms(6000)));
        assert_eq!(l.try_take(1, 2, t0 + CONNECT_PEER_INTERVAL), Ok(()));
        assert_eq!(
            l.try_take(1, 2, t0 + CONNECT_PEER_INTERVAL),
            Err(CONNECT_PEER_INTERVAL)
        );
        // A long pause refills up to the burst only.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..CONNECT_PEER_BURST {
            assert_eq!(l.try_take(1, 2, later), Ok(()));
        }
        assert!(l.try_take(1, 2, later).is_err());
    }

    #[test]
    fn pairs_are_counted_apart_and_by_direction() {
        let l = ConnectPeerLimiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.try_take(1, 2, t0), Ok(()));
        assert!(l.try_take(1, 2, t0).is_err());
        assert_eq!(l.try_take(1, 3, t0), Ok(()), "another friend");
        assert_eq!(l.try_take(2, 1, t0), Ok(()), "the friend asking back");
    }

    #[test]
    fn prune_forgets_full_buckets_only() {
        let l = ConnectPeerLimiter::default();
        let t0 = Instant::now();
        l.try_take(1, 2, t0).unwrap();
        l.try_take(3, 4, t0 + ms(5000)).unwrap();
        l.prune(t0 + CONNECT_PEER_INTERVAL);
        assert_eq!(l.len(), 1);
        l.prune(t0 + ms(15_000));
        assert!(l.is_empty());
    }

    #[test]
    fn punch_delays_follow_the_rtt_rule() {
        let p = ConnectMode::Punch;
        assert_eq!(
            punch_delays(p, Some(ms(40)), Some(ms(200))),
            (ms(80), ms(0)),
            "the nearer side waits half the difference"
        );
        assert_eq!(
            punch_delays(p, Some(ms(300)), Some(ms(100))),
            (ms(0), ms(100))
        );
        assert_eq!(punch_delays(p, Some(ms(50)), Some(ms(50))), (ms(0), ms(0)));
        assert_eq!(punch_delays(p, None, Some(ms(200))), (ms(0), ms(0)));
        assert_eq!(punch_delays(p, Some(ms(200)), None), (ms(0), ms(0)));
        assert_eq!(
            punch_delays(p, Some(ms(1)), Some(ms(60_000))),
            (PUNCH_DELAY_MAX, ms(0)),
            "capped"
        );
        assert_eq!(
            punch_delays(ConnectMode::Reverse, Some(ms(40)), Some(ms(200))),
            (ms(0), ms(0))
        );
    }
}
