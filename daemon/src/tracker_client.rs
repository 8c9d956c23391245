//! Talks to the trackers of tracker_info.txt.
//!
//! Connections are pooled: a request takes an idle connection to the tracker it wants (or opens
//! one), uses it, and puts it back, so no lock is held while waiting on the network and requests
//! run concurrently.
//!
//! Failover: a request goes first to the tracker that last served us, then to the others in
//! file order. A connection error, a timeout or an `unavailable` answer moves on to the next
//! tracker; a `not_primary` answer moves to the primary it names. Rounds repeat (a tracker that
//! timed out is skipped while another one might answer) until [`CALL_DEADLINE`]. Every attempt
//! carries the same request id, and the tracker applies an id at most once, so a retried write
//! is never applied twice.

use p2p_proto::limits::{MAX_TRACKER_FRAME, TRACKER_CONNECT_TIMEOUT};
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, MessageStream};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

type Conn = MessageStream<TcpStream>;

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 4;
/// How long one attempt at one tracker may take (a frozen tracker accepts but never answers).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(3500);
/// How long a call keeps trying before it reports the trackers unavailable.
const CALL_DEADLINE: Duration = Duration::from_secs(12);
/// Pause between rounds over all trackers.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

pub struct TrackerClient {
    trackers: Vec<SocketAddr>,
    idle: Mutex<Vec<(SocketAddr, Conn)>>,
    status: Mutex<LinkStatus>,
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

enum Attempt {
    Answered(Result<TrackerReply, ErrorReply>),
    Redirect(Option<SocketAddr>, String),
    Failed(String),
    TimedOut(String),
}

impl TrackerClient {
    pub fn new(trackers: Vec<SocketAddr>) -> Self {
        Self {
            trackers,
            idle: Mutex::new(Vec::new()),
            status: Mutex::new(LinkStatus::default()),
            switched: Notify::new(),
        }
    }

    pub fn status(&self) -> LinkStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends one request and returns the tracker's answer, failing over as described above.
    pub async fn call(
        &self,
        session: Option<&str>,
        call: TrackerCall,
    ) -> Result<TrackerReply, ErrorReply> {
        let request = TrackerRequest::new(new_request_id(), session.map(str::to_string), call);
        let deadline = Instant::now() + CALL_DEADLINE;
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
                    Attempt::Failed(msg) => failures.push(format!("{addr}: {msg}")),
                    Attempt::TimedOut(msg) => {
                        timed_out.insert(addr);
                        failures.push(format!("{addr}: {msg}"));
                    }
                }
            }
            if Instant::now() + ROUND_PAUSE >= deadline {
                break;
            }
            // The first redirect is followed at once; trackers that keep redirecting (they
            // disagree about who is primary, for a moment) are retried at the normal pace.
            if redirect.is_none() || redirects > 1 {
                tokio::time::sleep(ROUND_PAUSE).await;
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
        let preferred = self.status.lock().ok().and_then(|s| s.preferred);
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
            Err(msg) => return Attempt::Failed(msg),
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(&mut conn, request)).await {
            Err(_) => Attempt::TimedOut(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
            Ok(Err(msg)) => Attempt::Failed(msg),
            Ok(Ok(response)) => {
                self.put_back(addr, conn);
                match response.result {
                    Err(e) if e.kind == ErrorKind::NotPrimary => {
                        let to = e.redirect.as_deref().and_then(|r| r.parse().ok());
                        Attempt::Redirect(to, e.message)
                    }
                    Err(e) if e.kind == ErrorKind::Unavailable => Attempt::Failed(e.message),
                    result => Attempt::Answered(result),
                }
            }
        }
    }

    async fn take_connection(&self, addr: SocketAddr) -> Result<Conn, String> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| {
            let i = idle.iter().position(|(a, _)| *a == addr)?;
            Some(idle.swap_remove(i).1)
        }) {
            return Ok(conn);
        }
        match tokio::time::timeout(TRACKER_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(MessageStream::new(stream, MAX_TRACKER_FRAME))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".into()),
        }
    }

    fn put_back(&self, addr: SocketAddr, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((addr, conn));
        }
    }

    fn note_success(&self, addr: SocketAddr) {
        let switched = match self.status.lock() {
            Ok(mut status) => {
                let switched = status.preferred.is_some_and(|p| p != addr);
                if status.current != Some(addr) {
                    tracing::info!(tracker = %addr, "using tracker");
                }
                status.current = Some(addr);
                status.preferred = Some(addr);
                switched
            }
            Err(_) => false,
        };
        if switched {
            self.switched.notify_one();
        }
    }

    fn note_failure(&self, error: &str) {
        if let Ok(mut status) = self.status.lock() {
            status.current = None;
            status.last_error = Some(error.to_string());
        }
    }
}

async fn exchange(conn: &mut Conn, request: &TrackerRequest) -> Result<TrackerResponse, String> {
    conn.send(request).await.map_err(|e| e.to_string())?;
    match conn.recv::<TrackerResponse>().await {
        Ok(Some(response)) if response.id == request.id => Ok(response),
        Ok(Some(response)) => match response.result {
            // The tracker could not read our frame: a version mismatch or a bug; do not retry.
            Err(e) if response.id.is_empty() => {
                Ok(TrackerResponse::new(request.id.clone(), Err(e)))
            }
            _ => Err("answer to another request".into()),
        },
        Ok(None) => Err("connection closed".into()),
        Err(e) => Err(e.to_string()),
    }
}
