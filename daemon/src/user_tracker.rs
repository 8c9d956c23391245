//! The tracker client acting as the logged-in user: every call carries the session's token,
//! and a tracker that no longer knows the session logs this daemon out too, so `status` tells
//! the truth.

use crate::session::SessionSlot;
use crate::state::Session;
use crate::tracker_client::TrackerClient;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::{ErrorKind, ErrorReply};
use std::sync::Arc;

#[derive(Clone)]
pub struct UserTracker {
    client: Arc<TrackerClient>,
    session: Arc<SessionSlot>,
}

impl UserTracker {
    pub fn new(client: Arc<TrackerClient>, session: Arc<SessionSlot>) -> Self {
        Self { client, session }
    }

    /// The raw client, for the dedicated connections of a relay.
    pub fn client(&self) -> &Arc<TrackerClient> {
        &self.client
    }

    /// The logged-in session, if any.
    pub fn session(&self) -> Option<Session> {
        self.session.get()
    }

    /// The logged-in session, or `not_logged_in` (saying why, when the tracker ended it).
    pub fn require_session(&self) -> Result<Session, ErrorReply> {
        self.session().ok_or_else(|| match self.session.ended() {
            Some(why) => ErrorReply::new(
                ErrorKind::NotLoggedIn,
                format!("not logged in: the tracker ended the session ({why})"),
            ),
            None => ErrorReply::not_logged_in(),
        })
    }

    /// Calls the tracker as the logged-in user.
    pub async fn call(&self, call: TrackerCall) -> Result<TrackerReply, ErrorReply> {
        let session = self.require_session()?;
        let result = self.client.call(Some(&session.token), call).await;
        if let Err(e) = &result
            && e.kind == ErrorKind::NotLoggedIn
            && self.session().is_some_and(|s| s.token == session.token)
        {
            tracing::warn!(user = %session.user, "tracker no longer knows our session; logged out");
            self.session.ended_by_tracker(e.message.clone()).await?;
        }
        result
    }
}
