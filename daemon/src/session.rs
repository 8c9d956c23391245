//! The login session of this daemon: kept in redb (so a killed daemon restarts logged in) and
//! mirrored in memory (so every tracker call and every peer connection can ask "who is logged
//! in" without a database read).

use crate::state::{Session, State, StateError};
use crate::sync::Locked;

pub struct SessionSlot {
    current: Locked<Option<Session>>,
    /// Why the tracker ended the last session (it expired, say), until the next login: the
    /// next command says so instead of a bare "not logged in".
    ended: Locked<Option<String>>,
    state: State,
}

impl SessionSlot {
    /// Loads the stored session.
    pub async fn load(state: State) -> Result<Self, StateError> {
        let current = state.run(|s| s.session()).await?;
        Ok(Self {
            current: Locked::new(current),
            ended: Locked::default(),
            state,
        })
    }

    /// The logged-in session, if any.
    pub fn get(&self) -> Option<Session> {
        self.current.get()
    }

    /// Stores `session` (or logs out with `None`): durably first, then in memory.
    pub async fn set(&self, session: Option<Session>) -> Result<(), StateError> {
        let stored = session.clone();
        self.state
            .run(move |s| s.set_session(stored.as_ref()))
            .await?;
        self.current.with(|c| *c = session);
        self.ended.with(|e| *e = None);
        Ok(())
    }

    /// Logs out because the tracker ended the session, remembering `why`.
    pub async fn ended_by_tracker(&self, why: String) -> Result<(), StateError> {
        self.set(None).await?;
        self.ended.with(|e| *e = Some(why));
        Ok(())
    }

    /// Why the tracker ended the last session, if it did and nobody logged in since.
    pub fn ended(&self) -> Option<String> {
        self.ended.get()
    }
}
