//! Accepts client connections and answers their requests, one task per connection.
//!
//! A semaphore caps the number of connections; a cancellation token tells every connection to
//! stop; `serve` returns only after every connection task has finished.

use crate::commands::{Ctx, dispatch};
use p2p_proto::limits::{MAX_TRACKER_FRAME, TRACKER_IDLE_TIMEOUT};
use p2p_proto::tracker::{TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, FrameError, MessageStream};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most client connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 1024;

pub async fn serve(listener: TcpListener, ctx: Ctx, shutdown: CancellationToken) {
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
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    connection(stream, peer, ctx, shutdown).await;
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

async fn connection(stream: TcpStream, peer: SocketAddr, ctx: Ctx, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let mut conn = MessageStream::new(stream, MAX_TRACKER_FRAME);
    tracing::debug!(%peer, "client connected");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = conn.recv_timeout::<TrackerRequest>(TRACKER_IDLE_TIMEOUT) => next,
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
                let _ = conn.send(&reply).await;
                break;
            }
        };
        let id = request.id.clone();
        let call = request.call.name();
        let result = dispatch(&ctx, peer, request).await;
        if let Err(e) = &result {
            tracing::debug!(%peer, call, kind = ?e.kind, error = %e, "request refused");
        }
        if let Err(e) = conn.send(&TrackerResponse::new(id, result)).await {
            tracing::debug!(%peer, error = %e, "cannot send reply");
            break;
        }
    }
    tracing::debug!(%peer, "client disconnected");
}
