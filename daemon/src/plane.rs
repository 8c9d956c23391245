//! The data plane's context: what downloads, shares and the peer server work with. It is a
//! narrow slice of the daemon — the database, the tracker acting as the logged-in user, what we
//! hold, the announcer's doorbell and the rate limits — so that none of them needs (or can
//! reach) the whole daemon, and each can be built in a test from parts.

use crate::grant_key::GrantKey;
use crate::holdings::Holdings;
use crate::rate_limit::RateLimit;
use crate::state::State;
use crate::user_tracker::UserTracker;
use p2p_proto::identity::Identity;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Wakes the announcer so the tracker hears about a change now, not at the next round.
#[derive(Clone, Default)]
pub struct Announce(Arc<Notify>);

impl Announce {
    /// Asks for an announcement as soon as possible (several asks coalesce into one).
    pub fn now(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next ask.
    pub async fn asked(&self) {
        self.0.notified().await
    }
}

/// The daemon-wide bandwidth limits, one per direction.
#[derive(Clone)]
pub struct Limits {
    pub upload: Arc<RateLimit>,
    pub download: Arc<RateLimit>,
}

impl Limits {
    /// Bytes per second each way; `None` is unlimited.
    pub fn new(upload: Option<u64>, download: Option<u64>) -> Self {
        Self {
            upload: Arc::new(RateLimit::new(upload)),
            download: Arc::new(RateLimit::new(download)),
        }
    }
}

pub struct Plane {
    /// This daemon's key, presented on every peer connection.
    pub identity: Identity,
    pub state: State,
    pub tracker: UserTracker,
    pub holdings: Arc<Holdings>,
    pub announce: Announce,
    pub limits: Limits,
    /// Where peers reach us, and what the tracker said about it.
    pub reach: Arc<crate::reach::Reach>,
    /// The trackers' grant-verification key, for the peer server.
    pub grant_key: GrantKey,
    /// Cancelled when the daemon shuts down.
    pub shutdown: CancellationToken,
}
