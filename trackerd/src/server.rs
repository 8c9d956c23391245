//! Accepts client connections and answers their requests, one task per connection.
//!
//! Every connection is TLS: the client presents its key, which names its origin (sessions are
//! bound to it). A client that speaks plaintext (an older release) gets one plaintext error
//! frame saying to upgrade. A semaphore caps the number of connections; a cancellation token
//! tells every connection to stop; `serve` returns only after every connection task has
//! finished.

use crate::cluster::Cluster;
use crate::commands::{Ctx, Origin, dispatch};
use p2p_proto::limits::{HANDSHAKE_TIMEOUT, MAX_TRACKER_FRAME, TRACKER_IDLE_TIMEOUT};
use p2p_proto::tls::{self, TlsAcceptor, TlsStream};
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, FrameError, MessageStream};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client that takes longer than this to accept a reply (it stopped reading) is dropped.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Most client connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 1024;

pub async fn serve(
    listener: TcpListener,
    ctx: Ctx,
    cluster: Arc<Cluster>,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                let cluster = Arc::clone(&cluster);
                let shutdown = shutdown.clone();
                let acceptor = acceptor.clone();
                tasks.spawn(async move {
                    if let Some((conn, origin, exporter)) = open(stream, peer, &acceptor).await {
                        connection(conn, origin, exporter, ctx, cluster, shutdown).await;
                    }
                    drop(permit);
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
            let conn = MessageStream::new(stream, MAX_TRACKER_FRAME);
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
    let mut conn = MessageStream::new(stream, MAX_TRACKER_FRAME);
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

async fn connection(
    mut conn: Conn,
    origin: Origin,
    exporter: [u8; 32],
    ctx: Ctx,
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
) {
    let peer = origin.addr;
    tracing::debug!(%peer, key = %origin.key, "client connected");
    let mut first = true;
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
                if let Some(accepted) = crate::cluster::link::accept(&cluster, conn, hello).await {
                    cluster.serve_link(accepted).await;
                }
            } else {
                tracing::warn!(%peer, "cluster_hello in the middle of a connection; closing");
            }
            return;
        }
        first = false;
        let id = request.id.clone();
        let call = request.call.name();
        let result = answer(&ctx, &cluster, origin, request).await;
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
    let before = *ctx.store.subscribe().borrow();
    let reply = dispatch(ctx, origin, request).await;
    // Any request may write (a login, but also a session bound or touched on the way).
    let after = *ctx.store.subscribe().borrow();
    if after != before {
        cluster.replicated(after).await?;
    }
    reply
}
