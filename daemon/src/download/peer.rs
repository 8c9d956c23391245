//! One connection from a download to one peer: handshake, then keep a few requests in flight,
//! hand arriving pieces to verification, and give up on a silent or misbehaving peer.
//!
//! The connection is TLS, and accepts only the key the tracker listed for the peer. It is an
//! [`Exchange`]: a loop that tops up requests, waits for the next event and hands it to one
//! method per event (`on_piece`, `on_have`, `on_reject`, `on_timeout`, `on_grant`). It runs over
//! any byte stream, so tests drive it against a fake peer in memory.

use super::Download;
use super::verify;
use crate::plane::Announce;
use crate::rate_limit::RateLimit;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use p2p_proto::bitfield::Bitfield;
use p2p_proto::grant::Grant;
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::peer::{Hello, PEER_VERSION, PeerCodec, PeerFrame, PeerWireError};
use p2p_proto::tls::{self, Expect, TlsError};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Requests kept in flight per peer.
const DEPTH: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer with requests outstanding that delivers no piece for this long is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How often an idle connection rechecks for work and keeps the link alive.
const IDLE_TICK: Duration = Duration::from_secs(1);
const KEEPALIVE_EVERY: u32 = 30;
/// How long a piece a peer refused is asked of other peers instead.
const REFUSED_COOLDOWN: Duration = Duration::from_millis(500);

/// Why a peer connection ended.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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

/// What a peer connection works with: its download, the daemon's download limit, the
/// announcer (our first verified piece makes us a source worth announcing), our key, and the
/// download's current grant (renewed by the download task; each connection passes it on).
#[derive(Clone)]
pub struct PeerLink {
    pub dl: Arc<Download>,
    pub download_limit: Arc<RateLimit>,
    pub announce: Announce,
    pub identity: Identity,
    pub grant: watch::Receiver<Grant>,
}

/// Connects to `addr`, which must prove it holds `key` (the one the tracker listed), and runs
/// the connection until the download is done, cancelled, or the peer fails.
pub async fn connect_and_run(
    link: PeerLink,
    addr: String,
    key: Fingerprint,
) -> Result<(), PeerEnd> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| failed("connect timed out"))?
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (stream, _) = tls::connect(stream, &link.identity, Expect::Key(key), HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| match e {
            // Not the daemon the tracker listed: whoever it is gets nothing, not even a HELLO.
            TlsError::KeyMismatch { presented, .. } => PeerEnd::Banned(format!(
                "presented key {presented}, not the {key} the tracker listed"
            )),
            other => failed(other.to_string()),
        })?;
    run(link, stream, addr).await
}

/// Runs the peer protocol on `stream`, already connected (and authenticated) to `addr`.
pub async fn run<S>(mut link: PeerLink, stream: S, addr: String) -> Result<(), PeerEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, PeerCodec);
    let grant = link.grant.borrow_and_update().clone();
    let has = handshake(&mut framed, &link.dl, grant).await?;
    link.dl.picker.with(|p| p.peer_added(&has));
    link.dl.progress.with(|p| p.set_connected(&addr, true));
    let mut exchange = Exchange {
        link,
        framed,
        addr,
        has,
        asked: Vec::with_capacity(DEPTH),
        refused: Vec::new(),
        idle_ticks: 0,
        progress_at: Instant::now(),
        bad_piece: CancellationToken::new(),
    };
    let result = exchange.run().await;
    exchange.leave();
    let dl = &exchange.link.dl;
    dl.progress.with(|p| p.set_connected(&exchange.addr, false));
    result
}

/// Sends HELLO and reads WELCOME: the pieces the peer holds.
async fn handshake<S>(
    framed: &mut Framed<S, PeerCodec>,
    dl: &Download,
    grant: Grant,
) -> Result<Bitfield, PeerEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
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
    match first {
        Some(Ok(PeerFrame::Welcome(bits))) => Bitfield::from_bytes(&bits, meta.pieces.len())
            .ok_or_else(|| PeerEnd::Banned("sent a malformed bitfield".into())),
        Some(Ok(PeerFrame::Error(reason))) => Err(failed(format!("refused: {reason}"))),
        Some(Ok(_)) => Err(PeerEnd::Banned("broke the handshake".into())),
        Some(Err(e)) => Err(failed(e.to_string())),
        None => Err(failed("closed the connection during the handshake")),
    }
}

/// What woke the connection up.
enum Event {
    Frame(PeerFrame),
    /// Nothing arrived within the wait.
    Timeout,
    Cancelled,
    /// Verification found a piece from this peer corrupt.
    BadPiece,
    Closed,
    Wire(PeerWireError),
    /// The download task has a renewed grant.
    Grant,
}

/// The state of one established connection.
struct Exchange<S> {
    link: PeerLink,
    framed: Framed<S, PeerCodec>,
    addr: String,
    /// The pieces the peer holds.
    has: Bitfield,
    /// Pieces requested from it and not yet delivered.
    asked: Vec<usize>,
    /// Pieces it refused lately: asked elsewhere first (see the seeder's REJECT policy).
    refused: Vec<(usize, Instant)>,
    /// Idle waits in a row with nothing to ask.
    idle_ticks: u32,
    /// When the peer last delivered a piece (or was first asked for one): other frames (HAVE,
    /// KEEPALIVE) do not count, so a peer that talks but never delivers is dropped.
    progress_at: Instant,
    bad_piece: CancellationToken,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Exchange<S> {
    async fn run(&mut self) -> Result<(), PeerEnd> {
        loop {
            self.fill_requests().await?;
            if self.asked.is_empty() && self.link.dl.picker.with(|p| p.is_complete()) {
                return Ok(());
            }
            match self.next_event().await {
                Event::Frame(frame) => {
                    self.idle_ticks = 0;
                    self.on_frame(frame).await?;
                }
                Event::Timeout => self.on_timeout().await?,
                Event::Grant => self.on_grant().await?,
                Event::Cancelled => return Ok(()),
                Event::BadPiece => {
                    return Err(PeerEnd::Banned(
                        "sent a piece that failed SHA-1 verification".into(),
                    ));
                }
                Event::Closed => return Err(failed("closed the connection")),
                Event::Wire(e) if e.is_violation() => return Err(PeerEnd::Banned(e.to_string())),
                Event::Wire(e) => return Err(failed(e.to_string())),
            }
        }
    }

    /// Gives back what this connection held in the picker: its outstanding requests and its
    /// pieces' availability.
    fn leave(&mut self) {
        let asked = std::mem::take(&mut self.asked);
        let has = &self.has;
        self.link.dl.picker.with(|p| {
            for piece in asked {
                p.release(piece);
            }
            p.peer_removed(has);
        });
    }

    /// Keeps [`DEPTH`] requests in flight, as far as the picker has pieces for this peer.
    async fn fill_requests(&mut self) -> Result<(), PeerEnd> {
        let was_idle = self.asked.is_empty();
        let now = Instant::now();
        self.refused
            .retain(|(_, at)| now.saturating_duration_since(*at) < REFUSED_COOLDOWN);
        let mut sent = false;
        while self.asked.len() < DEPTH {
            let exclude: Vec<usize> = self
                .asked
                .iter()
                .copied()
                .chain(self.refused.iter().map(|(p, _)| *p))
                .collect();
            // A seeder is spared what partial peers can give, except after an idle second.
            let spare = self.has.is_complete() && self.idle_ticks == 0;
            let has = &self.has;
            let Some(piece) = self.link.dl.picker.with(|p| p.pick(has, &exclude, spare)) else {
                break;
            };
            self.asked.push(piece);
            self.framed
                .feed(PeerFrame::Request(piece as u32))
                .await
                .map_err(|e| failed(e.to_string()))?;
            sent = true;
        }
        if !sent {
            return Ok(());
        }
        if was_idle {
            self.progress_at = Instant::now();
        }
        tokio::time::timeout(REQUEST_TIMEOUT, self.framed.flush())
            .await
            .map_err(|_| failed("the peer stopped reading"))?
            .map_err(|e| failed(e.to_string()))
    }

    async fn next_event(&mut self) -> Event {
        let wait = if self.asked.is_empty() {
            IDLE_TICK
        } else {
            REQUEST_TIMEOUT.saturating_sub(self.progress_at.elapsed())
        };
        tokio::select! {
            _ = self.link.dl.cancel.cancelled() => Event::Cancelled,
            _ = self.bad_piece.cancelled() => Event::BadPiece,
            changed = self.link.grant.changed() => match changed {
                Ok(()) => Event::Grant,
                // The task is gone: the download is over.
                Err(_) => Event::Cancelled,
            },
            frame = tokio::time::timeout(wait, self.framed.next()) => match frame {
                Err(_) => Event::Timeout,
                Ok(None) => Event::Closed,
                Ok(Some(Err(e))) => Event::Wire(e),
                Ok(Some(Ok(frame))) => Event::Frame(frame),
            },
        }
    }

    async fn on_frame(&mut self, frame: PeerFrame) -> Result<(), PeerEnd> {
        match frame {
            PeerFrame::Piece { index, data } => self.on_piece(index as usize, data).await,
            PeerFrame::Have(index) => {
                self.on_have(index as usize);
                Ok(())
            }
            PeerFrame::Reject(index) => {
                self.on_reject(index as usize);
                Ok(())
            }
            PeerFrame::KeepAlive => Ok(()),
            PeerFrame::Error(reason) => Err(failed(format!("peer said: {reason}"))),
            other => Err(PeerEnd::Banned(format!(
                "sent an unexpected {} frame",
                other.name()
            ))),
        }
    }

    /// A piece arrived: it must be one we asked for, of the right length; it then goes to
    /// verification while the connection reads on.
    async fn on_piece(&mut self, piece: usize, data: Bytes) -> Result<(), PeerEnd> {
        let Some(pos) = self.asked.iter().position(|a| *a == piece) else {
            return Err(PeerEnd::Banned(format!(
                "sent piece {piece} nobody asked for"
            )));
        };
        self.asked.swap_remove(pos);
        let dl = &self.link.dl;
        if data.len() as u64 != dl.record.meta.piece_len(piece) {
            dl.picker.with(|p| p.failed(piece));
            return Err(PeerEnd::Banned(format!(
                "sent piece {piece} with a wrong length"
            )));
        }
        dl.picker.with(|p| p.arrived(piece));
        self.link.download_limit.acquire(data.len() as u64).await;
        // Time spent waiting on our own limit is not the peer's delay.
        self.progress_at = Instant::now();
        verify::submit(
            &self.link.dl,
            &self.link.announce,
            &self.addr,
            piece,
            data,
            self.bad_piece.clone(),
        )
        .await;
        Ok(())
    }

    /// The peer verified a new piece.
    fn on_have(&mut self, piece: usize) {
        if piece < self.has.len() && self.has.set(piece) {
            self.link.dl.picker.with(|p| p.peer_has(piece));
        }
    }

    /// The peer cannot serve a piece now: ask someone else for it for a while.
    fn on_reject(&mut self, piece: usize) {
        if let Some(pos) = self.asked.iter().position(|a| *a == piece) {
            self.asked.swap_remove(pos);
            self.refused.push((piece, Instant::now()));
            self.link.dl.picker.with(|p| p.release(piece));
        }
    }

    /// Passes a renewed grant on, so the seeder goes on serving us.
    async fn on_grant(&mut self) -> Result<(), PeerEnd> {
        let grant = self.link.grant.borrow_and_update().clone();
        tokio::time::timeout(REQUEST_TIMEOUT, self.framed.send(PeerFrame::Grant(grant)))
            .await
            .map_err(|_| failed("the peer stopped reading"))?
            .map_err(|e| failed(e.to_string()))
    }

    /// Nothing arrived: an idle connection ticks (and sends a keep-alive now and then); one
    /// with requests outstanding has missed its delivery deadline.
    async fn on_timeout(&mut self) -> Result<(), PeerEnd> {
        if !self.asked.is_empty() {
            return Err(failed(format!(
                "no piece delivered for {}s",
                REQUEST_TIMEOUT.as_secs()
            )));
        }
        self.idle_ticks += 1;
        if self.idle_ticks.is_multiple_of(KEEPALIVE_EVERY) {
            tokio::time::timeout(REQUEST_TIMEOUT, self.framed.send(PeerFrame::KeepAlive))
                .await
                .map_err(|_| failed("the peer stopped reading"))?
                .map_err(|e| failed(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
