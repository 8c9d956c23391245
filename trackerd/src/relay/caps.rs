//! How many relayed connections may exist at once: in total and per user. A relay is counted
//! from the moment its downloader asks for it (while it waits for the seeder too) until it
//! closes, against the user who opened it. The seeder's user is not counted: it did not ask,
//! and counting it would let any member of a group fill a seeder's quota with relays it never
//! wanted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Why no relay could be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    #[error("this tracker relays nothing (--relay-max 0)")]
    Off,
    #[error(
        "the relay is full: {0} relayed connections are open, the most this tracker allows; try again later"
    )]
    Full(usize),
    #[error(
        "{user} has {most} relayed connections open, the most one user may have; close one first"
    )]
    User { user: String, most: usize },
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// The caps and what is open now.
#[derive(Debug, Clone)]
pub struct Caps {
    max: usize,
    per_user: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One relay's place under the caps, given back when dropped.
#[must_use = "the place is given back when dropped"]
#[derive(Debug)]
pub struct Ticket {
    user: String,
    counts: Arc<Mutex<Counts>>,
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Plain integers updated in one step: a panic elsewhere cannot leave them half-written.
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Caps {
    /// At most `max` relays at once, at most `per_user` opened by one user.
    pub fn new(max: usize, per_user: usize) -> Self {
        Self {
            max,
            per_user,
            counts: Arc::default(),
        }
    }

    /// A place for one more relay opened by `user`, if there is room.
    pub fn reserve(&self, user: &str) -> Result<Ticket, CapError> {
        if self.max == 0 {
            return Err(CapError::Off);
        }
        let mut counts = lock(&self.counts);
        if counts.total >= self.max {
            return Err(CapError::Full(self.max));
        }
        let mine = counts.by_user.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(CapError::User {
                user: user.to_string(),
                most: self.per_user,
            });
        }
        counts.total += 1;
        counts.by_user.insert(user.to_string(), mine + 1);
        Ok(Ticket {
            user: user.to_string(),
            counts: Arc::clone(&self.counts),
        })
    }

    /// Relays open now, in total.
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }

    /// Relays open now that `user` opened.
    pub fn open_by(&self, user: &str) -> usize {
        lock(&self.counts).by_user.get(user).copied().unwrap_or(0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_gets_at_most_its_share_and_all_together_the_total() {
        let caps = Caps::new(3, 2);
        let a1 = caps.reserve("alice").unwrap();
        let _a2 = caps.reserve("alice").unwrap();
        assert_eq!(
            caps.reserve("alice").unwrap_err(),
            CapError::User {
                user: "alice".into(),
                most: 2
            }
        );
        let _b1 = caps.reserve("bob").unwrap();
        assert_eq!(caps.reserve("carol").unwrap_err(), CapError::Full(3));
        assert_eq!((caps.open(), caps.open_by("alice")), (3, 2));
        drop(a1);
        assert_eq!((caps.open(), caps.open_by("alice")), (2, 1));
        let _c1 = caps.reserve("carol").unwrap();
        assert_eq!(caps.open_by("carol"), 1);
    }

    #[test]
    fn places_come_back_when_relays_close_and_zero_turns_the_relay_off() {
        let caps = Caps::new(2, 2);
        for _ in 0..10 {
            let one = caps.reserve("alice").unwrap();
            let two = caps.reserve("alice").unwrap();
            assert!(caps.reserve("alice").is_err());
            drop((one, two));
        }
        assert_eq!(caps.open(), 0);
        assert!(lock(&caps.counts).by_user.is_empty(), "no user left behind");
        assert_eq!(
            Caps::new(0, 16).reserve("alice").unwrap_err(),
            CapError::Off
        );
    }
}
