//! `list_files <group>`: one page of a group's files, ordered by name, with how many peers hold
//! each now, members only. Pages work as in `list_groups`.

use super::{Caller, Ctx, member_group, validate_file_name};
use p2p_proto::ErrorReply;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::views::{FileInfo, page_limit};
use std::time::Instant;

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
        validate_file_name(after)?;
    }
    let g = group.clone();
    let (records, more) = ctx
        .store(move |s| {
            s.read(|t| {
                member_group(t, &g, &caller.user)?;
                Ok(t.group_files_page(&g, after.as_deref(), limit)?)
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
    Ok(TrackerReply::Files { group, files, more })
}
