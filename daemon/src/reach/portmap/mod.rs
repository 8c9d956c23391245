//! A port mapping on the local gateway, so peers can connect to the listener from outside.
//!
//! [`run`] asks the gateway of the default IPv4 route to forward a TCP port of its external
//! address to the listening port at our LAN address, and keeps that mapping while the daemon
//! runs:
//!
//! - **Protocols** (`--port-mapping`): UPnP-IGD (`upnp.rs`: an SSDP search on the LAN, 2 s,
//!   then the gateway's control URL), PCP and NAT-PMP (`natpmp.rs`: UDP to port 5351 of the
//!   default route's gateway, PCP first). `auto` tries UPnP, then PCP/NAT-PMP; `off` sends
//!   nothing, and neither does a listener on a loopback address ([`PortMapping::for_listener`]).
//! - **What is asked**: external port = the listening port where the gateway gives it, else
//!   any port it picks; a lease of one hour (gateways that only grant permanent UPnP mappings
//!   get one, removed at exit like any other). The external address must be a public IPv4
//!   address: a private one means another NAT beyond the gateway, and is not published.
//! - **Keeping it** (`keeper.rs`, timing in `schedule.rs`): renewed at half its lifetime (at
//!   most every 30 min), which also reads the external address again. A failed renewal
//!   publishes `None` and retries after 10 s, then 20 s, 40 s… up to 5 min, asking for the
//!   same external port; so does a failed first attempt. Every 30 s the default route and our
//!   address towards it (`gateway.rs`, no packet sent) are read again: after a change, the old
//!   mapping is removed (best effort, 2 s) and a new one made at once.
//! - **At exit** (the shutdown token cancelled): the mapping is removed, and a request under
//!   way is given time to finish so that a mapping just made is removed too, all within 2 s;
//!   a mapping not removed lapses with its lease.
//! - Every request has a timeout. A failure is logged once (`info`; the loss of a mapping
//!   `warn`), not again while retries fail alike.

mod gateway;
mod keeper;
mod natpmp;
mod schedule;
mod upnp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
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

impl PortMapping {
    /// The mode for a peer listener bound to `listen`: `Off` where no mapping could reach it,
    /// a listener on a loopback address or on one IPv6 address only (the mappings are IPv4).
    pub fn for_listener(self, listen: SocketAddr) -> PortMapping {
        let reachable = match listen.ip() {
            IpAddr::V4(ip) => !ip.is_loopback(),
            IpAddr::V6(ip) => ip.is_unspecified(),
        };
        if reachable { self } else { PortMapping::Off }
    }
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
    /// How long the gateway keeps it unless renewed (the daemon renews it at half of that);
    /// zero for a permanent mapping (a UPnP gateway that grants no other), which the daemon
    /// still refreshes every 30 min and removes at exit.
    pub lifetime: Duration,
}

/// The description a UPnP gateway shows for our mappings.
const DESCRIPTION: &str = "p2pd";

/// Keeps a mapping of TCP port `port` for as long as the daemon runs (publishing it in `out`),
/// and removes it when `shutdown` is cancelled. With [`PortMapping::Off`] it returns at once
/// and sends nothing.
pub async fn run(
    port: u16,
    mode: PortMapping,
    out: tokio::sync::watch::Sender<Option<Mapping>>,
    shutdown: CancellationToken,
) {
    if mode == PortMapping::Off || port == 0 {
        return;
    }
    keeper::keep(port, mode, out, shutdown).await;
}

/// `ip` if it is an IPv4 address that the internet can reach: not private, shared (carrier
/// NAT), loopback, link-local, documentation, multicast, broadcast or unspecified.
fn public_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V4(ip) = ip else {
        return None;
    };
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let reserved = a >= 240 || a == 0;
    let special = ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_multicast()
        || ip.is_broadcast()
        || shared
        || reserved;
    (!special).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_ipv4_addresses_are_published() {
        for public in [
            "11.0.0.11",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "223.1.2.3",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(public_ipv4(ip), Some(public.parse().unwrap()), "{public}");
        }
        for not in [
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "2001:db8::1",
        ] {
            assert_eq!(public_ipv4(not.parse().unwrap()), None, "{not}");
        }
    }

    #[test]
    fn a_loopback_or_single_ipv6_listener_gets_no_mapping() {
        let mode = |listen: &str| PortMapping::Auto.for_listener(listen.parse().unwrap());
        assert_eq!(mode("0.0.0.0:4000"), PortMapping::Auto);
        assert_eq!(mode("192.168.1.2:4000"), PortMapping::Auto);
        assert_eq!(mode("[::]:4000"), PortMapping::Auto);
        assert_eq!(mode("127.0.0.1:4000"), PortMapping::Off);
        assert_eq!(mode("127.9.9.9:4000"), PortMapping::Off);
        assert_eq!(mode("[::1]:4000"), PortMapping::Off);
        assert_eq!(mode("[2001:db8::2]:4000"), PortMapping::Off);
        let off = PortMapping::Off.for_listener("0.0.0.0:4000".parse().unwrap());
        assert_eq!(off, PortMapping::Off);
    }

    #[tokio::test]
    async fn off_returns_at_once_and_publishes_nothing() {
        let out = tokio::sync::watch::Sender::new(None);
        let seen = out.subscribe();
        // Not cancelled: `off` must not wait for the shutdown.
        run(
            4000,
            PortMapping::Off,
            out.clone(),
            CancellationToken::new(),
        )
        .await;
        assert!(!seen.has_changed().unwrap());
        assert_eq!(*out.borrow(), None);
    }
}
