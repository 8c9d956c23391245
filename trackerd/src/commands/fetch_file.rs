//! `fetch_file <group> <name>`: what a member needs to download a file: its metadata, the
//! other peers holding it now and a grant, signed with the trackers' key, that proves the
//! caller's membership to those peers.
//!
//! An empty peer list is not an error: the downloading daemon decides whether to wait.

use super::{Caller, Ctx, existing_file, member_group, no_key, validate_file_name};
use p2p_proto::ErrorReply;
use p2p_proto::grant::{GRANT_LIFETIME_SECS, Grant, unix_now};
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::TrackerReply;
use std::time::Instant;

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
                member_group(t, &g, &user)?;
                Ok((existing_file(t, &g, &n)?, t.signing_key()?))
            })
        })
        .await?;
    let key = key.ok_or_else(no_key)?;
    let now = Instant::now();
    let mut peers = ctx.swarm(|s| s.peers(&group, &name, now));
    peers.retain(|p| p.user != caller.user);
    let grant = Grant::issue(
        &key,
        &caller.user,
        &group,
        &record.meta.sha1,
        unix_now() + GRANT_LIFETIME_SECS,
    );
    Ok(TrackerReply::FileDetails {
        group,
        meta: record.meta,
        peers,
        grant,
    })
}
