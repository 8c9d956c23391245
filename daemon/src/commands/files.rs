//! File sharing commands: `upload_file`, `list_files`, `download_file`, `show_downloads`,
//! `stop_share`.

use crate::daemon::Daemon;
use p2p_proto::control::CtlReply;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn not_yet(daemon: &Daemon) -> Result<CtlReply, ErrorReply> {
    daemon.require_session().await?;
    Err(ErrorReply::new(
        ErrorKind::Unavailable,
        "file sharing is not available in this build",
    ))
}
