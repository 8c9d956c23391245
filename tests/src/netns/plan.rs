//! The small internet on paper: which homes there are, their addresses, and the text of the
//! `ip -batch` scripts, nftables rulesets and the miniupnpd configuration that make it.
//! Nothing here touches the system.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The public IPv4 network, 11.0.0.0/24. Not a documentation range (203.0.113.0/24 and the
/// like): miniupnpd calls a WAN address from those "reserved", takes its router to be behind
/// another NAT and refuses every mapping. Nothing leaves the namespaces, so the choice is
/// invisible outside them.
pub(crate) const PUBLIC_NET: [u8; 3] = [11, 0, 0];

/// The public IPv6 network (documentation prefix); homes with IPv6 get 2001:db8:<n>::/64.
pub(crate) const PUBLIC_NET6: [u16; 2] = [0x2001, 0xdb8];

/// The UDP port of NAT-PMP and PCP (RFC 6886), where miniupnpd listens on the LAN.
pub const NATPMP_PORT: u16 = 5351;

/// The TCP port of miniupnpd's UPnP description and control URLs on the LAN (fixed, so a test
/// can wait for it; clients find it by SSDP as they would at home).
pub const UPNP_HTTP_PORT: u16 = 5000;

/// One of the homes of the test internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HomeId {
    /// Behind a NAT whose router runs miniupnpd (UPnP-IGD and NAT-PMP/PCP); IPv6 too.
    A,
    /// Behind a plain port-preserving NAT, no UPnP; IPv6 too.
    B,
    /// B′: like B, IPv4 only.
    B2,
    /// Behind a NAT that picks a random source port for every connection; IPv4 only.
    C,
}

/// How a home's router translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Port-preserving masquerade, and miniupnpd serving UPnP-IGD and NAT-PMP on the LAN.
    Upnp,
    /// Port-preserving masquerade: a connection keeps its source port while no other one to
    /// the same destination holds it (Linux's default), so hole punching works.
    PortPreserving,
    /// `masquerade fully-random`: a fresh random source port for every connection.
    RandomPorts,
}

impl HomeId {
    /// Every home, in order.
    pub const ALL: [HomeId; 4] = [HomeId::A, HomeId::B, HomeId::B2, HomeId::C];

    /// 1 for A, 2 for B, 3 for B′, 4 for C: the third byte of its LAN, and more.
    pub(crate) fn number(self) -> u8 {
        match self {
            HomeId::A => 1,
            HomeId::B => 2,
            HomeId::B2 => 3,
            HomeId::C => 4,
        }
    }

    /// A short tag for names: `a`, `b`, `b2`, `c`.
    pub fn tag(self) -> &'static str {
        match self {
            HomeId::A => "a",
            HomeId::B => "b",
            HomeId::B2 => "b2",
            HomeId::C => "c",
        }
    }

    /// How its router translates.
    pub fn nat(self) -> Nat {
        match self {
            HomeId::A => Nat::Upnp,
            HomeId::B | HomeId::B2 => Nat::PortPreserving,
            HomeId::C => Nat::RandomPorts,
        }
    }

    /// Whether the home has IPv6 (routed, no NAT and no firewall).
    pub fn has_ipv6(self) -> bool {
        matches!(self, HomeId::A | HomeId::B)
    }

    /// The router's address on the public network: 11.0.0.1<n>.
    pub(crate) fn wan_ip(self) -> Ipv4Addr {
        let [a, b, c] = PUBLIC_NET;
        Ipv4Addr::new(a, b, c, 10 + self.number())
    }

    /// The router's IPv6 address on the public network: 2001:db8::1<n>.
    pub(crate) fn wan_ip6(self) -> Ipv6Addr {
        let [a, b] = PUBLIC_NET6;
        Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, 0x10 + u16::from(self.number()))
    }

    /// The router's LAN address, 192.168.<n>.1 (`last` 1), or the host's, 192.168.<n>.2.
    pub(crate) fn lan_ip(self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.number(), last)
    }

    /// The LAN's IPv6 prefix, 2001:db8:<n>::/64, and an address in it (`last` 1 router, 2 host).
    pub(crate) fn lan_ip6(self, last: u16) -> Ipv6Addr {
        let [a, b] = PUBLIC_NET6;
        Ipv6Addr::new(a, b, u16::from(self.number()), 0, 0, 0, 0, last)
    }
}

/// Address `no` (1..=9) of the public namespace itself: 1 and 2 are for the trackers, the rest
/// for other public servers.
pub(crate) fn public_ip(no: u8) -> Ipv4Addr {
    assert!((1..=9).contains(&no), "public address {no} is not in 1..=9");
    let [a, b, c] = PUBLIC_NET;
    Ipv4Addr::new(a, b, c, no)
}

/// Like [`public_ip`], IPv6: 2001:db8::<no>.
pub(crate) fn public_ip6(no: u8) -> Ipv6Addr {
    assert!((1..=9).contains(&no), "public address {no} is not in 1..=9");
    let [a, b] = PUBLIC_NET6;
    Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, u16::from(no))
}

/// The name of a router's port on the public bridge, in the public namespace: `ra`, `rb2`…
pub(crate) fn bridge_port(home: HomeId) -> String {
    format!("r{}", home.tag())
}

/// Interface names inside a router and a host (each namespace has its own, so they repeat).
pub(crate) const WAN_IF: &str = "wan";
pub(crate) const LAN_IF: &str = "lan";
pub(crate) const HOST_IF: &str = "eth0";
const BRIDGE: &str = "br0";

/// The public namespace: a bridge that is the internet's one link, holding the public
/// servers' addresses; IPv6 forwarding between the homes' prefixes. Runs after every router's
/// script, which made the bridge ports.
pub(crate) fn public_script(homes: &[HomeId]) -> String {
    let mut s = String::new();
    line(&mut s, "link set lo up");
    line(&mut s, &format!("link add name {BRIDGE} type bridge"));
    for no in 1..=4 {
        line(
            &mut s,
            &format!("addr add {}/24 dev {BRIDGE}", public_ip(no)),
        );
        line(
            &mut s,
            &format!("addr add {}/64 dev {BRIDGE} nodad", public_ip6(no)),
        );
    }
    line(&mut s, &format!("link set {BRIDGE} up"));
    for &home in homes {
        line(
            &mut s,
            &format!("link set {} master {BRIDGE} up", bridge_port(home)),
        );
        if home.has_ipv6() {
            line(
                &mut s,
                &format!("route add {}/64 via {}", home.lan_ip6(0), home.wan_ip6()),
            );
        }
    }
    s
}

/// A router's namespace: its WAN port (the peer lands on the public bridge as
/// [`bridge_port`]) and its LAN port (the peer lands in the host's namespace as [`HOST_IF`]).
pub(crate) fn router_script(home: HomeId, public_ns: &str, host_ns: &str) -> String {
    let mut s = String::new();
    line(&mut s, "link set lo up");
    line(
        &mut s,
        &format!(
            "link add {WAN_IF} type veth peer name {} netns {public_ns}",
            bridge_port(home)
        ),
    );
    line(
        &mut s,
        &format!("link add {LAN_IF} type veth peer name {HOST_IF} netns {host_ns}"),
    );
    line(
        &mut s,
        &format!("addr add {}/24 dev {WAN_IF}", home.wan_ip()),
    );
    line(
        &mut s,
        &format!("addr add {}/24 dev {LAN_IF}", home.lan_ip(1)),
    );
    if home.has_ipv6() {
        line(
            &mut s,
            &format!("addr add {}/64 dev {WAN_IF} nodad", home.wan_ip6()),
        );
        line(
            &mut s,
            &format!("addr add {}/64 dev {LAN_IF} nodad", home.lan_ip6(1)),
        );
    }
    line(&mut s, &format!("link set {WAN_IF} up"));
    line(&mut s, &format!("link set {LAN_IF} up"));
    line(&mut s, &format!("route add default via {}", public_ip(1)));
    if home.has_ipv6() {
        line(&mut s, &format!("route add default via {}", public_ip6(1)));
    }
    s
}

/// A host's namespace: the user's machine on the home LAN, default route via its router.
pub(crate) fn host_script(home: HomeId) -> String {
    let mut s = String::new();
    line(&mut s, "link set lo up");
    line(
        &mut s,
        &format!("addr add {}/24 dev {HOST_IF}", home.lan_ip(2)),
    );
    if home.has_ipv6() {
        line(
            &mut s,
            &format!("addr add {}/64 dev {HOST_IF} nodad", home.lan_ip6(2)),
        );
    }
    line(&mut s, &format!("link set {HOST_IF} up"));
    line(&mut s, &format!("route add default via {}", home.lan_ip(1)));
    if home.has_ipv6() {
        line(
            &mut s,
            &format!("route add default via {}", home.lan_ip6(1)),
        );
    }
    s
}

/// A router's nftables ruleset: a home router's stateful firewall (nothing unsolicited from
/// the WAN reaches the router or the LAN; the WAN's packets are dropped, not refused, as home
/// routers do) and IPv4 masquerading of the LAN. IPv6 is routed without translation or
/// filter.
///
/// The table and chain names are the ones miniupnpd's nftables backend uses by default
/// (table `inet filter`; chains `miniupnpd` for its accept rules, `prerouting_miniupnpd` and
/// `postrouting_miniupnpd` for its DNAT and SNAT rules), laid out as the `nft_init.sh` that
/// Debian's miniupnpd-nftables ships would lay them out; the other routers have the same
/// chains, empty, so every router differs from A only in its daemon.
pub(crate) fn router_ruleset(home: HomeId) -> String {
    let lan = home.lan_ip(0);
    let masquerade = match home.nat() {
        Nat::Upnp | Nat::PortPreserving => "masquerade",
        Nat::RandomPorts => "masquerade fully-random",
    };
    format!(
        r#"table inet filter {{
    chain input {{
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname "lo" accept
        iifname "{LAN_IF}" accept
        meta l4proto {{ icmp, ipv6-icmp }} accept
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "{LAN_IF}" accept
        jump miniupnpd
        meta nfproto ipv6 accept
    }}
    chain miniupnpd {{
    }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        jump prerouting_miniupnpd
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        jump postrouting_miniupnpd
        oifname "{WAN_IF}" ip saddr {lan}/24 {masquerade}
    }}
    chain prerouting_miniupnpd {{
    }}
    chain postrouting_miniupnpd {{
    }}
}}
"#
    )
}

/// miniupnpd's configuration for home A's router: WAN and LAN interfaces, UPnP-IGD and
/// NAT-PMP/PCP, secure mode (a client maps ports only to itself), mappings of ports 1024 and
/// up for the LAN only. IPv6 off: it would serve PCP pinholes, which a router with an open
/// IPv6 forward has no use for.
pub(crate) fn miniupnpd_conf(home: HomeId, uuid: &str) -> String {
    let lan = home.lan_ip(0);
    format!(
        "ext_ifname={WAN_IF}\n\
         listening_ip={LAN_IF}\n\
         http_port={UPNP_HTTP_PORT}\n\
         enable_upnp=yes\n\
         enable_natpmp=yes\n\
         secure_mode=yes\n\
         ipv6_disable=yes\n\
         system_uptime=no\n\
         uuid={uuid}\n\
         allow 1024-65535 {lan}/24 1024-65535\n\
         deny 0-65535 0.0.0.0/0 0-65535\n"
    )
}

fn line(script: &mut String, text: &str) {
    let _ = writeln!(script, "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_homes_differ() {
        let wans: std::collections::BTreeSet<_> = HomeId::ALL.iter().map(|h| h.wan_ip()).collect();
        assert_eq!(wans.len(), HomeId::ALL.len());
        assert_eq!(HomeId::C.wan_ip(), Ipv4Addr::new(11, 0, 0, 14));
        assert_eq!(HomeId::B2.lan_ip(2), Ipv4Addr::new(192, 168, 3, 2));
        assert_eq!(
            HomeId::B.lan_ip6(2),
            "2001:db8:2::2".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn only_c_randomises_ports() {
        for home in HomeId::ALL {
            let random = router_ruleset(home).contains("fully-random");
            assert_eq!(random, home == HomeId::C, "{home:?}");
        }
    }
}
