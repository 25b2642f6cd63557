//! Rate limits (SPEC.md §10): the per-connection request bucket and the login-failure limits
//! per account and per source IP.
//!
//! Every decision takes `now` as an argument, so the rules are tested here with a virtual
//! clock; the connection code passes `Instant::now()`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};
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

/// Drops timestamps older than `window` from the front of `q`.
fn expire(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
}

/// Login/KeyLogin/ForgotPassword failure limits (SPEC.md §5.1.7), per account key (lowercase
/// userid) and per source address.
///
/// Sharded maps, so checks from many connections do not queue on one lock. Each entry keeps
/// only the failures that can still matter, so memory is bounded by recent activity.
#[derive(Debug)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    accounts: DashMap<String, VecDeque<Instant>>,
    ips: DashMap<IpAddr, VecDeque<Instant>>,
}

/// Failures kept per account: the back-off reaches its cap long before this many.
const ACCOUNT_HISTORY: usize = 64;

impl LoginLimiter {
    /// A limiter with `policy`.
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            accounts: DashMap::new(),
            ips: DashMap::new(),
        }
    }

    /// The lock on an account with `failures` recent failures, the latest at `last`.
    fn lock_until(&self, failures: usize, last: Instant) -> Option<Instant> {
        let p = &self.policy;
        if failures < p.account_failures {
            return None;
        }
        let doublings = u32::try_from(failures - p.account_failures)
            .unwrap_or(u32::MAX)
            .min(30);
        let lock = p
            .backoff_start
            .saturating_mul(1u32 << doublings)
            .min(p.backoff_max);
        Some(last + lock)
    }

    /// Whether an attempt for `account` (the lowercase userid, `None` if syntactically invalid)
    /// from `ip` may proceed now. The address check runs first.
    ///
    /// # Errors
    /// How long to wait, when either limit is in force.
    pub fn check(&self, account: Option<&str>, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let p = &self.policy;
        if let Some(mut q) = self.ips.get_mut(&address_key(ip)) {
            expire(&mut q, p.ip_window, now);
            if q.len() >= p.ip_failures {
                // Fewer than ip_failures remain once the oldest of the latest ip_failures ages out.
                let idx = q.len() - p.ip_failures;
                if let Some(t) = q.get(idx) {
                    return Err((*t + p.ip_window)
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1)));
                }
            }
        }
        if let Some(account) = account {
            if let Some(mut q) = self.accounts.get_mut(account) {
                expire(&mut q, p.account_window, now);
                if let Some(until) = q
                    .back()
                    .and_then(|last| self.lock_until(q.len(), *last))
                    .filter(|u| *u > now)
                {
                    return Err(until
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1)));
                }
            }
        }
        Ok(())
    }

    /// Records a failure against the source address and, if given, the account key.
    pub fn record_failure(&self, account: Option<&str>, ip: IpAddr, now: Instant) {
        let p = self.policy;
        {
            let mut q = self.ips.entry(address_key(ip)).or_default();
            expire(&mut q, p.ip_window, now);
            q.push_back(now);
            while q.len() > p.ip_failures {
                q.pop_front();
            }
        }
        if let Some(account) = account {
            let mut q = self.accounts.entry(account.to_owned()).or_default();
            expire(&mut q, p.account_window, now);
            q.push_back(now);
            while q.len() > ACCOUNT_HISTORY {
                q.pop_front();
            }
        }
    }

    /// Records a success: the account's failures are cleared (the address's are not).
    pub fn record_success(&self, account: &str) {
        self.accounts.remove(account);
    }

    /// Forgets entries whose failures have all left their window. Called by the sweeper.
    pub fn prune(&self, now: Instant) {
        let p = self.policy;
        self.ips.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < p.ip_window)
        });
        self.accounts.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < p.account_window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

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

    fn fail(l: &LoginLimiter, a: &str, now: Instant) {
        l.record_failure(Some(a), IP, now);
    }

    #[test]
    fn account_backoff_doubles_and_success_resets() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let mut now = Instant::now();
        for _ in 0..4 {
            assert!(l.check(Some("alice"), IP, now).is_ok());
            fail(&l, "alice", now);
        }
        assert!(l.check(Some("alice"), IP, now).is_ok());
        fail(&l, "alice", now);
        assert_eq!(l.check(Some("alice"), IP, now), Err(Duration::from_secs(1)));
        // Other accounts, and attempts naming no valid account, are unaffected.
        assert!(l.check(Some("bob"), IP, now).is_ok());
        assert!(l.check(None, IP, now).is_ok());
        now += Duration::from_secs(1);
        assert!(l.check(Some("alice"), IP, now).is_ok());
        fail(&l, "alice", now);
        assert_eq!(l.check(Some("alice"), IP, now), Err(Duration::from_secs(2)));
        now += Duration::from_secs(2);
        fail(&l, "alice", now);
        assert_eq!(l.check(Some("alice"), IP, now), Err(Duration::from_secs(4)));
        l.record_success("alice");
        assert!(l.check(Some("alice"), IP, now).is_ok());
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

    #[test]
    fn prune_forgets_old_state() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        fail(&l, "a", now);
        l.prune(now + Duration::from_secs(3600));
        assert!(l.accounts.is_empty() && l.ips.is_empty());
    }
}
