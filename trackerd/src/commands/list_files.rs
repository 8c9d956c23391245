//! `list_files <group>`: a group's files with how many peers hold each now, members only.

use super::{Caller, Ctx, member_group};
use p2p_proto::ErrorReply;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::views::FileInfo;
use std::time::Instant;

pub async fn run(ctx: &Ctx, caller: Caller, group: String) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    let g = group.clone();
    let records = ctx
        .store(move |s| {
            s.read(|t| {
                member_group(t, &g, &caller.user)?;
                Ok(t.group_files(&g)?)
            })
        })
        .await?;
    let now = Instant::now();
    // The store lists them ordered by name already.
    let files = ctx.swarm(|s| {
        records
            .into_iter()
            .map(|r| FileInfo {
                seeders: s.count(&group, &r.meta.name, now),
                name: r.meta.name,
                size: r.meta.size,
            })
            .collect()
    });
    Ok(TrackerReply::Files { group, files })
}
