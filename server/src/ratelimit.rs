//! Rate limits (SPEC.md §10): the per-connection request bucket and the login-failure limits
//! per account and per source IP.
//!
//! Every decision takes `now` as an argument, so the rules are tested here with a virtual
//! clock; the connection code passes `Instant::now()`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use peerchat_proto::limits;

/// A token bucket: `capacity` requests at once, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: u32, rate_per_sec: u32, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            capacity,
            rate: f64::from(rate_per_sec.max(1)),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    ///
    /// # Errors
    /// The wait until the next token, when the bucket is empty.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            // Round up to a whole millisecond so that a client retrying after exactly
            // retry_after_ms finds a token.
            Err(Duration::from_millis((wait * 1000.0).ceil() as u64))
        }
    }

    /// Whether the bucket would be full at `now`.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.capacity
    }
}

/// Connections held per source address (SPEC.md §4.2, §10 `MAX_CONNECTIONS_PER_ADDRESS`), so
/// that one address cannot hold every connection slot (issue #10: 16,384 idle connections
/// from one address refused every real client).
#[derive(Debug)]
pub struct AddressSlots {
    max: usize,
    held: DashMap<IpAddr, usize>,
}

/// One connection's place in [`AddressSlots`]; dropping it frees the place.
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: IpAddr,
}

impl AddressSlots {
    /// At most `max` connections per address key.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            held: DashMap::new(),
        })
    }

    /// A place for a connection from `ip`, or `None` if the address holds `max` already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut n = self.held.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: Arc::clone(self),
            key,
        })
    }

    /// Connections held from `ip`'s address key.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.held.get(&address_key(ip)).map_or(0, |n| *n)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.slots.held.remove_if_mut(&self.key, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

/// Per-source-address registration limit (SPEC.md §5.2, §10: `REGISTER_BURST`,
/// `REGISTER_RATE`): a token bucket per address key, taken before any validation or hashing,
/// so that one address cannot create accounts (two argon2 hashes each) as fast as it can send.
#[derive(Debug)]
pub struct RegisterLimiter {
    burst: u32,
    rate_per_sec: u32,
    buckets: DashMap<IpAddr, TokenBucket>,
}

impl RegisterLimiter {
    /// `burst` registrations at once per address, refilled at `rate_per_sec`.
    pub fn new(burst: u32, rate_per_sec: u32) -> Self {
        Self {
            burst,
            rate_per_sec,
            buckets: DashMap::new(),
        }
    }

    /// Takes one registration token for `ip`.
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn try_take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.buckets
            .entry(address_key(ip))
            .or_insert_with(|| TokenBucket::new(self.burst, self.rate_per_sec, now))
            .try_take(now)
    }

    /// Forgets buckets that have refilled completely (they equal a fresh one).
    pub fn prune(&self, now: Instant) {
        self.buckets.retain(|_, b| !b.is_full(now));
    }
}

/// The numbers of the login-failure rules (SPEC.md §5.1.7, §10); [`LoginPolicy::default`] is
/// the spec.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// `LOGIN_FAIL_ACCOUNT_MAX`: failures per account within `account_window` that lock it.
    pub account_failures: usize,
    /// `LOGIN_FAIL_ACCOUNT_WINDOW`.
    pub account_window: Duration,
    /// `LOGIN_BACKOFF_MIN`: the lock after the limit is reached; doubles per further failure.
    pub backoff_start: Duration,
    /// `LOGIN_BACKOFF_MAX`: the longest lock.
    pub backoff_max: Duration,
    /// `LOGIN_FAIL_IP_MAX`: failures per source address within `ip_window` that limit it.
    pub ip_failures: usize,
    /// `LOGIN_FAIL_IP_WINDOW`.
    pub ip_window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            account_failures: limits::LOGIN_FAIL_ACCOUNT_MAX as usize,
            account_window: limits::LOGIN_FAIL_ACCOUNT_WINDOW,
            backoff_start: limits::LOGIN_BACKOFF_MIN,
            backoff_max: limits::LOGIN_BACKOFF_MAX,
            ip_failures: limits::LOGIN_FAIL_IP_MAX as usize,
            ip_window: limits::LOGIN_FAIL_IP_WINDOW,
        }
    }
}

impl LoginPolicy {
    /// How long an account with `failures` recent failures is locked (SPEC.md §5.1.7 rule 4):
    /// none below `account_failures`, then `backoff_start` doubling per further failure up to
    /// `backoff_max`. One rule for the single-node limiter and the cluster's shared one.
    pub fn account_lock(&self, failures: usize) -> Option<Duration> {
        let over = failures.checked_sub(self.account_failures)?;
        let doublings = u32::try_from(over).unwrap_or(u32::MAX).min(30);
        Some(
            self.backoff_start
                .saturating_mul(1u32 << doublings)
                .min(self.backoff_max),
        )
    }
}

/// The key a source address is counted under: the IPv4 address, or the /64 prefix of an IPv6
/// address (one host usually owns a whole /64), with IPv4-mapped IPv6 read as IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// One counted attempt: when it was reserved, and which reservation it is (so that a refund
/// removes exactly its own mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    at: Instant,
    id: u64,
}

/// Drops marks older than `window` from the front of `q`.
fn expire(q: &mut VecDeque<Mark>, window: Duration, now: Instant) {
    while q
        .front()
        .is_some_and(|m| now.saturating_duration_since(m.at) >= window)
    {
        q.pop_front();
    }
}

/// The rules of SPEC.md §5.1.7 (3, 4) over failure times in ms, for a limiter whose marks
/// live elsewhere (the cluster's shared table, `crate::cluster::SharedLimiter`).
/// `ip_marks` and `account_marks` are the failure times still inside their windows, oldest
/// first.
///
/// # Errors
/// How long to wait, when either limit is in force (the address check first).
pub fn decide_ms(
    policy: &LoginPolicy,
    ip_marks: &[i64],
    account_marks: &[i64],
    now_ms: i64,
) -> Result<(), Duration> {
    let wait = |t: i64| Duration::from_millis(u64::try_from(t - now_ms).unwrap_or(0).max(1));
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if ip_marks.len() >= policy.ip_failures {
        let m = ip_marks[ip_marks.len() - policy.ip_failures];
        return Err(wait(m + ms(policy.ip_window)));
    }
    if let (Some(&last), Some(lock)) = (
        account_marks.last(),
        policy.account_lock(account_marks.len()),
    ) {
        let until = last + ms(lock);
        if until > now_ms {
            return Err(wait(until));
        }
    }
    Ok(())
}

/// Login/KeyLogin/ForgotPassword failure limits (SPEC.md §5.1.7), per account key (lowercase
/// userid) and per source address.
///
/// **Reserved before work.** An attempt takes its slot with [`LoginLimiter::reserve`] before
/// the password is hashed: the slot counts as a failure at once, so N concurrent guesses
/// cannot all pass the check while the first ones are still in argon2 (issue #10: 200
/// concurrent guesses were all evaluated). A success gives the slot back
/// ([`Attempt::succeeded`]); so does an attempt that ends without a verdict (dropped, or an
/// internal error).
///
/// Sharded maps, so checks from many connections do not queue on one lock. Each entry keeps
/// only the marks that can still matter, so memory is bounded by recent activity.
#[derive(Debug)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    accounts: DashMap<String, VecDeque<Mark>>,
    ips: DashMap<IpAddr, VecDeque<Mark>>,
    next_id: AtomicU64,
}

/// Failures kept per account: the back-off reaches its cap long before this many.
const ACCOUNT_HISTORY: usize = 64;

/// A reserved attempt (SPEC.md §5.1.7): counted as a failure from the moment it was
/// reserved until it is settled. Dropping it unsettled gives the slot back.
#[derive(Debug)]
#[must_use = "an attempt is settled with failed() or succeeded(); dropping it refunds the slot"]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    ip: IpAddr,
    account: Option<String>,
    mark: Mark,
    settled: bool,
}

impl Attempt<'_> {
    /// The attempt failed: its slot stays taken (a success elsewhere may have cleared the
    /// account's marks meanwhile; then it is counted again).
    pub fn failed(mut self, now: Instant) {
        self.settled = true;
        let l = self.limiter;
        let mark = Mark {
            at: now,
            id: self.mark.id,
        };
        {
            let mut q = l.ips.entry(self.ip).or_default();
            if !q.iter().any(|m| m.id == mark.id) {
                q.push_back(mark);
            }
        }
        if let Some(account) = &self.account {
            let mut q = l.accounts.entry(account.clone()).or_default();
            if !q.iter().any(|m| m.id == mark.id) {
                q.push_back(mark);
                while q.len() > ACCOUNT_HISTORY {
                    q.pop_front();
                }
            }
        }
    }

    /// The attempt succeeded: its own address slot is given back and the account's failures
    /// are cleared (the address's other failures are not, SPEC.md §5.1.7 rule 6).
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.remove(self.ip, None, self.mark.id);
        if let Some(account) = &self.account {
            self.limiter.accounts.remove(account);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter
                .remove(self.ip, self.account.as_deref(), self.mark.id);
        }
    }
}

impl LoginLimiter {
    /// A limiter with `policy`.
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            accounts: DashMap::new(),
            ips: DashMap::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The lock on an account with `failures` recent failures, the latest at `last`.
    fn lock_until(&self, failures: usize, last: Instant) -> Option<Instant> {
        self.policy.account_lock(failures).map(|lock| last + lock)
    }

    /// Reserves a slot for an attempt from `ip` on `account` (the lowercase userid; `None` if
    /// syntactically invalid, or for KeyLogin, whose failures count per address only), or says
    /// how long to wait. The address check runs first. Check and reservation are one step
    /// under the entries' locks, so concurrent attempts see each other.
    ///
    /// # Errors
    /// How long to wait, when either limit is in force.
    pub fn reserve(
        &self,
        account: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let p = &self.policy;
        let ip = address_key(ip);
        let wait = |t: Instant| {
            t.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        };
        // Lock order: address entry, then account entry (different maps: no cycle).
        let mut ip_q = self.ips.entry(ip).or_default();
        expire(&mut ip_q, p.ip_window, now);
        if ip_q.len() >= p.ip_failures {
            // Fewer than ip_failures remain once the oldest of the latest ip_failures ages out.
            let idx = ip_q.len() - p.ip_failures;
            if let Some(m) = ip_q.get(idx) {
                return Err(wait(m.at + p.ip_window));
            }
        }
        let mark = Mark {
            at: now,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(account) = account {
            let mut q = self.accounts.entry(account.to_owned()).or_default();
            expire(&mut q, p.account_window, now);
            if let Some(until) = q
                .back()
                .and_then(|last| self.lock_until(q.len(), last.at))
                .filter(|u| *u > now)
            {
                return Err(wait(until));
            }
            q.push_back(mark);
            while q.len() > ACCOUNT_HISTORY {
                q.pop_front();
            }
        }
        ip_q.push_back(mark);
        Ok(Attempt {
            limiter: self,
            ip,
            account: account.map(str::to_owned),
            mark,
            settled: false,
        })
    }

    /// Removes reservation `id` from the address entry and, if given, the account entry.
    fn remove(&self, ip: IpAddr, account: Option<&str>, id: u64) {
        if let Some(mut q) = self.ips.get_mut(&ip) {
            q.retain(|m| m.id != id);
        }
        if let Some(account) = account {
            if let Some(mut q) = self.accounts.get_mut(account) {
                q.retain(|m| m.id != id);
            }
        }
    }

    /// Forgets entries whose marks have all left their window. Called by the sweeper.
    pub fn prune(&self, now: Instant) {
        let p = self.policy;
        self.ips.retain(|_, q| {
            q.back()
                .is_some_and(|m| now.saturating_duration_since(m.at) < p.ip_window)
        });
        self.accounts.retain(|_, q| {
            q.back()
                .is_some_and(|m| now.saturating_duration_since(m.at) < p.account_window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn shared_decision_follows_the_same_rules() {
        let p = LoginPolicy::default();
        // Four account failures: admitted; the fifth locks for 1 s from the last.
        assert!(decide_ms(&p, &[], &[0, 1, 2, 3], 10).is_ok());
        assert_eq!(
            decide_ms(&p, &[], &[0, 1, 2, 3, 4], 10),
            Err(Duration::from_millis(994))
        );
        assert!(decide_ms(&p, &[], &[0, 1, 2, 3, 4], 1004).is_ok());
        // The sixth doubles it.
        assert_eq!(
            decide_ms(&p, &[], &[0, 1, 2, 3, 4, 5], 5),
            Err(Duration::from_millis(2000))
        );
        // Fifty address failures: wait until the oldest leaves the window.
        let ip: Vec<i64> = (0..50).collect();
        assert_eq!(
            decide_ms(&p, &ip, &[], 100),
            Err(Duration::from_millis(300_000 - 100))
        );
    }

    #[test]
    fn bucket_allows_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50, 20, t0);
        for _ in 0..50 {
            assert!(b.try_take(t0).is_ok());
        }
        let wait = b.try_take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(50));
        assert!(b.try_take(t0 + Duration::from_millis(50)).is_ok());
        assert!(b.try_take(t0 + Duration::from_millis(50)).is_err());
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..50 {
            assert!(b.try_take(later).is_ok());
        }
        assert!(b.try_take(later).is_err());
    }

    impl LoginLimiter {
        /// A settled failure, bypassing the check (to build up history quickly).
        fn record_failure(&self, account: Option<&str>, ip: IpAddr, now: Instant) {
            let mark = Mark {
                at: now,
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
            };
            self.ips.entry(address_key(ip)).or_default().push_back(mark);
            if let Some(a) = account {
                self.accounts
                    .entry(a.to_owned())
                    .or_default()
                    .push_back(mark);
            }
        }

        /// Whether an attempt could be reserved now (the reservation is given back).
        fn check(&self, account: Option<&str>, ip: IpAddr, now: Instant) -> Result<(), Duration> {
            self.reserve(account, ip, now).map(drop)
        }
    }

    fn fail(l: &LoginLimiter, a: &str, now: Instant) {
        l.record_failure(Some(a), IP, now);
    }

    #[test]
    fn account_backoff_doubles_and_success_resets() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let mut now = Instant::now();
        for _ in 0..4 {
            l.reserve(Some("alice"), IP, now).unwrap().failed(now);
        }
        assert!(l.check(Some("alice"), IP, now).is_ok());
        l.reserve(Some("alice"), IP, now).unwrap().failed(now);
        assert_eq!(l.check(Some("alice"), IP, now), Err(Duration::from_secs(1)));
        // Other accounts, and attempts naming no valid account, are unaffected.
        assert!(l.check(Some("bob"), IP, now).is_ok());
        assert!(l.check(None, IP, now).is_ok());
        now += Duration::from_secs(1);
        l.reserve(Some("alice"), IP, now).unwrap().failed(now);
        assert_eq!(l.check(Some("alice"), IP, now), Err(Duration::from_secs(2)));
        now += Duration::from_secs(2);
        fail(&l, "alice", now);
        assert_eq!(l.check(Some("alice"), IP, now), Err(Duration::from_secs(4)));
        now += Duration::from_secs(4);
        l.reserve(Some("alice"), IP, now).unwrap().succeeded();
        assert!(l.check(Some("alice"), IP, now).is_ok());
    }

    /// Issue #10: the limit was checked, argon2 awaited, and only then a failure counted, so
    /// concurrent guesses all passed the check. A reservation counts at once.
    #[test]
    fn concurrent_attempts_are_counted_before_they_finish() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        // Five guesses in flight (reserved, not yet settled) …
        let in_flight: Vec<_> = (0..5)
            .map(|_| l.reserve(Some("alice"), IP, now).unwrap())
            .collect();
        // … and the sixth — even the right password — is not evaluated.
        assert_eq!(
            l.reserve(Some("alice"), IP, now).map(drop),
            Err(Duration::from_secs(1))
        );
        for a in in_flight {
            a.failed(now);
        }
        assert!(l.check(Some("alice"), IP, now).is_err());
        // Per address the same: LOGIN_FAIL_IP_MAX reservations, then no more.
        let l = LoginLimiter::new(LoginPolicy::default());
        let held: Vec<_> = (0..50)
            .map(|i| l.reserve(Some(&format!("u{i}")), IP, now).unwrap())
            .collect();
        assert!(l.reserve(None, IP, now).is_err());
        drop(held);
        assert!(
            l.reserve(None, IP, now).is_ok(),
            "unsettled attempts give back"
        );
    }

    #[test]
    fn success_gives_its_slot_back_and_keeps_concurrent_failures() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        let wrong: Vec<_> = (0..3)
            .map(|_| l.reserve(Some("alice"), IP, now).unwrap())
            .collect();
        l.reserve(Some("alice"), IP, now).unwrap().succeeded();
        // The wrong guesses that were in flight still count once they fail.
        for a in wrong {
            a.failed(now);
        }
        assert_eq!(l.accounts.get("alice").unwrap().len(), 3);
        assert_eq!(l.ips.get(&IP).unwrap().len(), 3);
    }

    /// KeyLogin reserves per address only (`account = None`): wrong keys never lock the
    /// account's password login (issue #10, SPEC.md §5.1.7).
    #[test]
    fn key_attempts_do_not_lock_the_account() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        for _ in 0..20 {
            l.reserve(None, IP, now).unwrap().failed(now);
        }
        assert!(l.check(Some("alice"), IP, now).is_ok());
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check(Some("alice"), other, now).is_ok());
    }

    #[test]
    fn backoff_is_capped() {
        let l = LoginLimiter::new(LoginPolicy {
            ip_failures: 10_000,
            ..LoginPolicy::default()
        });
        let now = Instant::now();
        for _ in 0..30 {
            fail(&l, "a", now);
        }
        assert_eq!(
            l.check(Some("a"), IP, now),
            Err(Duration::from_secs(15 * 60))
        );
    }

    #[test]
    fn failures_leave_the_window() {
        let l = LoginLimiter::new(LoginPolicy {
            ip_failures: 10_000,
            ..LoginPolicy::default()
        });
        let mut now = Instant::now();
        for _ in 0..4 {
            fail(&l, "a", now);
        }
        now += Duration::from_secs(15 * 60);
        fail(&l, "a", now);
        assert!(l.check(Some("a"), IP, now).is_ok());
    }

    #[test]
    fn ip_limit_spans_accounts_and_ipv6_counts_per_64() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        for i in 0..50 {
            assert!(l.check(Some(&format!("user{i}")), IP, now).is_ok());
            l.record_failure(Some(&format!("user{i}")), IP, now);
        }
        assert_eq!(
            l.check(Some("fresh"), IP, now),
            Err(Duration::from_secs(300))
        );
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check(Some("fresh"), other, now).is_ok());
        // IPv4-mapped IPv6 is the IPv4 address.
        assert_eq!(
            l.check(None, "::ffff:127.0.0.1".parse().unwrap(), now),
            Err(Duration::from_secs(300))
        );
        assert!(l
            .check(Some("fresh"), IP, now + Duration::from_secs(300))
            .is_ok());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..50 {
            l.record_failure(None, a, now);
        }
        assert!(l.check(None, b, now).is_err());
        assert!(l
            .check(None, "2001:db8:0:1::1".parse().unwrap(), now)
            .is_ok());
    }

    /// SPEC.md §10: at least 60 registrations per minute per address; then RATE_LIMITED
    /// (issue #10: ~1,900 accounts in 100 s from one address).
    #[test]
    fn registrations_are_limited_per_address_above_the_floor() {
        let l = RegisterLimiter::new(limits::REGISTER_BURST, limits::REGISTER_RATE);
        let t0 = Instant::now();
        // One a second for a minute, plus the burst: never refused.
        for i in 0..60u64 {
            let now = t0 + Duration::from_secs(i);
            assert!(l.try_take(IP, now).is_ok(), "registration {i}");
        }
        let now = t0 + Duration::from_secs(60);
        let mut served = 0;
        while l.try_take(IP, now).is_ok() {
            served += 1;
        }
        assert!((1..=61).contains(&served), "{served}");
        assert_eq!(l.try_take(IP, now), Err(Duration::from_secs(1)));
        // Another address, and the other half of an IPv6 /64 boundary, are separate.
        assert!(l.try_take("10.0.0.1".parse().unwrap(), now).is_ok());
        // A burst of 60 at once is allowed from a fresh address.
        let fresh: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..60 {
            assert!(l.try_take(fresh, now).is_ok());
        }
        assert!(l.try_take(fresh, now).is_err());
        l.prune(now + Duration::from_secs(3600));
        assert!(l.buckets.is_empty());
    }

    #[test]
    fn address_slots_cap_each_address_and_free_on_drop() {
        let slots = AddressSlots::new(2);
        let a = slots.try_acquire(IP).unwrap();
        let b = slots
            .try_acquire("::ffff:127.0.0.1".parse().unwrap())
            .unwrap();
        assert!(slots.try_acquire(IP).is_none(), "third from one address");
        // IPv6 counts per /64.
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let _c = slots.try_acquire(v6).unwrap();
        let _d = slots.try_acquire("2001:db8::2".parse().unwrap()).unwrap();
        assert!(slots
            .try_acquire("2001:db8::ffff".parse().unwrap())
            .is_none());
        assert!(slots
            .try_acquire("2001:db8:0:1::1".parse().unwrap())
            .is_some());
        drop(a);
        assert_eq!(slots.held(IP), 1);
        let _e = slots.try_acquire(IP).unwrap();
        drop(b);
        drop(_e);
        assert_eq!(slots.held(IP), 0);
        assert!(!slots.held.contains_key(&IP), "empty entries are removed");
    }

    #[test]
    fn prune_forgets_old_state() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        fail(&l, "a", now);
        l.prune(now + Duration::from_secs(3600));
        assert!(l.accounts.is_empty() && l.ips.is_empty());
    }
}
