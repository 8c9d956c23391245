//! `create_user <user> <password>`: a new account with an argon2-hashed password.

use super::Ctx;
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::ids::{validate_id, validate_password};
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};

fn exists(user: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::AlreadyExists,
        format!("user {user} already exists"),
    )
}

pub async fn run(
    ctx: &Ctx,
    id: &str,
    source: std::net::IpAddr,
    user: String,
    password: String,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("user id", &user)?;
    validate_password(&password)?;
    ctx.throttle.account_attempt(source)?;
    // Refuse early, before the slow hash; the write below checks again.
    let probe = user.clone();
    let taken = ctx
        .store(move |s| s.read(|t| Ok(t.user(&probe)?.is_some())))
        .await?;
    if taken {
        // A retry of our own earlier create_user must get its success again, not "exists".
        let replay = ctx.write(id, |_| Err(exists(""))).await;
        return match replay {
            Ok(reply) => Ok(reply),
            Err(_) => Err(exists(&user)),
        };
    }
    let password_hash = ctx.hasher.hash(password).await?;
    ctx.write(id, move |t| {
        if t.user(&user)?.is_some() {
            return Err(exists(&user));
        }
        Ok(Decision {
            entries: vec![LogEntry::UserCreated {
                user: user.clone(),
                password_hash,
            }],
            reply: TrackerReply::Done,
        })
    })
    .await
}
