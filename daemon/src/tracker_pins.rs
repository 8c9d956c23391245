//! Which key each tracker must present. A fingerprint on a tracker's line of tracker_info.txt
//! is the only key accepted for it. Without one, the first key seen is pinned (stored in the
//! daemon's database, trust on first use) and a different key later is refused, until the
//! user accepts it with `p2pctl trust_tracker` (as `ssh` does with known hosts).

use crate::state::{State, StateError};
use crate::sync::Locked;
use p2p_proto::identity::Fingerprint;
use p2p_proto::tracker_info::TrackerEntry;
use std::collections::HashMap;
use std::net::SocketAddr;

pub struct TrackerPins {
    /// From tracker_info.txt: never overridden.
    configured: HashMap<SocketAddr, Fingerprint>,
    /// Pinned on first use, or accepted with `trust_tracker`.
    pinned: Locked<HashMap<SocketAddr, Fingerprint>>,
    state: State,
}

/// Why a first-seen key was not pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Another connection met, and pinned, this other key a moment ago.
    #[error("another key ({0}) was pinned for this tracker a moment ago")]
    Other(Fingerprint),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why a key cannot be trusted for a tracker.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{addr} is not a tracker of tracker_info.txt")]
    NotListed { addr: String },
    #[error(
        "tracker_info.txt names key {listed} for {addr}; edit that line to change the key it \
         accepts"
    )]
    Configured {
        addr: SocketAddr,
        listed: Fingerprint,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

impl TrackerPins {
    /// The pins of `entries` (tracker_info.txt) and of the database.
    pub async fn load(state: State, entries: &[TrackerEntry]) -> Result<Self, StateError> {
        let stored = state.run(|s| s.tracker_pins()).await?;
        let pinned = stored
            .into_iter()
            .filter_map(|(addr, fp)| Some((addr.parse().ok()?, fp.parse().ok()?)))
            .collect();
        let configured = entries
            .iter()
            .filter_map(|e| Some((e.addr, e.fingerprint?)))
            .collect();
        Ok(Self {
            configured,
            pinned: Locked::new(pinned),
            state,
        })
    }

    /// The key `addr` must present, if one is known.
    pub fn expected(&self, addr: SocketAddr) -> Option<Fingerprint> {
        self.configured
            .get(&addr)
            .copied()
            .or_else(|| self.pinned.with(|p| p.get(&addr).copied()))
    }

    /// Whether the key expected of `addr` comes from tracker_info.txt.
    pub fn is_configured(&self, addr: SocketAddr) -> bool {
        self.configured.contains_key(&addr)
    }

    /// Pins `key` for `addr`, met for the first time; durably, before anything is sent to it.
    /// If another connection pinned a key for `addr` meanwhile, `key` must be that one: the
    /// pinned key is returned as the error otherwise.
    pub async fn pin_first(&self, addr: SocketAddr, key: Fingerprint) -> Result<(), PinError> {
        let fresh = self.pinned.with(|p| match p.entry(addr) {
            std::collections::hash_map::Entry::Occupied(pinned) if *pinned.get() == key => {
                Ok(false)
            }
            std::collections::hash_map::Entry::Occupied(pinned) => Err(*pinned.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(key);
                Ok(true)
            }
        });
        let fresh = fresh.map_err(PinError::Other)?;
        if fresh {
            let (a, k) = (addr.to_string(), key.to_string());
            self.state.run(move |s| s.set_tracker_pin(&a, &k)).await?;
            tracing::info!(tracker = %addr, %key, "pinned the tracker's key (first use)");
        }
        Ok(())
    }

    /// Accepts `key` for `addr` from now on (`p2pctl trust_tracker`); `listed` are the
    /// trackers of tracker_info.txt.
    pub async fn trust(
        &self,
        addr: &str,
        key: Fingerprint,
        listed: &[SocketAddr],
    ) -> Result<SocketAddr, TrustError> {
        let not_listed = || TrustError::NotListed {
            addr: addr.chars().take(80).collect(),
        };
        let parsed: SocketAddr = addr.parse().map_err(|_| not_listed())?;
        if !listed.contains(&parsed) {
            return Err(not_listed());
        }
        if let Some(listed) = self.configured.get(&parsed) {
            return Err(TrustError::Configured {
                addr: parsed,
                listed: *listed,
            });
        }
        let (a, k) = (parsed.to_string(), key.to_string());
        self.state.run(move |s| s.set_tracker_pin(&a, &k)).await?;
        self.pinned.with(|p| p.insert(parsed, key));
        tracing::warn!(tracker = %parsed, %key, "tracker key trusted by the user");
        Ok(parsed)
    }
}
