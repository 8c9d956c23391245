//! Opening an authenticated connection to the other tracker, and accepting one.
//!
//! Both ends authenticate twice: TLS, where each presents its own key and the other's key is
//! pinned (from tracker_info.txt, or the first key that proved the cluster key), and the cluster
//! key, proven by each side over this very TLS session (see `auth`). A failure of either is a
//! [`LinkError::Misconfigured`]: the other tracker is there but is not our partner (another
//! key, another cluster key, another number). The caller must not mistake it for the other
//! tracker being gone, which is [`LinkError::Unreachable`].

use super::Cluster;
use super::auth::{self, Side};
use super::counters::Counters;
use p2p_proto::MessageStream;
use p2p_proto::cluster::{ClusterFrame, ClusterMsg, Position, Purpose, Role};
use p2p_proto::identity::Fingerprint;
use p2p_proto::limits::MAX_TRACKER_FRAME;
use p2p_proto::tls::{self, Expect, TlsError, TlsStream};
use p2p_proto::tracker::{TrackerCall, TrackerRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

pub type Link = MessageStream<TlsStream<TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time the other tracker has to answer each handshake step. A frozen process (SIGSTOP)
/// still accepts TCP connections in the kernel, so this is what detects it.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the other tracker may take to accept one message (a snapshot chunk included).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a link to the other tracker could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// It could not be reached, or stopped answering: it may be gone.
    #[error("{0}")]
    Unreachable(String),
    /// It answered, but is not our partner: a configuration error, never a reason to take over.
    #[error("{0}")]
    Misconfigured(String),
}

fn unreachable(e: impl ToString) -> LinkError {
    LinkError::Unreachable(e.to_string())
}

/// Receives one cluster message, with a timeout.
pub async fn recv(link: &mut Link, limit: Duration) -> Result<ClusterMsg, LinkError> {
    match link.recv_timeout::<ClusterFrame>(limit).await {
        Ok(Some(frame)) => Ok(frame.msg),
        Ok(None) => Err(unreachable("connection closed")),
        Err(p2p_proto::FrameError::VersionMismatch { got, expected, .. }) => {
            Err(LinkError::Misconfigured(format!(
                "the other tracker speaks cluster protocol v{got}, this one v{expected}: \
                 run the same release on both"
            )))
        }
        Err(e) => Err(unreachable(e)),
    }
}

/// Sends one cluster message; the other tracker must accept it within [`SEND_TIMEOUT`].
pub async fn send(link: &mut Link, msg: ClusterMsg) -> Result<(), LinkError> {
    tokio::time::timeout(SEND_TIMEOUT, link.send(&ClusterFrame::new(msg)))
        .await
        .map_err(|_| unreachable("the other tracker stopped reading"))?
        .map_err(unreachable)
}

/// Sends cluster messages in one write (as few TLS records and packets as they fit in), so the
/// other tracker gets them together; it must accept them within [`SEND_TIMEOUT`].
pub async fn send_all(
    link: &mut Link,
    msgs: impl IntoIterator<Item = ClusterMsg>,
) -> Result<(), LinkError> {
    let sending = async {
        for msg in msgs {
            link.feed(&ClusterFrame::new(msg)).await?;
        }
        link.flush().await
    };
    tokio::time::timeout(SEND_TIMEOUT, sending)
        .await
        .map_err(|_| unreachable("the other tracker stopped reading"))?
        .map_err(unreachable)
}

/// Connects to the other tracker at `addr`, proves the cluster key both ways and says what we
/// want. Returns the link and the other tracker's role and position.
pub async fn connect(
    cluster: &Cluster,
    addr: SocketAddr,
    purpose: Purpose,
) -> Result<(Link, Role, Position), LinkError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable("connect timed out"))?
        .map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    let expect = match cluster.peer_pin() {
        Some(fp) => Expect::Key(fp),
        None => Expect::AnyKey,
    };
    let (stream, handshake) = tls::connect(stream, &cluster.identity, expect, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| match e {
            TlsError::KeyMismatch {
                expected,
                presented,
            } => key_mismatch(addr, expected, presented),
            TlsError::NotTls => LinkError::Misconfigured(format!(
                "the other tracker at {addr} does not speak TLS: run the same release on both"
            )),
            other => unreachable(other),
        })?;
    let mut link = MessageStream::new(stream, MAX_TRACKER_FRAME);
    let hello = TrackerRequest::new(
        p2p_proto::token::new_request_id(),
        None,
        TrackerCall::ClusterHello {
            from: cluster.self_no,
            proof: auth::prove(&cluster.key, Side::Connector, &handshake.exporter),
        },
    );
    tokio::time::timeout(HANDSHAKE_TIMEOUT, link.send(&hello))
        .await
        .map_err(|_| unreachable("the other tracker does not read"))?
        .map_err(unreachable)?;
    match recv(&mut link, HANDSHAKE_TIMEOUT).await? {
        ClusterMsg::Accepted { proof }
            if auth::verify(&cluster.key, Side::Acceptor, &handshake.exporter, &proof) => {}
        ClusterMsg::Accepted { .. } => {
            Counters::bump(&cluster.counters.refused_bad_proof);
            return Err(LinkError::Misconfigured(format!(
                "the other tracker at {addr} does not prove our cluster key: the two trackers \
                 have different cluster keys; copy one machine's cluster.key to the other"
            )));
        }
        ClusterMsg::Refuse { reason } => {
            return Err(LinkError::Misconfigured(format!(
                "the other tracker at {addr} refused us: {reason}"
            )));
        }
        other => return Err(unreachable(format!("unexpected answer {other:?}"))),
    }
    cluster.pin_peer(handshake.peer);
    let position = cluster.position().map_err(unreachable)?;
    send(&mut link, ClusterMsg::Hello { position, purpose }).await?;
    match recv(&mut link, HANDSHAKE_TIMEOUT).await? {
        ClusterMsg::Status { role, position } => {
            cluster.learn(position).map_err(unreachable)?;
            Ok((link, role, position))
        }
        ClusterMsg::Refuse { reason } => Err(LinkError::Misconfigured(format!(
            "the other tracker at {addr} refused us: {reason}"
        ))),
        other => Err(unreachable(format!("unexpected answer {other:?}"))),
    }
}

fn key_mismatch(addr: SocketAddr, expected: Fingerprint, presented: Fingerprint) -> LinkError {
    LinkError::Misconfigured(format!(
        "the other tracker at {addr} presented key {presented}, but {expected} is expected \
         (tracker_info.txt, or the key it had before); if its key changed on purpose, put \
         its new fingerprint on its line of tracker_info.txt"
    ))
}

/// Connects only to learn the other tracker's role and position.
pub async fn probe(cluster: &Cluster, addr: SocketAddr) -> Result<(Role, Position), LinkError> {
    connect(cluster, addr, Purpose::Probe)
        .await
        .map(|(_, role, position)| (role, position))
}

/// What the other tracker's first request said, with what TLS established.
pub struct Hello {
    pub peer: SocketAddr,
    /// The key the connecting side proved it holds.
    pub key: Fingerprint,
    /// This TLS session's exporter value, which the proofs are bound to.
    pub exporter: [u8; 32],
    /// The tracker number it claims.
    pub from: usize,
    /// Its proof of the cluster key.
    pub proof: String,
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

/// Handles a connection whose first request was `ClusterHello`: check the key and the proof,
/// prove ours, report our status. Returns the authenticated link for the caller to run
/// whatever the other tracker asked for; `None` when it did not authenticate (logged, counted,
/// and refused with the reason) or the link broke.
pub async fn accept(cluster: &Cluster, mut link: Link, hello: Hello) -> Option<Accepted> {
    let refuse = |reason: &str| ClusterMsg::Refuse {
        reason: reason.to_string(),
    };
    let peer = hello.peer;
    if cluster.peer.map(|(no, _)| no) != Some(hello.from) {
        tracing::warn!(%peer, from = hello.from, "cluster connection from an unknown tracker refused");
        Counters::bump(&cluster.counters.refused_unknown_tracker);
        let _ = send(&mut link, refuse("unknown tracker")).await;
        return None;
    }
    if !auth::verify(&cluster.key, Side::Connector, &hello.exporter, &hello.proof) {
        tracing::error!(%peer, "cluster connection without a valid proof of the cluster key refused (if it is the other tracker, the two have different cluster keys)");
        Counters::bump(&cluster.counters.refused_bad_proof);
        let _ = send(&mut link, refuse("bad proof of the cluster key")).await;
        return None;
    }
    if let Some(expected) = cluster.peer_pin()
        && expected != hello.key
    {
        // Only logged and counted: what an incoming connection shows is no evidence about
        // our partner (anyone can connect); our own connections to it tell that.
        let why = key_mismatch(peer, expected, hello.key);
        tracing::error!(%peer, error = %why, "cluster connection with another key refused");
        Counters::bump(&cluster.counters.refused_bad_proof);
        let _ = send(
            &mut link,
            refuse(&format!(
                "your key {} is not the one expected here",
                hello.key
            )),
        )
        .await;
        return None;
    }
    let proof = auth::prove(&cluster.key, Side::Acceptor, &hello.exporter);
    send(&mut link, ClusterMsg::Accepted { proof }).await.ok()?;
    cluster.pin_peer(hello.key);
    let (position, purpose) = match recv(&mut link, HANDSHAKE_TIMEOUT).await {
        Ok(ClusterMsg::Hello { position, purpose }) => (position, purpose),
        Ok(_) | Err(_) => {
            tracing::warn!(%peer, "cluster handshake broken off");
            return None;
        }
    };
    if let Err(e) = cluster.learn(position) {
        tracing::error!(error = %e, "cannot record the other tracker's epoch");
        return None;
    }
    let (role, ours) = match cluster.role_and_position() {
        Ok(rp) => rp,
        Err(e) => {
            tracing::error!(error = %e, "cannot read our position");
            return None;
        }
    };
    send(
        &mut link,
        ClusterMsg::Status {
            role,
            position: ours,
        },
    )
    .await
    .ok()?;
    cluster.note_paired();
    Some(Accepted {
        link,
        peer,
        position,
        purpose,
        role,
    })
}
