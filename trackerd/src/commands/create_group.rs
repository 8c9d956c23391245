//! `create_group <group>`: a new group owned by the caller, with a fresh internal id (a group
//! removed earlier under the same name shares nothing with it). A user owns at most
//! [`Limits::groups_per_user`](super::Limits) groups.

use super::{Caller, Ctx};
use crate::log::LogEntry;
use crate::records::new_group_id;
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
        if t.group(&group)?.is_some() {
            return Err(ErrorReply::new(
                ErrorKind::AlreadyExists,
                format!("group {group} already exists"),
            ));
        }
        limits.create_group(&caller.user, t.user(&caller.user)?.as_ref())?;
        Ok(Decision {
            entries: vec![LogEntry::GroupCreated {
                group: group.clone(),
                owner: caller.user.clone(),
                id: Some(new_group_id()),
            }],
            reply: TrackerReply::Done,
        })
    })
    .await
}
