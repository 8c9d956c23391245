//! UPnP-IGD: finds the gateway by an SSDP search on the LAN, then asks its WANIPConnection
//! (or WANPPPConnection) service for the external address and a TCP port mapping to us.

use super::gateway::Network;
use super::schedule::LEASE;
use super::{DESCRIPTION, Mapping, MappingProtocol, public_ipv4};
use igd_next::aio::Gateway;
use igd_next::aio::tokio::{Tokio, search_gateway};
use igd_next::{
    AddAnyPortError, AddPortError, GatewayIpVersion, GetExternalIpError, PortMappingProtocol,
    RemovePortError, SearchError, SearchOptions,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::time::timeout;

/// How long the SSDP search waits for a gateway's answer (and its description).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one control request to the gateway may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why UPnP gave no mapping.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpnpError {
    #[error("no UPnP gateway answered within {SEARCH_TIMEOUT:?}")]
    NoGateway,
    #[error("the UPnP search failed: {0}")]
    Search(SearchError),
    #[error("the gateway at {gateway} did not answer {what} within {REQUEST_TIMEOUT:?}")]
    Timeout {
        gateway: SocketAddr,
        what: &'static str,
    },
    #[error("the gateway at {gateway} gave no external address: {source}")]
    ExternalIp {
        gateway: SocketAddr,
        #[source]
        source: GetExternalIpError,
    },
    #[error(
        "the gateway at {gateway} says its external address is {ip}, not a public IPv4 address"
    )]
    NotPublic { gateway: SocketAddr, ip: IpAddr },
    #[error("the gateway at {gateway} refused the mapping: {source}")]
    Add {
        gateway: SocketAddr,
        #[source]
        source: AddPortError,
    },
    #[error("the gateway at {gateway} refused a mapping on any port: {source}")]
    AddAny {
        gateway: SocketAddr,
        #[source]
        source: AddAnyPortError,
    },
    #[error("the gateway at {gateway} did not remove the mapping: {source}")]
    Remove {
        gateway: SocketAddr,
        #[source]
        source: RemovePortError,
    },
}

/// A mapping this daemon holds on a UPnP gateway.
pub(super) struct Held {
    gateway: Gateway<Tokio>,
    internal: SocketAddrV4,
    external: SocketAddrV4,
    /// The lease in seconds, 0 where the gateway only grants permanent mappings.
    lease: u32,
}

impl Held {
    pub(super) fn mapping(&self) -> Mapping {
        Mapping {
            external: self.external,
            protocol: MappingProtocol::Upnp,
            lifetime: Duration::from_secs(u64::from(self.lease)),
        }
    }

    /// Asks again for the same mapping (a gateway refreshes the lease of a mapping to the
    /// same client) and reads the external address again, which may have changed.
    pub(super) async fn renew(&mut self) -> Result<Mapping, UpnpError> {
        let ip = external_ip(&self.gateway).await?;
        let port = self.external.port();
        bounded(
            &self.gateway,
            "the renewal",
            self.gateway.add_port(
                PortMappingProtocol::TCP,
                port,
                SocketAddr::V4(self.internal),
                self.lease,
                DESCRIPTION,
            ),
        )
        .await?
        .map_err(|source| UpnpError::Add {
            gateway: self.gateway.addr,
            source,
        })?;
        self.external = SocketAddrV4::new(ip, port);
        Ok(self.mapping())
    }

    /// Removes the mapping from the gateway; one that is gone already counts as removed.
    pub(super) async fn remove(self) -> Result<(), UpnpError> {
        let gateway = &self.gateway;
        let removed = bounded(
            gateway,
            "the removal",
            gateway.remove_port(PortMappingProtocol::TCP, self.external.port()),
        )
        .await?;
        match removed {
            Ok(()) | Err(RemovePortError::NoSuchPortMapping) => Ok(()),
            Err(source) => Err(UpnpError::Remove {
                gateway: gateway.addr,
                source,
            }),
        }
    }
}

/// Finds the gateway and maps TCP port `want` (the listening port, or the external port of a
/// mapping lost before) to `port` at our LAN address; a gateway that gives `want` to another
/// client gives us any port it chooses.
pub(super) async fn map(network: &Network, port: u16, want: u16) -> Result<Held, UpnpError> {
    let gateway = search(network.local).await?;
    let ip = external_ip(&gateway).await?;
    let internal = SocketAddrV4::new(network.local, port);
    let (external_port, lease) = add(&gateway, want, internal).await?;
    Ok(Held {
        gateway,
        internal,
        external: SocketAddrV4::new(ip, external_port),
        lease,
    })
}

/// An SSDP search sent from our LAN address, for IPv4 gateways only.
async fn search(local: Ipv4Addr) -> Result<Gateway<Tokio>, UpnpError> {
    let mut options = SearchOptions::default();
    options.bind_addr = SocketAddr::from((local, 0));
    options.timeout = Some(SEARCH_TIMEOUT);
    options.single_search_timeout = Some(SEARCH_TIMEOUT);
    options.gateway_ip_version = GatewayIpVersion::V4;
    // The search bounds itself; this bounds it again, should it not.
    match timeout(SEARCH_TIMEOUT * 2, search_gateway(options)).await {
        Err(_) | Ok(Err(SearchError::NoResponseWithinTimeout)) => Err(UpnpError::NoGateway),
        Ok(Err(e)) => Err(UpnpError::Search(e)),
        Ok(Ok(gateway)) => Ok(gateway),
    }
}

/// The gateway's external address, which must be a public IPv4 address: a private one means
/// another NAT beyond the gateway, and a mapping there reaches no one outside.
async fn external_ip(gateway: &Gateway<Tokio>) -> Result<Ipv4Addr, UpnpError> {
    let ip = bounded(gateway, "the external address", gateway.get_external_ip())
        .await?
        .map_err(|source| UpnpError::ExternalIp {
            gateway: gateway.addr,
            source,
        })?;
    public_ipv4(ip).ok_or(UpnpError::NotPublic {
        gateway: gateway.addr,
        ip,
    })
}

/// Maps `want` → `internal` for [`LEASE`] (permanently where the gateway grants nothing
/// else), or any port if `want` belongs to another client. Gives the external port and the
/// lease in seconds.
async fn add(
    gateway: &Gateway<Tokio>,
    want: u16,
    internal: SocketAddrV4,
) -> Result<(u16, u32), UpnpError> {
    let lease = lease_secs();
    let add_port = |lease| {
        bounded(
            gateway,
            "the mapping request",
            gateway.add_port(
                PortMappingProtocol::TCP,
                want,
                SocketAddr::V4(internal),
                lease,
                DESCRIPTION,
            ),
        )
    };
    let add_error = |source| UpnpError::Add {
        gateway: gateway.addr,
        source,
    };
    match add_port(lease).await? {
        Ok(()) => return Ok((want, lease)),
        Err(AddPortError::OnlyPermanentLeasesSupported) => {
            return add_port(0).await?.map(|()| (want, 0)).map_err(add_error);
        }
        Err(AddPortError::PortInUse) => {}
        Err(e) => return Err(add_error(e)),
    }
    let add_any = |lease| {
        bounded(
            gateway,
            "the mapping request",
            gateway.add_any_port(
                PortMappingProtocol::TCP,
                SocketAddr::V4(internal),
                lease,
                DESCRIPTION,
            ),
        )
    };
    let any_error = |source| UpnpError::AddAny {
        gateway: gateway.addr,
        source,
    };
    match add_any(lease).await? {
        Ok(port) => Ok((port, lease)),
        Err(AddAnyPortError::OnlyPermanentLeasesSupported) => {
            add_any(0).await?.map(|port| (port, 0)).map_err(any_error)
        }
        Err(e) => Err(any_error(e)),
    }
}

fn lease_secs() -> u32 {
    u32::try_from(LEASE.as_secs()).unwrap_or(u32::MAX)
}

/// `request` to `gateway`, given [`REQUEST_TIMEOUT`].
async fn bounded<T>(
    gateway: &Gateway<Tokio>,
    what: &'static str,
    request: impl Future<Output = T>,
) -> Result<T, UpnpError> {
    timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| UpnpError::Timeout {
            gateway: gateway.addr,
            what,
        })
}
