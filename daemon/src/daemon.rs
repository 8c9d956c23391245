//! The daemon as the command layer sees it: the configuration, the raw tracker client, the
//! session, and the data plane's context. Commands get this; nothing below them does.

use crate::config::Config;
use crate::download::Downloads;
use crate::grant_key::GrantKey;
use crate::holdings::Holdings;
use crate::plane::{Announce, Limits, Plane};
use crate::session::SessionSlot;
use crate::state::{State, StateError};
use crate::tracker_client::TrackerClient;
use crate::tracker_pins::TrackerPins;
use crate::user_tracker::UserTracker;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Daemon {
    pub config: Config,
    /// The trackers, for calls made before or without a session (create_user, login, ping).
    pub tracker: Arc<TrackerClient>,
    /// Which key each tracker must present.
    pub pins: Arc<TrackerPins>,
    pub session: Arc<SessionSlot>,
    /// Port the peer listener accepts on; announced to the tracker.
    pub peer_port: u16,
    pub plane: Arc<Plane>,
    /// The downloads running now.
    pub downloads: Arc<Downloads>,
}

impl Daemon {
    /// Builds the daemon around an open database, talking to `tracker`.
    pub async fn new(
        config: Config,
        state: State,
        tracker: TrackerClient,
        pins: Arc<TrackerPins>,
        reach: Arc<crate::reach::Reach>,
        shutdown: CancellationToken,
    ) -> Result<Self, StateError> {
        let tracker = Arc::new(tracker);
        let session = Arc::new(SessionSlot::load(state.clone()).await?);
        let plane = Arc::new(Plane {
            identity: tracker.identity().clone(),
            tracker: UserTracker::new(Arc::clone(&tracker), Arc::clone(&session)),
            holdings: Arc::new(Holdings::default()),
            announce: Announce::default(),
            limits: Limits::new(config.upload_limit, config.download_limit),
            grant_key: GrantKey::new(state.clone(), Arc::clone(&tracker)),
            reach: Arc::clone(&reach),
            shutdown,
            state,
        });
        Ok(Self {
            config,
            tracker,
            pins,
            session,
            peer_port: reach.port(),
            plane,
            downloads: Arc::default(),
        })
    }

    /// The tracker acting as the logged-in user.
    pub fn user(&self) -> &UserTracker {
        &self.plane.tracker
    }
}
