//! `create_user`, `login`, `logout`.

use super::done;
use crate::daemon::Daemon;
use crate::state::Session;
use p2p_proto::control::CtlReply;
use p2p_proto::ids::{validate_id, validate_password};
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::{ErrorKind, ErrorReply};
use std::sync::Arc;

pub async fn create_user(
    daemon: &Daemon,
    user: String,
    password: String,
) -> Result<CtlReply, ErrorReply> {
    validate_id("user id", &user)?;
    validate_password(&password)?;
    daemon
        .tracker
        .call(
            None,
            TrackerCall::CreateUser {
                user: user.clone(),
                password,
            },
        )
        .await?;
    Ok(done(format!("created user {user}")))
}

/// Logs in. One daemon holds one user's session: logging in again as the same user renews the
/// session; another user must log the first one out.
pub async fn login(
    daemon: &Arc<Daemon>,
    user: String,
    password: String,
) -> Result<CtlReply, ErrorReply> {
    validate_id("user id", &user)?;
    validate_password(&password)?;
    let previous = daemon.session.get();
    if let Some(previous) = &previous
        && previous.user != user
    {
        return Err(ErrorReply::new(
            ErrorKind::Conflict,
            format!("already logged in as {}; log out first", previous.user),
        ));
    }
    let reply = daemon
        .tracker
        .call(
            None,
            TrackerCall::Login {
                user: user.clone(),
                password,
            },
        )
        .await?;
    let TrackerReply::LoggedIn { token, .. } = reply else {
        return Err(ErrorReply::internal(format!(
            "unexpected tracker reply to login: {reply:?}"
        )));
    };
    let session = Session {
        user: user.clone(),
        token,
    };
    daemon.session.set(Some(session)).await?;
    if let Some(previous) = &previous {
        // Close the session this login replaces; failing to is harmless.
        let _ = daemon
            .tracker
            .call(Some(&previous.token), TrackerCall::Logout)
            .await;
    }
    if previous.is_none() {
        crate::shares::restore(&daemon.plane, &daemon.downloads, &user).await;
    }
    Ok(done(format!("logged in as {user}")))
}

/// Logs out: the tracker forgets the session and so does the daemon, even when the tracker
/// cannot be reached (the session is then closed locally only).
pub async fn logout(daemon: &Daemon) -> Result<CtlReply, ErrorReply> {
    let session = daemon.user().require_session()?;
    let result = daemon
        .tracker
        .call(Some(&session.token), TrackerCall::Logout)
        .await;
    match result {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::NotLoggedIn => {}
        Err(e) => return Err(e),
    }
    // Stop sharing: no holdings, no downloads; both come back at the next login.
    daemon.downloads.stop_all();
    daemon.plane.holdings.clear();
    daemon.session.set(None).await?;
    Ok(done(format!("logged out {}", session.user)))
}
