//! The daemon's redb database: the login session now; shares and downloads later.
//!
//! Tables:
//! - `session`: `"current"` → JSON [`Session`]

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const SESSION: TableDefinition<&str, &[u8]> = TableDefinition::new("session");
const CURRENT: &str = "current";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("database {path}: corrupt {what}: {reason}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
}

impl From<StateError> for p2p_proto::ErrorReply {
    fn from(e: StateError) -> Self {
        tracing::error!(error = %e, "state failure");
        p2p_proto::ErrorReply::internal(e.to_string())
    }
}

/// The user logged in on this daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub token: String,
}

pub struct StateDb {
    db: Database,
    path: PathBuf,
}

impl StateDb {
    /// Opens (or creates) the database at `path`, creating its directory (0700) if needed.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StateError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let db = Database::create(path).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let state = Self {
            db,
            path: path.to_path_buf(),
        };
        let txn = state.db.begin_write().map_err(|e| state.err(e))?;
        txn.open_table(SESSION).map_err(|e| state.err(e))?;
        txn.commit().map_err(|e| state.err(e))?;
        Ok(state)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    pub fn session(&self) -> Result<Option<Session>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(SESSION).map_err(|e| self.err(e))?;
        let Some(raw) = table.get(CURRENT).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(raw.value())
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                what: "session",
                reason: e.to_string(),
            })
    }

    /// Stores the session (or clears it with `None`), durably.
    pub fn set_session(&self, session: Option<&Session>) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SESSION).map_err(|e| self.err(e))?;
            match session {
                Some(s) => {
                    let raw = serde_json::to_vec(s).unwrap_or_default();
                    table
                        .insert(CURRENT, raw.as_slice())
                        .map_err(|e| self.err(e))?;
                }
                None => {
                    table.remove(CURRENT).map_err(|e| self.err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}
