//! `leave_group <group>`: the caller leaves; ownership passes to the longest-standing member
//! and an empty group is removed with its files (see [`crate::log::LogEntry::MemberLeft`]).
//! The caller's daemon no longer offers anything in the group.

use super::{Caller, Ctx, existing_group};
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::views::LeftGroup;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn run(
    ctx: &Ctx,
    id: &str,
    caller: Caller,
    group: String,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    let (user, g) = (caller.user.clone(), group.clone());
    let reply = ctx
        .write(id, move |t| {
            let record = existing_group(t, &group)?;
            if !record.is_member(&caller.user) {
                let why = if record.has_requested(&caller.user) {
                    format!("you are not a member of {group} (your join request is pending)")
                } else {
                    format!("you are not a member of {group}")
                };
                return Err(ErrorReply::new(ErrorKind::Conflict, why));
            }
            let remaining: Vec<&String> = record
                .members
                .iter()
                .filter(|m| **m != caller.user)
                .collect();
            let new_owner = match remaining.first() {
                Some(next) if record.owner == caller.user => Some((*next).clone()),
                _ => None,
            };
            Ok(Decision {
                entries: vec![LogEntry::MemberLeft {
                    group: group.clone(),
                    user: caller.user.clone(),
                }],
                reply: TrackerReply::Left(LeftGroup {
                    group: group.clone(),
                    new_owner,
                    removed: remaining.is_empty(),
                }),
            })
        })
        .await?;
    ctx.swarm(|s| {
        s.remove_user_in_group(&user, &g);
        // A removed group's holders go with it: a group created later under this name is
        // another group.
        if matches!(&reply, TrackerReply::Left(left) if left.removed) {
            s.remove_group(&g);
        }
    });
    Ok(reply)
}
