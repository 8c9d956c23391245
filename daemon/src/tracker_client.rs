//! Talks to the trackers of tracker_info.txt.
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

use crate::sync::Locked;
use p2p_proto::limits::{MAX_TRACKER_FRAME, TRACKER_CONNECT_TIMEOUT};
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, FrameError, MessageStream};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

type Conn = MessageStream<TcpStream>;

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 4;

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

pub struct TrackerClient {
    trackers: Vec<SocketAddr>,
    timing: Timing,
    idle: Locked<Vec<(SocketAddr, Conn)>>,
    status: Locked<LinkStatus>,
    /// Woken when the tracker in use changes, so the daemon re-announces its files there.
    pub switched: Notify,
}

/// What `p2pctl status` shows about the tracker link.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    pub current: Option<SocketAddr>,
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
}

enum Attempt {
    Answered(Result<TrackerReply, ErrorReply>),
    Redirect(Option<SocketAddr>, String),
    Failed(LinkError),
}

impl TrackerClient {
    pub fn new(trackers: Vec<SocketAddr>) -> Self {
        Self::with_timing(trackers, Timing::default())
    }

    pub fn with_timing(trackers: Vec<SocketAddr>, timing: Timing) -> Self {
        Self {
            trackers,
            timing,
            idle: Locked::default(),
            status: Locked::default(),
            switched: Notify::new(),
        }
    }

    pub fn status(&self) -> LinkStatus {
        self.status.get()
    }

    /// Sends one request and returns the tracker's answer, failing over as described above.
    pub async fn call(
        &self,
        session: Option<&str>,
        call: TrackerCall,
    ) -> Result<TrackerReply, ErrorReply> {
        let request = TrackerRequest::new(new_request_id(), session.map(str::to_string), call);
        let deadline = Instant::now() + self.timing.deadline;
        let mut failures: Vec<String> = Vec::new();
        let mut timed_out: HashSet<SocketAddr> = HashSet::new();
        let mut redirect: Option<SocketAddr> = None;
        let mut redirects = 0u32;
        loop {
            let mut order = self.order(redirect.take());
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
                        return result;
                    }
                    Attempt::Redirect(to, msg) => {
                        failures.push(format!("{addr}: {msg}"));
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
                        failures.push(format!("{addr}: {e}"));
                    }
                }
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
        let summary = failures
            .iter()
            .rev()
            .take(self.trackers.len().max(1))
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
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
        let mut conn = match self.take_connection(addr).await {
            Ok(c) => c,
            Err(e) => return Attempt::Failed(e),
        };
        let limit = self.timing.attempt;
        let response = match tokio::time::timeout(limit, exchange(&mut conn, request)).await {
            Err(_) => return Attempt::Failed(LinkError::NoAnswer(limit)),
            Ok(Err(e)) => return Attempt::Failed(e),
            Ok(Ok(response)) => response,
        };
        self.put_back(addr, conn);
        match response.result {
            Err(e) if e.kind == ErrorKind::NotPrimary => {
                let to = e.redirect.as_deref().and_then(|r| r.parse().ok());
                Attempt::Redirect(to, e.message)
            }
            Err(e) if e.kind == ErrorKind::Unavailable => {
                Attempt::Failed(LinkError::Unavailable(e.message))
            }
            result => Attempt::Answered(result),
        }
    }

    async fn take_connection(&self, addr: SocketAddr) -> Result<Conn, LinkError> {
        let pooled = self.idle.with(|idle| {
            let i = idle.iter().position(|(a, _)| *a == addr)?;
            Some(idle.swap_remove(i).1)
        });
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let stream = tokio::time::timeout(self.timing.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| LinkError::ConnectTimeout)?
            .map_err(LinkError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(MessageStream::new(stream, MAX_TRACKER_FRAME))
    }

    fn put_back(&self, addr: SocketAddr, conn: Conn) {
        self.idle.with(|idle| {
            if idle.len() < MAX_IDLE {
                idle.push((addr, conn));
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
            status.last_error = Some(error.to_string());
        });
    }
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
