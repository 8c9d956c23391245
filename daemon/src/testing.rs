//! Test support: a fake tracker on loopback that answers as a test scripts it, and records what
//! it was asked.

use p2p_proto::limits::MAX_TRACKER_FRAME;
use p2p_proto::tracker::{TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::{ErrorReply, MessageStream};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// How a fake tracker answers one request: `Some(result)`, or `None` to stay silent (a frozen
/// tracker).
pub type Script = dyn Fn(&TrackerRequest) -> Option<Result<TrackerReply, ErrorReply>> + Send + Sync;

pub struct FakeTracker {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<TrackerRequest>>>,
}

impl FakeTracker {
    pub async fn start(
        script: impl Fn(&TrackerRequest) -> Option<Result<TrackerReply, ErrorReply>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                tokio::spawn(async move {
                    let mut conn = MessageStream::new(stream, MAX_TRACKER_FRAME);
                    while let Ok(Some(request)) = conn.recv::<TrackerRequest>().await {
                        log.lock().unwrap().push(request.clone());
                        let Some(result) = script(&request) else {
                            std::future::pending::<()>().await;
                            return;
                        };
                        let reply = TrackerResponse::new(request.id, result);
                        if conn.send(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, seen }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<TrackerRequest> {
        self.seen.lock().unwrap().clone()
    }
}
