//! Why a download, or one step of it, failed.

use crate::state::StateError;
use p2p_proto::ErrorReply;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Reading or writing the part file or the destination; the error names path and operation.
    #[error("{0}")]
    Disk(std::io::Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("tracker: {}", .0.message)]
    Tracker(ErrorReply),
    #[error("logged out")]
    LoggedOut,
    #[error("the group's file of this name now has other content")]
    ContentChanged,
    #[error("the group was removed and created again; this download was of the old group")]
    GroupReplaced,
    #[error("{0} exists but is not the downloaded file")]
    NotTheFile(std::path::PathBuf),
    #[error("cancelled")]
    Cancelled,
    #[error("download task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<DownloadError> for ErrorReply {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::Tracker(reply) => reply,
            other => ErrorReply::internal(other.to_string()),
        }
    }
}
