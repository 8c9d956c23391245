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
    #[error("{0} exists but is not the downloaded file; it was left as it is")]
    NotTheFile(std::path::PathBuf),
    /// The part file found at a restart is not the one this download created.
    #[error(transparent)]
    Refused(#[from] super::storage::Refused),
    /// The part file's name was given to another file during the download, and the download's
    /// own file could not be linked by its descriptor.
    #[error(
        "part file {0} was removed or replaced during the download; its verified bytes cannot \
         be given a name (download the file again)"
    )]
    PartReplaced(std::path::PathBuf),
    #[error("cancelled")]
    Cancelled,
    #[error("download task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DownloadError {
    /// True for a disk that is full, read-only or failing for now: the download waits and
    /// tries again (see [`super::storage::is_disk_wait`]).
    pub fn is_disk_wait(&self) -> bool {
        matches!(self, Self::Disk(e) if super::storage::is_disk_wait(e))
    }
}

impl From<super::storage::OpenError> for DownloadError {
    fn from(e: super::storage::OpenError) -> Self {
        match e {
            super::storage::OpenError::Refused(r) => Self::Refused(r),
            super::storage::OpenError::Io(e) => Self::Disk(e),
        }
    }
}

impl From<DownloadError> for ErrorReply {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::Tracker(reply) => reply,
            other => ErrorReply::internal(other.to_string()),
        }
    }
}
