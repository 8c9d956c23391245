//! Accepts client connections and answers their requests, one task per connection.
//!
//! Every connection is TLS: the client presents its key, which names its origin (sessions are
//! bound to it). A client that speaks plaintext (an older release) gets one plaintext error
//! frame saying to upgrade. A cancellation token tells every connection to stop; `serve`
//! returns only after every connection task has finished.
//!
//! **Admission.** Connections are counted once accepted, in pools capped in total and per
//! source address ([`p2p_proto::admission`]); a connection over a cap is closed at once. A new
//! connection first takes a *handshake* slot (TLS and its first frame, within
//! `HANDSHAKE_TIMEOUT`), then a client holds a *client* slot while it is served; it is dropped
//! after `TRACKER_IDLE_TIMEOUT` of silence. Connections from the other tracker's address use
//! their own handshake pool, so a flood of clients never delays the cluster link or the other
//! tracker's probes. Until a request proves a session, frames are limited to
//! `MAX_TRACKER_FRAME_UNAUTHENTICATED`.
//!
//! **Relay legs.** A connection whose first request is `relay_open` or `relay_accept` is handed
//! to [`crate::relay`] and never takes a client slot: it is long-lived, and the relay counts its
//! connections under caps of its own (`--relay-max`, `--relay-per-user`). Either request later
//! on a connection is refused.

use crate::cluster::Cluster;
use crate::commands::{Ctx, Origin, dispatch};
use crate::relay::Relay;
use p2p_proto::admission::{Admission, Caps, Slot};
use p2p_proto::limits::{
    HANDSHAKE_TIMEOUT, MAX_TRACKER_FRAME, MAX_TRACKER_FRAME_UNAUTHENTICATED, TRACKER_IDLE_TIMEOUT,
};
use p2p_proto::refusal_log::RefusalLog;
use p2p_proto::tls::{self, TlsAcceptor, TlsStream};
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, FrameError, MessageStream};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client that takes longer than this to accept a reply (it stopped reading) is dropped.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Connections in their TLS handshake or before their first frame.
pub const HANDSHAKE_CAPS: Caps = Caps {
    total: 512,
    per_source: 32,
};
/// Handshakes from the other tracker's address (the cluster link and its probes).
pub const TRUSTED_HANDSHAKE_CAPS: Caps = Caps {
    total: 64,
    per_source: 64,
};
/// Clients being served.
pub const CLIENT_CAPS: Caps = Caps {
    total: 4096,
    per_source: 256,
};

/// The connection pools of one tracker.
struct Pools {
    handshakes: Admission,
    trusted: Admission,
    clients: Admission,
    /// The other tracker's address: its connections use `trusted`.
    other: Option<std::net::IpAddr>,
    log: RefusalLog,
}

impl Pools {
    fn new(other: Option<SocketAddr>) -> Self {
        Self {
            handshakes: Admission::new(HANDSHAKE_CAPS),
            trusted: Admission::new(TRUSTED_HANDSHAKE_CAPS),
            clients: Admission::new(CLIENT_CAPS),
            other: other.map(|a| a.ip()),
            log: RefusalLog::new("tracker"),
        }
    }

    fn handshake(&self, peer: SocketAddr) -> Option<Slot> {
        let pool = if Some(peer.ip()) == self.other {
            &self.trusted
        } else {
            &self.handshakes
        };
        pool.admit(peer.ip())
            .map_err(|why| self.log.refused(peer, &why))
            .ok()
    }

    fn client(&self, peer: SocketAddr) -> Option<Slot> {
        self.clients
            .admit(peer.ip())
            .map_err(|why| self.log.refused(peer, &why))
            .ok()
    }
}

pub async fn serve(
    listener: TcpListener,
    ctx: Ctx,
    cluster: Arc<Cluster>,
    acceptor: TlsAcceptor,
    relay: Arc<Relay>,
    shutdown: CancellationToken,
) {
    let pools = Arc::new(Pools::new(cluster.peer.map(|(_, addr)| addr)));
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Over a cap: dropping the stream closes it at once.
                let Some(handshake) = pools.handshake(peer) else {
                    continue;
                };
                let ctx = ctx.clone();
                let cluster = Arc::clone(&cluster);
                let shutdown = shutdown.clone();
                let acceptor = acceptor.clone();
                let pools = Arc::clone(&pools);
                let relay = Arc::clone(&relay);
                tasks.spawn(async move {
                    let Some((conn, origin, exporter)) = open(stream, peer, &acceptor).await else {
                        return;
                    };
                    let opened = Opened {
                        conn,
                        origin,
                        exporter,
                        handshake,
                    };
                    connection(opened, &pools, &relay, ctx, cluster, shutdown).await;
                });
            }
            Err(e) => {
                // Typically EMFILE; back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

type Conn = MessageStream<TlsStream<TcpStream>>;

/// Completes the TLS handshake; answers a plaintext client in plaintext and closes.
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
) -> Option<(Conn, Origin, [u8; 32])> {
    let _ = stream.set_nodelay(true);
    match tls::opens_with_tls(&stream, HANDSHAKE_TIMEOUT).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(%peer, "plaintext client refused (an older p2pd?)");
            refuse_plaintext(stream).await;
            return None;
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection closed before TLS");
            return None;
        }
    }
    match tls::accept(stream, acceptor, HANDSHAKE_TIMEOUT).await {
        Ok((stream, handshake)) => {
            let origin = Origin {
                addr: peer,
                key: handshake.peer,
            };
            let conn = MessageStream::new(stream, MAX_TRACKER_FRAME_UNAUTHENTICATED);
            Some((conn, origin, handshake.exporter))
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

/// One plaintext frame in the shape every release of the tracker protocol can read: a
/// `protocol` error for request id `""` saying what to do.
async fn refuse_plaintext(stream: TcpStream) {
    let body = serde_json::json!({
        "v": 1,
        "id": "",
        "result": {"Err": {
            "kind": "protocol",
            "message": format!(
                "this tracker speaks tracker protocol v{} inside TLS; upgrade p2pd",
                p2p_proto::tracker::TRACKER_VERSION
            ),
        }},
    });
    let mut conn = MessageStream::new(stream, MAX_TRACKER_FRAME_UNAUTHENTICATED);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, conn.send(&Raw(body))).await;
}

/// A JSON value sent as-is (the plaintext refusal).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Raw(serde_json::Value);

impl p2p_proto::Message for Raw {
    const VERSION: u32 = 1;
    const PROTOCOL: &'static str = "tracker";
}

/// A connection past its TLS handshake, still holding its handshake slot.
struct Opened {
    conn: Conn,
    origin: Origin,
    exporter: [u8; 32],
    handshake: Slot,
}

async fn connection(
    opened: Opened,
    pools: &Pools,
    relay: &Relay,
    ctx: Ctx,
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
) {
    let Opened {
        mut conn,
        origin,
        exporter,
        handshake,
    } = opened;
    let peer = origin.addr;
    tracing::debug!(%peer, key = %origin.key, "client connected");
    let mut first = true;
    // The handshake slot until the first frame, then a client slot.
    let mut _slot = handshake;
    let mut proven = false;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            // The first frame must come quickly; later ones may take a while.
            next = conn.recv_timeout::<TrackerRequest>(if first { HANDSHAKE_TIMEOUT } else { TRACKER_IDLE_TIMEOUT }) => next,
        };
        let request = match next {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(FrameError::Timeout(_)) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection error");
                break;
            }
            Err(e) => {
                // Malformed, oversized or wrong-version frame: say why, then hang up.
                tracing::info!(%peer, error = %e, "bad frame; closing connection");
                let reply = TrackerResponse::new(
                    "",
                    Err(ErrorReply::new(ErrorKind::Protocol, e.to_string())),
                );
                let _ = tokio::time::timeout(WRITE_TIMEOUT, conn.send(&reply)).await;
                break;
            }
        };
        if let TrackerCall::ClusterHello { from, proof } = request.call {
            if first {
                let hello = crate::cluster::link::Hello {
                    peer,
                    key: origin.key,
                    exporter,
                    from,
                    proof,
                };
                // Cluster frames (records, snapshots) are large; `accept` checks the proof
                // before it reads another frame.
                conn.set_max_frame(MAX_TRACKER_FRAME);
                if let Some(accepted) = crate::cluster::link::accept(&cluster, conn, hello).await {
                    cluster.serve_link(accepted).await;
                }
            } else {
                tracing::warn!(%peer, "cluster_hello in the middle of a connection; closing");
            }
            return;
        }
        if crate::relay::is_relay_call(&request.call) {
            if first {
                let slot = _slot;
                crate::relay::serve_leg(
                    relay, &ctx, &cluster, conn, origin, request, slot, &shutdown,
                )
                .await;
            } else {
                tracing::info!(%peer, "relay request in the middle of a connection; closing");
                let reply = TrackerResponse::new(
                    request.id,
                    Err(ErrorReply::new(
                        ErrorKind::Protocol,
                        "relay_open and relay_accept must be the first request of a connection",
                    )),
                );
                let _ = tokio::time::timeout(WRITE_TIMEOUT, conn.send(&reply)).await;
            }
            return;
        }
        if first {
            let Some(client) = pools.client(peer) else {
                let reply = TrackerResponse::new(
                    request.id,
                    Err(ErrorReply::new(
                        ErrorKind::Unavailable,
                        "too many connections from your address; try again later",
                    )),
                );
                let _ = tokio::time::timeout(WRITE_TIMEOUT, conn.send(&reply)).await;
                return;
            };
            _slot = client;
            first = false;
        }
        let id = request.id.clone();
        let call = request.call.name();
        let with_session = request.session.is_some();
        let result = answer(&ctx, &cluster, origin, request).await;
        if !proven && with_session && result.is_ok() {
            // A proven session may send file metadata, which is large.
            proven = true;
            conn.set_max_frame(MAX_TRACKER_FRAME);
        }
        if let Err(e) = &result {
            tracing::debug!(%peer, call, kind = ?e.kind, error = %e, "request refused");
        }
        let reply = TrackerResponse::new(id, result);
        match tokio::time::timeout(WRITE_TIMEOUT, conn.send(&reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "cannot send reply");
                break;
            }
            Err(_) => {
                tracing::info!(%peer, "client stopped reading; closing connection");
                break;
            }
        }
    }
    tracing::debug!(%peer, "client disconnected");
}

/// Answers a client request: only a primary with a fresh lease serves (a standby redirects),
/// and a request that wrote to the log is answered only once the standby has the write.
async fn answer(
    ctx: &Ctx,
    cluster: &Cluster,
    origin: Origin,
    request: TrackerRequest,
) -> Result<TrackerReply, ErrorReply> {
    // Pings too: a standby redirects them, so a client's liveness check finds the primary.
    cluster.gate().await?;
    // Any request may write (a login, but also a session bound or touched on the way).
    let (reply, written) = crate::commands::tracking_writes(dispatch(ctx, origin, request)).await;
    if written > 0 {
        cluster.replicated(written).await?;
    }
    reply
}
