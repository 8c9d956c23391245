//! Why a store operation failed.

use p2p_proto::ErrorReply;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot make {path} private (chmod 600): {source}")]
    Chmod {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    /// The database file itself is damaged (it failed redb's integrity check, or opening it
    /// panicked): nothing in it can be trusted.
    #[error(
        "database {path} is corrupt ({reason}); restore it from a backup, or move it aside to \
         start empty (a tracker with a partner does this by itself and re-syncs from it)"
    )]
    CorruptFile { path: PathBuf, reason: String },
    #[error("cannot move the corrupt database {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// An earlier write failed on the storage (disk full, I/O error): no write is tried until
    /// the database has been reopened.
    #[error("the database cannot be written since a storage failure ({0}); reopening it")]
    Faulted(String),
    #[error("corrupt record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error(
        "the database is of schema {found}, newer than this trackerd supports ({supported}); \
         run the release that wrote it"
    )]
    NewerSchema { found: u64, supported: u64 },
}

impl StoreError {
    /// True for a failure of the storage under the database (full disk, I/O error, a file
    /// damaged under redb), as opposed to a problem with what is stored: the store is faulted
    /// until it is reopened.
    pub fn is_fault(&self) -> bool {
        match self {
            Self::Faulted(_) => true,
            Self::Db(e) => matches!(
                e,
                redb::Error::Io(_)
                    | redb::Error::PreviousIo
                    | redb::Error::DatabaseClosed
                    | redb::Error::Backend(_)
                    | redb::Error::Corrupted(_)
                    | redb::Error::LockPoisoned(_)
            ),
            _ => false,
        }
    }
}

impl From<StoreError> for ErrorReply {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        if e.is_fault() {
            // The client should go to the other tracker, which takes over from this one.
            return ErrorReply::unavailable(format!(
                "this tracker cannot write to its database: {e}"
            ));
        }
        ErrorReply::internal(format!("tracker storage failure: {e}"))
    }
}

pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}
