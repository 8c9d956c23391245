//! One connection from a download to one peer: handshake, then keep a few requests in flight,
//! hand arriving pieces to verification, and give up on a silent or misbehaving peer.

use super::Download;
use crate::daemon::Daemon;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use p2p_proto::bitfield::Bitfield;
use p2p_proto::grant::Grant;
use p2p_proto::peer::{Hello, PEER_VERSION, PeerCodec, PeerFrame};
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Requests kept in flight per peer.
const DEPTH: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer with requests outstanding that sends nothing for this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How often an idle connection rechecks for work and keeps the link alive.
const IDLE_TICK: Duration = Duration::from_secs(1);
const KEEPALIVE_EVERY: u32 = 30;
/// How long a piece a peer refused is asked of other peers instead.
const REFUSED_COOLDOWN: Duration = Duration::from_millis(500);

/// Why a peer connection ended.
#[derive(Debug, thiserror::Error)]
pub enum PeerEnd {
    #[error("{0}")]
    Failed(String),
    /// The peer misbehaved: it is banned from this download.
    #[error("{0}")]
    Banned(String),
}

fn failed(msg: impl Into<String>) -> PeerEnd {
    PeerEnd::Failed(msg.into())
}

/// Runs one peer connection until the download is done, cancelled, or the peer fails.
pub async fn run(
    daemon: Arc<Daemon>,
    dl: Arc<Download>,
    addr: String,
    grant: Grant,
) -> Result<(), PeerEnd> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| failed("connect timed out"))?
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, PeerCodec);
    let meta = &dl.record.meta;
    let hello = PeerFrame::Hello(Hello {
        v: PEER_VERSION,
        file: meta.sha1.clone(),
        grant,
    });
    tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.send(hello))
        .await
        .map_err(|_| failed("the peer does not read"))?
        .map_err(|e| failed(e.to_string()))?;
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next())
        .await
        .map_err(|_| failed("no answer to handshake"))?;
    let mut has = match first {
        Some(Ok(PeerFrame::Welcome(bits))) => Bitfield::from_bytes(&bits, meta.pieces.len())
            .ok_or_else(|| PeerEnd::Banned("sent a malformed bitfield".into()))?,
        Some(Ok(PeerFrame::Error(reason))) => return Err(failed(format!("refused: {reason}"))),
        Some(Ok(_)) => return Err(PeerEnd::Banned("broke the handshake".into())),
        Some(Err(e)) => return Err(failed(e.to_string())),
        None => return Err(failed("closed the connection during the handshake")),
    };
    if let Ok(mut p) = dl.picker.lock() {
        p.peer_added(&has);
    }
    let bad_piece = CancellationToken::new();
    let mut asked: Vec<usize> = Vec::with_capacity(DEPTH);
    let result = exchange(
        &daemon,
        &dl,
        &addr,
        &mut framed,
        &mut has,
        &mut asked,
        &bad_piece,
    )
    .await;
    if let Ok(mut p) = dl.picker.lock() {
        for piece in asked {
            p.release(piece);
        }
        p.peer_removed(&has);
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    daemon: &Arc<Daemon>,
    dl: &Arc<Download>,
    addr: &str,
    framed: &mut Framed<TcpStream, PeerCodec>,
    has: &mut Bitfield,
    asked: &mut Vec<usize>,
    bad_piece: &CancellationToken,
) -> Result<(), PeerEnd> {
    let n = dl.record.meta.pieces.len();
    let mut idle_ticks = 0u32;
    // When the peer last delivered a piece (or was first asked for one): other frames (HAVE,
    // KEEPALIVE) do not count, so a peer that talks but never delivers is dropped.
    let mut progress_at = Instant::now();
    // Pieces this peer refused lately: asked elsewhere first (see the seeder's REJECT policy).
    let mut refused: Vec<(usize, Instant)> = Vec::new();
    loop {
        let mut sent = false;
        let was_idle = asked.is_empty();
        refused.retain(|(_, at)| at.elapsed() < REFUSED_COOLDOWN);
        while asked.len() < DEPTH {
            let exclude: Vec<usize> = asked
                .iter()
                .copied()
                .chain(refused.iter().map(|(p, _)| *p))
                .collect();
            // A seeder is spared what partial peers can give, except after an idle second.
            let spare = has.is_complete() && idle_ticks == 0;
            let next = dl
                .picker
                .lock()
                .ok()
                .and_then(|mut p| p.pick(has, &exclude, spare));
            let Some(piece) = next else { break };
            asked.push(piece);
            framed
                .feed(PeerFrame::Request(piece as u32))
                .await
                .map_err(|e| failed(e.to_string()))?;
            sent = true;
        }
        if sent && was_idle {
            progress_at = Instant::now();
        }
        if sent {
            tokio::time::timeout(REQUEST_TIMEOUT, framed.flush())
                .await
                .map_err(|_| failed("the peer stopped reading"))?
                .map_err(|e| failed(e.to_string()))?;
        }
        if asked.is_empty() && dl.picker.lock().is_ok_and(|p| p.is_complete()) {
            return Ok(());
        }
        let wait = if asked.is_empty() {
            IDLE_TICK
        } else {
            REQUEST_TIMEOUT.saturating_sub(progress_at.elapsed())
        };
        let frame = tokio::select! {
            _ = dl.cancel.cancelled() => return Ok(()),
            _ = bad_piece.cancelled() => {
                return Err(PeerEnd::Banned("sent a piece that failed SHA-1 verification".into()));
            }
            frame = tokio::time::timeout(wait, framed.next()) => frame,
        };
        let frame = match frame {
            Err(_) if asked.is_empty() => {
                idle_ticks += 1;
                if idle_ticks.is_multiple_of(KEEPALIVE_EVERY) {
                    tokio::time::timeout(REQUEST_TIMEOUT, framed.send(PeerFrame::KeepAlive))
                        .await
                        .map_err(|_| failed("the peer stopped reading"))?
                        .map_err(|e| failed(e.to_string()))?;
                }
                continue;
            }
            Err(_) => {
                return Err(failed(format!(
                    "no piece delivered for {}s",
                    REQUEST_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => return Err(failed("closed the connection")),
            Ok(Some(Err(e))) => return Err(PeerEnd::Banned(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        idle_ticks = 0;
        match frame {
            PeerFrame::Piece { index, data } => {
                let piece = index as usize;
                let Some(pos) = asked.iter().position(|a| *a == piece) else {
                    return Err(PeerEnd::Banned(format!(
                        "sent piece {piece} nobody asked for"
                    )));
                };
                asked.swap_remove(pos);
                if let Ok(mut p) = dl.picker.lock() {
                    p.arrived(piece);
                }
                if data.len() as u64 != dl.record.meta.piece_len(piece) {
                    if let Ok(mut p) = dl.picker.lock() {
                        p.failed(piece);
                    }
                    return Err(PeerEnd::Banned(format!(
                        "sent piece {piece} with a wrong length"
                    )));
                }
                daemon.download_limit.acquire(data.len() as u64).await;
                // Time spent waiting on our own limit is not the peer's delay.
                progress_at = Instant::now();
                verify_and_store(daemon, dl, addr, piece, data, bad_piece.clone()).await;
            }
            PeerFrame::Have(index) => {
                let piece = index as usize;
                if piece < n
                    && has.set(piece)
                    && let Ok(mut p) = dl.picker.lock()
                {
                    p.peer_has(piece);
                }
            }
            PeerFrame::Reject(index) => {
                let piece = index as usize;
                if let Some(pos) = asked.iter().position(|a| *a == piece) {
                    asked.swap_remove(pos);
                    refused.push((piece, Instant::now()));
                    if let Ok(mut p) = dl.picker.lock() {
                        p.release(piece);
                    }
                }
            }
            PeerFrame::KeepAlive => {}
            PeerFrame::Error(reason) => return Err(failed(format!("peer said: {reason}"))),
            other => {
                return Err(PeerEnd::Banned(format!(
                    "sent an unexpected {} frame",
                    frame_name(&other)
                )));
            }
        }
    }
}

/// Checks a piece against its hash and writes it, in a task of its own so the connection keeps
/// reading. A bad piece cancels `bad_piece`, which ends (and bans) the connection.
async fn verify_and_store(
    daemon: &Arc<Daemon>,
    dl: &Arc<Download>,
    peer: &str,
    piece: usize,
    data: Bytes,
    bad_piece: CancellationToken,
) {
    let Ok(permit) = Arc::clone(&dl.verify_slots).acquire_owned().await else {
        return;
    };
    let dl = Arc::clone(dl);
    let daemon = Arc::clone(daemon);
    let peer = peer.to_string();
    tokio::spawn(async move {
        let expected = dl.record.meta.pieces[piece].clone();
        let verified = tokio::task::spawn_blocking(move || {
            (hex::encode(Sha1::digest(&data)) == expected, data)
        })
        .await;
        let (ok, data) = match verified {
            Ok(r) => r,
            Err(_) => {
                // The check never ran: the piece is simply missing again.
                if let Ok(mut p) = dl.picker.lock() {
                    p.failed(piece);
                }
                return;
            }
        };
        if !ok {
            if let Ok(mut p) = dl.picker.lock() {
                p.failed(piece);
            }
            // Banned here, not only by the connection: a peer that hangs up right after a bad
            // piece must not come back on the next refresh.
            dl.ban(&peer, "sent a piece that failed SHA-1 verification");
            bad_piece.cancel();
            return;
        }
        let duplicate = dl.picker.lock().map(|p| p.is_done(piece)).unwrap_or(true);
        if duplicate {
            if let Ok(mut p) = dl.picker.lock() {
                p.release(piece);
            }
            return;
        }
        let len = data.len() as u64;
        if let Err(e) = dl.storage.write_piece(piece, data).await {
            if let Ok(mut p) = dl.picker.lock() {
                p.release(piece);
            }
            dl.fatal(e.to_string());
            return;
        }
        let first = dl
            .picker
            .lock()
            .map(|mut p| p.complete(piece))
            .unwrap_or(false);
        if first {
            // Our first piece makes us a source: tell the tracker now, not at the next round.
            if dl.holding.add_piece(piece) == 1 {
                daemon.announce_now.notify_one();
            }
            dl.piece_verified(len);
        }
        drop(permit);
    });
}

fn frame_name(frame: &PeerFrame) -> &'static str {
    match frame {
        PeerFrame::Hello(_) => "HELLO",
        PeerFrame::Welcome(_) => "WELCOME",
        PeerFrame::Error(_) => "ERROR",
        PeerFrame::Have(_) => "HAVE",
        PeerFrame::Request(_) => "REQUEST",
        PeerFrame::Cancel(_) => "CANCEL",
        PeerFrame::Piece { .. } => "PIECE",
        PeerFrame::Reject(_) => "REJECT",
        PeerFrame::KeepAlive => "KEEPALIVE",
    }
}
