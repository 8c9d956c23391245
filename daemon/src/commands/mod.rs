//! One file per family of `p2pctl` commands; [`dispatch`] is the one exhaustive match.

mod account;
mod files;
mod groups;
mod status;
mod trust;

use crate::daemon::Daemon;
use p2p_proto::ErrorReply;
use p2p_proto::control::{CtlCommand, CtlReply};
use std::sync::Arc;

pub async fn dispatch(daemon: &Arc<Daemon>, cmd: CtlCommand) -> Result<CtlReply, ErrorReply> {
    match cmd {
        CtlCommand::Status => status::run(daemon).await,
        CtlCommand::CreateUser { user, password } => {
            account::create_user(daemon, user, password).await
        }
        CtlCommand::Login { user, password } => account::login(daemon, user, password).await,
        CtlCommand::Logout => account::logout(daemon).await,
        CtlCommand::CreateGroup { group } => groups::create(daemon, group).await,
        CtlCommand::JoinGroup { group } => groups::join(daemon, group).await,
        CtlCommand::LeaveGroup { group } => groups::leave(daemon, group).await,
        CtlCommand::ListGroups { after, limit } => groups::list(daemon, after, limit).await,
        CtlCommand::ListRequests {
            group,
            after,
            limit,
        } => groups::list_requests(daemon, group, after, limit).await,
        CtlCommand::AcceptRequest { group, user } => groups::accept(daemon, group, user).await,
        CtlCommand::UploadFile { group, path } => files::upload(daemon, group, path).await,
        CtlCommand::ListFiles {
            group,
            after,
            limit,
        } => files::list(daemon, group, after, limit).await,
        CtlCommand::DownloadFile {
            group,
            file,
            destination,
        } => files::download(daemon, group, file, destination).await,
        CtlCommand::ShowDownloads => files::show(daemon).await,
        CtlCommand::StopShare { group, file } => files::stop_share(daemon, group, file).await,
        CtlCommand::TrustTracker {
            tracker,
            fingerprint,
        } => trust::tracker(daemon, tracker, fingerprint).await,
    }
}

/// A `Done` reply with a line for people.
fn done(message: impl Into<String>) -> CtlReply {
    CtlReply::Done {
        message: message.into(),
    }
}

/// An answer the tracker should not have given to this command.
fn unexpected(reply: p2p_proto::tracker::TrackerReply) -> ErrorReply {
    ErrorReply::internal(format!("unexpected tracker reply: {reply:?}"))
}

#[cfg(test)]
mod tests;
