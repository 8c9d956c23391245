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
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error(
        "the database is of schema {found}, newer than this trackerd supports ({supported}); \
         run the release that wrote it"
    )]
    NewerSchema { found: u64, supported: u64 },
}

impl From<StoreError> for ErrorReply {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ErrorReply::internal(format!("tracker storage failure: {e}"))
    }
}

pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}
