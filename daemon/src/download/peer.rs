//! One connection from a download to one peer: handshake, then keep a few requests in flight,
//! hand arriving pieces to verification, and give up on a silent or misbehaving peer.
//!
//! The connection is TLS, and accepts only the key the tracker listed for the peer. It is an
//! [`Exchange`]: a loop that tops up requests, waits for the next event and hands it to one
//! method per event (`on_piece`, `on_have`, `on_reject`, `on_timeout`, `on_grant`). It runs over
//! any byte stream, so tests drive it against a fake peer in memory.
//!
//! Work per frame does not grow with the file's piece count: a full run of the piece picker
//! (a scan of every piece) happens only when a request slot is free *and* something changed
//! that could give it a result (a slot freed by a delivered or refused piece, or the
//! once-a-second tick). A KEEPALIVE or a duplicate HAVE changes nothing and costs O(1); a new
//! HAVE updates the piece's availability and, with a slot free, asks for that one piece if it
//! is wanted (O(1)). Frames that carry nothing new are counted, and a peer that sends more
//! than [`MAX_NOISE_PER_SEC`] of them in a second is banned as a flooder.

use super::Download;
use super::verify;
use crate::plane::Announce;
use crate::rate_limit::RateLimit;
use crate::reach::dial::{Dialer, Transport};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use p2p_proto::bitfield::Bitfield;
use p2p_proto::grant::Grant;
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::peer::{Hello, PEER_VERSION, PeerCodec, PeerFrame, PeerWireError};
use p2p_proto::reach::ConnectionKind;
use p2p_proto::tls::{self, Expect, TlsError};
use p2p_proto::tracker::PeerInfo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// With this many peers connected without the relay, a download opens no relayed connection
/// and closes those it has.
pub const ENOUGH_DIRECT: usize = 4;
/// Requests kept in flight per peer.
const DEPTH: usize = 8;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer with requests outstanding that delivers no piece for this long is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a connection rechecks for work (other peers may have released pieces) and, when
/// idle, keeps the link alive.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Frames that carry nothing new (a KEEPALIVE, a HAVE of a piece the peer announced already or
/// that the file does not have, a REJECT of a piece not asked for) a peer may send in one
/// second; one more and it is banned. An honest peer sends a keep-alive after 30 idle seconds
/// and at most a few duplicate HAVEs, around its WELCOME.
pub const MAX_NOISE_PER_SEC: u32 = 64;
/// Full picker runs a peer's REJECTs may cause in one second; slots freed beyond that are
/// refilled at the next tick, so a peer that refuses everything cannot keep the picker busy.
const REJECT_REPICKS_PER_SEC: u32 = DEPTH as u32;
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
    /// The connection goes through the relay: it ends once the download has enough peers
    /// connected without it.
    pub relayed: bool,
}

/// Connects to `peer` whichever way works ([`Dialer::dial`]), checks it holds the key the
/// tracker listed, and runs the connection until the download is done, cancelled, or the peer
/// fails. `relay_ok` is false while the download has enough peers without the relay.
pub async fn connect_and_run(
    mut link: PeerLink,
    dialer: Dialer,
    peer: PeerInfo,
    relay_ok: bool,
) -> Result<(), PeerEnd> {
    let grant = link.grant.borrow().clone();
    let (transport, kind) = dialer.dial(&peer, &grant, relay_ok).await.map_err(failed)?;
    link.relayed = kind == ConnectionKind::Relayed;
    link.dl
        .progress
        .with(|p| p.set_via(&peer.addr, &peer.user, kind));
    tracing::debug!(peer = %peer.addr, user = %peer.user, via = kind.as_str(), "connected");
    match transport {
        Transport::Tcp(stream) => {
            let _ = stream.set_nodelay(true);
            secure_and_run(link, stream, peer.addr, peer.key).await
        }
        Transport::Relayed(stream) => secure_and_run(link, stream, peer.addr, peer.key).await,
    }
}

/// TLS as the client over `stream`, accepting only `key`, then the peer protocol.
async fn secure_and_run<S>(
    link: PeerLink,
    stream: S,
    addr: String,
    key: Fingerprint,
) -> Result<(), PeerEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
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
pub async fn run<S>(link: PeerLink, stream: S, addr: String) -> Result<(), PeerEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    run_counted(link, stream, addr, Arc::default()).await
}

/// What one connection did, counted as it goes: tests check that frames which change nothing
/// cost no picker run.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Frames received after the handshake.
    pub frames: AtomicU64,
    /// Full picker runs (each scans every piece).
    pub full_picks: AtomicU64,
    /// Single-piece picks after a new HAVE (O(1) each).
    pub single_picks: AtomicU64,
}

impl Work {
    #[cfg(test)]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts events in one-second windows, for the flood rules.
#[derive(Debug)]
struct PerSecond {
    start: Instant,
    count: u32,
}

impl PerSecond {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
        }
    }

    /// Counts one event at `now`; returns how many fell in the current window, this one too.
    fn hit(&mut self, now: Instant) -> u32 {
        if now.saturating_duration_since(self.start) >= Duration::from_secs(1) {
            self.start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

/// [`run`], counting its work in `work`.
pub(crate) async fn run_counted<S>(
    mut link: PeerLink,
    stream: S,
    addr: String,
    work: Arc<Work>,
) -> Result<(), PeerEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, PeerCodec::default());
    let grant = link.grant.borrow_and_update().clone();
    let has = handshake(&mut framed, &link.dl, grant).await?;
    let seed = link.dl.picker.with(|p| p.peer_added(&has));
    link.dl.progress.with(|p| p.set_connected(&addr, true));
    let now = Instant::now();
    let mut exchange = Exchange {
        link,
        framed,
        addr,
        has,
        seed,
        asked: Vec::with_capacity(DEPTH),
        refused: Vec::new(),
        idle_ticks: 0,
        next_tick: now + IDLE_TICK,
        progress_at: now,
        bad_piece: CancellationToken::new(),
        repick: true,
        noise: PerSecond::new(now),
        reject_repicks: PerSecond::new(now),
        work,
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
    /// Whether the picker counted the peer as a seeder when it connected.
    seed: bool,
    /// Pieces requested from it and not yet delivered.
    asked: Vec<usize>,
    /// Pieces it refused lately: asked elsewhere first (see the seeder's REJECT policy).
    refused: Vec<(usize, Instant)>,
    /// Ticks in a row with nothing asked.
    idle_ticks: u32,
    /// When the next tick is due: a deadline frames do not push back.
    next_tick: Instant,
    /// When the peer last delivered a piece (or was first asked for one): other frames (HAVE,
    /// KEEPALIVE) do not count, so a peer that talks but never delivers is dropped.
    progress_at: Instant,
    bad_piece: CancellationToken,
    /// Something changed since the last full pick that could give this peer a request: a slot
    /// was freed or a tick passed. Without it a free slot stays free (the last pick found
    /// nothing, and nothing since could change that).
    repick: bool,
    /// Frames that carried nothing new, this second.
    noise: PerSecond,
    /// Repicks caused by REJECTs, this second.
    reject_repicks: PerSecond,
    work: Arc<Work>,
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
                    Work::add(&self.work.frames);
                    self.on_frame(frame).await?;
                    // A frame always ready wins over a passed deadline in `next_event`, so
                    // deadlines are checked here too: a stream of frames postpones neither.
                    if Instant::now() >= self.next_deadline() {
                        self.on_timeout().await?;
                    }
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
        let (has, seed) = (&self.has, self.seed);
        self.link.dl.picker.with(|p| {
            for piece in asked {
                p.release(piece);
            }
            p.peer_removed(has, seed);
        });
    }

    /// The pieces not to ask this peer for: those asked already and those it refused lately.
    fn exclude(&self) -> Vec<usize> {
        self.asked
            .iter()
            .copied()
            .chain(self.refused.iter().map(|(p, _)| *p))
            .collect()
    }

    /// A seeder is spared what partial peers can give, except after an idle tick. (A peer that
    /// completed through HAVEs is not a seeder to the picker's counts.)
    fn spare(&self) -> bool {
        self.seed && self.idle_ticks == 0
    }

    /// Keeps [`DEPTH`] requests in flight, as far as the picker has pieces for this peer; runs
    /// the picker only when a slot is free and something changed since its last run.
    async fn fill_requests(&mut self) -> Result<(), PeerEnd> {
        if !self.repick || self.asked.len() >= DEPTH {
            return Ok(());
        }
        self.repick = false;
        Work::add(&self.work.full_picks);
        let was_idle = self.asked.is_empty();
        let now = Instant::now();
        self.refused
            .retain(|(_, at)| now.saturating_duration_since(*at) < REFUSED_COOLDOWN);
        let mut sent = false;
        while self.asked.len() < DEPTH {
            let exclude = self.exclude();
            let spare = self.spare();
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
        self.requests_sent(was_idle).await
    }

    /// Flushes the requests just fed; the delivery deadline starts now if none was pending.
    async fn requests_sent(&mut self, was_idle: bool) -> Result<(), PeerEnd> {
        self.idle_ticks = 0;
        if was_idle {
            self.progress_at = Instant::now();
        }
        tokio::time::timeout(REQUEST_TIMEOUT, self.framed.flush())
            .await
            .map_err(|_| failed("the peer stopped reading"))?
            .map_err(|e| failed(e.to_string()))
    }

    /// The next tick, or the delivery deadline if requests are outstanding and it comes first.
    fn next_deadline(&self) -> Instant {
        if self.asked.is_empty() {
            self.next_tick
        } else {
            self.next_tick.min(self.progress_at + REQUEST_TIMEOUT)
        }
    }

    async fn next_event(&mut self) -> Event {
        let deadline = self.next_deadline();
        tokio::select! {
            _ = self.link.dl.cancel.cancelled() => Event::Cancelled,
            _ = self.bad_piece.cancelled() => Event::BadPiece,
            changed = self.link.grant.changed() => match changed {
                Ok(()) => Event::Grant,
                // The task is gone: the download is over.
                Err(_) => Event::Cancelled,
            },
            frame = tokio::time::timeout_at(deadline, self.framed.next()) => match frame {
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
            PeerFrame::Have(index) => self.on_have(index as usize).await,
            PeerFrame::Reject(index) => self.on_reject(index as usize),
            PeerFrame::KeepAlive => self.noise("keep-alives"),
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
        self.repick = true;
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

    /// The peer verified a new piece: one more peer holds it, and with a slot free it is
    /// asked for if wanted. Only that piece is looked at; a HAVE cannot make another one
    /// pickable for this peer.
    async fn on_have(&mut self, piece: usize) -> Result<(), PeerEnd> {
        if !self.has.set(piece) {
            return self.noise("HAVEs of pieces it announced already or that do not exist");
        }
        self.link.dl.picker.with(|p| p.peer_has(piece));
        if self.asked.len() >= DEPTH {
            return Ok(());
        }
        Work::add(&self.work.single_picks);
        let (exclude, spare, has) = (self.exclude(), self.spare(), &self.has);
        let picked = self
            .link
            .dl
            .picker
            .with(|p| p.pick_piece(piece, has, &exclude, spare));
        if !picked {
            return Ok(());
        }
        let was_idle = self.asked.is_empty();
        self.asked.push(piece);
        self.framed
            .feed(PeerFrame::Request(piece as u32))
            .await
            .map_err(|e| failed(e.to_string()))?;
        self.requests_sent(was_idle).await
    }

    /// The peer cannot serve a piece now: ask someone else for it for a while.
    fn on_reject(&mut self, piece: usize) -> Result<(), PeerEnd> {
        let Some(pos) = self.asked.iter().position(|a| *a == piece) else {
            return self.noise("REJECTs of pieces nobody asked for");
        };
        self.asked.swap_remove(pos);
        let now = Instant::now();
        self.refused.push((piece, now));
        self.link.dl.picker.with(|p| p.release(piece));
        // Beyond the allowance the slot waits for the next tick.
        if self.reject_repicks.hit(now) <= REJECT_REPICKS_PER_SEC {
            self.repick = true;
        }
        Ok(())
    }

    /// Counts a frame that carried nothing new; too many in a second is a flood.
    fn noise(&mut self, what: &str) -> Result<(), PeerEnd> {
        if self.noise.hit(Instant::now()) > MAX_NOISE_PER_SEC {
            return Err(PeerEnd::Banned(format!(
                "flooded the connection with {what} (more than {MAX_NOISE_PER_SEC} frames a \
                 second that carry nothing new)"
            )));
        }
        Ok(())
    }

    /// Passes a renewed grant on, so the seeder goes on serving us.
    async fn on_grant(&mut self) -> Result<(), PeerEnd> {
        let grant = self.link.grant.borrow_and_update().clone();
        tokio::time::timeout(REQUEST_TIMEOUT, self.framed.send(PeerFrame::Grant(grant)))
            .await
            .map_err(|_| failed("the peer stopped reading"))?
            .map_err(|e| failed(e.to_string()))
    }

    /// A deadline passed: requests outstanding past their delivery deadline end the
    /// connection; the tick looks for work again (and an idle connection sends a keep-alive
    /// now and then).
    async fn on_timeout(&mut self) -> Result<(), PeerEnd> {
        let now = Instant::now();
        if !self.asked.is_empty()
            && now.saturating_duration_since(self.progress_at) >= REQUEST_TIMEOUT
        {
            return Err(failed(format!(
                "no piece delivered for {}s",
                REQUEST_TIMEOUT.as_secs()
            )));
        }
        if now < self.next_tick {
            return Ok(());
        }
        if self.link.relayed && self.link.dl.progress.with(|p| p.direct_peers()) >= ENOUGH_DIRECT {
            return Err(failed("enough peers connected without the relay"));
        }
        self.next_tick = now + IDLE_TICK;
        self.repick = true;
        if !self.asked.is_empty() {
            return Ok(());
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
