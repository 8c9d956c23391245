//! `announce`: the caller's daemon says which files it offers now, replacing what it said
//! before. Daemons announce periodically; an entry not refreshed within
//! [`crate::swarm::SEEDER_TTL`] is no longer offered.
//!
//! An announcement is a best-effort report, not a command: shares that are malformed, in a
//! group that is gone or that the caller has left, or of a file that is not registered, are
//! skipped (logged at debug), and the rest is recorded.

use super::{Caller, Ctx, validate_port};
use crate::swarm::MAX_ANNOUNCED;
use p2p_proto::ErrorReply;
use p2p_proto::files::validate_file_name;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::{Announced, TrackerReply};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

pub async fn run(
    ctx: &Ctx,
    caller: Caller,
    peer: SocketAddr,
    port: u16,
    mut shares: Vec<Announced>,
) -> Result<TrackerReply, ErrorReply> {
    if !shares.is_empty() {
        validate_port(port)?;
    }
    if shares.len() > MAX_ANNOUNCED {
        tracing::warn!(
            user = caller.user,
            count = shares.len(),
            "announcement lists too many files; ignoring those past {MAX_ANNOUNCED}"
        );
        shares.truncate(MAX_ANNOUNCED);
    }
    let user = caller.user.clone();
    let kept = ctx
        .store(move |s| {
            s.read(|t| {
                // Whether the caller is a member, per group, so each group is read once.
                let mut member_of: HashMap<String, bool> = HashMap::new();
                let mut kept = Vec::with_capacity(shares.len());
                for share in shares {
                    if validate_id("group id", &share.group).is_err()
                        || validate_file_name(&share.name).is_err()
                    {
                        tracing::debug!(user, ?share, "skipping malformed announced share");
                        continue;
                    }
                    let member = match member_of.get(&share.group) {
                        Some(member) => *member,
                        None => {
                            let member = t.group(&share.group)?.is_some_and(|g| g.is_member(&user));
                            member_of.insert(share.group.clone(), member);
                            member
                        }
                    };
                    if !member {
                        tracing::debug!(
                            user,
                            ?share,
                            "skipping share in a group the user is not in"
                        );
                        continue;
                    }
                    if t.file(&share.group, &share.name)?.is_none() {
                        tracing::debug!(user, ?share, "skipping share of an unregistered file");
                        continue;
                    }
                    kept.push(share);
                }
                Ok(kept)
            })
        })
        .await?;
    let ip = peer.ip().to_canonical();
    ctx.swarm(|s| s.announce(&caller.user, ip, port, &kept, Instant::now()));
    Ok(TrackerReply::Done)
}
