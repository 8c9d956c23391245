//! The daemon's shared state, handed to every command.

use crate::config::Config;
use crate::download::Downloads;
use crate::holdings::Holdings;
use crate::rate_limit::RateLimit;
use crate::state::{Session, StateDb};
use crate::tracker_client::TrackerClient;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::{ErrorKind, ErrorReply};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct Daemon {
    pub config: Config,
    pub state: Arc<StateDb>,
    pub tracker: TrackerClient,
    /// Port the peer listener accepts on; announced to the tracker.
    pub peer_port: u16,
    pub holdings: Holdings,
    pub downloads: Downloads,
    pub upload_limit: RateLimit,
    pub download_limit: RateLimit,
    /// Wakes the announcer to tell the tracker about a change now.
    pub announce_now: Notify,
    /// Cancelled when the daemon shuts down.
    pub shutdown: CancellationToken,
    tracker_key: Mutex<Option<String>>,
}

impl Daemon {
    pub fn new(
        config: Config,
        state: StateDb,
        peer_port: u16,
        shutdown: CancellationToken,
    ) -> Self {
        let tracker = TrackerClient::new(config.trackers.trackers.clone());
        Self {
            upload_limit: RateLimit::new(config.upload_limit),
            download_limit: RateLimit::new(config.download_limit),
            config,
            state: Arc::new(state),
            tracker,
            peer_port,
            holdings: Holdings::default(),
            downloads: Downloads::default(),
            announce_now: Notify::new(),
            shutdown,
            tracker_key: Mutex::new(None),
        }
    }

    /// The trackers' public key, which grants are checked against: from memory, from the
    /// database, or asked of the tracker once and then kept.
    pub async fn tracker_key(&self) -> Result<String, ErrorReply> {
        if let Some(key) = self.tracker_key.lock().ok().and_then(|k| k.clone()) {
            return Ok(key);
        }
        let stored = self
            .with_state(|s| Ok(s.meta_value("tracker_key")?))
            .await?;
        let key = match stored {
            Some(key) => key,
            None => match self.tracker.call(None, TrackerCall::SigningKey).await? {
                TrackerReply::SigningKey { public_key } => {
                    let k = public_key.clone();
                    self.with_state(move |s| Ok(s.set_meta_value("tracker_key", &k)?))
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
        if let Ok(mut k) = self.tracker_key.lock() {
            *k = Some(key.clone());
        }
        Ok(key)
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
