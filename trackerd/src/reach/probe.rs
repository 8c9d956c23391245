//! The connect-back check: the tracker connects to an address a daemon announced and completes
//! a TLS handshake there, which succeeds only if that daemon's own key answers.

use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::tls::{self, Expect};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// One check's connect and its handshake each get this long.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Checks running at once; more wait for a turn (they are never queued without bound: a
/// daemon has at most a handful of addresses, checked at most once a minute).
pub const MAX_PROBES: usize = 64;

/// Runs the checks.
#[derive(Clone)]
pub struct Prober {
    identity: Identity,
    turns: Arc<Semaphore>,
}

impl Prober {
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            turns: Arc::new(Semaphore::new(MAX_PROBES)),
        }
    }

    /// Whether the daemon with key `key` answers at `addr`.
    pub async fn reaches(&self, addr: SocketAddr, key: Fingerprint) -> bool {
        let Ok(_turn) = self.turns.acquire().await else {
            return false;
        };
        let stream =
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "reachability check: cannot connect");
                    return false;
                }
                Err(_) => {
                    tracing::debug!(%addr, "reachability check: connect timed out");
                    return false;
                }
            };
        match tls::connect(stream, &self.identity, Expect::Key(key), PROBE_TIMEOUT).await {
            Ok((mut stream, _)) => {
                // A clean close (close_notify), so the daemon does not log a broken link.
                let _ = tokio::time::timeout(PROBE_TIMEOUT, stream.shutdown()).await;
                true
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "reachability check: no TLS with the daemon's key");
                false
            }
        }
    }
}
