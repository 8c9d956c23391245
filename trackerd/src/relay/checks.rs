//! What a downloader must show to open a relay: its own unexpired grant, signed with the
//! trackers' key, for a file of a group it is still a member of (the group of that id), and a
//! peer that holds that file now. Whatever a grant says, the tracker checks it again against
//! its own state: a grant is only the downloader's word for which file and which group.

use crate::commands::{Caller, Ctx};
use p2p_proto::grant::{Grant, GrantError, public_key_hex, unix_now};
use p2p_proto::identity::Fingerprint;
use p2p_proto::{ErrorKind, ErrorReply};
use std::time::Instant;

/// The seeder a relay is for, as the swarm knows it.
#[derive(Debug, Clone)]
pub struct Seeder {
    pub user: String,
    pub key: Fingerprint,
    /// The address it announced from.
    pub addr: String,
}

fn denied(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::PermissionDenied, message)
}

/// Checks a `relay_open` by `caller` for file `name` from `peer` with `grant`.
pub async fn check_open(
    ctx: &Ctx,
    caller: &Caller,
    name: &str,
    peer: Fingerprint,
    grant: &Grant,
) -> Result<Seeder, ErrorReply> {
    p2p_proto::files::validate_file_name(name)?;
    p2p_proto::ids::validate_id("group id", &grant.group)?;
    let (group, file) = (grant.group.clone(), name.to_string());
    let (key, group_record, file_record) = ctx
        .store(move |s| {
            s.read(|t| Ok((t.signing_key()?, t.group(&group)?, t.file(&group, &file)?)))
        })
        .await?;
    let key = key.ok_or_else(|| {
        ErrorReply::unavailable("the trackers' signing key is not set up yet; retry shortly")
    })?;
    grant
        .verify_signature(&public_key_hex(&key))
        .map_err(|e| match e {
            GrantError::OtherSigner(_) => {
                denied(format!("{e}; ask the tracker for a new grant (peers)"))
            }
            _ => denied(e.to_string()),
        })?;
    if grant.downloader != caller.key {
        return Err(denied("grant was issued to another key"));
    }
    if grant.user != caller.user {
        return Err(denied("grant was issued to another user"));
    }
    if grant.check_expiry(unix_now()).is_err() {
        return Err(denied(
            "grant expired; ask the tracker for a new one (peers)",
        ));
    }
    let group = group_record.ok_or_else(|| {
        ErrorReply::new(
            ErrorKind::NotFound,
            format!("no group named {}", grant.group),
        )
    })?;
    if !group.is_member(&caller.user) {
        return Err(denied(format!("you are not a member of {}", group.group)));
    }
    if group.id != grant.group_id {
        return Err(denied(format!(
            "grant is for an earlier group named {}",
            group.group
        )));
    }
    let file = file_record.ok_or_else(|| {
        ErrorReply::new(
            ErrorKind::NotFound,
            format!("no file named {name} in {}", group.group),
        )
    })?;
    if file.meta.sha1 != grant.file_sha1 {
        return Err(denied("grant is for another file"));
    }
    let now = Instant::now();
    ctx.swarm(|s| s.peers(&group.group, name, now))
        .into_iter()
        .find(|p| p.key == peer && p.user != caller.user)
        .map(|p| Seeder {
            user: p.user,
            key: p.key,
            addr: p.addr,
        })
        .ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::NotFound,
                format!("{peer} does not offer {name} in {} now", group.group),
            )
        })
}
