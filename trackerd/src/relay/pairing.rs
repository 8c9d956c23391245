//! Relays waiting for their second leg: a downloader's leg is parked here under a fresh
//! pairing id (the id of the invite the seeder's daemon takes at its next poll) until the
//! invited daemon connects with that id, or the downloader gives up.
//!
//! Ids are 128 random bits, hex. The table is keyed by the SHA-256 of the id, so looking one
//! up compares hashes, not the secret itself (no timing leak of how much of a guess matched).
//! An id only pairs the daemon it was made for (user and key); any other caller learns
//! nothing, not even whether the id exists.
//!
//! Generic over the leg, so the pairing logic is tested without sockets.

use p2p_proto::identity::Fingerprint;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Why a second leg was not paired; it is handed back so the caller can answer on it.
#[derive(Debug)]
pub enum JoinError<L> {
    /// No relay waits under that id for this daemon.
    Unknown(L),
    /// The downloader stopped waiting just now.
    Gone(L),
}

/// A downloader's leg, parked.
struct Waiting<L> {
    /// The daemon invited.
    user: String,
    key: Fingerprint,
    join: oneshot::Sender<L>,
}

/// The relays waiting for their seeder.
pub struct Pairing<L> {
    waiting: HashMap<[u8; 32], Waiting<L>>,
}

impl<L> Default for Pairing<L> {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
        }
    }
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A fresh pairing id: 128 random bits, as 32 hex characters.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `id` has the shape of a pairing id.
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<L> Pairing<L> {
    /// Parks a relay for `user`'s daemon with key `key` to join; returns its id and where the
    /// second leg arrives.
    pub fn open(&mut self, user: &str, key: Fingerprint) -> (String, oneshot::Receiver<L>) {
        loop {
            let id = new_id();
            let slot = key_of(&id);
            // 128 random bits do not collide; the loop only makes it certain.
            if self.waiting.contains_key(&slot) {
                continue;
            }
            let (join, joined) = oneshot::channel();
            self.waiting.insert(
                slot,
                Waiting {
                    user: user.to_string(),
                    key,
                    join,
                },
            );
            return (id, joined);
        }
    }

    /// Hands `leg` to the relay `id`, if it waits for `user`'s daemon with `key`; the relay is
    /// no longer waiting after that.
    pub fn join(
        &mut self,
        id: &str,
        user: &str,
        key: Fingerprint,
        leg: L,
    ) -> Result<(), JoinError<L>> {
        let slot = key_of(id);
        let ours = self
            .waiting
            .get(&slot)
            .is_some_and(|w| w.user == user && w.key == key);
        if !ours {
            return Err(JoinError::Unknown(leg));
        }
        let Some(waiting) = self.waiting.remove(&slot) else {
            return Err(JoinError::Unknown(leg));
        };
        waiting.join.send(leg).map_err(JoinError::Gone)
    }

    /// The downloader stops waiting for `id`. False when the seeder joined first: its leg is
    /// then in the receiver.
    pub fn cancel(&mut self, id: &str) -> bool {
        self.waiting.remove(&key_of(id)).is_some()
    }

    /// Relays waiting now.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Fingerprint {
        Fingerprint::of_spki(&[n])
    }

    #[test]
    fn the_invited_daemon_joins_once_and_the_leg_reaches_the_downloader() {
        let mut pairing = Pairing::default();
        let (id, mut joined) = pairing.open("alice", key(1));
        assert!(is_id(&id), "{id}");
        assert!(pairing.join(&id, "alice", key(1), "seeder leg").is_ok());
        assert_eq!(joined.try_recv(), Ok("seeder leg"));
        assert!(pairing.is_empty());
        assert!(
            matches!(
                pairing.join(&id, "alice", key(1), "again"),
                Err(JoinError::Unknown("again"))
            ),
            "a relay pairs once"
        );
        assert!(!pairing.cancel(&id), "nothing left to cancel");
    }

    #[test]
    fn another_user_or_key_cannot_join_and_does_not_spoil_the_invite() {
        let mut pairing = Pairing::default();
        let (id, mut joined) = pairing.open("alice", key(1));
        for (user, k) in [("mallory", key(1)), ("alice", key(2)), ("mallory", key(3))] {
            assert!(matches!(
                pairing.join(&id, user, k, "intruder"),
                Err(JoinError::Unknown("intruder"))
            ));
        }
        assert!(matches!(
            pairing.join(&new_id(), "alice", key(1), "guess"),
            Err(JoinError::Unknown("guess"))
        ));
        assert!(joined.try_recv().is_err(), "nothing reached the downloader");
        assert_eq!(pairing.len(), 1, "the invite still waits for alice");
        pairing.join(&id, "alice", key(1), "alice").unwrap();
        assert_eq!(joined.try_recv(), Ok("alice"));
    }

    #[test]
    fn a_downloader_that_gave_up_is_gone_and_a_late_join_gets_its_leg_back() {
        let mut pairing = Pairing::default();
        let (id, joined) = pairing.open("alice", key(1));
        drop(joined);
        assert!(matches!(
            pairing.join(&id, "alice", key(1), "late"),
            Err(JoinError::Gone("late"))
        ));

        // Cancelled before the join: the join finds nothing.
        let (id, _joined) = pairing.open("alice", key(1));
        assert!(pairing.cancel(&id));
        assert!(matches!(
            pairing.join(&id, "alice", key(1), "late"),
            Err(JoinError::Unknown("late"))
        ));
        assert!(pairing.is_empty());
    }

    #[test]
    fn ids_are_fresh_and_well_formed() {
        let mut pairing = Pairing::<()>::default();
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| pairing.open("alice", key(1)).0).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(pairing.len(), 1000);
        assert!(!is_id("not hex at all, but thirty-two!!"));
        assert!(!is_id(&"a".repeat(31)));
    }
}
