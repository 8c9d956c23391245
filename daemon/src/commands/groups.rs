//! `create_group`, `join_group`, `leave_group`, `list_groups`, `list_requests`,
//! `accept_request`: checked here for shape, decided by the tracker.

use super::{done, unexpected};
use crate::daemon::Daemon;
use p2p_proto::ErrorReply;
use p2p_proto::control::CtlReply;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::views::page_limit;

pub async fn create(daemon: &Daemon, group: String) -> Result<CtlReply, ErrorReply> {
    validate_id("group id", &group)?;
    daemon
        .user()
        .call(TrackerCall::CreateGroup {
            group: group.clone(),
        })
        .await?;
    Ok(done(format!("created group {group}")))
}

pub async fn join(daemon: &Daemon, group: String) -> Result<CtlReply, ErrorReply> {
    validate_id("group id", &group)?;
    daemon
        .user()
        .call(TrackerCall::JoinGroup {
            group: group.clone(),
        })
        .await?;
    Ok(done(format!(
        "asked to join {group}; the owner must accept"
    )))
}

/// Leaves a group. What we share in it is withdrawn at once (peers being served from it are
/// cut off) and our downloads from it end: the tracker removes us from its holders too.
pub async fn leave(daemon: &Daemon, group: String) -> Result<CtlReply, ErrorReply> {
    validate_id("group id", &group)?;
    let left = match daemon
        .user()
        .call(TrackerCall::LeaveGroup {
            group: group.clone(),
        })
        .await?
    {
        TrackerReply::Left(left) => left,
        other => return Err(unexpected(other)),
    };
    let plane = &daemon.plane;
    for holding in plane
        .holdings
        .all()
        .into_iter()
        .filter(|h| h.group == group)
    {
        if holding.share_key.is_some() {
            crate::shares::stop_offering(plane, &holding, "left the group").await;
        }
    }
    for dl in daemon.downloads.in_group(&group) {
        crate::download::abandon(plane, &dl, &format!("you left {group}")).await;
    }
    Ok(CtlReply::Left(left))
}

/// One page of groups: the tracker decides the page (`after`, `limit`), the daemon passes it on.
pub async fn list(
    daemon: &Daemon,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CtlReply, ErrorReply> {
    page_limit(limit)?;
    match daemon
        .user()
        .call(TrackerCall::ListGroups { after, limit })
        .await?
    {
        TrackerReply::Groups { groups, more } => Ok(CtlReply::Groups { groups, more }),
        other => Err(unexpected(other)),
    }
}

pub async fn list_requests(
    daemon: &Daemon,
    group: String,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CtlReply, ErrorReply> {
    validate_id("group id", &group)?;
    page_limit(limit)?;
    match daemon
        .user()
        .call(TrackerCall::ListRequests {
            group,
            after,
            limit,
        })
        .await?
    {
        TrackerReply::Requests { group, users, more } => {
            Ok(CtlReply::Requests { group, users, more })
        }
        other => Err(unexpected(other)),
    }
}

pub async fn accept(daemon: &Daemon, group: String, user: String) -> Result<CtlReply, ErrorReply> {
    validate_id("group id", &group)?;
    validate_id("user id", &user)?;
    daemon
        .user()
        .call(TrackerCall::AcceptRequest {
            group: group.clone(),
            user: user.clone(),
        })
        .await?;
    Ok(done(format!("accepted {user} into {group}")))
}
