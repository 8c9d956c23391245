//! `stop_share <group> <name>`: the caller's daemon no longer offers one file. The file stays
//! registered in the group; other seeders are unaffected.

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
    ctx.store(move |s| {
        s.read(|t| {
            member_group(t, &g, &user)?;
            existing_file(t, &g, &n)
        })
    })
    .await?;
    ctx.swarm(|s| s.remove(&caller.user, &group, &name));
    Ok(TrackerReply::Done)
}
