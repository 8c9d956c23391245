//! Serves pieces to other members' daemons.
//!
//! A connection must open with a HELLO carrying a grant signed by the trackers for the file it
//! names; the grant is checked offline against the trackers' public key. Only then does the
//! peer get our bitfield, and only pieces we hold verified are sent. Each new piece a download
//! verifies is forwarded as HAVE, so downloaders feed each other.

use crate::holdings::Holding;
use crate::plane::Plane;
use futures_util::{SinkExt, StreamExt};
use p2p_proto::grant::{GrantError, unix_now};
use p2p_proto::peer::{Hello, PeerCodec, PeerFrame, PeerWireError, send_piece};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::Framed;
use tokio_util::task::TaskTracker;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A downloader that sends nothing (not even a keep-alive) for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A peer that takes longer than this to accept one frame (it stopped reading) is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers served at once.
const MAX_PEERS: usize = 256;

/// Why a served connection ended (logged; the peer got an ERROR frame where it helps).
#[derive(Debug, thiserror::Error)]
enum ServeEnd {
    #[error("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    NoHandshake,
    #[error("first frame was not HELLO")]
    NotHello,
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("share withdrawn")]
    Withdrawn,
    #[error("idle for {}s", IDLE_TIMEOUT.as_secs())]
    Idle,
    #[error("peer stopped reading for {}s", WRITE_TIMEOUT.as_secs())]
    Stalled,
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    #[error("{0}")]
    Wire(#[from] PeerWireError),
    #[error("{0}")]
    Disk(std::io::Error),
}

/// Why a HELLO was not admitted; the text is what the peer is told.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("not sharing (logged out)")]
    LoggedOut,
    #[error("cannot check grants now: {0}")]
    NoKey(String),
    #[error("{0}")]
    Grant(#[from] GrantError),
    #[error("file not shared here")]
    NotShared,
}

pub async fn serve(listener: TcpListener, plane: Arc<Plane>) {
    let limit = Arc::new(Semaphore::new(MAX_PEERS));
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = plane.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(%peer, "too many peers; connection refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let plane = Arc::clone(&plane);
        tasks.spawn(async move {
            if let Err(reason) = connection(stream, peer, &plane).await {
                tracing::info!(%peer, %reason, "peer connection ended");
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

type PeerFramed<S> = Framed<S, PeerCodec>;

async fn connection<S>(stream: S, peer: SocketAddr, plane: &Plane) -> Result<(), ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, PeerCodec);
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next()).await {
        Err(_) => return Err(ServeEnd::NoHandshake),
        Ok(None) => return Ok(()),
        Ok(Some(Err(e))) => {
            let _ = send(&mut framed, PeerFrame::Error(e.to_string())).await;
            return Err(e.into());
        }
        Ok(Some(Ok(PeerFrame::Hello(hello)))) => hello,
        Ok(Some(Ok(_))) => {
            let _ = send(&mut framed, PeerFrame::Error("expected HELLO".into())).await;
            return Err(ServeEnd::NotHello);
        }
    };
    let holding = match admit(plane, &hello).await {
        Ok(h) => h,
        Err(refusal) => {
            let _ = send(&mut framed, PeerFrame::Error(refusal.to_string())).await;
            return Err(refusal.into());
        }
    };
    tracing::debug!(%peer, user = %hello.grant.user, file = %holding.meta.name, "serving peer");
    let _serving = holding.serving();
    let mut haves = holding.subscribe();
    send(
        &mut framed,
        PeerFrame::Welcome(holding.bitfield().as_bytes().to_vec().into()),
    )
    .await?;
    let path = holding.path();
    let file = std::fs::File::open(&path)
        .map(Arc::new)
        .map_err(|e| ServeEnd::Disk(crate::download::storage::annotate(e, "open", &path)))?;
    loop {
        tokio::select! {
            _ = plane.shutdown.cancelled() => return Ok(()),
            _ = holding.revoked() => {
                let _ = send(&mut framed, PeerFrame::Error("no longer shared".into())).await;
                return Err(ServeEnd::Withdrawn);
            }
            have = haves.recv() => match have {
                Ok(piece) => send(&mut framed, PeerFrame::Have(piece)).await?,
                // Lagged: the peer can live without some HAVEs; closed: the holding is gone.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            frame = tokio::time::timeout(IDLE_TIMEOUT, framed.next()) => {
                let frame = match frame {
                    Err(_) => return Err(ServeEnd::Idle),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => {
                        let _ = send(&mut framed, PeerFrame::Error(e.to_string())).await;
                        return Err(e.into());
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                match frame {
                    PeerFrame::Request(index) => {
                        serve_request(plane, &holding, &file, &mut framed, index).await?;
                    }
                    PeerFrame::Cancel(_) | PeerFrame::KeepAlive => {}
                    other => {
                        let name = other.name();
                        let _ = send(&mut framed, PeerFrame::Error("unexpected frame".into())).await;
                        return Err(ServeEnd::Unexpected(name));
                    }
                }
            }
        }
    }
}

/// Answers one REQUEST: the piece, or REJECT when we do not hold it or the upload spreading
/// steers this downloader elsewhere.
async fn serve_request<S>(
    plane: &Plane,
    holding: &Holding,
    file: &Arc<std::fs::File>,
    framed: &mut PeerFramed<S>,
    index: u32,
) -> Result<(), ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let piece = index as usize;
    if !holding.has(piece) || !holding.take_upload(piece) {
        return send(framed, PeerFrame::Reject(index)).await;
    }
    let data = read_piece(file, holding, piece).await?;
    plane.limits.upload.acquire(data.len() as u64).await;
    tokio::time::timeout(WRITE_TIMEOUT, send_piece(framed, index, data))
        .await
        .map_err(|_| ServeEnd::Stalled)??;
    Ok(())
}

/// Sends one frame, giving up on a peer that stopped reading.
async fn send<S>(framed: &mut PeerFramed<S>, frame: PeerFrame) -> Result<(), ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(WRITE_TIMEOUT, framed.send(frame))
        .await
        .map_err(|_| ServeEnd::Stalled)??;
    Ok(())
}

/// Checks the HELLO: we are sharing, the grant verifies for this file, and we hold it.
async fn admit(plane: &Plane, hello: &Hello) -> Result<Arc<Holding>, Refusal> {
    if plane.tracker.session().is_none() {
        return Err(Refusal::LoggedOut);
    }
    let key = plane
        .grant_key
        .get()
        .await
        .map_err(|e| Refusal::NoKey(e.message))?;
    hello.grant.verify(&key, &hello.file, unix_now())?;
    let holding = plane
        .holdings
        .get(&hello.grant.group, &hello.file)
        .ok_or(Refusal::NotShared)?;
    if let Some(share_key) = &holding.share_key
        && crate::shares::changed(&holding)
    {
        crate::shares::withdraw(plane, share_key, &holding).await;
        return Err(Refusal::NotShared);
    }
    Ok(holding)
}

async fn read_piece(
    file: &Arc<std::fs::File>,
    holding: &Holding,
    piece: usize,
) -> Result<bytes::Bytes, ServeEnd> {
    let file = Arc::clone(file);
    let size = holding.meta.size;
    let path = holding.path();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; p2p_proto::files::PIECE_SIZE as usize];
        let len = crate::download::storage::read_piece(&file, size, piece, &mut buf)
            .map_err(|e| crate::download::storage::annotate(e, "read", &path))?
            .len();
        buf.truncate(len);
        Ok(bytes::Bytes::from(buf))
    })
    .await
    .map_err(|e| ServeEnd::Disk(std::io::Error::other(e)))?
    .map_err(ServeEnd::Disk)
}
