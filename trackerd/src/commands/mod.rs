//! One file per tracker command; [`dispatch`] is the one exhaustive match.
//!
//! Reads run on a snapshot; writes go through [`Ctx::write`] so each is one log record.
//! Store calls block (redb), so they run on the blocking pool via [`Ctx::store`]. Who holds
//! which file is not stored: it is the in-memory [`Swarm`], reached through [`Ctx::swarm`].
//!
//! Every request comes from an [`Origin`]: the address and the TLS key of the connection. A
//! session is usable only from the key that opened it ([`authenticate`]).

mod accept_request;
mod announce;
mod create_group;
mod create_user;
mod fetch_file;
mod join_group;
mod leave_group;
mod limits;
mod list_files;
mod list_groups;
mod list_requests;
mod login;
mod logout;
mod peers;
mod poll;
mod punch;
mod reachability;
mod signing_key;
mod stop_share;
mod upload_file;

pub use limits::Limits;

use crate::log::LogEntry;
use crate::password::PasswordHasherPool;
use crate::records::{FileRecord, GroupRecord};
use crate::store::{Decision, Store, TableSet, Tables};
use crate::swarm::Swarm;
use p2p_proto::grant::unix_now;
use p2p_proto::identity::Fingerprint;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest};
use p2p_proto::{ErrorKind, ErrorReply};
use redb::ReadableTable;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// How long sessions and grants live, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A grant expires this long after it is issued.
    pub grant_lifetime: u64,
    /// A session unused this long expires.
    pub session_idle: u64,
    /// Logins and accounts per source.
    pub rates: crate::throttle::Rates,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            grant_lifetime: p2p_proto::grant::GRANT_LIFETIME_SECS,
            session_idle: DEFAULT_SESSION_IDLE,
            rates: crate::throttle::Rates::default(),
        }
    }
}

/// Default idle time of a session: 30 days.
pub const DEFAULT_SESSION_IDLE: u64 = 30 * 24 * 3600;

/// How stale a session's last-seen time may get before a request refreshes it (a log write):
/// an hour, or a quarter of the idle time where that is shorter, so a session in use never
/// idles out.
const SESSION_TOUCH: u64 = 3600;

fn session_touch(session_idle: u64) -> u64 {
    SESSION_TOUCH.min(session_idle / 4)
}

/// Where a request came from: the connection's address and the key its TLS peer proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub addr: SocketAddr,
    pub key: Fingerprint,
}

/// What every command handler may use.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<Store>,
    pub hasher: PasswordHasherPool,
    pub tracker_no: usize,
    pub policy: Policy,
    /// What one account and one group may hold (see [`Limits`]).
    pub limits: Limits,
    /// Who holds which file now. Locked only briefly, never across an `.await`.
    pub swarm: Arc<Mutex<Swarm>>,
    /// Login and account rates per source, delays per account.
    pub throttle: Arc<crate::throttle::Throttle>,
    /// Where daemons are and the invites waiting for them. Locked only briefly, like the swarm.
    pub reach: Arc<Mutex<crate::reach::ReachBook>>,
    /// Checks announced addresses by connecting back; `None` checks nothing (tests).
    pub prober: Option<crate::reach::probe::Prober>,
}

impl Ctx {
    /// The context of a tracker serving `store`. The trackers' signing key is created by
    /// whichever tracker first becomes primary (see `cluster`), never here, so a standby never
    /// makes a key of its own.
    pub fn new(store: Arc<Store>, tracker_no: usize, hash_workers: usize, policy: Policy) -> Self {
        Self {
            store,
            hasher: PasswordHasherPool::new(hash_workers),
            tracker_no,
            policy,
            limits: Limits::default(),
            swarm: Arc::new(Mutex::new(Swarm::new())),
            throttle: Arc::new(crate::throttle::Throttle::new(policy.rates)),
            reach: Arc::default(),
            prober: None,
        }
    }

    /// Runs `op` on the reachability book under its lock, as [`Ctx::swarm`] does.
    pub fn reach<R>(&self, op: impl FnOnce(&mut crate::reach::ReachBook) -> R) -> R {
        let mut book = self.reach.lock().unwrap_or_else(PoisonError::into_inner);
        op(&mut book)
    }

    /// Runs `op` on the swarm under its lock. `op` is synchronous, so the lock is never held
    /// across an `.await`; a panic elsewhere while holding it does not make the swarm unusable.
    pub fn swarm<R>(&self, op: impl FnOnce(&mut Swarm) -> R) -> R {
        let mut swarm = self.swarm.lock().unwrap_or_else(PoisonError::into_inner);
        op(&mut swarm)
    }

    /// Applies one request as one log record (see [`Store::write`]), through the store's
    /// writer, which commits concurrent writes together ([`Store::submit`]). Inside
    /// [`tracking_writes`] the log position the result rests on is noted, for the caller to
    /// wait until the standby has it.
    pub async fn write(
        &self,
        request_id: &str,
        decide: impl FnOnce(&Tables<'_>) -> Result<Decision, ErrorReply> + Send + 'static,
    ) -> Result<TrackerReply, ErrorReply> {
        let written = self.store.submit(request_id, decide).await;
        // Outside `tracking_writes` (no client waiting for an answer) nothing is noted.
        let _ = WRITTEN.try_with(|w| w.set(w.get().max(written.seq)));
        written.result
    }

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

tokio::task_local! {
    /// The newest log position the writes of the request being answered rest on.
    static WRITTEN: std::cell::Cell<u64>;
}

/// Runs `answering` (the answer to one request) and returns its output with the newest log
/// position its writes ([`Ctx::write`]) rest on: their own records, the records that answered
/// their request ids first, or the state a refused write was decided on (0: none). The client
/// may be answered once the standby holds that position.
pub async fn tracking_writes<T>(answering: impl std::future::Future<Output = T>) -> (T, u64) {
    WRITTEN
        .scope(std::cell::Cell::new(0), async {
            let output = answering.await;
            (output, WRITTEN.with(std::cell::Cell::get))
        })
        .await
}

/// A logged-in caller.
pub struct Caller {
    pub user: String,
    pub token_hash: String,
    /// The key of its daemon (the session's key).
    pub key: Fingerprint,
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Answers one request that arrived on a connection from `origin`.
pub async fn dispatch(
    ctx: &Ctx,
    origin: Origin,
    request: TrackerRequest,
) -> Result<TrackerReply, ErrorReply> {
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
        TrackerCall::SigningKey => signing_key::run(ctx).await,
        TrackerCall::ClusterHello { .. } => Err(ErrorReply::new(
            ErrorKind::Protocol,
            "cluster_hello must be the first request of a connection",
        )),
        TrackerCall::CreateUser { user, password } => {
            create_user::run(ctx, id, origin.addr.ip(), user, password).await
        }
        TrackerCall::Login { user, password } => login::run(ctx, id, origin, user, password).await,
        call => {
            let usage = match call {
                TrackerCall::Poll => Use::Background,
                _ => Use::Counts,
            };
            let caller = authenticate_as(ctx, origin.key, request.session, usage).await?;
            match call {
                TrackerCall::Ping
                | TrackerCall::ClusterHello { .. }
                | TrackerCall::SigningKey
                | TrackerCall::CreateUser { .. }
                | TrackerCall::Login { .. } => unreachable_call(),
                TrackerCall::Logout => logout::run(ctx, id, caller).await,
                TrackerCall::Whoami => Ok(TrackerReply::User { user: caller.user }),
                TrackerCall::CreateGroup { group } => {
                    create_group::run(ctx, id, caller, group).await
                }
                TrackerCall::JoinGroup { group } => join_group::run(ctx, id, caller, group).await,
                TrackerCall::LeaveGroup { group } => leave_group::run(ctx, id, caller, group).await,
                TrackerCall::ListGroups { after, limit } => {
                    list_groups::run(ctx, caller, after, limit).await
                }
                TrackerCall::ListRequests {
                    group,
                    after,
                    limit,
                } => list_requests::run(ctx, caller, group, after, limit).await,
                TrackerCall::AcceptRequest { group, user } => {
                    accept_request::run(ctx, id, caller, group, user).await
                }
                TrackerCall::UploadFile { group, file, port } => {
                    upload_file::run(ctx, id, caller, origin.addr, group, file, port).await
                }
                TrackerCall::ListFiles {
                    group,
                    after,
                    limit,
                } => list_files::run(ctx, caller, group, after, limit).await,
                TrackerCall::FetchFile { group, name } => {
                    fetch_file::run(ctx, caller, group, name).await
                }
                TrackerCall::Peers { group, name } => peers::run(ctx, caller, group, name).await,
                TrackerCall::Announce {
                    port,
                    shares,
                    listening,
                } => announce::run(ctx, caller, origin.addr, port, shares, listening).await,
                TrackerCall::StopShare { group, name } => {
                    stop_share::run(ctx, caller, group, name).await
                }
                TrackerCall::Poll => Ok(poll::run(ctx, &caller).await),
                TrackerCall::Punch { group, name, peer } => {
                    punch::run(ctx, caller, origin.addr, group, name, peer).await
                }
                // The server hands a connection that opens with one of these to the relay.
                TrackerCall::RelayOpen { .. } | TrackerCall::RelayAccept { .. } => {
                    Err(ErrorReply::new(
                        ErrorKind::Protocol,
                        "relay_open and relay_accept must be the first request of a connection",
                    ))
                }
            }
        }
    }
}

/// The answer while no tracker has created the signing key yet.
fn no_key() -> ErrorReply {
    ErrorReply::unavailable("the trackers' signing key is not set up yet; retry shortly")
}

fn unreachable_call() -> Result<TrackerReply, ErrorReply> {
    Err(ErrorReply::internal("request routed to the wrong handler"))
}

fn session_gone(why: &str) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotLoggedIn, format!("{why}; log in again"))
}

/// Resolves the session token of a request to its user. The session must exist, belong to
/// `key` (the connection's key) and not have idled out. A session from 0.1.0 (no key yet) is
/// bound to `key` now; a session not seen for an hour is marked seen. Those two are log writes.
pub(crate) async fn authenticate(
    ctx: &Ctx,
    key: Fingerprint,
    session: Option<String>,
) -> Result<Caller, ErrorReply> {
    authenticate_as(ctx, key, session, Use::Counts).await
}

/// Whether a request counts as use of its session (keeps it from idling out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Counts,
    /// A daemon's background poll: it checks the session but does not keep it alive, or a
    /// running daemon's session would never idle out.
    Background,
}

async fn authenticate_as(
    ctx: &Ctx,
    key: Fingerprint,
    session: Option<String>,
    usage: Use,
) -> Result<Caller, ErrorReply> {
    let Some(token) = session.filter(|t| p2p_proto::token::is_session_token(t)) else {
        return Err(ErrorReply::not_logged_in());
    };
    let token_hash = token_hash(&token);
    let lookup = token_hash.clone();
    let record = ctx
        .store(move |store| store.read(|t| Ok(t.session(&lookup)?)))
        .await?
        .ok_or_else(|| session_gone("session expired or unknown"))?;
    if record.key.is_some_and(|bound| bound != key) {
        return Err(session_gone(
            "this session was opened by another daemon's key",
        ));
    }
    let now = unix_now();
    if now.saturating_sub(record.seen) > ctx.policy.session_idle {
        let closed = token_hash.clone();
        let _ = ctx
            .write(&p2p_proto::token::new_request_id(), move |_| {
                Ok(Decision {
                    entries: vec![LogEntry::SessionClosed { token_hash: closed }],
                    reply: TrackerReply::Done,
                })
            })
            .await;
        let idle =
            humantime::format_duration(std::time::Duration::from_secs(ctx.policy.session_idle));
        return Err(session_gone(&format!(
            "session expired after {idle} without use"
        )));
    }
    let mut entries = Vec::new();
    if record.key.is_none() {
        entries.push(LogEntry::SessionBound {
            token_hash: token_hash.clone(),
            key,
        });
    }
    if usage == Use::Counts
        && now.saturating_sub(record.seen) > session_touch(ctx.policy.session_idle)
    {
        entries.push(LogEntry::SessionSeen {
            token_hash: token_hash.clone(),
            at: now,
        });
    }
    if !entries.is_empty() {
        ctx.write(&p2p_proto::token::new_request_id(), move |_| {
            Ok(Decision {
                entries,
                reply: TrackerReply::Done,
            })
        })
        .await?;
    }
    Ok(Caller {
        user: record.user,
        token_hash,
        key,
    })
}

/// The group named, or a `not_found` error.
fn existing_group(
    tables: &TableSet<impl ReadableTable<&'static str, &'static [u8]>>,
    group: &str,
) -> Result<GroupRecord, ErrorReply> {
    tables
        .group(group)?
        .ok_or_else(|| ErrorReply::new(ErrorKind::NotFound, format!("no group named {group}")))
}

/// The group named if `user` is a member of it; `not_found` or `permission_denied` otherwise.
fn member_group(
    tables: &TableSet<impl ReadableTable<&'static str, &'static [u8]>>,
    group: &str,
    user: &str,
) -> Result<GroupRecord, ErrorReply> {
    let record = existing_group(tables, group)?;
    if !record.is_member(user) {
        return Err(not_a_member(group));
    }
    Ok(record)
}

fn not_a_member(group: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::PermissionDenied,
        format!("you are not a member of {group}"),
    )
}

/// Checks that `user` is a member of `group` and that the group has a file `name` (both
/// names validated first), reading the store once.
async fn check_member_file(
    ctx: &Ctx,
    user: &str,
    group: &str,
    name: &str,
) -> Result<FileRecord, ErrorReply> {
    p2p_proto::ids::validate_id("group id", group)?;
    validate_file_name(name)?;
    let (g, n, u) = (group.to_string(), name.to_string(), user.to_string());
    ctx.store(move |s| {
        s.read(|t| {
            member_group(t, &g, &u)?;
            existing_file(t, &g, &n)
        })
    })
    .await
}

/// The file named in `group`, or a `not_found` error.
fn existing_file(
    tables: &TableSet<impl ReadableTable<&'static str, &'static [u8]>>,
    group: &str,
    name: &str,
) -> Result<FileRecord, ErrorReply> {
    tables.file(group, name)?.ok_or_else(|| {
        ErrorReply::new(
            ErrorKind::NotFound,
            format!("no file named {name} in {group}"),
        )
    })
}

/// Checks a file name from the network, as an `invalid_argument` error.
fn validate_file_name(name: &str) -> Result<(), ErrorReply> {
    Ok(p2p_proto::files::validate_file_name(name)?)
}

/// Checks the port a daemon says its peer listener is on.
fn validate_port(port: u16) -> Result<(), ErrorReply> {
    if port == 0 {
        return Err(ErrorReply::invalid(
            "peer port must not be 0; the daemon's peer listener is not running",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tracking_tests {
    use super::*;

    fn created(user: &str) -> Decision {
        Decision {
            entries: vec![LogEntry::UserCreated {
                user: user.into(),
                password_hash: "h".into(),
            }],
            reply: TrackerReply::Done,
        }
    }

    #[tokio::test]
    async fn a_request_learns_the_log_position_its_writes_rest_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let ctx = Ctx::new(store, 1, 1, Policy::default());
        // Outside a request nothing is noted (and nothing fails).
        assert_eq!(
            ctx.write("r1", |_| Ok(created("a"))).await,
            Ok(TrackerReply::Done)
        );
        assert_eq!(
            ctx.write("r2", |_| Ok(created("b"))).await,
            Ok(TrackerReply::Done)
        );
        let (reply, seq) = tracking_writes(ctx.write("r3", |_| Ok(created("c")))).await;
        assert_eq!((reply, seq), (Ok(TrackerReply::Done), 3));
        // A retry rests on the original's record, not on the newest one.
        let (reply, seq) = tracking_writes(ctx.write("r1", |_| Ok(created("x")))).await;
        assert_eq!((reply, seq), (Ok(TrackerReply::Done), 1));
        // A refused write rests on the state it was refused on; a request that writes
        // nothing on nothing.
        let (reply, seq) =
            tracking_writes(ctx.write("r4", |_| Err(ErrorReply::invalid("no")))).await;
        assert!(reply.is_err());
        assert_eq!(seq, 3);
        let (_, seq) = tracking_writes(async { Ok::<_, ErrorReply>(()) }).await;
        assert_eq!(seq, 0);
        // Several writes of one request: the newest.
        let (_, seq) = tracking_writes(async {
            let _ = ctx.write("r5", |_| Ok(created("e"))).await;
            ctx.write("r2", |_| Ok(created("y"))).await
        })
        .await;
        assert_eq!(seq, 4);
    }
}
