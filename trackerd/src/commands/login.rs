//! `login <user> <password>`: checks the password and opens a session under the token the
//! client proposed (only its hash is stored).

use super::{Ctx, token_hash};
use crate::log::LogEntry;
use crate::store::Decision;
use p2p_proto::ids::{validate_id, validate_password};
use p2p_proto::token::is_session_token;
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};

pub async fn run(
    ctx: &Ctx,
    id: &str,
    user: String,
    password: String,
    token: String,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("user id", &user)?;
    validate_password(&password)?;
    if !is_session_token(&token) {
        return Err(ErrorReply::invalid(
            "session token must be 64 hex characters",
        ));
    }
    let wrong = || ErrorReply::new(ErrorKind::AuthFailed, "wrong user id or password");
    let probe = user.clone();
    let record = ctx.store(move |s| s.read(|t| Ok(t.user(&probe)?))).await?;
    let Some(record) = record else {
        return Err(wrong());
    };
    if !ctx.hasher.verify(password, record.password_hash).await? {
        return Err(wrong());
    }
    ctx.write(id, move |_| {
        Ok(Decision {
            entries: vec![LogEntry::SessionOpened {
                token_hash: token_hash(&token),
                user: user.clone(),
            }],
            reply: TrackerReply::User { user: user.clone() },
        })
    })
    .await
}
