//! The connection order of SPEC.md §7.6 (direct, reversal, punch, relay) and the relay
//! upgrade of §7.8, as a machine without I/O.
//!
//! The core feeds in what happened — "start connecting to bob", "this dial failed", "the
//! server answered ConnectPeer", "a link is open", the time — and gets back [`Action`]s to
//! carry out: dial these addresses (perhaps from the listening port, perhaps not before some
//! instant), send `ConnectPeer`, open a relay, or give up and back off. No clock or socket is
//! read here: every input that depends on time takes `now`, so each row of §7.6 is a unit test
//! on a virtual clock (see the tests below).
//!
//! Every step gets a fresh [`StepId`]; results carry it back, and a result for a step that is
//! no longer current (a slow dial of an abandoned step) is ignored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peerchat_proto::limits::{
    DIRECT_DIAL_TIMEOUT, HANDSHAKE_TIMEOUT, PUNCH_ATTEMPTS, PUNCH_WINDOW, RELAY_JOIN_TIMEOUT,
    RELAY_UPGRADE_INTERVAL, REVERSE_WAIT,
};
use peerchat_proto::message::{
    Candidate, CandidateKind, ConnectMode, ConnectPeerOk, PeerConnectRequested,
};

/// How long after a relayed link opens its requester first tries to upgrade it (SPEC.md §7.8
/// says "soon"; long enough for the peers' own hello and outbox flush to go first).
pub const RELAY_UPGRADE_FIRST: Duration = Duration::from_secs(2);

/// How long to wait for the server's answer to ConnectPeer before moving on. The server
/// answers at once; this only bounds a lost answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

pub use crate::events::LinkPath;

/// Steps a client may leave out (tests force the relay on loopback this way; a user who does
/// not want their addresses dialled could too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraversalConfig {
    /// Leave out the direct dials of step 1 (also in relay upgrades).
    pub skip_direct: bool,
    /// Leave out the connection reversal of step 2.
    pub skip_reverse: bool,
    /// Leave out the punches of step 3 (also in relay upgrades).
    pub skip_punch: bool,
}

/// What this client knows about its own reachability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// A logged-in server session exists (steps 2–4 need it).
    pub server_online: bool,
    /// Our observed address is one of our host candidates' addresses: no NAT in between, so
    /// a friend can dial us (§7.6 step 2).
    pub reachable: bool,
}

/// SPEC.md §7.6 step 2: we believe we are reachable when the address the server sees us at
/// is the address of one of our own interfaces.
pub fn is_reachable(observed: Option<SocketAddr>, host_candidates: &[SocketAddr]) -> bool {
    observed.is_some_and(|o| host_candidates.iter().any(|h| h.ip() == o.ip()))
}

/// SPEC.md §7.4 rule 4 and §7.3 rule 5: whether a reason to connect (a queued message, a
/// suspended transfer, a retry that came due) may start the connection order now. Not while a
/// link is open or an attempt runs, and not before the back-off after a failed attempt ran
/// out — so messages queued meanwhile do not each start a dial. (FriendOnline and an inbound
/// link clear `backoff_until`.)
pub fn may_start(
    has_link: bool,
    attempt_running: bool,
    backoff_until: Option<Instant>,
    now: Instant,
) -> bool {
    !has_link && !attempt_running && backoff_until.is_none_or(|at| at <= now)
}

/// Names one step of one attempt; results carry it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub u64);

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial `addrs` (in parallel; the first to reach Open wins), each for up to `timeout`, not
    /// before `at`; from the peer listening port (SO_REUSEPORT) if `from_listener`. Report
    /// the outcome once for the whole action with `step`.
    Dial {
        /// Key of the friend (lower case).
        friend: String,
        /// Report with this id.
        step: StepId,
        /// Where.
        addrs: Vec<SocketAddr>,
        /// Not before.
        at: Instant,
        /// Per-address connect limit.
        timeout: Duration,
        /// Bind to the listening port first.
        from_listener: bool,
        /// The path a link made by this dial has.
        path: LinkPath,
    },
    /// Send `ConnectPeer{friend, mode}` and report the answer with `step`.
    ConnectPeer {
        /// Key of the friend.
        friend: String,
        /// Report with this id.
        step: StepId,
        /// Reversal or punch.
        mode: ConnectMode,
    },
    /// Open a relay to the friend (empty token) and report a failure with `step`.
    OpenRelay {
        /// Key of the friend.
        friend: String,
        /// Report with this id.
        step: StepId,
    },
    /// Every step failed: back off before the next attempt (SPEC.md §7.4 rule 4).
    Failed {
        /// Key of the friend.
        friend: String,
    },
}

/// Why ConnectPeer did not help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The friend has no session (ERROR_CODE_PEER_OFFLINE): nothing else can work now.
    PeerOffline,
    /// No server session: steps 2–4 cannot run.
    ServerUnavailable,
    /// Anything else (rate limited, not supported by this server...): try the next step.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Direct,
    /// Waiting for ConnectPeerOk (reversal), then for the friend's connection.
    Reverse,
    /// Waiting for ConnectPeerOk (punch), then for the punch dial.
    Punch,
    Relay,
}

/// The stages an attempt can move on to (step 1 only ever starts one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Later {
    Reverse,
    Punch,
    Relay,
}

impl Later {
    fn stage(self) -> Stage {
        match self {
            Later::Reverse => Stage::Reverse,
            Later::Punch => Stage::Punch,
            Later::Relay => Stage::Relay,
        }
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    stage: Stage,
    step: StepId,
    /// When the current step counts as failed if nothing reported earlier.
    deadline: Instant,
    /// Punches left, counting the current one.
    punches_left: u32,
    /// A relay upgrade (§7.8): one punch, no reversal, no relay, no back-off.
    upgrade: bool,
    /// Addresses of step 1.
    direct: Vec<SocketAddr>,
}

/// We are dialling a friend because they asked (PeerConnectRequested): an inbound link from
/// them until `until` has `path`.
#[derive(Debug, Clone, Copy)]
struct Answering {
    path: LinkPath,
    until: Instant,
}

/// The connection attempts to every friend.
#[derive(Debug, Default)]
pub struct Traversal {
    config: TraversalConfig,
    reach: Reach,
    attempts: HashMap<String, Attempt>,
    answering: HashMap<String, Answering>,
    /// Relayed links we requested, and when to try to upgrade each.
    upgrades: HashMap<String, Instant>,
    next_step: u64,
}

/// Step 1's addresses: host candidates first, then observed ones, then the announced
/// endpoint if no candidate equals it; no address twice.
pub fn direct_targets(candidates: &[Candidate], endpoint: Option<SocketAddr>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let hosts = candidates.iter().filter(|c| c.kind == CandidateKind::Host);
    let observed = candidates
        .iter()
        .filter(|c| c.kind == CandidateKind::Observed);
    for a in hosts.chain(observed).map(|c| c.addr).chain(endpoint) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// A punch's addresses: the observed candidates, or every candidate if there is none (§7.6).
pub fn punch_targets(candidates: &[Candidate]) -> Vec<SocketAddr> {
    let observed: Vec<SocketAddr> = candidates
        .iter()
        .filter(|c| c.kind == CandidateKind::Observed)
        .map(|c| c.addr)
        .collect();
    if observed.is_empty() {
        direct_targets(candidates, None)
    } else {
        observed
    }
}

impl Traversal {
    /// A machine with the given step switches.
    pub fn new(config: TraversalConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Changes the step switches (for attempts started from now on).
    pub fn set_config(&mut self, config: TraversalConfig) {
        self.config = config;
    }

    /// The server session came or went, or our observed address changed.
    pub fn set_reach(&mut self, reach: Reach) {
        self.reach = reach;
    }

    /// What we believe about ourselves.
    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// An attempt to reach `friend` is running.
    pub fn is_running(&self, friend: &str) -> bool {
        self.attempts.contains_key(friend)
    }

    fn step_id(&mut self) -> StepId {
        self.next_step += 1;
        StepId(self.next_step)
    }

    /// Starts the connection order toward `friend` (lower-case key) whose candidates and
    /// announced endpoint are given. Does nothing while an attempt runs.
    pub fn start(
        &mut self,
        friend: &str,
        candidates: &[Candidate],
        endpoint: Option<SocketAddr>,
        now: Instant,
    ) -> Vec<Action> {
        self.begin(friend, candidates, endpoint, false, now)
    }

    fn begin(
        &mut self,
        friend: &str,
        candidates: &[Candidate],
        endpoint: Option<SocketAddr>,
        upgrade: bool,
        now: Instant,
    ) -> Vec<Action> {
        if self.attempts.contains_key(friend) {
            return Vec::new();
        }
        let step = self.step_id();
        let direct = if self.config.skip_direct {
            Vec::new()
        } else {
            direct_targets(candidates, endpoint)
        };
        let attempt = Attempt {
            stage: Stage::Direct,
            step,
            deadline: now + DIRECT_DIAL_TIMEOUT + HANDSHAKE_TIMEOUT,
            punches_left: if upgrade { 1 } else { PUNCH_ATTEMPTS },
            upgrade,
            direct,
        };
        if attempt.direct.is_empty() {
            self.attempts.insert(friend.to_owned(), attempt);
            return self.advance(friend, now);
        }
        let action = Action::Dial {
            friend: friend.to_owned(),
            step,
            addrs: attempt.direct.clone(),
            at: now,
            timeout: DIRECT_DIAL_TIMEOUT,
            from_listener: false,
            path: LinkPath::Direct,
        };
        self.attempts.insert(friend.to_owned(), attempt);
        vec![action]
    }

    /// The current step failed (or ran out of time): the next one, in §7.6 order.
    fn advance(&mut self, friend: &str, now: Instant) -> Vec<Action> {
        let Some(a) = self.attempts.get(friend).cloned() else {
            return Vec::new();
        };
        let reach = self.reach;
        let next = match a.stage {
            Stage::Direct if !reach.server_online => None,
            Stage::Direct if reach.reachable && !a.upgrade && !self.config.skip_reverse => {
                Some(Later::Reverse)
            }
            Stage::Direct | Stage::Reverse => self.punch_or_relay(&a),
            Stage::Punch if !reach.server_online => None,
            Stage::Punch if a.punches_left > 1 => Some(Later::Punch),
            Stage::Punch => (!a.upgrade).then_some(Later::Relay),
            Stage::Relay => None,
        };
        let Some(next) = next else {
            self.attempts.remove(friend);
            if a.upgrade {
                self.upgrades
                    .insert(friend.to_owned(), now + RELAY_UPGRADE_INTERVAL);
                return Vec::new();
            }
            return vec![Action::Failed {
                friend: friend.to_owned(),
            }];
        };
        let step = self.step_id();
        let punches_left = match (a.stage, next) {
            (Stage::Punch, Later::Punch) => a.punches_left - 1,
            _ => a.punches_left,
        };
        let (deadline, action) = match next {
            Later::Reverse => (
                now + ANSWER_WAIT,
                Action::ConnectPeer {
                    friend: friend.to_owned(),
                    step,
                    mode: ConnectMode::Reverse,
                },
            ),
            Later::Punch => (
                now + ANSWER_WAIT,
                Action::ConnectPeer {
                    friend: friend.to_owned(),
                    step,
                    mode: ConnectMode::Punch,
                },
            ),
            Later::Relay => (
                now + RELAY_JOIN_TIMEOUT + HANDSHAKE_TIMEOUT + ANSWER_WAIT,
                Action::OpenRelay {
                    friend: friend.to_owned(),
                    step,
                },
            ),
        };
        self.attempts.insert(
            friend.to_owned(),
            Attempt {
                stage: next.stage(),
                step,
                deadline,
                punches_left,
                ..a
            },
        );
        vec![action]
    }

    fn punch_or_relay(&self, a: &Attempt) -> Option<Later> {
        if !self.reach.server_online {
            None
        } else if !self.config.skip_punch && a.punches_left > 0 {
            Some(Later::Punch)
        } else if a.upgrade {
            None
        } else {
            Some(Later::Relay)
        }
    }

    fn current(&self, friend: &str, step: StepId) -> Option<&Attempt> {
        self.attempts.get(friend).filter(|a| a.step == step)
    }

    /// A dial action ended without a link.
    pub fn on_dial_failed(&mut self, friend: &str, step: StepId, now: Instant) -> Vec<Action> {
        match self.current(friend, step).map(|a| a.stage) {
            Some(Stage::Direct | Stage::Punch) => self.advance(friend, now),
            _ => Vec::new(),
        }
    }

    /// The server accepted ConnectPeer: for a reversal, wait for the friend; for a punch,
    /// dial its candidates after `dial_in` from the listening port.
    pub fn on_connect_peer_ok(
        &mut self,
        friend: &str,
        step: StepId,
        ok: &ConnectPeerOk,
        now: Instant,
    ) -> Vec<Action> {
        let Some(a) = self.attempts.get_mut(friend).filter(|a| a.step == step) else {
            return Vec::new();
        };
        match a.stage {
            Stage::Reverse => {
                a.deadline = now + REVERSE_WAIT;
                Vec::new()
            }
            Stage::Punch => {
                let at = now + ok.dial_in;
                a.deadline = at + PUNCH_WINDOW + HANDSHAKE_TIMEOUT;
                let addrs = punch_targets(&ok.candidates);
                if addrs.is_empty() {
                    return self.advance(friend, now);
                }
                vec![Action::Dial {
                    friend: friend.to_owned(),
                    step,
                    addrs,
                    at,
                    timeout: PUNCH_WINDOW,
                    from_listener: true,
                    path: LinkPath::Punched,
                }]
            }
            Stage::Direct | Stage::Relay => Vec::new(),
        }
    }

    /// The server refused ConnectPeer (or could not be asked).
    pub fn on_connect_peer_failed(
        &mut self,
        friend: &str,
        step: StepId,
        why: ConnectFailure,
        now: Instant,
    ) -> Vec<Action> {
        if self.current(friend, step).is_none() {
            return Vec::new();
        }
        match why {
            ConnectFailure::PeerOffline | ConnectFailure::ServerUnavailable => {
                self.finish_failed(friend, now)
            }
            ConnectFailure::Other => self.advance(friend, now),
        }
    }

    fn finish_failed(&mut self, friend: &str, now: Instant) -> Vec<Action> {
        match self.attempts.remove(friend) {
            Some(a) if a.upgrade => {
                self.upgrades
                    .insert(friend.to_owned(), now + RELAY_UPGRADE_INTERVAL);
                Vec::new()
            }
            Some(_) => vec![Action::Failed {
                friend: friend.to_owned(),
            }],
            None => Vec::new(),
        }
    }

    /// The relay could not be opened or its peer handshake failed.
    pub fn on_relay_failed(&mut self, friend: &str, step: StepId, now: Instant) -> Vec<Action> {
        if self.current(friend, step).is_none() {
            return Vec::new();
        }
        self.finish_failed(friend, now)
    }

    /// A link with `friend` reached Open with `path`. `requested` is true when this side made
    /// it (dialled it, opened the relay): only the requester of a relayed link upgrades it.
    pub fn on_link_open(&mut self, friend: &str, path: LinkPath, requested: bool, now: Instant) {
        self.attempts.remove(friend);
        self.answering.remove(friend);
        if path == LinkPath::Relayed && requested {
            self.upgrades
                .insert(friend.to_owned(), now + RELAY_UPGRADE_FIRST);
        } else if path != LinkPath::Relayed {
            self.upgrades.remove(friend);
        }
    }

    /// The active link with `friend` is gone.
    pub fn on_link_closed(&mut self, friend: &str) {
        self.upgrades.remove(friend);
    }

    /// The friend is no longer a friend, or we logged out: forget everything about them.
    pub fn forget(&mut self, friend: &str) {
        self.attempts.remove(friend);
        self.answering.remove(friend);
        self.upgrades.remove(friend);
    }

    /// Which punch attempt toward `friend` is running (1 for the first, up to
    /// PUNCH_ATTEMPTS), if the current step of our attempt is a punch. Reported with the
    /// punched link, so the NAT lab can count first-attempt successes.
    pub fn punch_attempt(&self, friend: &str) -> Option<u32> {
        let a = self.attempts.get(friend)?;
        let total = if a.upgrade { 1 } else { PUNCH_ATTEMPTS };
        (a.stage == Stage::Punch).then(|| total - a.punches_left + 1)
    }

    /// The path of an inbound connection from `friend` that reached Open now.
    pub fn inbound_path(&self, friend: &str, now: Instant) -> LinkPath {
        if let Some(a) = self.attempts.get(friend) {
            match a.stage {
                Stage::Reverse => return LinkPath::Reversed,
                Stage::Punch => return LinkPath::Punched,
                Stage::Direct | Stage::Relay => {}
            }
        }
        match self.answering.get(friend) {
            Some(ans) if ans.until > now => ans.path,
            _ => LinkPath::Direct,
        }
    }

    /// A friend asked us to dial them (reversal) or to punch (SPEC.md §7.6 "What the friend
    /// does"). `has_direct_link`: we already have an Open link that is not relayed (a
    /// relayed one does not stop us: the friend is upgrading it, §7.8).
    pub fn on_request(
        &mut self,
        req: &PeerConnectRequested,
        has_direct_link: bool,
        now: Instant,
    ) -> Vec<Action> {
        if has_direct_link {
            return Vec::new();
        }
        let friend = req.userid.to_ascii_lowercase();
        let step = self.step_id();
        let (addrs, at, timeout, from_listener, path) = match req.mode {
            ConnectMode::Reverse => (
                direct_targets(&req.candidates, None),
                now,
                DIRECT_DIAL_TIMEOUT,
                false,
                LinkPath::Reversed,
            ),
            ConnectMode::Punch => (
                punch_targets(&req.candidates),
                now + req.dial_in,
                PUNCH_WINDOW,
                true,
                LinkPath::Punched,
            ),
        };
        if addrs.is_empty() {
            return Vec::new();
        }
        self.answering.insert(
            friend.clone(),
            Answering {
                path,
                until: at + timeout + HANDSHAKE_TIMEOUT,
            },
        );
        vec![Action::Dial {
            friend,
            step,
            addrs,
            at,
            timeout,
            from_listener,
            path,
        }]
    }

    /// Steps whose time ran out move on; relayed links due for an upgrade get one.
    /// `targets` gives a friend's current candidates and endpoint (None: not a friend any
    /// more, or offline).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        mut targets: impl FnMut(&str) -> Option<(Vec<Candidate>, Option<SocketAddr>)>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let mut late: Vec<String> = self
            .attempts
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(f, _)| f.clone())
            .collect();
        late.sort();
        for f in late {
            out.extend(self.advance(&f, now));
        }
        self.answering.retain(|_, a| a.until > now);
        let mut due: Vec<String> = self
            .upgrades
            .iter()
            .filter(|(f, at)| **at <= now && !self.attempts.contains_key(*f))
            .map(|(f, _)| f.clone())
            .collect();
        due.sort();
        for f in due {
            if !self.reach.server_online {
                self.upgrades.insert(f, now + RELAY_UPGRADE_INTERVAL);
                continue;
            }
            match targets(&f) {
                Some((cands, endpoint)) => {
                    // The next try is scheduled when this one ends.
                    self.upgrades.remove(&f);
                    out.extend(self.begin(&f, &cands, endpoint, true, now));
                }
                None => {
                    self.upgrades.insert(f, now + RELAY_UPGRADE_INTERVAL);
                }
            }
        }
        out
    }

    /// The earliest instant at which [`Traversal::handle_timeout`] has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.attempts
            .values()
            .map(|a| a.deadline)
            .chain(self.upgrades.values().copied())
            .min()
    }

    /// When the next relay upgrade of `friend` is due (for tests and display).
    pub fn upgrade_due(&self, friend: &str) -> Option<Instant> {
        self.upgrades.get(friend).copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn cands() -> Vec<Candidate> {
        vec![
            Candidate::observed(addr("198.18.0.2:4000")),
            Candidate::host(addr("10.0.0.2:4000")),
        ]
    }
    fn online(reachable: bool) -> Reach {
        Reach {
            server_online: true,
            reachable,
        }
    }
    fn step_of(a: &Action) -> StepId {
        match a {
            Action::Dial { step, .. }
            | Action::ConnectPeer { step, .. }
            | Action::OpenRelay { step, .. } => *step,
            Action::Failed { .. } => panic!("no step"),
        }
    }
    fn ok(dial_in_ms: u64) -> ConnectPeerOk {
        ConnectPeerOk {
            attempt_id: [1; 16],
            candidates: cands(),
            dial_in: Duration::from_millis(dial_in_ms),
        }
    }

    #[test]
    fn queued_messages_wait_for_the_back_off() {
        let now = t0();
        let later = now + Duration::from_secs(4);
        assert!(may_start(false, false, None, now));
        assert!(!may_start(false, false, Some(later), now), "backing off");
        assert!(may_start(false, false, Some(later), later), "back-off over");
        assert!(!may_start(true, false, None, now), "a link is open");
        assert!(!may_start(false, true, None, now), "an attempt runs");
    }

    #[test]
    fn reachability_compares_observed_address_with_host_addresses() {
        let hosts = [addr("203.0.113.5:4000")];
        assert!(is_reachable(Some(addr("203.0.113.5:51000")), &hosts));
        assert!(!is_reachable(Some(addr("198.51.100.1:4000")), &hosts));
        assert!(!is_reachable(None, &hosts));
    }

    #[test]
    fn targets_put_hosts_first_and_add_the_endpoint_once() {
        assert_eq!(
            direct_targets(&cands(), Some(addr("198.18.0.2:4000"))),
            vec![addr("10.0.0.2:4000"), addr("198.18.0.2:4000")]
        );
        assert_eq!(
            direct_targets(&[], Some(addr("192.0.2.1:1"))),
            vec![addr("192.0.2.1:1")]
        );
        assert_eq!(punch_targets(&cands()), vec![addr("198.18.0.2:4000")]);
        let hosts_only = [Candidate::host(addr("10.0.0.2:4000"))];
        assert_eq!(punch_targets(&hosts_only), vec![addr("10.0.0.2:4000")]);
    }

    /// Row 1: direct dials of every candidate, DIRECT_DIAL_TIMEOUT each, at once.
    #[test]
    fn step_1_dials_every_candidate_directly() {
        let now = t0();
        let mut t = Traversal::default();
        t.set_reach(online(false));
        let acts = t.start("bob", &cands(), None, now);
        assert_eq!(
            acts,
            vec![Action::Dial {
                friend: "bob".into(),
                step: StepId(1),
                addrs: vec![addr("10.0.0.2:4000"), addr("198.18.0.2:4000")],
                at: now,
                timeout: DIRECT_DIAL_TIMEOUT,
                from_listener: false,
                path: LinkPath::Direct,
            }]
        );
        assert!(t.is_running("bob"));
        assert!(
            t.start("bob", &cands(), None, now).is_empty(),
            "one attempt at a time"
        );
    }

    /// Row 2: only a reachable requester asks for a reversal, then waits REVERSE_WAIT.
    #[test]
    fn step_2_reversal_only_when_reachable_then_punch_after_reverse_wait() {
        let now = t0();
        let mut t = Traversal::default();
        t.set_reach(online(true));
        let s = step_of(&t.start("bob", &cands(), None, now)[0]);
        let acts = t.on_dial_failed("bob", s, now + Duration::from_secs(1));
        let Action::ConnectPeer { mode, step, .. } = acts[0].clone() else {
            panic!("{acts:?}")
        };
        assert_eq!(mode, ConnectMode::Reverse);
        let at = now + Duration::from_secs(1);
        assert!(t.on_connect_peer_ok("bob", step, &ok(0), at).is_empty());
        assert_eq!(t.inbound_path("bob", at), LinkPath::Reversed);
        // Nothing before REVERSE_WAIT...
        assert!(t
            .handle_timeout(at + REVERSE_WAIT - Duration::from_millis(1), |_| None)
            .is_empty());
        // ...then the punch.
        let acts = t.handle_timeout(at + REVERSE_WAIT, |_| None);
        assert!(
            matches!(
                acts[..],
                [Action::ConnectPeer {
                    mode: ConnectMode::Punch,
                    ..
                }]
            ),
            "{acts:?}"
        );
    }

    /// Row 3: an unreachable requester goes from direct straight to the punch; each punch
    /// dials the observed candidates from the listening port after dial_in and keeps each
    /// connect for PUNCH_WINDOW; PUNCH_ATTEMPTS punches, then the relay.
    #[test]
    fn step_3_punches_then_step_4_relay() {
        let now = t0();
        let mut t = Traversal::default();
        t.set_reach(online(false));
        let s = step_of(&t.start("bob", &cands(), None, now)[0]);
        let mut acts = t.on_dial_failed("bob", s, now);
        let mut clock = now;
        for n in 0..PUNCH_ATTEMPTS {
            let Action::ConnectPeer { mode, step, .. } = acts[0].clone() else {
                panic!("punch {n}: {acts:?}")
            };
            assert_eq!(mode, ConnectMode::Punch);
            let dial = t.on_connect_peer_ok("bob", step, &ok(150), clock);
            assert_eq!(
                dial,
                vec![Action::Dial {
                    friend: "bob".into(),
                    step,
                    addrs: vec![addr("198.18.0.2:4000")],
                    at: clock + Duration::from_millis(150),
                    timeout: PUNCH_WINDOW,
                    from_listener: true,
                    path: LinkPath::Punched,
                }]
            );
            assert_eq!(t.inbound_path("bob", clock), LinkPath::Punched);
            assert_eq!(t.punch_attempt("bob"), Some(n + 1));
            clock += Duration::from_secs(1);
            acts = t.on_dial_failed("bob", step, clock);
        }
        assert!(
            matches!(acts[..], [Action::OpenRelay { .. }]),
            "after {PUNCH_ATTEMPTS} punches: {acts:?}"
        );
        let relay = step_of(&acts[0]);
        assert_eq!(
            t.on_relay_failed("bob", relay, clock),
            vec![Action::Failed {
                friend: "bob".into()
            }]
        );
        assert!(!t.is_running("bob"));
    }

    #[test]
    fn a_punch_that_hears_nothing_times_out_into_the_next() {
        let now = t0();
        let mut t = Traversal::default();
        t.set_reach(online(false));
        let acts = t.start("bob", &[], None, now);
        // No candidates at all: straight to the punch.
        let Action::ConnectPeer { step, .. } = acts[0].clone() else {
            panic!("{acts:?}")
        };
        t.on_connect_peer_ok("bob", step, &ok(2000), now);
        let end = now + Duration::from_millis(2000) + PUNCH_WINDOW + HANDSHAKE_TIMEOUT;
        assert!(t
            .handle_timeout(end - Duration::from_millis(1), |_| None)
            .is_empty());
        let acts = t.handle_timeout(end, |_| None);
        assert!(matches!(
            acts[..],
            [Action::ConnectPeer {
                mode: ConnectMode::Punch,
                ..
            }]
        ));
    }

    #[test]
    fn stale_results_are_ignored() {
        let now = t0();
        let mut t = Traversal::default();
        t.set_reach(online(false));
        let s1 = step_of(&t.start("bob", &cands(), None, now)[0]);
        let acts = t.on_dial_failed("bob", s1, now);
        let s2 = step_of(&acts[0]);
        assert!(t.on_dial_failed("bob", s1, now).is_empty());
        assert!(t
            .on_connect_peer_failed("bob", s1, ConnectFailure::Other, now)
            .is_empty());
        assert!(t.on_relay_failed("bob", s1, now).is_empty());
        assert!(t.is_running("bob"));
        assert_ne!(s1, s2);
    }

    #[test]
    fn without_a_server_only_step_1_runs() {
        let now = t0();
        let mut t = Traversal::default();
        let s = step_of(&t.start("bob", &[], Some(addr("192.0.2.1:9")), now)[0]);
        assert_eq!(
            t.on_dial_failed("bob", s, now),
            vec![Action::Failed {
                friend: "bob".into()
            }]
        );
        // Nothing to dial and no server: fail at once (the caller backs off).
        assert_eq!(
            t.start("bob", &[], None, now),
            vec![Action::Failed {
                friend: "bob".into()
            }]
        );
    }

    #[test]
    fn peer_offline_ends_the_attempt_other_errors_move_on() {
        let now = t0();
        let mut t = Traversal::default();
        t.set_reach(online(false));
        let Action::ConnectPeer { step, .. } = t.start("bob", &[], None, now)[0].clone() else {
            panic!()
        };
        let acts = t.on_connect_peer_failed("bob", step, ConnectFailure::Other, now);
        let Action::ConnectPeer { step, .. } = acts[0].clone() else {
            panic!("{acts:?}")
        };
        assert_eq!(
            t.on_connect_peer_failed("bob", step, ConnectFailure::PeerOffline, now),
            vec![Action::Failed {
                friend: "bob".into()
            }]
        );
    }

    #[test]
    fn skip_switches_force_the_relay() {
        let now = t0();
        let mut t = Traversal::new(TraversalConfig {
            skip_direct: true,
            skip_reverse: true,
            skip_punch: true,
        });
        t.set_reach(online(true));
        let acts = t.start("bob", &cands(), None, now);
        assert!(matches!(acts[..], [Action::OpenRelay { .. }]), "{acts:?}");
    }

    #[test]
    fn an_open_link_ends_the_attempt_and_a_requested_relay_schedules_upgrades() {
        let now = t0();
        let mut t = Traversal::new(TraversalConfig {
            skip_direct: true,
            skip_reverse: true,
            skip_punch: true,
        });
        t.set_reach(online(false));
        t.start("bob", &cands(), None, now);
        t.on_link_open("bob", LinkPath::Relayed, true, now);
        assert!(!t.is_running("bob"));
        assert_eq!(t.upgrade_due("bob"), Some(now + RELAY_UPGRADE_FIRST));
        // The joiner of a relay does not upgrade it.
        t.on_link_open("carol", LinkPath::Relayed, false, now);
        assert_eq!(t.upgrade_due("carol"), None);

        // Allow the steps again: the upgrade dials directly, then punches once.
        t.set_config(TraversalConfig::default());
        let targets = |_: &str| Some((cands(), None));
        assert!(t
            .handle_timeout(now + Duration::from_secs(1), targets)
            .is_empty());
        let at = now + RELAY_UPGRADE_FIRST;
        let acts = t.handle_timeout(at, targets);
        assert!(
            matches!(
                &acts[..],
                [Action::Dial {
                    path: LinkPath::Direct,
                    ..
                }]
            ),
            "{acts:?}"
        );
        let acts = t.on_dial_failed("bob", step_of(&acts[0]), at);
        let Action::ConnectPeer { mode, step, .. } = acts[0].clone() else {
            panic!("{acts:?}")
        };
        assert_eq!(mode, ConnectMode::Punch);
        t.on_connect_peer_ok("bob", step, &ok(0), at);
        // One punch only, then no relay and no back-off: the next upgrade a minute later.
        assert!(t.on_dial_failed("bob", step, at).is_empty());
        assert!(!t.is_running("bob"));
        assert_eq!(t.upgrade_due("bob"), Some(at + RELAY_UPGRADE_INTERVAL));
        // A direct link ends the upgrades.
        t.on_link_open("bob", LinkPath::Punched, true, at);
        assert_eq!(t.upgrade_due("bob"), None);
    }

    #[test]
    fn answering_a_request_dials_back_and_labels_inbound_links() {
        let now = t0();
        let mut t = Traversal::default();
        let req = |mode| PeerConnectRequested {
            userid: "Alice".into(),
            mode,
            attempt_id: [2; 16],
            candidates: cands(),
            dial_in: Duration::from_millis(300),
        };
        let acts = t.on_request(&req(ConnectMode::Reverse), false, now);
        assert!(matches!(
            &acts[..],
            [Action::Dial { friend, from_listener: false, path: LinkPath::Reversed, addrs, at, .. }]
                if friend == "alice" && addrs.len() == 2 && *at == now
        ));
        let acts = t.on_request(&req(ConnectMode::Punch), false, now);
        assert!(matches!(
            &acts[..],
            [Action::Dial { from_listener: true, path: LinkPath::Punched, addrs, at, timeout, .. }]
                if addrs == &vec![addr("198.18.0.2:4000")]
                    && *at == now + Duration::from_millis(300)
                    && *timeout == PUNCH_WINDOW
        ));
        assert_eq!(t.inbound_path("alice", now), LinkPath::Punched);
        assert_eq!(
            t.inbound_path("alice", now + Duration::from_secs(60)),
            LinkPath::Direct
        );
        assert!(t.on_request(&req(ConnectMode::Punch), true, now).is_empty());
    }
}
