//! `login <user> <password>`: checks the password and opens a session bound to the caller's
//! key. The tracker makes the token: `HMAC-SHA256(session secret, request id ‖ user ‖ key)`.
//! So a retried login (same request id, from the same daemon, possibly at the other tracker)
//! gets the same token, no client can choose one, and the token itself is stored nowhere on the
//! tracker (the log keeps its hash; the reply recorded in the log carries no token).

use super::{Ctx, Origin, token_hash};
use crate::log::LogEntry;
use crate::store::Decision;
use hmac::{Hmac, KeyInit, Mac};
use p2p_proto::grant::unix_now;
use p2p_proto::identity::Fingerprint;
use p2p_proto::ids::{validate_id, validate_password};
use p2p_proto::tracker::TrackerReply;
use p2p_proto::{ErrorKind, ErrorReply};
use sha2::Sha256;

pub async fn run(
    ctx: &Ctx,
    id: &str,
    origin: Origin,
    user: String,
    password: String,
) -> Result<TrackerReply, ErrorReply> {
    validate_id("user id", &user)?;
    validate_password(&password)?;
    let key = origin.key;
    ctx.throttle.login_attempt(origin.addr.ip(), &user)?;
    let wrong = || ErrorReply::new(ErrorKind::AuthFailed, "wrong user id or password");
    let probe = user.clone();
    let (record, secret) = ctx
        .store(move |s| s.read(|t| Ok((t.user(&probe)?, t.session_secret()?))))
        .await?;
    let secret = secret.ok_or_else(super::no_key)?;
    // An unknown user costs the same hash as a known one, against a decoy.
    let hash = record.map(|r| r.password_hash);
    if !ctx.hasher.verify(password, hash).await? {
        ctx.throttle.login_failed(&user);
        return Err(wrong());
    }
    ctx.throttle.login_succeeded(&user);
    let token = session_token(&secret, id, &user, key)?;
    let (hash, name) = (token_hash(&token), user.clone());
    let recorded = ctx
        .write(id, move |_| {
            Ok(Decision {
                entries: vec![LogEntry::SessionOpened {
                    token_hash: hash,
                    user: name.clone(),
                    key: Some(key),
                    at: unix_now(),
                }],
                reply: TrackerReply::User { user: name },
            })
        })
        .await?;
    match recorded {
        TrackerReply::User { user } => Ok(TrackerReply::LoggedIn { user, token }),
        other => Err(ErrorReply::internal(format!(
            "login recorded an unexpected reply: {other:?}"
        ))),
    }
}

/// The token of the session that login request `request_id` of `user` from `key` opens.
pub fn session_token(
    secret: &[u8; 32],
    request_id: &str,
    user: &str,
    key: Fingerprint,
) -> Result<String, ErrorReply> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|e| ErrorReply::internal(format!("cannot derive a session token: {e}")))?;
    mac.update(b"p2p-session-v2");
    let key = key.to_string();
    for field in [request_id, user, key.as_str()] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field.as_bytes());
    }
    Ok(hex::encode(mac.finalize().into_bytes()))
}
