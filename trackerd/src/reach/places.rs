//! Where each logged-in daemon is: the address its connections come from, its listening
//! port, the public addresses it claims (a port mapping, `--public-addr`, IPv6), and what
//! connecting back to each of them found.
//!
//! The tracker lists a claimed address to downloaders only once a connect-back check reached
//! the claiming daemon there (its own key answered the TLS handshake), and it checks a claimed
//! IPv4 address only when it is the address the daemon connects from: announcing someone
//! else's address makes the tracker connect nowhere but to the announcer's own IP.
//!
//! Pure logic: the current time is passed in, and the checks themselves run elsewhere
//! ([`super::probe`]); this only says which are due and keeps their results.

use p2p_proto::identity::Fingerprint;
use p2p_proto::reach::{Listening, MAX_IPV6, Reachability, Seen};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A check that reached the daemon is repeated after this long.
pub const RECHECK_REACHED: Duration = Duration::from_secs(600);
/// A check that did not is repeated after this long (a mapping may have appeared).
pub const RECHECK_FAILED: Duration = Duration::from_secs(60);
/// A place not refreshed by an announcement or a poll for this long is forgotten.
pub const PLACE_TTL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Check {
    /// `None` while it runs.
    reached: Option<bool>,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Place {
    key: Fingerprint,
    observed: IpAddr,
    /// The IPv4 (or, for a daemon that reaches the tracker over IPv6, IPv6) address peers are
    /// told to dial, and how it reaches the daemon when a check reached it there.
    dial: SocketAddr,
    how: Reachability,
    ipv6: Vec<SocketAddr>,
    checks: HashMap<SocketAddr, Check>,
    seen: Instant,
}

impl Place {
    fn reached(&self, addr: &SocketAddr) -> Option<bool> {
        self.checks.get(addr).and_then(|c| c.reached)
    }
}

/// How downloaders are told to reach one daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub addr: SocketAddr,
    /// `None` while the check runs.
    pub reach: Option<Reachability>,
    /// An IPv6 address a check reached it at.
    pub addr6: Option<SocketAddr>,
}

/// Every daemon's place, by user (one daemon per user).
#[derive(Debug, Default)]
pub struct Places {
    by_user: HashMap<String, Place>,
}

impl Places {
    /// Records where `user`'s daemon (key `key`) is, as its announcement from `observed` says,
    /// and returns the addresses to check now.
    pub fn update(
        &mut self,
        user: &str,
        key: Fingerprint,
        observed: IpAddr,
        port: u16,
        listening: &Listening,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let observed = observed.to_canonical();
        let (dial, how) = match listening.public {
            Some(claim) if claim.addr.ip().to_canonical() == observed && claim.addr.port() != 0 => {
                (claim.addr, claim.how)
            }
            _ => (SocketAddr::new(observed, port), Reachability::Direct),
        };
        let ipv6: Vec<SocketAddr> = listening
            .ipv6
            .iter()
            .filter(|ip| p2p_proto::reach::is_global_ipv6(ip))
            .take(MAX_IPV6)
            .map(|ip| SocketAddr::new(IpAddr::V6(*ip), port))
            .collect();
        let mut checks = match self.by_user.remove(user) {
            Some(old) if old.key == key => old.checks,
            _ => HashMap::new(),
        };
        let wanted: Vec<SocketAddr> = std::iter::once(dial).chain(ipv6.iter().copied()).collect();
        checks.retain(|addr, _| wanted.contains(addr));
        let mut due = Vec::new();
        for addr in &wanted {
            let is_due = match checks.get(addr) {
                None => true,
                Some(Check { reached: None, .. }) => false,
                Some(Check {
                    reached: Some(ok),
                    at,
                }) => {
                    let again = if *ok { RECHECK_REACHED } else { RECHECK_FAILED };
                    now.saturating_duration_since(*at) >= again
                }
            };
            if is_due {
                checks.insert(
                    *addr,
                    Check {
                        reached: None,
                        at: now,
                    },
                );
                due.push(*addr);
            }
        }
        self.by_user.insert(
            user.to_string(),
            Place {
                key,
                observed,
                dial,
                how,
                ipv6,
                checks,
                seen: now,
            },
        );
        due
    }

    /// Keeps `user`'s place from expiring (it polled).
    pub fn touch(&mut self, user: &str, key: Fingerprint, now: Instant) {
        if let Some(place) = self.by_user.get_mut(user).filter(|p| p.key == key) {
            place.seen = now;
        }
    }

    /// Records what checking `addr` of `user`'s daemon (key `key`) found.
    pub fn record(
        &mut self,
        user: &str,
        key: Fingerprint,
        addr: SocketAddr,
        reached: bool,
        now: Instant,
    ) {
        if let Some(place) = self.by_user.get_mut(user).filter(|p| p.key == key)
            && let Some(check) = place.checks.get_mut(&addr)
        {
            *check = Check {
                reached: Some(reached),
                at: now,
            };
        }
    }

    /// What `user`'s daemon (key `key`) is told about itself.
    pub fn seen(&self, user: &str, key: Fingerprint) -> Option<Seen> {
        let place = self.by_user.get(user).filter(|p| p.key == key)?;
        Some(Seen {
            observed: place.observed.to_string(),
            addr: place.dial.to_string(),
            reachable: place
                .reached(&place.dial)
                .map(|ok| if ok { place.how } else { Reachability::None }),
            ipv6: place
                .ipv6
                .iter()
                .filter(|a| place.reached(a) == Some(true))
                .map(SocketAddr::to_string)
                .collect(),
        })
    }

    /// How downloaders reach `user`'s daemon, if it has key `key` and announced.
    pub fn dial(&self, user: &str, key: Fingerprint) -> Option<Dial> {
        let place = self.by_user.get(user).filter(|p| p.key == key)?;
        Some(Dial {
            addr: place.dial,
            reach: place
                .reached(&place.dial)
                .map(|ok| if ok { place.how } else { Reachability::None }),
            addr6: place
                .ipv6
                .iter()
                .find(|a| place.reached(a) == Some(true))
                .copied(),
        })
    }

    /// Forgets places not refreshed for [`PLACE_TTL`]; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.by_user.len();
        self.by_user
            .retain(|_, p| now.saturating_duration_since(p.seen) < PLACE_TTL);
        before - self.by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::reach::PublicClaim;
    use std::net::Ipv6Addr;

    fn key(n: u8) -> Fingerprint {
        Fingerprint::of_spki(&[n])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_observed_address_is_checked_once_and_its_result_listed() {
        let mut places = Places::default();
        let now = Instant::now();
        let due = places.update(
            "alice",
            key(1),
            ip("11.0.0.20"),
            4000,
            &Listening::default(),
            now,
        );
        assert_eq!(due, vec!["11.0.0.20:4000".parse().unwrap()]);
        let dial = places.dial("alice", key(1)).unwrap();
        assert_eq!(dial.reach, None, "still checking");
        let again = places.update(
            "alice",
            key(1),
            ip("11.0.0.20"),
            4000,
            &Listening::default(),
            now,
        );
        assert!(again.is_empty(), "a check in flight is not started twice");
        places.record("alice", key(1), due[0], false, now);
        assert_eq!(
            places.dial("alice", key(1)).unwrap().reach,
            Some(Reachability::None)
        );
        let seen = places.seen("alice", key(1)).unwrap();
        assert_eq!(seen.reachable, Some(Reachability::None));
        assert_eq!(seen.observed, "11.0.0.20");
        let later = now + RECHECK_FAILED;
        let due = places.update(
            "alice",
            key(1),
            ip("11.0.0.20"),
            4000,
            &Listening::default(),
            later,
        );
        assert_eq!(due.len(), 1, "a failed check is repeated");
        assert!(
            places.dial("alice", key(2)).is_none(),
            "another key is another daemon"
        );
    }

    #[test]
    fn a_mapping_is_listed_only_at_the_announcers_own_address() {
        let mut places = Places::default();
        let now = Instant::now();
        let mapped = Listening {
            public: Some(PublicClaim {
                addr: "11.0.0.20:5000".parse().unwrap(),
                how: Reachability::Mapped,
            }),
            ipv6: Vec::new(),
        };
        let due = places.update("alice", key(1), ip("11.0.0.20"), 4000, &mapped, now);
        assert_eq!(due, vec!["11.0.0.20:5000".parse().unwrap()]);
        places.record("alice", key(1), due[0], true, now);
        let dial = places.dial("alice", key(1)).unwrap();
        assert_eq!(dial.addr, due[0]);
        assert_eq!(dial.reach, Some(Reachability::Mapped));
        // Someone else's address is not checked, nor listed.
        let elsewhere = Listening {
            public: Some(PublicClaim {
                addr: "11.0.0.99:5000".parse().unwrap(),
                how: Reachability::Direct,
            }),
            ipv6: Vec::new(),
        };
        let due = places.update("mallory", key(3), ip("11.0.0.30"), 4000, &elsewhere, now);
        assert_eq!(due, vec!["11.0.0.30:4000".parse().unwrap()]);
    }

    #[test]
    fn only_global_ipv6_addresses_are_checked_and_listed_once_reached() {
        let mut places = Places::default();
        let now = Instant::now();
        let listening = Listening {
            public: None,
            ipv6: vec![
                "fe80::1".parse().unwrap(),
                "fd00::1".parse().unwrap(),
                Ipv6Addr::LOCALHOST,
                "2001:db8:1::2".parse().unwrap(),
            ],
        };
        let due = places.update("alice", key(1), ip("11.0.0.20"), 4000, &listening, now);
        let v6: SocketAddr = "[2001:db8:1::2]:4000".parse().unwrap();
        assert_eq!(due, vec!["11.0.0.20:4000".parse().unwrap(), v6]);
        assert_eq!(places.dial("alice", key(1)).unwrap().addr6, None);
        places.record("alice", key(1), v6, true, now);
        assert_eq!(places.dial("alice", key(1)).unwrap().addr6, Some(v6));
        assert_eq!(
            places.seen("alice", key(1)).unwrap().ipv6,
            vec![v6.to_string()]
        );
    }

    #[test]
    fn places_expire() {
        let mut places = Places::default();
        let now = Instant::now();
        places.update(
            "alice",
            key(1),
            ip("11.0.0.20"),
            4000,
            &Listening::default(),
            now,
        );
        places.touch("alice", key(1), now + PLACE_TTL / 2);
        assert_eq!(places.expire(now + PLACE_TTL), 0);
        assert_eq!(places.expire(now + PLACE_TTL + PLACE_TTL / 2), 1);
    }
}
