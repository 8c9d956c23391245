//! Opening an authenticated connection to the other tracker, and accepting one.

use super::Cluster;
use super::auth::{self, Side};
use super::counters::Counters;
use p2p_proto::MessageStream;
use p2p_proto::cluster::{ClusterFrame, ClusterMsg, Position, Purpose, Role};
use p2p_proto::limits::MAX_TRACKER_FRAME;
use p2p_proto::tracker::{TrackerCall, TrackerRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

pub type Link = MessageStream<TcpStream>;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time the other tracker has to answer each handshake step. A frozen process (SIGSTOP)
/// still accepts TCP connections in the kernel, so this is what detects it.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the other tracker may take to accept one message (a snapshot chunk included).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Receives one cluster message, with a timeout.
pub async fn recv(link: &mut Link, limit: Duration) -> Result<ClusterMsg, String> {
    match link.recv_timeout::<ClusterFrame>(limit).await {
        Ok(Some(frame)) => Ok(frame.msg),
        Ok(None) => Err("connection closed".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends one cluster message; the other tracker must accept it within [`SEND_TIMEOUT`].
pub async fn send(link: &mut Link, msg: ClusterMsg) -> Result<(), String> {
    tokio::time::timeout(SEND_TIMEOUT, link.send(&ClusterFrame::new(msg)))
        .await
        .map_err(|_| "the other tracker stopped reading".to_string())?
        .map_err(|e| e.to_string())
}

/// Connects to the other tracker at `addr`, proves the key both ways and says what we want.
/// Returns the link and the other tracker's role and position.
pub async fn connect(
    cluster: &Cluster,
    addr: SocketAddr,
    purpose: Purpose,
) -> Result<(Link, Role, Position), String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut link = MessageStream::new(stream, MAX_TRACKER_FRAME);
    let nonce_c = auth::nonce();
    let hello = TrackerRequest::new(
        p2p_proto::token::new_request_id(),
        None,
        TrackerCall::ClusterHello {
            from: cluster.self_no,
            nonce: nonce_c.clone(),
        },
    );
    tokio::time::timeout(HANDSHAKE_TIMEOUT, link.send(&hello))
        .await
        .map_err(|_| "the other tracker does not read".to_string())?
        .map_err(|e| e.to_string())?;
    let (nonce_s, proof) = match recv(&mut link, HANDSHAKE_TIMEOUT).await? {
        ClusterMsg::Challenge { nonce, proof } => (nonce, proof),
        ClusterMsg::Refuse { reason } => return Err(format!("refused: {reason}")),
        other => return Err(format!("unexpected answer {other:?}")),
    };
    if !auth::verify(&cluster.key, Side::Acceptor, &nonce_c, &nonce_s, &proof) {
        tracing::warn!(%addr, "the other tracker failed to prove the cluster key");
        Counters::bump(&cluster.counters.refused_bad_proof);
        return Err("the other tracker failed to prove the cluster key".into());
    }
    let position = cluster.position()?;
    send(
        &mut link,
        ClusterMsg::Auth {
            proof: auth::prove(&cluster.key, Side::Connector, &nonce_c, &nonce_s),
            position,
            purpose,
        },
    )
    .await?;
    match recv(&mut link, HANDSHAKE_TIMEOUT).await? {
        ClusterMsg::Status { role, position } => {
            cluster.learn(position)?;
            Ok((link, role, position))
        }
        ClusterMsg::Refuse { reason } => Err(format!("refused: {reason}")),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Connects only to learn the other tracker's role and position.
pub async fn probe(cluster: &Cluster, addr: SocketAddr) -> Result<(Role, Position), String> {
    connect(cluster, addr, Purpose::Probe)
        .await
        .map(|(_, role, position)| (role, position))
}

/// A connection from the other tracker that proved the cluster key and got our status.
pub struct Accepted {
    pub link: Link,
    pub peer: SocketAddr,
    /// Where the other tracker stands.
    pub position: Position,
    /// What it wants of us.
    pub purpose: Purpose,
    /// Our role when we told it.
    pub role: Role,
}

/// Handles a connection whose first request was `ClusterHello`: challenge, check the proof,
/// report our status. Returns the authenticated link for the caller to run whatever the other
/// tracker asked for; `None` when it did not authenticate (logged) or the link broke.
pub async fn accept(
    cluster: &Cluster,
    mut link: Link,
    peer: SocketAddr,
    from: usize,
    nonce_c: String,
) -> Option<Accepted> {
    let refuse = |reason: &str| ClusterMsg::Refuse {
        reason: reason.to_string(),
    };
    if cluster.peer.map(|(no, _)| no) != Some(from) {
        tracing::warn!(%peer, from, "cluster connection from an unknown tracker refused");
        Counters::bump(&cluster.counters.refused_unknown_tracker);
        let _ = send(&mut link, refuse("unknown tracker")).await;
        return None;
    }
    let nonce_s = auth::nonce();
    let proof = auth::prove(&cluster.key, Side::Acceptor, &nonce_c, &nonce_s);
    if send(
        &mut link,
        ClusterMsg::Challenge {
            nonce: nonce_s.clone(),
            proof,
        },
    )
    .await
    .is_err()
    {
        return None;
    }
    let (their_proof, their_position, purpose) = match recv(&mut link, HANDSHAKE_TIMEOUT).await {
        Ok(ClusterMsg::Auth {
            proof,
            position,
            purpose,
        }) => (proof, position, purpose),
        Ok(_) | Err(_) => {
            tracing::warn!(%peer, "cluster handshake broken off; refused");
            return None;
        }
    };
    if !auth::verify(
        &cluster.key,
        Side::Connector,
        &nonce_c,
        &nonce_s,
        &their_proof,
    ) {
        tracing::warn!(%peer, "cluster connection without a valid proof of the cluster key refused");
        Counters::bump(&cluster.counters.refused_bad_proof);
        let _ = send(&mut link, refuse("bad proof")).await;
        return None;
    }
    if let Err(e) = cluster.learn(their_position) {
        tracing::error!(error = %e, "cannot record the other tracker's epoch");
        return None;
    }
    let (role, position) = match cluster.role_and_position() {
        Ok(rp) => rp,
        Err(e) => {
            tracing::error!(error = %e, "cannot read our position");
            return None;
        }
    };
    send(&mut link, ClusterMsg::Status { role, position })
        .await
        .ok()?;
    Some(Accepted {
        link,
        peer,
        position: their_position,
        purpose,
        role,
    })
}
