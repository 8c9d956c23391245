//! The trackers' public key, which grants are checked against: from memory, from the
//! database, or asked of the tracker once and then kept.

use crate::state::State;
use crate::sync::Locked;
use crate::tracker_client::TrackerClient;
use p2p_proto::ErrorReply;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use std::sync::Arc;

/// Name of the key's row in the daemon's `meta` table.
const META_KEY: &str = "tracker_key";

pub struct GrantKey {
    cached: Locked<Option<String>>,
    state: State,
    tracker: Arc<TrackerClient>,
}

impl GrantKey {
    pub fn new(state: State, tracker: Arc<TrackerClient>) -> Self {
        Self {
            cached: Locked::default(),
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
            None => match self.tracker.call(None, TrackerCall::SigningKey).await? {
                TrackerReply::SigningKey { public_key } => {
                    let stored = public_key.clone();
                    self.state
                        .run(move |s| s.set_meta_value(META_KEY, &stored))
                        .await?;
                    public_key
                }
                other => {
                    return Err(ErrorReply::internal(format!(
                        "unexpected tracker reply: {other:?}"
                    )));
                }
            },
        };
        self.cached.with(|c| *c = Some(key.clone()));
        Ok(key)
    }
}
