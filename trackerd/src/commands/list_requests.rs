//! `list_requests <group>`: the pending join requests, for the owner only.

use super::{Caller, Ctx, existing_group};
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn run(ctx: &Ctx, caller: Caller, group: String) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    ctx.store(move |s| {
        s.read(|t| {
            let record = existing_group(t, &group)?;
            if record.owner != caller.user {
                return Err(ErrorReply::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "only the owner of {group} ({}) can list its requests",
                        record.owner
                    ),
                ));
            }
            Ok(TrackerReply::Requests {
                group: group.clone(),
                users: record.requests,
            })
        })
    })
    .await
}
