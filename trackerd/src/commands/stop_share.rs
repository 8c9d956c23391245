//! `stop_share <group> <name>`: the caller's daemon no longer offers one file. The file stays
//! registered in the group; other seeders are unaffected.

use super::{Caller, Ctx, check_member_file};
use p2p_proto::ErrorReply;
use p2p_proto::tracker::TrackerReply;

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    group: String,
    name: String,
) -> Result<TrackerReply, ErrorReply> {
    check_member_file(ctx, &caller.user, &group, &name).await?;
    ctx.swarm(|s| s.remove(&caller.user, &group, &name));
    Ok(TrackerReply::Done)
}
