//! Connecting a download to one peer, whichever way works: directly (IPv6 first where both
//! have it, then the IPv4 address or port mapping the tracker checked), by a hole punch when
//! the peer cannot be reached directly, and through the tracker's relay when nothing direct
//! connects within [`RELAY_AFTER`]. The attempts run at once, each starting when its turn
//! comes; the first connection made wins and the others are dropped.
//!
//! Only the transport is chosen here: the caller runs TLS over it and accepts only the key the
//! tracker listed for the peer, whichever way it was reached.

use super::relay::{self, RelayedStream};
use super::sockets;
use crate::plane::Plane;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use p2p_proto::grant::Grant;
use p2p_proto::reach::{ConnectionKind, PUNCH_WINDOW, Reachability};
use p2p_proto::tracker::{PeerInfo, TrackerCall, TrackerReply};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// One direct connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The IPv4 attempt starts this long after the IPv6 one (as in RFC 8305's happy eyeballs).
const IPV4_AFTER: Duration = Duration::from_millis(250);
/// The relay is tried when no direct way connected within this long (or every direct way
/// has failed already).
pub const RELAY_AFTER: Duration = Duration::from_secs(3);
/// After a refused attempt, a punch waits this long before it tries again.
const PUNCH_RETRY: Duration = Duration::from_millis(250);

/// Which ways a downloader may connect (`p2pd --connect-via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Via {
    Direct,
    Punch,
    Relay,
}

/// The ways every download may use, from `--connect-via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ways {
    pub direct: bool,
    pub punch: bool,
    pub relay: bool,
}

impl Ways {
    pub const ALL: Ways = Ways {
        direct: true,
        punch: true,
        relay: true,
    };

    pub fn from_list(list: &[Via]) -> Self {
        Self {
            direct: list.contains(&Via::Direct),
            punch: list.contains(&Via::Punch),
            relay: list.contains(&Via::Relay),
        }
    }
}

/// A connected transport, before TLS.
pub enum Transport {
    Tcp(TcpStream),
    Relayed(RelayedStream),
}

/// What a download needs to reach its peers.
#[derive(Clone)]
pub struct Dialer {
    pub plane: Arc<Plane>,
    pub group: String,
    pub name: String,
}

type Attempt = Pin<Box<dyn Future<Output = Result<(Transport, ConnectionKind), String>> + Send>>;

impl Dialer {
    /// Connects to `peer`, with `grant` for the relay. `relay_ok` is false while the download
    /// has enough peers connected without it. The error names every way that failed.
    pub async fn dial(
        &self,
        peer: &PeerInfo,
        grant: &Grant,
        relay_ok: bool,
    ) -> Result<(Transport, ConnectionKind), String> {
        let ways = self.plane.reach.ways;
        let mut attempts: FuturesUnordered<Attempt> = FuturesUnordered::new();
        let mut direct_ways = 0;
        let addr6 = peer
            .addr6
            .as_deref()
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let addr = peer.addr.parse::<SocketAddr>().ok();
        let have_ipv6 = !self.plane.reach.ipv6().is_empty();
        let mut v4_delay = Duration::ZERO;
        if ways.direct
            && have_ipv6
            && let Some(addr6) = addr6
        {
            attempts.push(Box::pin(direct(
                addr6,
                Duration::ZERO,
                ConnectionKind::Direct,
            )));
            direct_ways += 1;
            v4_delay = IPV4_AFTER;
        }
        let unreachable = peer.reach == Some(Reachability::None);
        if let Some(addr) = addr {
            if ways.direct && !unreachable {
                let kind = match peer.reach {
                    Some(Reachability::Mapped) => ConnectionKind::Mapped,
                    _ => ConnectionKind::Direct,
                };
                attempts.push(Box::pin(direct(addr, v4_delay, kind)));
                direct_ways += 1;
            }
            if ways.punch && unreachable {
                attempts.push(Box::pin(self.clone().punch(peer.clone())));
                direct_ways += 1;
            }
        }
        let relay = ways.relay && relay_ok;
        let mut failures: Vec<String> = Vec::new();
        let mut relay_started = false;
        let relay_at = tokio::time::Instant::now() + RELAY_AFTER;
        loop {
            let start_relay = relay && !relay_started;
            if attempts.is_empty() && !start_relay {
                break;
            }
            if start_relay && attempts.is_empty() {
                attempts.push(Box::pin(self.clone().relay(peer.clone(), grant.clone())));
                relay_started = true;
                continue;
            }
            tokio::select! {
                done = attempts.next() => match done {
                    Some(Ok(connected)) => return Ok(connected),
                    Some(Err(why)) => failures.push(why),
                    None => {}
                },
                _ = tokio::time::sleep_until(relay_at), if start_relay => {
                    attempts.push(Box::pin(self.clone().relay(peer.clone(), grant.clone())));
                    relay_started = true;
                }
            }
        }
        if direct_ways == 0 && !relay {
            failures.push("no way to reach it is allowed".into());
        }
        Err(failures.join("; "))
    }

    /// Asks the tracker to have the peer punch towards us, and punches towards it.
    async fn punch(self, peer: PeerInfo) -> Result<(Transport, ConnectionKind), String> {
        let call = TrackerCall::Punch {
            group: self.group.clone(),
            name: self.name.clone(),
            peer: peer.key,
        };
        let addr = match self.plane.tracker.call(call).await {
            Ok(TrackerReply::PunchAt { addr }) => addr,
            Ok(other) => return Err(format!("punch: unexpected tracker reply {other:?}")),
            Err(e) => return Err(format!("punch: {e}")),
        };
        let remote: SocketAddr = addr
            .parse()
            .map_err(|_| format!("punch: the tracker gave a bad address {addr:?}"))?;
        let stream = punch(self.plane.reach.listen, remote, PUNCH_WINDOW)
            .await
            .map_err(|e| format!("punch to {remote}: {e}"))?;
        Ok((Transport::Tcp(stream), ConnectionKind::Punched))
    }

    async fn relay(
        self,
        peer: PeerInfo,
        grant: Grant,
    ) -> Result<(Transport, ConnectionKind), String> {
        let session = self
            .plane
            .tracker
            .session()
            .ok_or_else(|| "relay: not logged in".to_string())?;
        let stream = relay::open(
            self.plane.tracker.client(),
            &session.token,
            &self.name,
            peer.key,
            grant,
        )
        .await
        .map_err(|e| format!("relay: {e}"))?;
        Ok((Transport::Relayed(stream), ConnectionKind::Relayed))
    }
}

async fn direct(
    addr: SocketAddr,
    delay: Duration,
    kind: ConnectionKind,
) -> Result<(Transport, ConnectionKind), String> {
    tokio::time::sleep(delay).await;
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok((Transport::Tcp(stream), kind)),
        Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => Err(format!("connect to {addr} timed out")),
    }
}

/// Keeps connecting from the listening address `local` to `remote` until a connection is made
/// or `window` has passed. The other side does the same towards us: the first SYN that leaves
/// either side opens its NAT for the other's, and the two meet as one connection.
pub async fn punch(
    local: SocketAddr,
    remote: SocketAddr,
    window: Duration,
) -> std::io::Result<TcpStream> {
    let deadline = tokio::time::Instant::now() + window;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")
            }));
        }
        match tokio::time::timeout(left, sockets::connect_from(local, remote)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "punch attempt failed");
                last = Some(e);
                tokio::time::sleep(PUNCH_RETRY.min(left)).await;
            }
            Err(_) => {}
        }
    }
}
