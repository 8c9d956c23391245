//! The relay: for two daemons that cannot reach each other, the tracker passes bytes between
//! two connections, one from each. The daemons run their own TLS end to end inside, so the
//! tracker sees only that TLS's ciphertext (see docs/relay-arch.md and docs/relay-security.md).
//!
//! A connection whose first request is `relay_open` or `relay_accept` becomes a relay leg
//! (`server.rs` hands it here instead of serving it as a client, so it holds none of the client
//! pool's slots):
//!
//! - **`relay_open {name, peer, grant}`** (the downloader): the session, the grant
//!   ([`checks`]) and the caps ([`caps`]) are checked, the leg is parked under a fresh pairing
//!   id ([`pairing`]) and an invite with that id is left for the seeder's daemon, which takes
//!   it at its next poll. The leg waits [`RELAY_PAIRING_TIMEOUT`] for the seeder, then is
//!   answered `unavailable` ("peer did not join the relay").
//! - **`relay_accept {invite}`** (the seeder): the session is checked and the leg handed to the
//!   relay waiting under that id, if it waits for this user's daemon with this key.
//!
//! Once paired, both legs are answered `relaying` and the downloader's task copies bytes both
//! ways ([`pipe`]) under the rates ([`rate`]) until both close, one fails or nothing moves for
//! the idle time. One info line is logged when a relay opens and one when it closes.

pub mod caps;
pub mod checks;
pub mod pairing;
pub mod pipe;
pub mod rate;

use crate::cluster::Cluster;
use crate::commands::{Caller, Ctx, Origin};
use caps::Caps;
use p2p_proto::admission::Slot;
use p2p_proto::grant::Grant;
use p2p_proto::identity::Fingerprint;
use p2p_proto::reach::{Invite, InviteKind, RELAY_PAIRING_TIMEOUT};
use p2p_proto::tls::TlsStream;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, MessageStream};
use pairing::{JoinError, Pairing};
use rate::ByteRate;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A connection as `server.rs` reads requests from it.
pub type Conn = MessageStream<TlsStream<TcpStream>>;

/// The most TLS bytes rustls keeps queued to send on one leg (its default is 64 KiB): two
/// records of the copy buffer's size.
const TLS_SEND_BUFFER: usize = 2 * (pipe::COPY_BUF + 64);

/// A reply to a leg that takes longer than this to go out ends it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The relay's limits (trackerd's `--relay-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Bytes per second one relayed connection may move, both directions together; `None`:
    /// unlimited.
    pub rate: Option<u64>,
    /// Bytes per second every relayed connection together may move; `None`: unlimited.
    pub total: Option<u64>,
    /// Most relayed connections at once (those waiting for their seeder included); 0 turns
    /// the relay off.
    pub max: usize,
    /// Most relayed connections one user may have opened at once.
    pub per_user: usize,
    /// A relay where nothing moved for this long is closed.
    pub idle: Duration,
}

/// `--relay-rate`: 8 MiB/s per relayed connection.
pub const DEFAULT_RATE: u64 = 8 << 20;
/// `--relay-total`: 64 MiB/s over every relay.
pub const DEFAULT_TOTAL: u64 = 64 << 20;
/// `--relay-max`.
pub const DEFAULT_MAX: usize = 256;
/// `--relay-per-user`.
pub const DEFAULT_PER_USER: usize = 16;
/// `--relay-idle`.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            rate: Some(DEFAULT_RATE),
            total: Some(DEFAULT_TOTAL),
            max: DEFAULT_MAX,
            per_user: DEFAULT_PER_USER,
            idle: DEFAULT_IDLE,
        }
    }
}

/// The seeder's leg, on its way to the relay that waits for it.
struct Joining {
    conn: Conn,
    origin: Origin,
    user: String,
    /// The id of its `relay_accept`, which its `relaying` answers.
    request_id: String,
}

/// The relay of one tracker: settings, caps, waiting relays, the total rate.
pub struct Relay {
    settings: RelaySettings,
    caps: Caps,
    waiting: Mutex<Pairing<Box<Joining>>>,
    total: Option<ByteRate>,
}

impl Relay {
    pub fn new(settings: RelaySettings) -> Self {
        Self {
            settings,
            caps: Caps::new(settings.max, settings.per_user),
            waiting: Mutex::default(),
            total: settings
                .total
                .map(|r| ByteRate::new(r, pipe::COPY_BUF as u32)),
        }
    }

    pub fn settings(&self) -> RelaySettings {
        self.settings
    }

    /// Relays open now (paired or waiting).
    pub fn open(&self) -> usize {
        self.caps.open()
    }

    fn waiting<R>(&self, op: impl FnOnce(&mut Pairing<Box<Joining>>) -> R) -> R {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        op(&mut waiting)
    }
}

/// Whether `call` opens a relay leg (what `server.rs` hands to [`serve_leg`]).
pub fn is_relay_call(call: &TrackerCall) -> bool {
    matches!(
        call,
        TrackerCall::RelayOpen { .. } | TrackerCall::RelayAccept { .. }
    )
}

/// Serves a connection whose first request, `request`, is `relay_open` or `relay_accept`.
/// `handshake` is the connection's slot until it is a relay leg.
#[allow(clippy::too_many_arguments)]
pub async fn serve_leg(
    relay: &Relay,
    ctx: &Ctx,
    cluster: &Cluster,
    mut conn: Conn,
    origin: Origin,
    request: TrackerRequest,
    handshake: Slot,
    shutdown: &CancellationToken,
) {
    let TrackerRequest {
        id, session, call, ..
    } = request;
    let caller = match authenticated(ctx, cluster, origin, &id, session).await {
        Ok(caller) => caller,
        Err(e) => return refuse(&mut conn, origin, &id, e).await,
    };
    match call {
        TrackerCall::RelayOpen { name, peer, grant } => {
            let open = Open {
                conn,
                origin,
                caller,
                request_id: id,
                name,
                peer,
                grant,
            };
            serve_open(relay, ctx, open, handshake, shutdown).await;
        }
        TrackerCall::RelayAccept { invite } => {
            drop(handshake);
            let leg = Box::new(Joining {
                conn,
                origin,
                user: caller.user.clone(),
                request_id: id,
            });
            serve_accept(relay, &caller, &invite, leg).await;
        }
        _ => {
            let e = ErrorReply::internal("request routed to the wrong handler");
            refuse(&mut conn, origin, &id, e).await;
        }
    }
}

/// The request id's shape, the tracker's role (only a primary with a fresh lease serves), the
/// session, and the standby's copy of anything that wrote (binding or touching the session).
async fn authenticated(
    ctx: &Ctx,
    cluster: &Cluster,
    origin: Origin,
    request_id: &str,
    session: Option<String>,
) -> Result<Caller, ErrorReply> {
    if !p2p_proto::token::is_request_id(request_id) {
        return Err(ErrorReply::new(
            ErrorKind::Protocol,
            "request id must be 16 to 64 hex characters",
        ));
    }
    cluster.gate().await?;
    let before = *ctx.store.subscribe().borrow();
    let caller = crate::commands::authenticate(ctx, origin.key, session).await;
    let after = *ctx.store.subscribe().borrow();
    if after != before {
        cluster.replicated(after).await?;
    }
    caller
}

/// A `relay_open` whose session is proven.
struct Open {
    conn: Conn,
    origin: Origin,
    caller: Caller,
    request_id: String,
    name: String,
    peer: Fingerprint,
    grant: Grant,
}

async fn serve_open(
    relay: &Relay,
    ctx: &Ctx,
    open: Open,
    handshake: Slot,
    shutdown: &CancellationToken,
) {
    let Open {
        mut conn,
        origin,
        caller,
        request_id,
        name,
        peer,
        grant,
    } = open;
    let seeder = match checks::check_open(ctx, &caller, &name, peer, &grant).await {
        Ok(seeder) => seeder,
        Err(e) => return refuse(&mut conn, origin, &request_id, e).await,
    };
    let ticket = match relay.caps.reserve(&caller.user) {
        Ok(ticket) => ticket,
        Err(e) => {
            let e = ErrorReply::limit_reached(e.to_string());
            return refuse(&mut conn, origin, &request_id, e).await;
        }
    };
    // From here on the relay's own cap covers the connection.
    drop(handshake);
    let (pairing_id, joined) = relay.waiting(|w| w.open(&seeder.user, seeder.key));
    let invite = Invite {
        id: pairing_id.clone(),
        user: caller.user.clone(),
        key: caller.key,
        kind: InviteKind::Relay,
    };
    let now = std::time::Instant::now();
    let invited = ctx.reach(|r| r.invites.push(&seeder.user, seeder.key, invite, now));
    if let Err(e) = invited {
        relay.waiting(|w| w.cancel(&pairing_id));
        let e = ErrorReply::unavailable(e.to_string());
        return refuse(&mut conn, origin, &request_id, e).await;
    }
    let Some(mut other) = wait_for_seeder(relay, &pairing_id, joined, shutdown).await else {
        let e = ErrorReply::unavailable("peer did not join the relay");
        tracing::debug!(user = %caller.user, seeder = %seeder.user, "relay not joined in time");
        return refuse(&mut conn, origin, &request_id, e).await;
    };
    let relaying = |id: &str| TrackerResponse::new(id, Ok(TrackerReply::Relaying));
    let other_id = other.request_id.clone();
    let told = tokio::time::timeout(REPLY_TIMEOUT, async {
        conn.send(&relaying(&request_id)).await?;
        other.conn.send(&relaying(&other_id)).await
    })
    .await;
    if !matches!(told, Ok(Ok(()))) {
        tracing::info!(user = %caller.user, seeder = %other.user, "relay leg gone before it started");
        return;
    }
    tracing::info!(
        user = %caller.user,
        key = %caller.key,
        addr = %origin.addr,
        seeder = %other.user,
        seeder_key = %other.origin.key,
        seeder_addr = %other.origin.addr,
        announced = %seeder.addr,
        "relay opened"
    );
    let started = std::time::Instant::now();
    let (mut down, down_early) = conn.into_parts();
    let (mut up, up_early) = other.conn.into_parts();
    limit_tls_buffers(&mut down);
    limit_tls_buffers(&mut up);
    let (down_early, up_early) = (down_early.to_vec(), up_early.to_vec());
    let own = relay
        .settings
        .rate
        .map(|r| ByteRate::new(r, pipe::COPY_BUF as u32));
    let limits = pipe::Limits {
        own: own.as_ref(),
        total: relay.total.as_ref(),
        idle: relay.settings.idle,
    };
    // The seeder's leg first: what it sends is what the downloader came for.
    let moved = pipe::pipe(up, down, &up_early, &down_early, limits, shutdown).await;
    drop(ticket);
    tracing::info!(
        user = %caller.user,
        seeder = %other.user,
        to_user = moved.forward,
        to_seeder = moved.back,
        secs = started.elapsed().as_secs(),
        end = moved.end.as_str(),
        "relay closed"
    );
}

/// Waits for the seeder's leg, at most [`RELAY_PAIRING_TIMEOUT`].
async fn wait_for_seeder(
    relay: &Relay,
    pairing_id: &str,
    mut joined: oneshot::Receiver<Box<Joining>>,
    shutdown: &CancellationToken,
) -> Option<Box<Joining>> {
    let waited = tokio::select! {
        got = tokio::time::timeout(RELAY_PAIRING_TIMEOUT, &mut joined) => got.ok().and_then(Result::ok),
        () = shutdown.cancelled() => None,
    };
    if waited.is_some() {
        return waited;
    }
    // Gone from the table, or the seeder joined in the same instant: its leg is then in the
    // channel already, since joining takes the entry and sends under the table's lock.
    if relay.waiting(|w| w.cancel(pairing_id)) {
        return None;
    }
    joined.try_recv().ok()
}

async fn serve_accept(relay: &Relay, caller: &Caller, invite: &str, leg: Box<Joining>) {
    let joined = if pairing::is_id(invite) {
        relay.waiting(|w| w.join(invite, &caller.user, caller.key, leg))
    } else {
        Err(JoinError::Unknown(leg))
    };
    match joined {
        // The downloader's task answers both legs and relays.
        Ok(()) => {}
        Err(JoinError::Unknown(mut leg)) => {
            let e = ErrorReply::new(
                ErrorKind::NotFound,
                "no relay waits for you under that invite (it may have timed out)",
            );
            refuse(&mut leg.conn, leg.origin, &leg.request_id, e).await;
        }
        Err(JoinError::Gone(mut leg)) => {
            let e = ErrorReply::unavailable("the downloader stopped waiting for the relay");
            refuse(&mut leg.conn, leg.origin, &leg.request_id, e).await;
        }
    }
}

/// Answers `e` and lets the connection close.
async fn refuse(conn: &mut Conn, origin: Origin, request_id: &str, e: ErrorReply) {
    tracing::debug!(peer = %origin.addr, kind = ?e.kind, error = %e, "relay refused");
    let reply = TrackerResponse::new(request_id, Err(e));
    let _ = tokio::time::timeout(REPLY_TIMEOUT, conn.send(&reply)).await;
}

/// Bounds what rustls queues to send on a relay leg.
fn limit_tls_buffers(stream: &mut TlsStream<TcpStream>) {
    match stream {
        TlsStream::Server(s) => s.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER)),
        TlsStream::Client(c) => c.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER)),
    }
}
