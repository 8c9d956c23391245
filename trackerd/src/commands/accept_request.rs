//! `accept_request <group> <user>`: the owner lets a user who asked into the group, while it
//! has fewer than [`Limits::members_per_group`](super::Limits) members.

use super::{Caller, Ctx, existing_group};
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn run(
    ctx: &Ctx,
    id: &str,
    caller: Caller,
    group: String,
    user: String,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    validate_id("user id", &user)?;
    let limits = ctx.limits;
    ctx.write(id, move |t| {
        let record = existing_group(t, &group)?;
        if record.owner != caller.user {
            return Err(ErrorReply::new(
                ErrorKind::PermissionDenied,
                format!(
                    "only the owner of {group} ({}) can accept requests",
                    record.owner
                ),
            ));
        }
        if record.is_member(&user) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("{user} is already a member of {group}"),
            ));
        }
        if !record.has_requested(&user) {
            return Err(ErrorReply::new(
                ErrorKind::NotFound,
                format!("{user} has not asked to join {group}"),
            ));
        }
        limits.accept_member(&record)?;
        Ok(Decision {
            entries: vec![LogEntry::RequestAccepted {
                group: group.clone(),
                user: user.clone(),
            }],
            reply: TrackerReply::Done,
        })
    })
    .await
}
