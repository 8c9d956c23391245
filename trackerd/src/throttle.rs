//! Slowing down password guessing and account farming.
//!
//! - **Per source** (an IPv4 address or an IPv6 /64): at most `logins_per_minute` login
//!   attempts and `accounts_per_hour` accounts created, token buckets from `governor`.
//! - **Per account**: after [`FREE_FAILURES`] wrong passwords in a row, each further attempt
//!   must wait twice as long as the one before (1 s, 2 s, 4 s, … up to [`MAX_DELAY`]); an attempt
//!   that comes too early is refused without checking the password. A success resets the count.
//!   This locks out the real user for as long as the delay too; the daemon of a user already
//!   logged in keeps its session, and the delay never exceeds [`MAX_DELAY`] (docs/SECURITY.md).
//! - Unknown user names are counted like known ones and checked against a decoy hash, so the
//!   answer and its timing say nothing about whether an account exists.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use p2p_proto::admission::source_of;
use p2p_proto::{ErrorKind, ErrorReply};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Wrong passwords in a row an account gets without delay.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay between two attempts at one account.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// An account's failures are forgotten after this long without an attempt.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Most accounts whose failures are remembered at once (the oldest are forgotten first).
const MAX_TRACKED: usize = 100_000;

/// The per-source rates, set by `--logins-per-minute` and `--accounts-per-hour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub logins_per_minute: NonZeroU32,
    pub accounts_per_hour: NonZeroU32,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            logins_per_minute: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
            accounts_per_hour: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
        }
    }
}

pub struct Throttle {
    logins: DefaultKeyedRateLimiter<IpAddr>,
    accounts: DefaultKeyedRateLimiter<IpAddr>,
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long after the last failure the next attempt may come.
    fn delay(&self) -> Duration {
        match self.count.checked_sub(FREE_FAILURES) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(16)).min(MAX_DELAY),
        }
    }
}

fn rate_limited(what: &str, wait: Duration) -> ErrorReply {
    let secs = wait.as_secs().max(1);
    ErrorReply::new(
        ErrorKind::RateLimited,
        format!("too many {what}; try again in {secs}s"),
    )
}

impl Throttle {
    pub fn new(rates: Rates) -> Self {
        Self {
            logins: RateLimiter::keyed(Quota::per_minute(rates.logins_per_minute)),
            accounts: RateLimiter::keyed(Quota::per_hour(rates.accounts_per_hour)),
            failures: Mutex::default(),
        }
    }

    fn check(
        limiter: &DefaultKeyedRateLimiter<IpAddr>,
        ip: IpAddr,
        what: &str,
    ) -> Result<(), ErrorReply> {
        limiter.check_key(&source_of(ip)).map_err(|not_until| {
            rate_limited(
                what,
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    /// A login attempt from `ip` at `user`: refused while the source is over its rate or the
    /// account is in its delay.
    pub fn login_attempt(&self, ip: IpAddr, user: &str) -> Result<(), ErrorReply> {
        Self::check(&self.logins, ip, "login attempts from your address")?;
        let failures = self.lock();
        if let Some(f) = failures.get(user) {
            let since = f.last.elapsed();
            let delay = f.delay();
            if since < delay {
                return Err(rate_limited(
                    &format!("failed logins for {user}"),
                    delay - since,
                ));
            }
        }
        Ok(())
    }

    /// An account creation from `ip`.
    pub fn account_attempt(&self, ip: IpAddr) -> Result<(), ErrorReply> {
        Self::check(&self.accounts, ip, "accounts created from your address")
    }

    pub fn login_failed(&self, user: &str) {
        let mut failures = self.lock();
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(user) {
            failures.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            let oldest = failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(u, _)| u.clone());
            if let Some(oldest) = oldest.filter(|_| failures.len() >= MAX_TRACKED) {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(user.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    pub fn login_succeeded(&self, user: &str) {
        self.lock().remove(user);
    }

    /// Forgets what no longer matters (idle sources, old failures); called now and then.
    pub fn tidy(&self) {
        self.logins.retain_recent();
        self.accounts.retain_recent();
        self.logins.shrink_to_fit();
        self.accounts.shrink_to_fit();
        self.lock().retain(|_, f| f.last.elapsed() < FORGET_AFTER);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        // Plain counters: a panic elsewhere cannot leave them half-written.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(logins: u32, accounts: u32) -> Rates {
        Rates {
            logins_per_minute: NonZeroU32::new(logins).unwrap(),
            accounts_per_hour: NonZeroU32::new(accounts).unwrap(),
        }
    }

    #[test]
    fn a_source_over_its_rate_is_refused_and_others_are_not() {
        let t = Throttle::new(rates(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            t.login_attempt(a, "x").unwrap();
        }
        let e = t.login_attempt(a, "x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        t.login_attempt(b, "x").unwrap();
        t.account_attempt(a).unwrap();
        t.account_attempt(a).unwrap();
        assert_eq!(
            t.account_attempt(a).unwrap_err().kind,
            ErrorKind::RateLimited
        );
    }

    #[test]
    fn failures_past_the_free_ones_delay_the_account() {
        let t = Throttle::new(rates(1000, 10));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            t.login_attempt(ip, "alice").unwrap();
            t.login_failed("alice");
        }
        let e = t.login_attempt(ip, "alice").unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert!(
            e.message.contains("failed logins for alice"),
            "{}",
            e.message
        );
        t.login_attempt(ip, "bob").unwrap();
        t.login_succeeded("alice");
        t.login_attempt(ip, "alice").unwrap();
    }

    #[test]
    fn the_delay_doubles_up_to_its_cap() {
        let at = |count| {
            Failures {
                count,
                last: Instant::now(),
            }
            .delay()
        };
        assert_eq!(at(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(at(FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(at(FREE_FAILURES + 3), Duration::from_secs(8));
        assert_eq!(at(u32::MAX), MAX_DELAY);
    }
}
