//! The timing of a mapping's life: the lease asked for, when to renew it, how often to look at
//! the network, and how the retries of a daemon without a mapping back off. Pure, so tested
//! here; [`super::keeper`] follows it.

use std::time::Duration;

/// The lease asked for: one hour. Long enough that renewals are rare, short enough that a
/// mapping left behind (the daemon killed, the machine gone) lapses soon.
pub(super) const LEASE: Duration = Duration::from_secs(3600);

/// How often the default route and our address towards it are read again, to notice a change
/// of network (and, without a mapping, to retry at once when the network changed).
pub(super) const NETWORK_CHECK: Duration = Duration::from_secs(30);

/// The first retry after a failed attempt; each next one waits twice as long, up to
/// [`MAX_RETRY`].
pub(super) const FIRST_RETRY: Duration = Duration::from_secs(10);

/// The longest wait between two attempts without a mapping.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(300);

/// How long after the gateway granted `lifetime` the mapping is renewed: at half of it, so
/// that a renewal that fails leaves time for more before it lapses; at least a second; at most
/// half of [`LEASE`], so a gateway that granted more (or a permanent mapping, `lifetime` zero)
/// is still asked every half hour, which finds out when it forgot the mapping (a reboot).
pub(super) fn renewal_after(lifetime: Duration) -> Duration {
    let half_lease = LEASE / 2;
    if lifetime.is_zero() {
        return half_lease;
    }
    (lifetime / 2).clamp(Duration::from_secs(1), half_lease)
}

/// The waits between attempts while there is no mapping: [`FIRST_RETRY`], doubling up to
/// [`MAX_RETRY`]; back to the start once a mapping is made or the network changes.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Self { next: FIRST_RETRY }
    }

    /// The wait before the next attempt, and a longer one for the attempt after it.
    pub(super) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        wait
    }

    pub(super) fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_lease_is_renewed_at_half_its_lifetime() {
        assert_eq!(renewal_after(LEASE), secs(1800));
        // A gateway that grants less than asked (NAT-PMP may): half of what it granted.
        assert_eq!(renewal_after(secs(600)), secs(300));
        assert_eq!(renewal_after(secs(7)), Duration::from_millis(3500));
    }

    #[test]
    fn a_long_or_permanent_lease_is_still_refreshed_every_half_hour() {
        assert_eq!(renewal_after(secs(86_400)), secs(1800));
        assert_eq!(renewal_after(Duration::ZERO), secs(1800));
    }

    #[test]
    fn a_tiny_lifetime_is_renewed_after_a_second_not_in_a_busy_loop() {
        assert_eq!(renewal_after(secs(1)), secs(1));
        assert_eq!(renewal_after(Duration::from_millis(10)), secs(1));
    }

    #[test]
    fn retries_back_off_up_to_five_minutes_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), FIRST_RETRY);
    }

    #[test]
    fn the_network_is_checked_more_often_than_anything_is_renewed() {
        assert!(NETWORK_CHECK < renewal_after(LEASE));
        assert!(NETWORK_CHECK < MAX_RETRY);
    }
}
