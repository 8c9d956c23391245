//! `fetch_file <group> <name>`: what a member needs to start downloading a file: its metadata
//! (every piece hash), the other peers holding it now and a grant, signed with the trackers'
//! key, that proves to those peers the caller's daemon may have it.
//!
//! An empty peer list is not an error: the downloading daemon decides whether to wait.

use super::peers::grant_and_peers;
use super::{Caller, Ctx, existing_file, member_group, validate_file_name};
use p2p_proto::ErrorReply;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    group: String,
    name: String,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("group id", &group)?;
    validate_file_name(&name)?;
    let (g, n, user) = (group.clone(), name.clone(), caller.user.clone());
    let (record, key) = ctx
        .store(move |s| {
            s.read(|t| {
                let group = member_group(t, &g, &user)?;
                Ok(((group, existing_file(t, &g, &n)?), t.signing_key()?))
            })
        })
        .await?;
    let (group_record, file) = record;
    let (peers, grant) = grant_and_peers(ctx, &caller, &group_record, &file, key)?;
    Ok(TrackerReply::FileDetails {
        group,
        group_id: group_record.id,
        meta: file.meta,
        peers,
        grant,
    })
}
