//! Rate limits (SPEC.md §10): the per-connection request bucket and the login-failure limits
//! per account and per source IP.
//!
//! Every decision takes `now` as an argument, so the rules are tested here with a virtual
//! clock; the connection code passes `Instant::now()`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

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

/// The numbers of the login-failure rules (SPEC.md §10); [`LoginPolicy::default`] is the spec.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Failures per account within `account_window` that trigger back-off.
    pub account_failures: usize,
    /// See `account_failures`.
    pub account_window: Duration,
    /// First back-off; doubles with every further failure.
    pub backoff_start: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
    /// Failures per source IP within `ip_window` after which the IP is limited.
    pub ip_failures: usize,
    /// See `ip_failures`.
    pub ip_window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            account_failures: 5,
            account_window: Duration::from_secs(15 * 60),
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15 * 60),
            ip_failures: 50,
            ip_window: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Debug)]
struct AccountState {
    /// Failures since the account was last quiet for a whole window.
    failures: usize,
    /// The latest failure, or the end of the latest lock if later: the quiet window runs
    /// from here.
    quiet_from: Instant,
    locked_until: Option<Instant>,
    next_backoff: Duration,
}

/// Login/KeyLogin/ForgotPassword failure limits, per account (lowercase userid) and per IP.
///
/// Sharded maps, so checks from many connections do not queue on one lock.
#[derive(Debug)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    accounts: DashMap<String, AccountState>,
    ips: DashMap<IpAddr, VecDeque<Instant>>,
}

impl LoginLimiter {
    /// A limiter with `policy`.
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            accounts: DashMap::new(),
            ips: DashMap::new(),
        }
    }

    /// Whether an attempt for `account` from `ip` may proceed now.
    ///
    /// # Errors
    /// How long to wait, when either limit is in force.
    pub fn check(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let p = &self.policy;
        if let Some(mut q) = self.ips.get_mut(&ip) {
            while q
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= p.ip_window)
            {
                q.pop_front();
            }
            if q.len() >= p.ip_failures {
                if let Some(oldest) = q.front() {
                    return Err((*oldest + p.ip_window)
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1)));
                }
            }
        }
        if let Some(a) = self.accounts.get(account) {
            if let Some(until) = a.locked_until.filter(|u| *u > now) {
                return Err(until.saturating_duration_since(now));
            }
        }
        Ok(())
    }

    /// Records a failed attempt: the account may become locked for the current back-off,
    /// which then doubles.
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Instant) {
        let p = self.policy;
        {
            let mut q = self.ips.entry(ip).or_default();
            q.push_back(now);
            while q.len() > p.ip_failures {
                q.pop_front();
            }
        }
        let mut a = self
            .accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountState {
                failures: 0,
                quiet_from: now,
                locked_until: None,
                next_backoff: p.backoff_start,
            });
        if now.saturating_duration_since(a.quiet_from) >= p.account_window {
            // A whole quiet window forgives earlier failures and back-off.
            a.failures = 0;
            a.locked_until = None;
            a.next_backoff = p.backoff_start;
        }
        a.failures += 1;
        a.quiet_from = now;
        if a.failures >= p.account_failures {
            let backoff = a.next_backoff;
            a.locked_until = Some(now + backoff);
            a.quiet_from = now + backoff;
            a.next_backoff = (backoff * 2).min(p.backoff_max);
        }
    }

    /// Records a success: the account's failures are forgotten (the IP's are not).
    pub fn record_success(&self, account: &str) {
        self.accounts.remove(account);
    }

    /// Forgets state that can no longer affect a decision, so memory stays bounded by recent
    /// activity. Called by the periodic sweeper.
    pub fn prune(&self, now: Instant) {
        let p = self.policy;
        self.ips.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < p.ip_window)
        });
        self.accounts
            .retain(|_, a| now.saturating_duration_since(a.quiet_from) < p.account_window);
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

    #[test]
    fn account_backoff_doubles_and_success_resets() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let mut now = Instant::now();
        for _ in 0..4 {
            assert!(l.check("alice", IP, now).is_ok());
            l.record_failure("alice", IP, now);
        }
        assert!(l.check("alice", IP, now).is_ok());
        l.record_failure("alice", IP, now);
        assert_eq!(l.check("alice", IP, now), Err(Duration::from_secs(1)));
        // Other accounts are unaffected.
        assert!(l.check("bob", IP, now).is_ok());
        now += Duration::from_secs(1);
        assert!(l.check("alice", IP, now).is_ok());
        l.record_failure("alice", IP, now);
        assert_eq!(l.check("alice", IP, now), Err(Duration::from_secs(2)));
        now += Duration::from_secs(2);
        l.record_failure("alice", IP, now);
        assert_eq!(l.check("alice", IP, now), Err(Duration::from_secs(4)));
        l.record_success("alice");
        assert!(l.check("alice", IP, now).is_ok());
    }

    #[test]
    fn backoff_is_capped() {
        let l = LoginLimiter::new(LoginPolicy {
            ip_failures: 10_000,
            ..LoginPolicy::default()
        });
        let mut now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..30 {
            l.record_failure("a", IP, now);
            if let Err(w) = l.check("a", IP, now) {
                last = w;
                now += w;
            }
        }
        assert_eq!(last, Duration::from_secs(15 * 60));
    }

    #[test]
    fn a_quiet_window_forgives() {
        let l = LoginLimiter::new(LoginPolicy {
            ip_failures: 10_000,
            ..LoginPolicy::default()
        });
        let mut now = Instant::now();
        for _ in 0..4 {
            l.record_failure("a", IP, now);
        }
        now += Duration::from_secs(15 * 60);
        l.record_failure("a", IP, now);
        assert!(l.check("a", IP, now).is_ok());
        for _ in 0..4 {
            l.record_failure("a", IP, now);
        }
        assert_eq!(l.check("a", IP, now), Err(Duration::from_secs(1)));
    }

    #[test]
    fn ip_limit_spans_accounts() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        for i in 0..50 {
            assert!(l.check(&format!("user{i}"), IP, now).is_ok());
            l.record_failure(&format!("user{i}"), IP, now);
        }
        assert_eq!(l.check("fresh", IP, now), Err(Duration::from_secs(300)));
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check("fresh", other, now).is_ok());
        assert!(l.check("fresh", IP, now + Duration::from_secs(300)).is_ok());
    }

    #[test]
    fn prune_forgets_old_state() {
        let l = LoginLimiter::new(LoginPolicy::default());
        let now = Instant::now();
        l.record_failure("a", IP, now);
        l.prune(now + Duration::from_secs(3600));
        assert!(l.accounts.is_empty() && l.ips.is_empty());
    }
}
