//! Test support: a fake tracker on loopback (TLS, with a key of its own) that answers as a test
//! scripts it and records what it was asked; and a tracker client to talk to fakes.

use crate::state::{State, StateDb};
use crate::tracker_client::{Timing, TrackerClient};
use crate::tracker_pins::TrackerPins;
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::limits::MAX_TRACKER_FRAME;
use p2p_proto::tracker::{TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::tracker_info::TrackerEntry;
use p2p_proto::{ErrorReply, MessageStream};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// How a fake tracker answers one request: `Some(result)`, or `None` to stay silent (a frozen
/// tracker).
pub type Script = dyn Fn(&TrackerRequest) -> Option<Result<TrackerReply, ErrorReply>> + Send + Sync;

pub struct FakeTracker {
    pub addr: SocketAddr,
    pub key: Fingerprint,
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
        let identity = Identity::ephemeral().unwrap();
        let key = identity.fingerprint();
        let acceptor = p2p_proto::tls::acceptor(&identity).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let limit = std::time::Duration::from_secs(5);
                    let Ok((stream, _)) = p2p_proto::tls::accept(stream, &acceptor, limit).await
                    else {
                        return;
                    };
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
        Self { addr, key, seen }
    }

    /// An address nobody listens on, as a tracker that is gone.
    pub async fn dead() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        Self {
            addr,
            key: Identity::ephemeral().unwrap().fingerprint(),
            seen: Arc::default(),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<TrackerRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// A tracker client of `trackers` (each listed with its key, as a fingerprinted tracker_info.txt
/// would), with its pins in a database under `dir`.
pub async fn client_of(
    trackers: &[&FakeTracker],
    timing: Timing,
    dir: &std::path::Path,
) -> TrackerClient {
    let entries: Vec<TrackerEntry> = trackers
        .iter()
        .map(|t| TrackerEntry {
            addr: t.addr,
            fingerprint: Some(t.key),
        })
        .collect();
    let state = State::new(StateDb::open(&dir.join("pins.redb")).unwrap());
    let pins = TrackerPins::load(state, &entries).await.unwrap();
    TrackerClient::with_timing(
        entries.iter().map(|e| e.addr).collect(),
        Identity::ephemeral().unwrap(),
        Arc::new(pins),
        timing,
    )
}
