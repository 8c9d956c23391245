//! `list_groups`: one page of the groups, ordered by name, with the caller's relation to each.
//! A page holds at most [`MAX_PAGE`](p2p_proto::views::MAX_PAGE) groups; `more` says whether
//! the caller should ask again with `after` set to the last name.

use super::{Caller, Ctx};
use p2p_proto::ErrorReply;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::views::{GroupInfo, Membership, page_limit};

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<TrackerReply, ErrorReply> {
    let limit = page_limit(limit)?;
    if let Some(after) = &after {
        validate_id("after", after)?;
    }
    let (records, more) = ctx
        .store(move |s| s.read(|t| Ok(t.groups_page(after.as_deref(), limit)?)))
        .await?;
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
    Ok(TrackerReply::Groups { groups, more })
}
