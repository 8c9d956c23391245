//! One file per tracker command; [`dispatch`] is the one exhaustive match.
//!
//! Reads run on a snapshot; writes go through [`Store::write`] so each is one log record.
//! Store calls block (redb), so they run on the blocking pool via [`Ctx::store`].

mod accept_request;
mod create_group;
mod create_user;
mod join_group;
mod leave_group;
mod list_groups;
mod list_requests;
mod login;
mod logout;

use crate::password::PasswordHasherPool;
use crate::store::Store;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest};
use p2p_proto::{ErrorKind, ErrorReply};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What every command handler may use.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<Store>,
    pub hasher: PasswordHasherPool,
    pub tracker_no: usize,
}

impl Ctx {
    /// Runs a blocking store operation on the blocking pool.
    pub async fn store<R: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<R, ErrorReply> + Send + 'static,
    ) -> Result<R, ErrorReply> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| ErrorReply::internal(format!("store task failed: {e}")))?
    }
}

/// A logged-in caller.
pub struct Caller {
    pub user: String,
    pub token_hash: String,
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Answers one request.
pub async fn dispatch(ctx: &Ctx, request: TrackerRequest) -> Result<TrackerReply, ErrorReply> {
    if !p2p_proto::token::is_request_id(&request.id) {
        return Err(ErrorReply::new(
            ErrorKind::Protocol,
            "request id must be 16 to 64 hex characters",
        ));
    }
    let id = request.id.as_str();
    match request.call {
        TrackerCall::Ping => Ok(TrackerReply::Pong {
            tracker_no: ctx.tracker_no,
        }),
        TrackerCall::CreateUser { user, password } => {
            create_user::run(ctx, id, user, password).await
        }
        TrackerCall::Login {
            user,
            password,
            token,
        } => login::run(ctx, id, user, password, token).await,
        call => {
            let caller = authenticate(ctx, request.session).await?;
            match call {
                TrackerCall::Ping | TrackerCall::CreateUser { .. } | TrackerCall::Login { .. } => {
                    unreachable_call()
                }
                TrackerCall::Logout => logout::run(ctx, id, caller).await,
                TrackerCall::Whoami => Ok(TrackerReply::User { user: caller.user }),
                TrackerCall::CreateGroup { group } => {
                    create_group::run(ctx, id, caller, group).await
                }
                TrackerCall::JoinGroup { group } => join_group::run(ctx, id, caller, group).await,
                TrackerCall::LeaveGroup { group } => leave_group::run(ctx, id, caller, group).await,
                TrackerCall::ListGroups => list_groups::run(ctx, caller).await,
                TrackerCall::ListRequests { group } => list_requests::run(ctx, caller, group).await,
                TrackerCall::AcceptRequest { group, user } => {
                    accept_request::run(ctx, id, caller, group, user).await
                }
            }
        }
    }
}

fn unreachable_call() -> Result<TrackerReply, ErrorReply> {
    Err(ErrorReply::internal("request routed to the wrong handler"))
}

/// Resolves the session token of a request to its user.
async fn authenticate(ctx: &Ctx, session: Option<String>) -> Result<Caller, ErrorReply> {
    let Some(token) = session.filter(|t| p2p_proto::token::is_session_token(t)) else {
        return Err(ErrorReply::not_logged_in());
    };
    let token_hash = token_hash(&token);
    let lookup = token_hash.clone();
    let record = ctx
        .store(move |store| store.read(|t| Ok(t.session(&lookup)?)))
        .await?;
    match record {
        Some(record) => Ok(Caller {
            user: record.user,
            token_hash,
        }),
        None => Err(ErrorReply::new(
            ErrorKind::NotLoggedIn,
            "session expired or unknown; log in again",
        )),
    }
}

/// The group named, or a `not_found` error.
fn existing_group(
    tables: &crate::store::TableSet<impl redb::ReadableTable<&'static str, &'static [u8]>>,
    group: &str,
) -> Result<crate::records::GroupRecord, ErrorReply> {
    tables
        .group(group)?
        .ok_or_else(|| ErrorReply::new(ErrorKind::NotFound, format!("no group named {group}")))
}
