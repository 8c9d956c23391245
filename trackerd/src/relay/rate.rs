//! Byte rates of the relay: a token bucket (`governor`'s GCRA) whose cells are bytes. One
//! bucket per relayed connection (both directions together) and one for the whole tracker.
//!
//! The bucket holds a quarter second of bytes, and at least one copy buffer, so a relay never
//! bursts far past its rate and every read fits in the bucket.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// The largest rate a bucket takes (4 GiB/s: governor counts cells in `u32`); above it the
/// rate is this one, which no relay reaches anyway.
const MOST: u64 = u32::MAX as u64;

/// A byte rate.
pub struct ByteRate<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    /// The most bytes one check may take.
    burst: u32,
}

impl ByteRate {
    /// `bytes_per_sec` bytes a second, with a burst of a quarter second but at least
    /// `min_burst` bytes.
    pub fn new(bytes_per_sec: u64, min_burst: u32) -> Self {
        Self::with_clock(bytes_per_sec, min_burst, DefaultClock::default())
    }
}

impl<C: Clock> ByteRate<C> {
    pub fn with_clock(bytes_per_sec: u64, min_burst: u32, clock: C) -> Self {
        let rate = nonzero(bytes_per_sec.min(MOST));
        let burst = nonzero((bytes_per_sec / 4).clamp(u64::from(min_burst.max(1)), MOST));
        let quota = Quota::per_second(rate).allow_burst(burst);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            burst: burst.get(),
        }
    }

    /// Takes up to `bytes` (at most one burst) if the bucket has them: `Ok(n)` with the bytes
    /// taken, or `Err(wait)`, how long until they are there.
    pub fn try_take(&self, bytes: usize) -> Result<u32, Duration> {
        let n = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.burst);
        let Some(cells) = NonZeroU32::new(n) else {
            return Ok(0);
        };
        match self.limiter.check_n(cells) {
            Ok(Ok(())) => Ok(n),
            Ok(Err(not_until)) => Err(not_until
                .wait_time_from(self.limiter.clock().now())
                .max(Duration::from_micros(100))),
            // Cannot happen: `n` is at most the burst.
            Err(_) => Err(Duration::from_millis(1)),
        }
    }

    /// Waits until `bytes` may pass, and takes them.
    pub async fn take(&self, bytes: usize) {
        let mut left = bytes;
        while left > 0 {
            match self.try_take(left) {
                Ok(n) => left -= n as usize,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

fn nonzero(n: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_burst_passes_then_bytes_come_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let rate = ByteRate::with_clock(4000, 100, clock.clone());
        // A quarter second of bytes at once.
        assert_eq!(rate.try_take(1000), Ok(1000));
        let wait = rate.try_take(400).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.1).abs() < 0.001,
            "400 bytes at 4000 B/s: {wait:?}"
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(rate.try_take(400), Ok(400));
        assert!(rate.try_take(1).is_err(), "the bucket is empty again");
        // A long idle time refills only one burst.
        clock.advance(Duration::from_secs(60));
        assert_eq!(rate.try_take(5000), Ok(1000), "at most one burst per check");
        assert!(rate.try_take(1).is_err());
    }

    #[test]
    fn the_burst_holds_at_least_one_copy_buffer() {
        let clock = FakeRelativeClock::default();
        let rate = ByteRate::with_clock(1024, 16 * 1024, clock.clone());
        assert_eq!(rate.try_take(16 * 1024), Ok(16 * 1024));
        let wait = rate.try_take(1024).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 0.01, "{wait:?}");
        assert_eq!(rate.try_take(0), Ok(0), "nothing to take never waits");
    }

    #[test]
    fn rates_beyond_what_governor_counts_are_capped_not_refused() {
        let clock = FakeRelativeClock::default();
        let rate = ByteRate::with_clock(u64::MAX / 2, 16 * 1024, clock);
        assert_eq!(rate.try_take(1 << 20), Ok(1 << 20));
    }
}
