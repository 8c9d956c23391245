//! `peers <group> <name>`: what a running download asks for every second or so: the peers
//! online with the file and a fresh grant. Unlike `fetch_file` it does not carry the piece
//! hashes the downloader already has, so the answer stays small however large the file; and
//! it lists at most [`MAX_PEERS`] peers, so it stays small however large the swarm.

use super::{Caller, Ctx, existing_file, member_group, no_key, validate_file_name};
use crate::records::{FileRecord, GroupRecord};
use ed25519_dalek::SigningKey;
use p2p_proto::ErrorReply;
use p2p_proto::grant::{Grant, GrantTerms, unix_now};
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::{MAX_PEERS, PeerInfo, TrackerReply};
use rand::seq::SliceRandom;
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
    let ((group_record, file), key) = ctx
        .store(move |s| {
            s.read(|t| {
                let group = member_group(t, &g, &user)?;
                Ok(((group, existing_file(t, &g, &n)?), t.signing_key()?))
            })
        })
        .await?;
    let (peers, grant) = grant_and_peers(ctx, &caller, &group_record, &file, key)?;
    Ok(TrackerReply::Peers {
        group_id: group_record.id,
        peers,
        grant,
    })
}

/// The live holders of `file` other than the caller (at most [`MAX_PEERS`] of them, chosen at
/// random, complete ones first), and a grant for the caller's key.
pub(super) fn grant_and_peers(
    ctx: &Ctx,
    caller: &Caller,
    group: &GroupRecord,
    file: &FileRecord,
    key: Option<SigningKey>,
) -> Result<(Vec<PeerInfo>, Grant), ErrorReply> {
    let key = key.ok_or_else(no_key)?;
    let now = Instant::now();
    let mut peers = ctx.swarm(|s| s.peers(&group.group, &file.meta.name, now));
    peers.retain(|p| p.user != caller.user);
    super::reachability::describe(ctx, &mut peers);
    if peers.len() > MAX_PEERS {
        // Another choice at each call: a download asking every second meets them all.
        peers.shuffle(&mut rand::rng());
        peers.truncate(MAX_PEERS);
        peers.sort_by(|a, b| {
            b.complete
                .cmp(&a.complete)
                .then_with(|| a.user.cmp(&b.user))
        });
    }
    let grant = Grant::issue(
        &key,
        GrantTerms {
            user: &caller.user,
            group: &group.group,
            group_id: &group.id,
            file_sha1: &file.meta.sha1,
            downloader: caller.key,
            expires: unix_now() + ctx.policy.grant_lifetime,
        },
    );
    Ok((peers, grant))
}
