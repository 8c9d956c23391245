//! Accepts client connections and answers their requests, one task per connection.
//!
//! A semaphore caps the number of connections; a cancellation token tells every connection to
//! stop; `serve` returns only after every connection task has finished.

use crate::cluster::Cluster;
use crate::commands::{Ctx, dispatch};
use p2p_proto::limits::{HANDSHAKE_TIMEOUT, MAX_TRACKER_FRAME, TRACKER_IDLE_TIMEOUT};
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
                tasks.spawn(async move {
                    connection(stream, peer, ctx, cluster, shutdown).await;
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

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Ctx,
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = MessageStream::new(stream, MAX_TRACKER_FRAME);
    tracing::debug!(%peer, "client connected");
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
        if let TrackerCall::ClusterHello { from, nonce } = request.call {
            if first {
                if let Some(accepted) =
                    crate::cluster::link::accept(&cluster, conn, peer, from, nonce).await
                {
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
        let result = answer(&ctx, &cluster, peer, request).await;
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
/// and a write is acknowledged only once the standby has it.
async fn answer(
    ctx: &Ctx,
    cluster: &Cluster,
    peer: SocketAddr,
    request: TrackerRequest,
) -> Result<TrackerReply, ErrorReply> {
    // Pings too: a standby redirects them, so a client's liveness check finds the primary.
    cluster.gate().await?;
    let writes = is_write(&request.call);
    let reply = dispatch(ctx, peer, request).await?;
    if writes {
        let seq = *ctx.store.subscribe().borrow();
        cluster.replicated(seq).await?;
    }
    Ok(reply)
}

/// Calls that append to the log (the swarm's soft state is not replicated).
fn is_write(call: &TrackerCall) -> bool {
    match call {
        TrackerCall::CreateUser { .. }
        | TrackerCall::Login { .. }
        | TrackerCall::Logout
        | TrackerCall::CreateGroup { .. }
        | TrackerCall::JoinGroup { .. }
        | TrackerCall::LeaveGroup { .. }
        | TrackerCall::AcceptRequest { .. }
        | TrackerCall::UploadFile { .. } => true,
        TrackerCall::Ping
        | TrackerCall::ClusterHello { .. }
        | TrackerCall::Whoami
        | TrackerCall::ListGroups
        | TrackerCall::ListRequests { .. }
        | TrackerCall::SigningKey
        | TrackerCall::ListFiles { .. }
        | TrackerCall::FetchFile { .. }
        | TrackerCall::Announce { .. }
        | TrackerCall::StopShare { .. } => false,
    }
}
