//! PCP (RFC 6887) and NAT-PMP (RFC 6886): UDP requests to port 5351 of the default route's
//! gateway. PCP is asked first; a gateway that answers that it speaks only NAT-PMP, or that
//! refuses the PCP request, is asked again in NAT-PMP.

use super::gateway::Network;
use super::schedule::LEASE;
use super::{Mapping, MappingProtocol, public_ipv4};
use crab_nat::{
    InternetProtocol, MappingFailure, PortMapping, PortMappingOptions, PortMappingType,
    TimeoutConfig, natpmp, pcp,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::num::NonZeroU16;
use std::time::Duration;
use tokio::time::timeout;

/// The retries of one request: 250 ms, then twice as long each time up to 1 s, 4 tries in all
/// (2.75 s). A gateway on the LAN answers in milliseconds or not at all.
const RETRIES: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(250),
    max_retries: 3,
    max_retry_timeout: Some(Duration::from_secs(1)),
};

/// How long one exchange (with its retries) may take, whatever the library does.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(4);

/// Why PCP and NAT-PMP gave no mapping.
#[derive(Debug, thiserror::Error)]
pub(super) enum PmpError {
    #[error("the gateway {gateway} did not answer {what} within {EXCHANGE_TIMEOUT:?}")]
    Timeout {
        gateway: Ipv4Addr,
        what: &'static str,
    },
    #[error("the gateway {gateway} refused the mapping: {source}")]
    Map {
        gateway: Ipv4Addr,
        #[source]
        source: MappingFailure,
    },
    #[error("the gateway {gateway} gave no external address: {source}")]
    ExternalIp {
        gateway: Ipv4Addr,
        #[source]
        source: natpmp::Failure,
    },
    #[error("the gateway {gateway} says its external address is {ip}, not a public IPv4 address")]
    NotPublic { gateway: Ipv4Addr, ip: IpAddr },
    #[error("the gateway {gateway} did not remove the mapping: {source}")]
    Remove {
        gateway: Ipv4Addr,
        #[source]
        source: MappingFailure,
    },
    #[error("the gateway {gateway} granted the mapping for 0 seconds")]
    NoLifetime { gateway: Ipv4Addr },
    #[error("port 0 cannot be mapped")]
    PortZero,
}

/// A mapping this daemon holds by PCP or NAT-PMP.
pub(super) struct Held {
    mapping: PortMapping,
    gateway: Ipv4Addr,
    external_ip: Ipv4Addr,
}

impl Held {
    pub(super) fn mapping(&self) -> Mapping {
        Mapping {
            external: SocketAddrV4::new(self.external_ip, self.mapping.external_port().get()),
            protocol: protocol_of(&self.mapping),
            lifetime: Duration::from_secs(u64::from(self.mapping.lifetime())),
        }
    }

    /// Asks for the same mapping again (same external port, the lifetime granted before), and
    /// learns the external address anew.
    pub(super) async fn renew(&mut self) -> Result<Mapping, PmpError> {
        let gateway = self.gateway;
        timeout(EXCHANGE_TIMEOUT, self.mapping.renew())
            .await
            .map_err(|_| PmpError::Timeout {
                gateway,
                what: "the renewal",
            })?
            .map_err(|source| PmpError::Map { gateway, source })?;
        if self.mapping.lifetime() == 0 {
            return Err(PmpError::NoLifetime { gateway });
        }
        self.external_ip = external_ip(&self.mapping, gateway).await?;
        Ok(self.mapping())
    }

    /// Removes the mapping (a request with lifetime 0).
    pub(super) async fn remove(self) -> Result<(), PmpError> {
        let gateway = self.gateway;
        timeout(EXCHANGE_TIMEOUT, self.mapping.try_drop())
            .await
            .map_err(|_| PmpError::Timeout {
                gateway,
                what: "the removal",
            })?
            .map_err(|(source, _)| PmpError::Remove { gateway, source })
    }
}

/// Maps TCP port `want` of the gateway's external address (or any port it gives) to `port`
/// at our LAN address, for [`LEASE`] or what the gateway grants.
pub(super) async fn map(network: &Network, port: u16, want: u16) -> Result<Held, PmpError> {
    let internal = NonZeroU16::new(port).ok_or(PmpError::PortZero)?;
    let gateway = network.gateway;
    let options = PortMappingOptions {
        external_port: NonZeroU16::new(want),
        lifetime_seconds: Some(u32::try_from(LEASE.as_secs()).unwrap_or(u32::MAX)),
        timeout_config: Some(RETRIES),
    };
    let timed_out = |_| PmpError::Timeout {
        gateway,
        what: "the mapping request",
    };
    // PCP first; the library falls back to NAT-PMP by itself when the gateway says it speaks
    // only that.
    let first = timeout(
        EXCHANGE_TIMEOUT,
        PortMapping::new(
            gateway.into(),
            IpAddr::V4(network.local),
            InternetProtocol::Tcp,
            internal,
            options,
        ),
    )
    .await
    .map_err(timed_out)?;
    let mapping = match first {
        Ok(mapping) => mapping,
        // A gateway that answered PCP with a refusal may still grant the mapping in NAT-PMP
        // (some refuse PCP requests they do not fully support); one that did not answer at
        // all would not answer NAT-PMP either.
        Err(MappingFailure::Pcp(e))
            if !matches!(e, pcp::Failure::Timeout | pcp::Failure::Socket(_)) =>
        {
            timeout(
                EXCHANGE_TIMEOUT,
                natpmp::port_mapping(gateway.into(), InternetProtocol::Tcp, internal, options),
            )
            .await
            .map_err(timed_out)?
            .map_err(|source| PmpError::Map {
                gateway,
                source: source.into(),
            })?
        }
        Err(source) => return Err(PmpError::Map { gateway, source }),
    };
    // A lifetime of 0 is a removal: such a grant cannot be renewed (nor held).
    if mapping.lifetime() == 0 {
        return Err(PmpError::NoLifetime { gateway });
    }
    match external_ip(&mapping, gateway).await {
        Ok(external_ip) => Ok(Held {
            mapping,
            gateway,
            external_ip,
        }),
        Err(e) => {
            // A mapping without a usable address is of no use: take it back (best effort; it
            // lapses with its lease otherwise).
            let _ = timeout(EXCHANGE_TIMEOUT, mapping.try_drop()).await;
            Err(e)
        }
    }
}

/// The external address of `mapping`: PCP says it in the mapping's answer, NAT-PMP has a
/// request of its own for it. It must be a public IPv4 address.
async fn external_ip(mapping: &PortMapping, gateway: Ipv4Addr) -> Result<Ipv4Addr, PmpError> {
    let ip = match mapping.mapping_type() {
        PortMappingType::Pcp { external_ip, .. } => external_ip,
        PortMappingType::NatPmp => IpAddr::V4(
            timeout(
                EXCHANGE_TIMEOUT,
                natpmp::external_address(gateway.into(), Some(RETRIES)),
            )
            .await
            .map_err(|_| PmpError::Timeout {
                gateway,
                what: "the external address request",
            })?
            .map_err(|source| PmpError::ExternalIp { gateway, source })?,
        ),
    };
    // PCP carries IPv4 addresses as IPv4-mapped IPv6 ones.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    public_ipv4(ip).ok_or(PmpError::NotPublic { gateway, ip })
}

fn protocol_of(mapping: &PortMapping) -> MappingProtocol {
    match mapping.mapping_type() {
        PortMappingType::Pcp { .. } => MappingProtocol::Pcp,
        PortMappingType::NatPmp => MappingProtocol::NatPmp,
    }
}
