//! The trackers' public key, which grants are checked against: from memory, from the
//! database, or asked of the (authenticated) tracker and then kept. A grant signed by another
//! key (the tracker pair was rebuilt with a new signing key) makes the peer server ask again
//! ([`GrantKey::refresh`]), at most every [`REFRESH_EVERY`], so a new key is picked up without
//! deleting any state.

use crate::state::State;
use crate::sync::Locked;
use crate::tracker_client::TrackerClient;
use p2p_proto::ErrorReply;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Name of the key's row in the daemon's `meta` table.
const META_KEY: &str = crate::state::TRACKER_KEY;

/// Least time between two forced fetches of the key.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

pub struct GrantKey {
    cached: Locked<Option<String>>,
    /// When the key was last fetched from the tracker.
    fetched: Locked<Option<Instant>>,
    state: State,
    tracker: Arc<TrackerClient>,
}

impl GrantKey {
    pub fn new(state: State, tracker: Arc<TrackerClient>) -> Self {
        Self {
            cached: Locked::default(),
            fetched: Locked::default(),
            state,
            tracker,
        }
    }

    /// The key (hex).
    pub async fn get(&self) -> Result<String, ErrorReply> {
        if let Some(key) = self.cached.get() {
            return Ok(key);
        }
        let key = match self.state.run(|s| s.meta_value(META_KEY)).await? {
            Some(key) => key,
            None => self.fetch().await?,
        };
        self.cached.with(|c| *c = Some(key.clone()));
        Ok(key)
    }

    /// Asks the tracker for the key again (a grant named another key); `None` when it was
    /// asked less than [`REFRESH_EVERY`] ago, or says the same key.
    pub async fn refresh(&self) -> Result<Option<String>, ErrorReply> {
        let recent = self
            .fetched
            .with(|f| f.is_some_and(|at| at.elapsed() < REFRESH_EVERY));
        if recent {
            return Ok(None);
        }
        let before = self.cached.get();
        let key = self.fetch().await?;
        self.cached.with(|c| *c = Some(key.clone()));
        if before.as_ref() != Some(&key) {
            tracing::info!("the trackers' grant key changed; using the new one");
            Ok(Some(key))
        } else {
            Ok(None)
        }
    }

    async fn fetch(&self) -> Result<String, ErrorReply> {
        self.fetched.with(|f| *f = Some(Instant::now()));
        match self.tracker.call(None, TrackerCall::SigningKey).await? {
            TrackerReply::SigningKey { public_key } => {
                let stored = public_key.clone();
                self.state
                    .run(move |s| s.set_meta_value(META_KEY, &stored))
                    .await?;
                Ok(public_key)
            }
            other => Err(ErrorReply::internal(format!(
                "unexpected tracker reply: {other:?}"
            ))),
        }
    }
}
