//! `join_group <group>`: asks the owner to let the caller in. At most
//! [`Limits::requests_per_group`](super::Limits) requests wait in one group.

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
) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    let limits = ctx.limits;
    ctx.write(id, move |t| {
        let record = existing_group(t, &group)?;
        if record.is_member(&caller.user) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("you are already a member of {group}"),
            ));
        }
        if record.has_requested(&caller.user) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("you already asked to join {group}; the owner has not accepted yet"),
            ));
        }
        limits.request_join(&record)?;
        Ok(Decision {
            entries: vec![LogEntry::JoinRequested {
                group: group.clone(),
                user: caller.user.clone(),
            }],
            reply: TrackerReply::Done,
        })
    })
    .await
}
