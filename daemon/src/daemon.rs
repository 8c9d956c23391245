//! The daemon's shared state, handed to every command.

use crate::config::Config;
use crate::state::{Session, StateDb};
use crate::tracker_client::TrackerClient;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::{ErrorKind, ErrorReply};
use std::sync::Arc;

pub struct Daemon {
    pub config: Config,
    pub state: Arc<StateDb>,
    pub tracker: TrackerClient,
}

impl Daemon {
    pub fn new(config: Config, state: StateDb) -> Self {
        let tracker = TrackerClient::new(config.trackers.trackers.clone());
        Self {
            config,
            state: Arc::new(state),
            tracker,
        }
    }

    /// Runs a blocking database operation on the blocking pool.
    pub async fn with_state<R: Send + 'static>(
        &self,
        op: impl FnOnce(&StateDb) -> Result<R, ErrorReply> + Send + 'static,
    ) -> Result<R, ErrorReply> {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || op(&state))
            .await
            .map_err(|e| ErrorReply::internal(format!("state task failed: {e}")))?
    }

    pub async fn session(&self) -> Result<Option<Session>, ErrorReply> {
        self.with_state(|s| Ok(s.session()?)).await
    }

    /// The logged-in session, or `not_logged_in`.
    pub async fn require_session(&self) -> Result<Session, ErrorReply> {
        self.session().await?.ok_or_else(ErrorReply::not_logged_in)
    }

    /// Calls the tracker as the logged-in user. A tracker that no longer knows the session
    /// (it was closed elsewhere) logs this daemon out too, so `status` tells the truth.
    pub async fn call_as_user(&self, call: TrackerCall) -> Result<TrackerReply, ErrorReply> {
        let session = self.require_session().await?;
        let result = self.tracker.call(Some(&session.token), call).await;
        if let Err(e) = &result
            && e.kind == ErrorKind::NotLoggedIn
        {
            tracing::warn!(user = %session.user, "tracker no longer knows our session; logged out");
            self.with_state(|s| Ok(s.set_session(None)?)).await?;
        }
        result
    }
}
