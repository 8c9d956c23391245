//! Invites waiting for the daemon they are for: a downloader asks for a punch or a relay, the
//! tracker leaves an invite here, and the invited daemon takes it at its next poll.
//!
//! Pure logic: the current time is passed in, so tests never sleep.

use p2p_proto::identity::Fingerprint;
use p2p_proto::reach::{INVITE_TTL, Invite, MAX_INVITES};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// Most daemons with invites waiting, across the tracker: a bound on memory whatever callers do.
pub const MAX_INVITED: usize = 100_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    #[error("{0} has too many invitations waiting; try again shortly")]
    TooMany(String),
    #[error("the tracker has too many invitations waiting; try again shortly")]
    Full,
}

/// Invites by the (user, key) of the daemon they are for, and the polls waiting for one.
#[derive(Debug, Default)]
pub struct Invites {
    waiting: HashMap<(String, Fingerprint), VecDeque<(Invite, Instant)>>,
    /// A poll held open for each daemon that has one: woken by the next invite.
    pollers: HashMap<(String, Fingerprint), Arc<Notify>>,
}

impl Invites {
    /// Leaves `invite` for `user`'s daemon with key `key`.
    pub fn push(
        &mut self,
        user: &str,
        key: Fingerprint,
        invite: Invite,
        now: Instant,
    ) -> Result<(), InviteError> {
        let slot = (user.to_string(), key);
        if !self.waiting.contains_key(&slot) && self.waiting.len() >= MAX_INVITED {
            self.expire(now);
            if self.waiting.len() >= MAX_INVITED {
                return Err(InviteError::Full);
            }
        }
        let queue = self.waiting.entry(slot).or_default();
        queue.retain(|(_, at)| fresh(*at, now));
        if queue.len() >= MAX_INVITES {
            return Err(InviteError::TooMany(user.to_string()));
        }
        queue.push_back((invite, now));
        if let Some(poller) = self.pollers.get(&(user.to_string(), key)) {
            poller.notify_one();
        }
        Ok(())
    }

    /// What a held poll of `user`'s daemon with key `key` waits on. One per daemon (bounded as
    /// the daemons are: by the tracker's connection caps).
    pub fn waiter(&mut self, user: &str, key: Fingerprint) -> Arc<Notify> {
        Arc::clone(
            self.pollers
                .entry((user.to_string(), key))
                .or_insert_with(|| Arc::new(Notify::new())),
        )
    }

    /// The held poll that waited on `waiter` is over.
    pub fn forget_waiter(&mut self, user: &str, key: Fingerprint, waiter: &Arc<Notify>) {
        let slot = (user.to_string(), key);
        // Only if no other poll of the same daemon took it meanwhile.
        if self
            .pollers
            .get(&slot)
            .is_some_and(|w| Arc::ptr_eq(w, waiter) && Arc::strong_count(w) <= 2)
        {
            self.pollers.remove(&slot);
        }
    }

    /// Takes the fresh invites for `user`'s daemon with key `key`, oldest first.
    pub fn take(&mut self, user: &str, key: Fingerprint, now: Instant) -> Vec<Invite> {
        self.waiting
            .remove(&(user.to_string(), key))
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, at)| fresh(*at, now))
            .map(|(invite, _)| invite)
            .collect()
    }

    /// Drops every invite past its time.
    pub fn expire(&mut self, now: Instant) {
        self.waiting.retain(|_, queue| {
            queue.retain(|(_, at)| fresh(*at, now));
            !queue.is_empty()
        });
    }
}

fn fresh(at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(at) < INVITE_TTL
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::reach::InviteKind;
    use std::time::Duration;

    fn key(n: u8) -> Fingerprint {
        Fingerprint::of_spki(&[n])
    }

    fn invite(id: &str) -> Invite {
        Invite {
            id: id.into(),
            user: "bob".into(),
            key: key(9),
            kind: InviteKind::Relay,
        }
    }

    #[test]
    fn an_invite_is_taken_once_by_the_daemon_it_is_for() {
        let mut invites = Invites::default();
        let now = Instant::now();
        invites.push("alice", key(1), invite("a"), now).unwrap();
        assert!(invites.take("alice", key(2), now).is_empty(), "another key");
        assert!(
            invites.take("carol", key(1), now).is_empty(),
            "another user"
        );
        assert_eq!(invites.take("alice", key(1), now), vec![invite("a")]);
        assert!(
            invites.take("alice", key(1), now).is_empty(),
            "taken already"
        );
    }

    #[test]
    fn invites_expire_and_are_bounded_per_daemon() {
        let mut invites = Invites::default();
        let now = Instant::now();
        for i in 0..MAX_INVITES {
            invites
                .push("alice", key(1), invite(&i.to_string()), now)
                .unwrap();
        }
        assert_eq!(
            invites.push("alice", key(1), invite("x"), now),
            Err(InviteError::TooMany("alice".into()))
        );
        let later = now + INVITE_TTL + Duration::from_millis(1);
        invites.push("alice", key(1), invite("y"), later).unwrap();
        assert_eq!(invites.take("alice", key(1), later), vec![invite("y")]);
        invites.push("bob", key(2), invite("z"), now).unwrap();
        invites.expire(later);
        assert!(invites.waiting.is_empty());
    }

    #[tokio::test]
    async fn a_held_poll_is_woken_by_the_next_invite_for_its_daemon_only() {
        let mut invites = Invites::default();
        let now = Instant::now();
        let waiter = invites.waiter("alice", key(1));
        let other = invites.waiter("bob", key(2));
        invites.push("alice", key(1), invite("a"), now).unwrap();
        // The wake-up waits with the waiter even though nobody was waiting yet.
        tokio::time::timeout(Duration::from_secs(5), waiter.notified())
            .await
            .expect("woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), other.notified())
                .await
                .is_err(),
            "bob's poll is not woken by alice's invite"
        );
        invites.forget_waiter("alice", key(1), &waiter);
        drop(waiter);
        assert!(!invites.pollers.contains_key(&("alice".to_string(), key(1))));
    }
}
