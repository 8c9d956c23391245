//! Serves pieces to other members' daemons.
//!
//! A connection must open with a HELLO carrying a grant signed by the trackers for the file it
//! names; the grant is checked offline against the trackers' public key. Only then does the
//! peer get our bitfield, and only pieces we hold verified are sent. Each new piece a download
//! verifies is forwarded as HAVE, so downloaders feed each other.

use crate::daemon::Daemon;
use crate::holdings::Holding;
use futures_util::{SinkExt, StreamExt};
use p2p_proto::grant::unix_now;
use p2p_proto::peer::{PeerCodec, PeerFrame, send_piece};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tokio_util::task::TaskTracker;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A downloader that sends nothing (not even a keep-alive) for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A peer that takes longer than this to accept one frame (it stopped reading) is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers served at once.
const MAX_PEERS: usize = 256;

pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>) {
    let limit = Arc::new(Semaphore::new(MAX_PEERS));
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
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
        let daemon = Arc::clone(&daemon);
        tasks.spawn(async move {
            if let Err(reason) = connection(stream, peer, &daemon).await {
                tracing::info!(%peer, reason, "peer connection ended");
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

async fn connection(stream: TcpStream, peer: SocketAddr, daemon: &Daemon) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, PeerCodec);
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next()).await {
        Err(_) => return Err("no handshake".into()),
        Ok(None) => return Ok(()),
        Ok(Some(Err(e))) => {
            let _ = send(&mut framed, PeerFrame::Error(e.to_string())).await;
            return Err(e.to_string());
        }
        Ok(Some(Ok(PeerFrame::Hello(hello)))) => hello,
        Ok(Some(Ok(_))) => {
            let _ = send(&mut framed, PeerFrame::Error("expected HELLO".into())).await;
            return Err("first frame was not HELLO".into());
        }
    };
    let holding = match admit(daemon, &hello).await {
        Ok(h) => h,
        Err(reason) => {
            let _ = send(&mut framed, PeerFrame::Error(reason.clone())).await;
            return Err(format!("refused: {reason}"));
        }
    };
    tracing::debug!(%peer, user = %hello.grant.user, file = %holding.meta.name, "serving peer");
    let _serving = holding.serving();
    let mut haves = holding.subscribe();
    framed
        .send(PeerFrame::Welcome(
            holding.bitfield().as_bytes().to_vec().into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let file = std::fs::File::open(holding.path())
        .map(Arc::new)
        .map_err(|e| format!("cannot open {}: {e}", holding.path().display()))?;
    loop {
        tokio::select! {
            _ = daemon.shutdown.cancelled() => return Ok(()),
            _ = holding.revoked() => {
                let _ = send(&mut framed, PeerFrame::Error("no longer shared".into())).await;
                return Err("share withdrawn".into());
            }
            have = haves.recv() => match have {
                Ok(piece) => send(&mut framed, PeerFrame::Have(piece)).await?,
                // Lagged: the peer can live without some HAVEs; closed: the holding is gone.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            },
            frame = tokio::time::timeout(IDLE_TIMEOUT, framed.next()) => {
                let frame = match frame {
                    Err(_) => return Err("idle".into()),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => {
                        let _ = send(&mut framed, PeerFrame::Error(e.to_string())).await;
                        return Err(e.to_string());
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                match frame {
                    PeerFrame::Request(index) => {
                        let piece = index as usize;
                        if !holding.has(piece) || !holding.take_upload(piece) {
                            send(&mut framed, PeerFrame::Reject(index)).await?;
                            continue;
                        }
                        let data = read_piece(&file, holding.meta.size, piece).await?;
                        daemon.upload_limit.acquire(data.len() as u64).await;
                        tokio::time::timeout(WRITE_TIMEOUT, send_piece(&mut framed, index, data))
                            .await
                            .map_err(|_| stalled())?
                            .map_err(|e| e.to_string())?;
                    }
                    PeerFrame::Cancel(_) | PeerFrame::KeepAlive => {}
                    _ => {
                        let _ = send(&mut framed, PeerFrame::Error("unexpected frame".into())).await;
                        return Err("unexpected frame".into());
                    }
                }
            }
        }
    }
}

/// Sends one frame, giving up on a peer that stopped reading.
async fn send(framed: &mut Framed<TcpStream, PeerCodec>, frame: PeerFrame) -> Result<(), String> {
    tokio::time::timeout(WRITE_TIMEOUT, framed.send(frame))
        .await
        .map_err(|_| stalled())?
        .map_err(|e| e.to_string())
}

fn stalled() -> String {
    format!("peer stopped reading for {}s", WRITE_TIMEOUT.as_secs())
}

/// Checks the HELLO: we are sharing, the grant verifies for this file, and we hold it.
async fn admit(daemon: &Daemon, hello: &p2p_proto::peer::Hello) -> Result<Arc<Holding>, String> {
    if daemon.session().await.ok().flatten().is_none() {
        return Err("not sharing (logged out)".into());
    }
    let key = daemon
        .tracker_key()
        .await
        .map_err(|e| format!("cannot check grants now: {}", e.message))?;
    hello
        .grant
        .verify(&key, &hello.file, unix_now())
        .map_err(|e| e.to_string())?;
    let holding = daemon
        .holdings
        .get(&hello.grant.group, &hello.file)
        .ok_or("file not shared here")?;
    if let Some(share_key) = &holding.share_key
        && crate::shares::changed(&holding)
    {
        crate::shares::withdraw(daemon, share_key, &holding).await;
        return Err("file not shared here".into());
    }
    Ok(holding)
}

async fn read_piece(
    file: &Arc<std::fs::File>,
    size: u64,
    piece: usize,
) -> Result<bytes::Bytes, String> {
    let file = Arc::clone(file);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; p2p_proto::files::PIECE_SIZE as usize];
        let len = crate::download::storage::read_piece(&file, size, piece, &mut buf)
            .map_err(|e| format!("cannot read piece {piece}: {e}"))?
            .len();
        buf.truncate(len);
        Ok(bytes::Bytes::from(buf))
    })
    .await
    .map_err(|e| e.to_string())?
}
