//! Talks to the trackers of tracker_info.txt.
//!
//! Connections are pooled: a request takes an idle connection (or opens one), uses it, and puts
//! it back, so no lock is held while waiting on the network and requests run concurrently. A
//! new connection tries the trackers in file order (the first is the preferred primary) with a
//! short connect timeout. A request that fails on the wire is retried on the next tracker with
//! the same request id; the tracker applies an id at most once, so the retry is safe.

use p2p_proto::limits::{MAX_TRACKER_FRAME, TRACKER_CONNECT_TIMEOUT, TRACKER_REQUEST_TIMEOUT};
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorKind, ErrorReply, MessageStream};
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::net::TcpStream;

type Conn = MessageStream<TcpStream>;

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 4;

pub struct TrackerClient {
    trackers: Vec<SocketAddr>,
    idle: Mutex<Vec<(SocketAddr, Conn)>>,
    status: Mutex<LinkStatus>,
}

/// What `p2pctl status` shows about the tracker link.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    pub current: Option<SocketAddr>,
    pub last_error: Option<String>,
}

impl TrackerClient {
    pub fn new(trackers: Vec<SocketAddr>) -> Self {
        Self {
            trackers,
            idle: Mutex::new(Vec::new()),
            status: Mutex::new(LinkStatus::default()),
        }
    }

    pub fn status(&self) -> LinkStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends one request and returns the tracker's answer. Wire failures move on to the next
    /// tracker; only when none answers is the result `unavailable`.
    pub async fn call(
        &self,
        session: Option<&str>,
        call: TrackerCall,
    ) -> Result<TrackerReply, ErrorReply> {
        let request = TrackerRequest::new(new_request_id(), session.map(str::to_string), call);
        let mut failures = Vec::new();
        // Each tracker gets a chance; a pooled connection that went stale costs one extra try.
        for _ in 0..=self.trackers.len() {
            let (addr, mut conn) = match self.take_connection().await {
                Ok(c) => c,
                Err(e) => {
                    failures.push(e);
                    break;
                }
            };
            match exchange(&mut conn, &request).await {
                Ok(response) => {
                    self.note_success(addr);
                    self.put_back(addr, conn);
                    return response.result;
                }
                Err(e) => {
                    let msg = format!("{addr}: {e}");
                    tracing::warn!(tracker = %addr, error = %e, "tracker request failed");
                    self.note_failure(&msg);
                    failures.push(msg);
                }
            }
        }
        Err(ErrorReply::new(
            ErrorKind::Unavailable,
            format!("no tracker answered ({})", failures.join("; ")),
        ))
    }

    async fn take_connection(&self) -> Result<(SocketAddr, Conn), String> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let mut errors = Vec::new();
        for addr in &self.trackers {
            match tokio::time::timeout(TRACKER_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((*addr, MessageStream::new(stream, MAX_TRACKER_FRAME)));
                }
                Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
                Err(_) => errors.push(format!("{addr}: connect timed out")),
            }
        }
        let msg = errors.join("; ");
        self.note_failure(&msg);
        Err(msg)
    }

    fn put_back(&self, addr: SocketAddr, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((addr, conn));
        }
    }

    fn note_success(&self, addr: SocketAddr) {
        if let Ok(mut status) = self.status.lock() {
            if status.current != Some(addr) {
                tracing::info!(tracker = %addr, "using tracker");
            }
            status.current = Some(addr);
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
    match conn
        .recv_timeout::<TrackerResponse>(TRACKER_REQUEST_TIMEOUT)
        .await
    {
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
