//! A port mapping on the local gateway, so peers can connect to the listener from outside.
//!
//! (Not implemented yet: [`run`] makes no mapping.)

use std::net::SocketAddrV4;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which protocols `--port-mapping` lets the daemon use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortMapping {
    /// UPnP-IGD, then NAT-PMP/PCP.
    Auto,
    Upnp,
    Natpmp,
    /// Never ask the gateway.
    Off,
}

/// Which protocol made a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingProtocol {
    Upnp,
    NatPmp,
    Pcp,
}

impl MappingProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingProtocol::Upnp => "upnp",
            MappingProtocol::NatPmp => "nat-pmp",
            MappingProtocol::Pcp => "pcp",
        }
    }
}

/// A mapping the gateway made: connections to `external` reach our listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub external: SocketAddrV4,
    pub protocol: MappingProtocol,
    /// How long the gateway keeps it unless renewed.
    pub lifetime: Duration,
}

/// Keeps a mapping of TCP port `port` for as long as the daemon runs (publishing it in `out`),
/// and removes it when `shutdown` is cancelled.
pub async fn run(
    port: u16,
    mode: PortMapping,
    out: tokio::sync::watch::Sender<Option<Mapping>>,
    shutdown: CancellationToken,
) {
    let _ = (port, mode, out);
    shutdown.cancelled().await;
}
