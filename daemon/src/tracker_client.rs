//! Talks to the trackers of tracker_info.txt, over TLS.
//!
//! Every connection presents this daemon's key (sessions and grants are bound to it) and
//! accepts only the key expected of that tracker ([`TrackerPins`]); the handshake, and with it
//! the key check, completes before any request is written. A tracker met for the first time
//! without a fingerprint in tracker_info.txt has its key pinned before the request is sent.
//!
//! Connections are pooled: a request takes an idle connection to the tracker it wants (or opens
//! one), uses it, and puts it back, so no lock is held while waiting on the network and requests
//! run concurrently.
//!
//! Failover: a request goes first to the tracker that last served us, then to the others in
//! file order. A connection error, a timeout or an `unavailable` answer moves on to the next
//! tracker; a `not_primary` answer moves to the primary it names, if that tracker is in our own
//! list (a redirect elsewhere is ignored). Rounds repeat (a tracker that timed out is skipped
//! while another one might answer) until [`Timing::deadline`]. Every attempt carries the same
//! request id, and the tracker applies an id at most once, so a retried write is never applied
//! twice.
//!
//! A call that turns its connection into something else (a relay leg) gets a connection of its
//! own instead ([`TrackerClient::dedicated`]): to one tracker, with the same key checks, one
//! request and its answer, then the TLS stream is the caller's.

use crate::sync::Locked;
use crate::tracker_pins::{PinError, TrackerPins};
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::limits::{MAX_TRACKER_FRAME, TRACKER_CONNECT_TIMEOUT};
use p2p_proto::tls::{self, Expect, TlsError, TlsStream};
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, FrameError, MessageStream};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

type Conn = MessageStream<TlsStream<TcpStream>>;

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 4;
/// A pooled connection idle longer than this is closed rather than reused: the tracker drops
/// idle clients after `TRACKER_IDLE_TIMEOUT`, and a reused connection it just closed would
/// cost this call a round.
const POOL_IDLE: Duration = Duration::from_secs(20);

/// How long the client waits for what.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// One TCP connect.
    pub connect: Duration,
    /// One attempt at one tracker (a frozen tracker accepts but never answers).
    pub attempt: Duration,
    /// The whole call, over every tracker and round, before it reports `unavailable`.
    pub deadline: Duration,
    /// Pause between rounds over all trackers.
    pub round_pause: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            connect: TRACKER_CONNECT_TIMEOUT,
            attempt: Duration::from_millis(3500),
            deadline: Duration::from_secs(12),
            round_pause: Duration::from_millis(200),
        }
    }
}

/// An idle connection.
struct Pooled {
    addr: SocketAddr,
    conn: Conn,
    key: Fingerprint,
    /// When it was put back.
    since: Instant,
    /// A request with our session succeeded on it: the tracker accepts large frames on it.
    proven: bool,
}

pub struct TrackerClient {
    trackers: Vec<SocketAddr>,
    identity: Identity,
    pins: Arc<TrackerPins>,
    timing: Timing,
    idle: Locked<Vec<Pooled>>,
    status: Locked<LinkStatus>,
    /// Woken when the tracker in use changes, so the daemon re-announces its files there.
    pub switched: Notify,
}

/// What `p2pctl status` shows about the tracker link.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    pub current: Option<SocketAddr>,
    /// The key of the tracker in use.
    pub current_key: Option<Fingerprint>,
    pub last_error: Option<String>,
    /// The tracker that last served a request.
    preferred: Option<SocketAddr>,
}

/// Why one attempt at one tracker failed.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error(
        "tracker {addr} presented key {presented}, but {expected} is pinned for it; if its key \
         was changed on purpose, run `p2pctl trust_tracker {addr} {presented}`"
    )]
    KeyChanged {
        addr: SocketAddr,
        expected: Fingerprint,
        presented: Fingerprint,
    },
    #[error(
        "tracker {addr} presented key {presented}, but tracker_info.txt names {expected} for it"
    )]
    NotListedKey {
        addr: SocketAddr,
        expected: Fingerprint,
        presented: Fingerprint,
    },
    #[error("tracker {0} does not speak TLS (an older trackerd?); upgrade it")]
    NotTls(SocketAddr),
    #[error("TLS: {0}")]
    Tls(TlsError),
    #[error("cannot pin the tracker's key: {0}")]
    Pin(crate::state::StateError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("connection closed")]
    Closed,
    #[error("answer to another request")]
    OtherAnswer,
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The tracker answered `unavailable` (it cannot serve now: starting, lost its lease, …).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0} is not a tracker of tracker_info.txt")]
    NotListed(SocketAddr),
}

impl LinkError {
    /// A failure that trying again cannot cure (a key that is not the expected one, a tracker
    /// of another version): no point in retrying that tracker during this call.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            LinkError::KeyChanged { .. } | LinkError::NotListedKey { .. } | LinkError::NotTls(_)
        )
    }
}

/// A connection of its own to one tracker, once its one request was answered.
pub struct Dedicated {
    pub reply: Result<TrackerReply, ErrorReply>,
    /// The connection, for whatever follows the answer.
    pub stream: TlsStream<TcpStream>,
    /// Bytes the tracker sent after the answer, already read from `stream`.
    pub early: bytes::BytesMut,
}

/// Why a dedicated connection got no answer.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DedicatedError(LinkError);

enum Attempt {
    Answered(Box<Result<TrackerReply, ErrorReply>>),
    Redirect(Option<SocketAddr>, String),
    Failed(LinkError),
}

impl TrackerClient {
    /// A client of `trackers` presenting `identity`, accepting the keys `pins` expects.
    pub fn new(trackers: Vec<SocketAddr>, identity: Identity, pins: Arc<TrackerPins>) -> Self {
        Self::with_timing(trackers, identity, pins, Timing::default())
    }

    pub fn with_timing(
        trackers: Vec<SocketAddr>,
        identity: Identity,
        pins: Arc<TrackerPins>,
        timing: Timing,
    ) -> Self {
        Self {
            trackers,
            identity,
            pins,
            timing,
            idle: Locked::default(),
            status: Locked::default(),
            switched: Notify::new(),
        }
    }

    pub fn status(&self) -> LinkStatus {
        self.status.get()
    }

    /// The trackers of tracker_info.txt, in order.
    pub fn trackers(&self) -> &[SocketAddr] {
        &self.trackers
    }

    /// This daemon's key.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Forgets the pooled connections to `addr` (its key was re-trusted).
    pub fn forget(&self, addr: SocketAddr) {
        self.idle.with(|idle| idle.retain(|p| p.addr != addr));
    }

    /// Sends one request and returns the tracker's answer, failing over as described above.
    pub async fn call(
        &self,
        session: Option<&str>,
        call: TrackerCall,
    ) -> Result<TrackerReply, ErrorReply> {
        let request = TrackerRequest::new(new_request_id(), session.map(str::to_string), call);
        let deadline = Instant::now() + self.timing.deadline;
        // The last failure of each tracker: the error names every tracker once, and a
        // permanent one (a changed key) is not pushed out by the other's retries.
        let mut failures: HashMap<SocketAddr, String> = HashMap::new();
        let mut timed_out: HashSet<SocketAddr> = HashSet::new();
        let mut permanent: HashSet<SocketAddr> = HashSet::new();
        let mut redirect: Option<SocketAddr> = None;
        let mut redirects = 0u32;
        loop {
            let mut order = self.order(redirect.take());
            order.retain(|a| !permanent.contains(a));
            // A tracker that timed out is tried again only when no other one is left.
            if order.iter().any(|a| !timed_out.contains(a)) {
                order.retain(|a| !timed_out.contains(a));
            }
            for addr in order {
                if Instant::now() >= deadline {
                    break;
                }
                match self.attempt(addr, &request).await {
                    Attempt::Answered(result) => {
                        self.note_success(addr);
                        return *result;
                    }
                    Attempt::Redirect(to, msg) => {
                        failures.insert(addr, format!("{addr}: {msg}"));
                        // Follow a redirect only to a tracker of our own list.
                        if let Some(to) = to.filter(|t| *t != addr && self.trackers.contains(t)) {
                            redirect = Some(to);
                            redirects += 1;
                            break;
                        }
                    }
                    Attempt::Failed(e) => {
                        if matches!(e, LinkError::NoAnswer(_)) {
                            timed_out.insert(addr);
                        }
                        if e.is_permanent() {
                            // Its message names the tracker already.
                            permanent.insert(addr);
                            failures.insert(addr, e.to_string());
                        } else {
                            failures.insert(addr, format!("{addr}: {e}"));
                        }
                    }
                }
            }
            if permanent.len() == self.trackers.len() {
                break;
            }
            if Instant::now() + self.timing.round_pause >= deadline {
                break;
            }
            // The first redirect is followed at once; trackers that keep redirecting (they
            // disagree about who is primary, for a moment) are retried at the normal pace.
            if redirect.is_none() || redirects > 1 {
                tokio::time::sleep(self.timing.round_pause).await;
            }
        }
        let mut listed: Vec<String> = Vec::new();
        for addr in &self.trackers {
            listed.extend(failures.remove(addr));
        }
        listed.extend(failures.into_values());
        let summary = listed.join("; ");
        self.note_failure(&summary);
        Err(ErrorReply::new(
            ErrorKind::Unavailable,
            format!("no tracker answered ({summary})"),
        ))
    }

    /// Trackers to try, best first: a redirect target, the last one that served us, then
    /// the rest in file order.
    fn order(&self, redirect: Option<SocketAddr>) -> Vec<SocketAddr> {
        let preferred = self.status.with(|s| s.preferred);
        let mut order: Vec<SocketAddr> = redirect.into_iter().chain(preferred).collect();
        for addr in &self.trackers {
            if !order.contains(addr) {
                order.push(*addr);
            }
        }
        order.retain(|a| self.trackers.contains(a));
        order
    }

    async fn attempt(&self, addr: SocketAddr, request: &TrackerRequest) -> Attempt {
        // One deadline for connecting, the TLS handshake and the answer: a frozen tracker
        // accepts TCP connections (the kernel does) but never finishes a handshake.
        let limit = self.timing.attempt;
        let outcome = tokio::time::timeout(limit, async {
            let (mut conn, key, mut proven) = self.take_connection(addr).await?;
            if !proven && request.session.is_some() && is_large(request) {
                // The tracker takes large frames only once a session is proven on the
                // connection: prove ours with a small request first.
                let probe = TrackerRequest::new(
                    new_request_id(),
                    request.session.clone(),
                    TrackerCall::Whoami,
                );
                let answer = exchange(&mut conn, &probe).await?;
                if let Err(e) = answer.result {
                    let response = TrackerResponse::new(request.id.clone(), Err(e));
                    return Ok::<_, LinkError>((conn, key, proven, response));
                }
                proven = true;
            }
            let response = exchange(&mut conn, request).await?;
            proven |= request.session.is_some() && response.result.is_ok();
            Ok::<_, LinkError>((conn, key, proven, response))
        })
        .await;
        let (conn, key, proven, response) = match outcome {
            Err(_) => return Attempt::Failed(LinkError::NoAnswer(limit)),
            Ok(Err(e)) => return Attempt::Failed(e),
            Ok(Ok(done)) => done,
        };
        self.put_back(addr, conn, key, proven);
        match response.result {
            Err(e) if e.kind == ErrorKind::NotPrimary => {
                let to = e.redirect.as_deref().and_then(|r| r.parse().ok());
                Attempt::Redirect(to, e.message)
            }
            Err(e) if e.kind == ErrorKind::Unavailable => {
                Attempt::Failed(LinkError::Unavailable(e.message))
            }
            result => {
                self.status.with(|s| s.current_key = Some(key));
                Attempt::Answered(Box::new(result))
            }
        }
    }

    /// A connection to `addr`, its key, and whether it is proven (see [`Pooled`]).
    async fn take_connection(
        &self,
        addr: SocketAddr,
    ) -> Result<(Conn, Fingerprint, bool), LinkError> {
        let pooled = self.idle.with(|idle| {
            idle.retain(|p| p.since.elapsed() < POOL_IDLE);
            let i = idle.iter().position(|p| p.addr == addr)?;
            Some(idle.swap_remove(i))
        });
        if let Some(p) = pooled {
            return Ok((p.conn, p.key, p.proven));
        }
        let (conn, key) = self.connect(addr).await?;
        Ok((conn, key, false))
    }

    /// A new connection to `addr`, its key checked against the pin (or pinned on first use)
    /// before anything is sent.
    async fn connect(&self, addr: SocketAddr) -> Result<(Conn, Fingerprint), LinkError> {
        let stream = tokio::time::timeout(self.timing.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| LinkError::ConnectTimeout)?
            .map_err(LinkError::Connect)?;
        let _ = stream.set_nodelay(true);
        let expect = match self.pins.expected(addr) {
            Some(key) => Expect::Key(key),
            None => Expect::AnyKey,
        };
        let (stream, handshake) = tls::connect(stream, &self.identity, expect, self.timing.attempt)
            .await
            .map_err(|e| match e {
                TlsError::KeyMismatch {
                    expected,
                    presented,
                } if self.pins.is_configured(addr) => LinkError::NotListedKey {
                    addr,
                    expected,
                    presented,
                },
                TlsError::KeyMismatch {
                    expected,
                    presented,
                } => LinkError::KeyChanged {
                    addr,
                    expected,
                    presented,
                },
                TlsError::NotTls => LinkError::NotTls(addr),
                other => LinkError::Tls(other),
            })?;
        if expect == Expect::AnyKey {
            match self.pins.pin_first(addr, handshake.peer).await {
                Ok(()) => {}
                Err(PinError::Other(expected)) => {
                    return Err(LinkError::KeyChanged {
                        addr,
                        expected,
                        presented: handshake.peer,
                    });
                }
                Err(PinError::State(e)) => return Err(LinkError::Pin(e)),
            }
        }
        Ok((
            MessageStream::new(stream, MAX_TRACKER_FRAME),
            handshake.peer,
        ))
    }

    /// Opens a connection of its own to tracker `addr` (one of tracker_info.txt, its key
    /// checked as for every connection), sends `call` with `session`, waits at most `wait` for
    /// the answer, and hands back the answer with the connection. No failover: the caller
    /// chose the tracker.
    pub async fn dedicated(
        &self,
        addr: SocketAddr,
        session: Option<&str>,
        call: TrackerCall,
        wait: Duration,
    ) -> Result<Dedicated, DedicatedError> {
        if !self.trackers.contains(&addr) {
            return Err(DedicatedError(LinkError::NotListed(addr)));
        }
        let request = TrackerRequest::new(new_request_id(), session.map(str::to_string), call);
        let limit = self.timing.attempt;
        let mut conn = tokio::time::timeout(limit, async {
            let (mut conn, _) = self.connect(addr).await?;
            conn.send(&request).await?;
            Ok::<_, LinkError>(conn)
        })
        .await
        .map_err(|_| DedicatedError(LinkError::NoAnswer(limit)))?
        .map_err(DedicatedError)?;
        let response = tokio::time::timeout(wait, conn.recv::<TrackerResponse>())
            .await
            .map_err(|_| DedicatedError(LinkError::NoAnswer(wait)))?
            .map_err(|e| DedicatedError(e.into()))?
            .ok_or(DedicatedError(LinkError::Closed))?;
        if response.id != request.id && !response.id.is_empty() {
            return Err(DedicatedError(LinkError::OtherAnswer));
        }
        let (stream, early) = conn.into_parts();
        Ok(Dedicated {
            reply: response.result,
            stream,
            early,
        })
    }

    fn put_back(&self, addr: SocketAddr, conn: Conn, key: Fingerprint, proven: bool) {
        self.idle.with(|idle| {
            if idle.len() < MAX_IDLE {
                idle.push(Pooled {
                    addr,
                    conn,
                    key,
                    since: Instant::now(),
                    proven,
                });
            }
        });
    }

    fn note_success(&self, addr: SocketAddr) {
        let switched = self.status.with(|status| {
            let switched = status.preferred.is_some_and(|p| p != addr);
            if status.current != Some(addr) {
                tracing::info!(tracker = %addr, "using tracker");
            }
            status.current = Some(addr);
            status.preferred = Some(addr);
            switched
        });
        if switched {
            self.switched.notify_one();
        }
    }

    fn note_failure(&self, error: &str) {
        self.status.with(|status| {
            status.current = None;
            status.current_key = None;
            status.last_error = Some(error.to_string());
        });
    }
}

/// Whether `request` is over the frame limit of a connection without a proven session.
fn is_large(request: &TrackerRequest) -> bool {
    p2p_proto::frame::encode(request).map_or(true, |body| {
        body.len() > p2p_proto::limits::MAX_TRACKER_FRAME_UNAUTHENTICATED
    })
}

async fn exchange(conn: &mut Conn, request: &TrackerRequest) -> Result<TrackerResponse, LinkError> {
    conn.send(request).await?;
    let response = conn
        .recv::<TrackerResponse>()
        .await?
        .ok_or(LinkError::Closed)?;
    if response.id == request.id {
        return Ok(response);
    }
    match response.result {
        // The tracker could not read our frame: a version mismatch or a bug; do not retry.
        Err(e) if response.id.is_empty() => Ok(TrackerResponse::new(request.id.clone(), Err(e))),
        _ => Err(LinkError::OtherAnswer),
    }
}

#[cfg(test)]
mod tests;
