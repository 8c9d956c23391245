//! `list_requests <group>`: one page of the pending join requests, in the order they were
//! made, for the owner only. `after` names the last user of the previous page; a user who is no
//! longer waiting (accepted meanwhile) cannot be continued from, so that is a `conflict` and
//! the caller lists again from the start. With at most
//! [`Limits::requests_per_group`](super::Limits) requests waiting, the default page holds them
//! all.

use super::{Caller, Ctx, existing_group};
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::views::page_limit;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    group: String,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    let limit = page_limit(limit)?;
    if let Some(after) = &after {
        validate_id("after", after)?;
    }
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
            let start = match &after {
                None => 0,
                Some(after) => {
                    let at = record.requests.iter().position(|r| r == after);
                    1 + at.ok_or_else(|| {
                        ErrorReply::new(
                            ErrorKind::Conflict,
                            format!(
                                "{after} is no longer waiting to join {group}; list again \
                                 without --after"
                            ),
                        )
                    })?
                }
            };
            let rest = &record.requests[start..];
            Ok(TrackerReply::Requests {
                group: group.clone(),
                users: rest.iter().take(limit).cloned().collect(),
                more: rest.len() > limit,
            })
        })
    })
    .await
}
