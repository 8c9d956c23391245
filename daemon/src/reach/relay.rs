//! Relayed connections through the tracker: both daemons connect out to the tracker, which
//! passes bytes between them; TLS between the daemons runs end to end inside.
//!
//! (Not implemented yet: every call fails.)

use crate::tracker_client::TrackerClient;
use p2p_proto::grant::Grant;
use p2p_proto::identity::Fingerprint;
use std::net::SocketAddr;

/// A connection through the relay.
pub type RelayedStream = tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("this tracker does not relay")]
    Unsupported,
}

/// The downloader's side: asks the tracker in use to relay to `peer`.
pub async fn open(
    client: &TrackerClient,
    session: &str,
    name: &str,
    peer: Fingerprint,
    grant: Grant,
) -> Result<RelayedStream, RelayError> {
    let _ = (client, session, name, peer, grant);
    Err(RelayError::Unsupported)
}

/// The invited side: joins the relay `invite` at `tracker`.
pub async fn accept(
    client: &TrackerClient,
    tracker: SocketAddr,
    session: &str,
    invite: &str,
) -> Result<RelayedStream, RelayError> {
    let _ = (client, tracker, session, invite);
    Err(RelayError::Unsupported)
}
