//! Connection admission: at most so many connections at once, and at most so many from one
//! source, counted only once accepted. A refused connection is closed at once, so a flood from
//! one address cannot take the slots everyone else needs.
//!
//! Sources are IPv4 addresses and IPv6 /64 prefixes (one IPv6 host usually owns a whole /64).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The caps of one pool of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    pub per_source: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("all {0} connection slots are taken")]
    Full(usize),
    #[error("{0} connections from this address already")]
    Source(usize),
}

/// A pool of connection slots.
#[derive(Clone)]
pub struct Admission {
    caps: Caps,
    state: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One admitted connection's slot, given back when dropped.
#[must_use = "the slot is given back when dropped"]
pub struct Slot {
    source: IpAddr,
    state: Arc<Mutex<Counts>>,
}

/// The source a connection from `ip` counts against.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn lock(state: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // The counts are plain integers updated in one step: a panic elsewhere cannot leave them
    // half-written.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            state: Arc::default(),
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// A slot for a connection from `ip`, if the pool and the source have room.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let source = source_of(ip);
        let mut counts = lock(&self.state);
        if counts.total >= self.caps.total {
            return Err(Refused::Full(self.caps.total));
        }
        let from_source = counts.by_source.entry(source).or_insert(0);
        if *from_source >= self.caps.per_source {
            return Err(Refused::Source(self.caps.per_source));
        }
        *from_source += 1;
        counts.total += 1;
        Ok(Slot {
            source,
            state: Arc::clone(&self.state),
        })
    }

    /// Connections admitted and not yet closed.
    pub fn in_use(&self) -> usize {
        lock(&self.state).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.state);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_source_and_in_total() {
        let pool = Admission::new(Caps {
            total: 3,
            per_source: 2,
        });
        let a1 = pool.admit(ip("10.0.0.1")).unwrap();
        let _a2 = pool.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(pool.admit(ip("10.0.0.1")).err(), Some(Refused::Source(2)));
        let _b = pool.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(pool.admit(ip("10.0.0.3")).err(), Some(Refused::Full(3)));
        drop(a1);
        assert_eq!(pool.in_use(), 2);
        let _a3 = pool.admit(ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_mapped_v4_is_v4() {
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        let pool = Admission::new(Caps {
            total: 10,
            per_source: 1,
        });
        let _one = pool.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(pool.admit(ip("2001:db8:1:2::ffff")).is_err());
        assert!(pool.admit(ip("2001:db8:1:3::1")).is_ok());
    }
}
