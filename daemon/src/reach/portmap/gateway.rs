//! Which gateway to ask, and from which address: the default IPv4 route's gateway, read from
//! `/proc/net/route`, and our LAN address towards it (the source address the kernel picks for
//! it). Reading both sends nothing on the network, so it is checked often to notice a change
//! of network.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

/// The kernel's IPv4 routing table.
const ROUTE_TABLE: &str = "/proc/net/route";

/// `RTF_UP`, `RTF_GATEWAY` and `RTF_REJECT` of the route flags (linux/route.h).
const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_REJECT: u32 = 0x0200;

/// The network the daemon is on, as far as a port mapping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Network {
    /// The interface of the default route.
    pub interface: String,
    /// The default route's gateway: where miniupnpd, a NAT-PMP or a PCP server answers.
    pub gateway: Ipv4Addr,
    /// Our address on the link towards the gateway: the mapping's internal client.
    pub local: Ipv4Addr,
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} via gateway {} on {}",
            self.local, self.gateway, self.interface
        )
    }
}

/// Why the network could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum NetworkError {
    #[error("cannot read {ROUTE_TABLE}: {0}")]
    RouteTable(io::Error),
    #[error("no default IPv4 route")]
    NoDefaultRoute,
    #[error("no local address towards gateway {gateway}: {source}")]
    LocalAddress {
        gateway: Ipv4Addr,
        #[source]
        source: io::Error,
    },
    #[error("the local address towards gateway {gateway} is {local}, not a LAN address")]
    NotLan { gateway: Ipv4Addr, local: Ipv4Addr },
}

/// The default route's gateway and interface from the text of `/proc/net/route`: of the
/// routes that are up, go through a gateway, and cover everything (destination and mask 0),
/// the one with the lowest metric.
pub(super) fn default_route(table: &str) -> Option<(String, Ipv4Addr)> {
    table
        .lines()
        .skip(1)
        .filter_map(parse_route)
        .filter(|r| r.destination == 0 && r.mask == 0)
        .filter(|r| r.flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY)
        .filter(|r| r.flags & RTF_REJECT == 0 && r.gateway != Ipv4Addr::UNSPECIFIED)
        .min_by_key(|r| r.metric)
        .map(|r| (r.interface, r.gateway))
}

/// One line of `/proc/net/route`.
struct Route {
    interface: String,
    destination: u32,
    gateway: Ipv4Addr,
    flags: u32,
    metric: u32,
    mask: u32,
}

/// `Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT`, the addresses in
/// hex of the kernel's in-memory (network order) bytes read as a native integer.
fn parse_route(line: &str) -> Option<Route> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let hex = |i: usize| u32::from_str_radix(fields[i], 16).ok();
    Some(Route {
        interface: fields[0].to_string(),
        destination: hex(1)?,
        gateway: Ipv4Addr::from(hex(2)?.to_ne_bytes()),
        flags: hex(3)?,
        metric: fields[6].parse().ok()?,
        mask: hex(7)?,
    })
}

/// The network now: the default route's gateway and our address towards it.
pub(super) fn current() -> Result<Network, NetworkError> {
    let table = std::fs::read_to_string(ROUTE_TABLE).map_err(NetworkError::RouteTable)?;
    let (interface, gateway) = default_route(&table).ok_or(NetworkError::NoDefaultRoute)?;
    let local = local_address(gateway)?;
    Ok(Network {
        interface,
        gateway,
        local,
    })
}

/// The source address the kernel picks for `gateway`: connecting a UDP socket only looks up
/// the route, it sends nothing.
fn local_address(gateway: Ipv4Addr) -> Result<Ipv4Addr, NetworkError> {
    let error = |source| NetworkError::LocalAddress { gateway, source };
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(error)?;
    socket
        .connect((gateway, crab_nat::GATEWAY_PORT))
        .map_err(error)?;
    let local = match socket.local_addr().map_err(error)? {
        SocketAddr::V4(addr) => *addr.ip(),
        SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    if local.is_unspecified() || local.is_loopback() {
        return Err(NetworkError::NotLan { gateway, local });
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address as `/proc/net/route` prints it on this machine.
    fn hex(ip: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip))
    }

    /// One route: interface, destination, gateway, flags, metric, mask.
    type Row<'a> = (&'a str, [u8; 4], [u8; 4], u32, u32, [u8; 4]);

    fn table(rows: &[Row]) -> String {
        let mut text = String::from(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        );
        for (iface, dest, gw, flags, metric, mask) in rows {
            text.push_str(&format!(
                "{iface}\t{}\t{}\t{flags:04X}\t0\t0\t{metric}\t{}\t0\t0\t0\n",
                hex(*dest),
                hex(*gw),
                hex(*mask)
            ));
        }
        text
    }

    #[test]
    fn the_default_route_of_a_real_table() {
        // As read on a machine with little-endian integers: 192.0.2.1 via eth0.
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                default_route(text),
                Some(("eth0".to_string(), Ipv4Addr::new(192, 0, 2, 1)))
            );
        }
    }

    #[test]
    fn the_lowest_metric_default_route_wins() {
        let text = table(&[
            ("wlan0", [0; 4], [10, 0, 0, 1], 0x3, 600, [0; 4]),
            ("eth0", [192, 168, 1, 0], [0; 4], 0x1, 0, [255, 255, 255, 0]),
            ("eth0", [0; 4], [192, 168, 1, 1], 0x3, 100, [0; 4]),
        ]);
        assert_eq!(
            default_route(&text),
            Some(("eth0".to_string(), Ipv4Addr::new(192, 168, 1, 1)))
        );
    }

    #[test]
    fn routes_that_are_down_rejecting_or_not_default_do_not_count() {
        let text = table(&[
            // Down.
            ("eth0", [0; 4], [192, 168, 1, 1], 0x2, 0, [0; 4]),
            // No gateway (a default route straight onto a link, e.g. a VPN).
            ("tun0", [0; 4], [0; 4], 0x1, 0, [0; 4]),
            // Unreachable (reject route).
            ("lo", [0; 4], [10, 9, 9, 9], 0x203, 0, [0; 4]),
            // A gateway, but for one network only.
            (
                "eth1",
                [10, 1, 0, 0],
                [10, 1, 0, 1],
                0x3,
                0,
                [255, 255, 0, 0],
            ),
        ]);
        assert_eq!(default_route(&text), None);
    }

    #[test]
    fn an_empty_or_garbled_table_has_no_default_route() {
        assert_eq!(default_route(""), None);
        assert_eq!(default_route("Iface\tDestination\n"), None);
        assert_eq!(
            default_route("Iface\nlo\tzz\tzz\t0003\t0\t0\t0\t00000000\n"),
            None
        );
        assert_eq!(default_route("Iface\neth0\t00000000\n"), None);
    }
}
