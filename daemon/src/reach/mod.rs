//! How this daemon is reached by peers, and how it reaches peers that sit behind a NAT.
//!
//! - [`portmap`] asks the gateway for a port mapping (UPnP-IGD, NAT-PMP/PCP) and keeps it;
//! - the announcer tells the tracker what [`Reach::listening`] says, and the tracker answers
//!   with what it sees ([`Reach::seen`]);
//! - [`dial`] connects a download to a peer: directly, by a hole punch ([`punch`]) or through
//!   the tracker's relay ([`relay`]), whichever works first;
//! - [`invites`] answers the tracker's invitations to the other side of a punch or a relay.
//!
//! See docs/ARCHITECTURE.md, "Reachability".

pub mod dial;
pub mod invites;
pub mod portmap;
pub mod relay;
pub mod sockets;

use crate::sync::Locked;
use p2p_proto::reach::{Listening, PublicClaim, Reachability, Seen};
use std::net::SocketAddr;
use tokio::sync::watch;

pub use portmap::{Mapping, PortMapping};

/// What the daemon knows about its own reachability.
pub struct Reach {
    /// The peer listener's address (its port is the one announced, mapped and punched from).
    pub listen: SocketAddr,
    /// `--public-addr`: a port forward the operator made by hand.
    pub public_addr: Option<SocketAddr>,
    /// The gateway's port mapping, kept current by [`portmap::run`].
    pub mapping: watch::Sender<Option<Mapping>>,
    /// What the tracker last said about us.
    pub seen: Locked<Option<Seen>>,
    /// How downloads may reach peers (`--connect-via`).
    pub ways: dial::Ways,
}

impl Reach {
    pub fn new(listen: SocketAddr, public_addr: Option<SocketAddr>, ways: dial::Ways) -> Self {
        Self {
            listen,
            public_addr,
            mapping: watch::Sender::new(None),
            seen: Locked::default(),
            ways,
        }
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// What the next announcement says about where we can be reached.
    pub fn listening(&self) -> Listening {
        let public = match (self.public_addr, *self.mapping.borrow()) {
            (Some(addr), _) => Some(PublicClaim {
                addr,
                how: Reachability::Direct,
            }),
            (None, Some(mapping)) => Some(PublicClaim {
                addr: SocketAddr::V4(mapping.external),
                how: Reachability::Mapped,
            }),
            (None, None) => None,
        };
        Listening {
            public,
            ipv6: self.ipv6(),
        }
    }

    /// The global IPv6 addresses peers may reach the listener at (none when it listens on
    /// IPv4 only).
    pub fn ipv6(&self) -> Vec<std::net::Ipv6Addr> {
        match self.listen {
            SocketAddr::V6(v6) if v6.ip().is_unspecified() => sockets::global_ipv6(),
            SocketAddr::V6(v6) if sockets::global_ipv6().contains(v6.ip()) => vec![*v6.ip()],
            _ => Vec::new(),
        }
    }
}
