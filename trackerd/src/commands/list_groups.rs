//! `list_groups`: every group, with the caller's relation to it.

use super::{Caller, Ctx};
use p2p_proto::ErrorReply;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::views::{GroupInfo, Membership};

pub async fn run(ctx: &Ctx, caller: Caller) -> Result<TrackerReply, ErrorReply> {
    let records = ctx.store(|s| s.read(|t| Ok(t.groups()?))).await?;
    let groups = records
        .into_iter()
        .map(|g| {
            let membership = if g.owner == caller.user {
                Membership::Owner
            } else if g.is_member(&caller.user) {
                Membership::Member
            } else if g.has_requested(&caller.user) {
                Membership::Pending
            } else {
                Membership::None
            };
            GroupInfo {
                members: g.members.len(),
                group: g.group,
                owner: g.owner,
                membership,
            }
        })
        .collect();
    Ok(TrackerReply::Groups { groups })
}
