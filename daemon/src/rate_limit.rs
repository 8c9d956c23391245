//! Daemon-wide bandwidth limits: a token bucket shared by every connection in one direction.
//!
//! A transfer reserves its bytes up front and sleeps until the bucket has paid for them, so
//! many connections together never exceed the rate. The bucket holds at most a quarter second
//! of tokens (at least one piece), which keeps bursts short.

use crate::sync::Locked;
use std::time::{Duration, Instant};

/// The pure arithmetic of the bucket, testable without clocks.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// May go negative: a reservation made in debt is paid off by waiting.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes `bytes` and says how long to wait before using them.
    pub fn reserve(&mut self, bytes: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// A limit in bytes per second, or none.
pub struct RateLimit {
    bucket: Option<Locked<TokenBucket>>,
}

impl RateLimit {
    /// `None` means unlimited.
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        Self {
            bucket: bytes_per_sec.map(|rate| {
                let burst = (rate / 4).max(p2p_proto::files::PIECE_SIZE);
                Locked::new(TokenBucket::new(rate, burst, Instant::now()))
            }),
        }
    }

    /// Waits until `bytes` may be transferred.
    pub async fn acquire(&self, bytes: u64) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let wait = bucket.with(|b| b.reserve(bytes, Instant::now()));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_rate_is_respected() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000, 100, start);
        assert_eq!(bucket.reserve(100, start), Duration::ZERO, "burst is free");
        // The next 1000 bytes at 1000 B/s cost one second.
        let wait = bucket.reserve(1000, start);
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // After that second has passed the debt is paid.
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.reserve(0, later), Duration::ZERO);
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000, 100, start);
        let much_later = start + Duration::from_secs(60);
        assert_eq!(bucket.reserve(100, much_later), Duration::ZERO);
        assert!(bucket.reserve(100, much_later) > Duration::ZERO);
    }
}
