//! `logout`: closes the caller's session and withdraws everything its daemon offered.

use super::{Caller, Ctx};
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::ErrorReply;
use p2p_proto::tracker::TrackerReply;

pub async fn run(ctx: &Ctx, id: &str, caller: Caller) -> Result<TrackerReply, ErrorReply> {
    let user = caller.user.clone();
    let reply = ctx
        .write(id, move |_| {
            Ok(Decision {
                entries: vec![LogEntry::SessionClosed {
                    token_hash: caller.token_hash.clone(),
                }],
                reply: TrackerReply::User { user: caller.user },
            })
        })
        .await?;
    ctx.swarm(|s| s.remove_user(&user));
    Ok(reply)
}
