//! The test internet behaves like the real one (docs/ARCHITECTURE.md, "Test network
//! (namespaces)"): every home gets out through its router's public address; nothing from
//! outside gets in unasked; home A's miniupnpd maps ports on request by UPnP-IGD and NAT-PMP;
//! B keeps a connection's source port and C picks a new one per connection; hosts of B and B′
//! open a TCP connection to each other by a simultaneous open through both NATs; IPv6 is
//! routed end to end in A and B.
//!
//! It needs root, iproute2, nftables and miniupnpd-nftables, and the clients miniupnpc and
//! natpmpc. Where namespaces cannot be made a test says so in one line and returns, unless
//! `P2P_REQUIRE_NETNS=1`.

use p2p_e2e::netns::{
    Home, HomeId, Internet, Netns, UPNP_HTTP_PORT, accept_within, has_pending, have_client,
};
use p2p_e2e::wait_for;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Barrier;
use std::time::Duration;

/// A port for the tests' listeners (each internet is a world of its own: no clash).
const PORT: u16 = 4000;

/// How long a connection that must be made may take: it only bounds a hang.
const CONNECT: Duration = Duration::from_secs(10);

/// How long a connection that must not be made is tried: a SYN the router drops is retried
/// after one second, so two seconds see it dropped twice.
const BLOCKED: Duration = Duration::from_secs(2);

/// How long a client program may run.
const CLIENT: Duration = Duration::from_secs(30);

fn any4(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// Connects from `from` to `to`; the listener accepts it. Returns both ends (client first).
#[track_caller]
fn connect_and_accept(from: &Netns, to: SocketAddr, listener: &TcpListener) -> [TcpStream; 2] {
    let client = from
        .tcp_connect(to, CONNECT)
        .unwrap_or_else(|e| panic!("{} cannot connect to {to}: {e}", from.name()));
    let (server, _) = accept_within(listener, CONNECT)
        .unwrap_or_else(|e| panic!("the listener behind {to} accepted nothing: {e}"));
    [client, server]
}

/// A connection from `from` to `to` is not made: the SYN gets no answer.
#[track_caller]
fn blocked(from: &Netns, to: SocketAddr) {
    match from.tcp_connect(to, BLOCKED) {
        Ok(stream) => panic!(
            "{} reached {to} (from {:?}); it should be unreachable",
            from.name(),
            stream.local_addr()
        ),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::TimedOut,
            "{} connecting to {to}: the SYN should be dropped, not answered: {e}",
            from.name()
        ),
    }
}

/// Runs `program args` in `ns` and checks it exits 0; returns its stdout.
#[track_caller]
fn run_ok(ns: &Netns, program: &str, args: &[&str]) -> String {
    ns.run_ok(program, args, CLIENT)
}

#[test]
fn every_home_goes_out_through_its_routers_public_address() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let server = SocketAddr::new(net.server_ip(1), PORT);
    let listener = net.public().tcp_listen(server).expect("public listener");
    for home in net.homes() {
        let [client, accepted] = connect_and_accept(home.host(), server, &listener);
        let seen = accepted.peer_addr().expect("peer address");
        assert_eq!(
            seen.ip(),
            IpAddr::V4(home.public_ip()),
            "{:?}: the server should see the router's public address",
            home.id()
        );
        assert_eq!(
            client.local_addr().expect("local address").ip(),
            IpAddr::V4(home.host_ip()),
            "{:?}: the host connects from its LAN address",
            home.id()
        );
    }
}

#[test]
fn nothing_from_outside_reaches_a_home_unasked() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let listeners: Vec<TcpListener> = net
        .homes()
        .iter()
        .map(|home| home.host().tcp_listen(any4(PORT)).expect("home listener"))
        .collect();
    // Every home's router is tried from the public net and from every other home, all at
    // once (each attempt waits out BLOCKED).
    let mut attempts: Vec<(&Netns, SocketAddr)> = Vec::new();
    for target in net.homes() {
        let to = SocketAddr::from((target.public_ip(), PORT));
        attempts.push((net.public(), to));
        for from in net.homes().iter().filter(|h| h.id() != target.id()) {
            attempts.push((from.host(), to));
        }
    }
    std::thread::scope(|scope| {
        for (from, to) in &attempts {
            scope.spawn(move || blocked(from, *to));
        }
    });
    for (home, listener) in net.homes().iter().zip(&listeners) {
        assert!(
            !has_pending(listener).expect("poll"),
            "{:?}: a connection from outside reached the host",
            home.id()
        );
        // The listener is there: its own router reaches it.
        connect_and_accept(
            home.router(),
            SocketAddr::from((home.host_ip(), PORT)),
            listener,
        );
    }
}

#[test]
fn home_a_maps_ports_with_upnp_and_with_nat_pmp() {
    let Some(mut net) = Internet::build_or_skip() else {
        return;
    };
    if !have_client("upnpc", "miniupnpc") {
        return;
    }
    let home = net.home(HomeId::A);
    let host_ip = home.host_ip().to_string();
    let public = SocketAddr::from((home.public_ip(), PORT));
    let listener = home.host().tcp_listen(any4(PORT)).expect("home listener");
    blocked(net.public(), public);

    // UPnP-IGD: upnpc finds the router by SSDP, as at home, and asks for the port.
    let port = PORT.to_string();
    run_ok(
        home.host(),
        "upnpc",
        &["-e", "p2p test", "-a", &host_ip, &port, &port, "TCP"],
    );
    let [client, accepted] = connect_and_accept(net.public(), public, &listener);
    assert_eq!(
        accepted.peer_addr().expect("peer address"),
        client.local_addr().expect("local address"),
        "a mapped port forwards the connection untranslated at the source"
    );
    // The router is known now: its description URL instead of another SSDP search.
    let url = format!("http://{}:{UPNP_HTTP_PORT}/rootDesc.xml", home.gateway_ip());
    run_ok(home.host(), "upnpc", &["-u", &url, "-d", &port, "TCP"]);
    blocked(net.public(), public);

    // NAT-PMP, to the gateway of the default route.
    if have_client("natpmpc", "natpmpc") {
        let pmp_port = PORT + 1;
        let pmp_listener = home
            .host()
            .tcp_listen(any4(pmp_port))
            .expect("home listener");
        let mapped = SocketAddr::from((home.public_ip(), pmp_port));
        let p = pmp_port.to_string();
        run_ok(home.host(), "natpmpc", &["-a", &p, &p, "tcp", "3600"]);
        connect_and_accept(net.public(), mapped, &pmp_listener);
        // Lifetime 0 removes the mapping.
        run_ok(home.host(), "natpmpc", &["-a", &p, &p, "tcp", "0"]);
        blocked(net.public(), mapped);
    }
    if let Err(why) = net.check_miniupnpd() {
        panic!("miniupnpd did not survive the test: {why}");
    }
}

/// The source ports the public network sees for connections from `home`'s host, all from
/// local port `local`, to the two public servers.
fn ports_seen(net: &Internet, home: HomeId, local: u16) -> [u16; 2] {
    let home = net.home(home);
    let from = SocketAddr::from((home.host_ip(), local));
    [1, 2].map(|no| {
        let server = SocketAddr::new(net.server_ip(no), PORT);
        let listener = net.public().tcp_listen(server).expect("public listener");
        let _client = home
            .host()
            .tcp_connect_from(from, server, CONNECT)
            .unwrap_or_else(|e| panic!("{:?} cannot connect to {server}: {e}", home.id()));
        let (accepted, _) = accept_within(&listener, CONNECT).expect("accept");
        accepted.peer_addr().expect("peer address").port()
    })
}

#[test]
fn home_c_picks_a_new_port_per_destination_and_b_keeps_it() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let local = 40000;
    for home in [HomeId::B, HomeId::B2] {
        assert_eq!(
            ports_seen(&net, home, local),
            [local, local],
            "{home:?} keeps the host's source port towards every destination"
        );
    }
    let [first, second] = ports_seen(&net, HomeId::C, local);
    // fully-random draws each port anew from 1024..=65535: the two are equal by chance once
    // in 64512 runs.
    assert_ne!(
        first, second,
        "C uses a new source port for each destination"
    );
}

/// The port the hosts punch from (and listen on, as a daemon does).
const PUNCH: u16 = 4100;

/// Hosts of `one` and `two`, each listening on [`PUNCH`], connect from it to the other's
/// router's public address and [`PUNCH`] at the same moment, each giving up after `timeout`.
fn simultaneous_open(
    one: &Home,
    two: &Home,
    timeout: Duration,
) -> (io::Result<TcpStream>, io::Result<TcpStream>) {
    let _listeners = [one, two].map(|home| {
        home.host()
            .tcp_listen_shared(any4(PUNCH))
            .expect("shared listener")
    });
    let barrier = Barrier::new(2);
    let attempt = |from: &Home, to: &Home| {
        barrier.wait();
        from.host().tcp_connect_from(
            SocketAddr::from((from.host_ip(), PUNCH)),
            SocketAddr::from((to.public_ip(), PUNCH)),
            timeout,
        )
    };
    std::thread::scope(|scope| {
        let first = scope.spawn(|| attempt(one, two));
        let second = scope.spawn(|| attempt(two, one));
        (
            first.join().expect("first side"),
            second.join().expect("second side"),
        )
    })
}

#[test]
fn hosts_of_b_and_b2_connect_to_each_other_by_a_simultaneous_open() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let (b, b2) = (net.home(HomeId::B), net.home(HomeId::B2));
    // A try fails when both first SYNs are dropped, each by the other's router before its own
    // left, and the retransmissions do not cross in time. So a few tries, each from the same
    // port.
    let (from_b, from_b2) = wait_for(
        "a simultaneous open between B and B′",
        Duration::from_secs(30),
        || match simultaneous_open(b, b2, Duration::from_secs(3)) {
            (Ok(one), Ok(two)) => Ok((one, two)),
            (one, two) => Err(format!("B: {one:?}; B′: {two:?}")),
        },
    );
    assert_eq!(
        from_b.peer_addr().expect("peer address"),
        SocketAddr::from((b2.public_ip(), PUNCH))
    );
    assert_eq!(
        from_b2.peer_addr().expect("peer address"),
        SocketAddr::from((b.public_ip(), PUNCH))
    );
    // One connection: what one side writes, the other reads.
    for (writer, reader, text) in [
        (&from_b, &from_b2, b"from B".as_slice()),
        (&from_b2, &from_b, b"from B2".as_slice()),
    ] {
        let (mut writer, mut reader) = (writer, reader);
        writer.write_all(text).expect("write");
        reader
            .set_read_timeout(Some(CONNECT))
            .expect("read timeout");
        let mut got = vec![0; text.len()];
        reader.read_exact(&mut got).expect("read");
        assert_eq!(got, text);
    }
}

#[test]
fn a_simultaneous_open_with_c_gets_nowhere() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    // C's SYN leaves from a random port, not the one B aims at, and B's router drops it; B's
    // SYN comes from the port C aimed at, but C's router expects it at the random port.
    let (from_b, from_c) = simultaneous_open(
        net.home(HomeId::B),
        net.home(HomeId::C),
        Duration::from_secs(3),
    );
    for (side, result) in [("B", from_b), ("C", from_c)] {
        match result {
            Ok(stream) => panic!("{side} got through to {:?}", stream.peer_addr()),
            Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{side}: {e}"),
        }
    }
}

#[test]
fn ipv6_is_routed_end_to_end_in_a_and_b_only() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let (a, b) = (net.home(HomeId::A), net.home(HomeId::B));
    let a6 = a.host_ip6().expect("A has IPv6");
    let b6 = b.host_ip6().expect("B has IPv6");
    // Host to host, both ways, and from the public net: no translation, no filter.
    for (from, to) in [(a, b), (b, a)] {
        let to6 = to.host_ip6().expect("IPv6");
        let listener = to
            .host()
            .tcp_listen(SocketAddr::new(IpAddr::V6(to6), PORT))
            .expect("IPv6 listener");
        let [_, accepted] = connect_and_accept(
            from.host(),
            SocketAddr::new(IpAddr::V6(to6), PORT),
            &listener,
        );
        assert_eq!(
            accepted.peer_addr().expect("peer address").ip(),
            IpAddr::V6(from.host_ip6().expect("IPv6"))
        );
        drop(listener);
        let listener = to
            .host()
            .tcp_listen(SocketAddr::new(IpAddr::V6(to6), PORT + 1))
            .expect("IPv6 listener");
        connect_and_accept(
            net.public(),
            SocketAddr::new(IpAddr::V6(to6), PORT + 1),
            &listener,
        );
    }
    assert_ne!(a6, b6);
    // B′ and C have no IPv6 at all.
    let server6 = SocketAddr::new(net.server_ip6(1), PORT);
    let _listener = net.public().tcp_listen(server6).expect("IPv6 listener");
    for home in [HomeId::B2, HomeId::C] {
        let host = net.home(home).host();
        assert!(net.home(home).host_ip6().is_none());
        let err = host
            .tcp_connect(server6, CONNECT)
            .expect_err("a home without IPv6 reaches an IPv6 server");
        assert_eq!(
            err.kind(),
            ErrorKind::NetworkUnreachable,
            "{home:?} has no IPv6 route: {err}"
        );
    }
}

#[test]
fn dropping_the_internet_removes_its_namespaces_daemons_and_files() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let names: Vec<String> = net
        .namespaces()
        .iter()
        .map(|ns| ns.name().to_string())
        .collect();
    assert_eq!(names.len(), 9, "the public net and two namespaces per home");
    let dir = net.dir().to_path_buf();
    let pid = net.miniupnpd_pid().expect("miniupnpd runs");
    drop(net);
    for name in &names {
        let path = std::path::Path::new("/run/netns").join(name);
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None);
    assert_eq!(
        alive,
        Err(nix::errno::Errno::ESRCH),
        "miniupnpd (pid {pid}) still runs"
    );
}

/// IPv6 addresses are the documentation prefix's, IPv4 public ones are 11.0.0.0/24.
#[test]
fn addresses_are_where_the_documentation_says() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    assert_eq!(net.tracker_ip(1), IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1)));
    assert_eq!(net.tracker_ip(2), IpAddr::V4(Ipv4Addr::new(11, 0, 0, 2)));
    assert_eq!(
        net.home(HomeId::A).host_ip6(),
        Some(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2))
    );
    // The trackers' addresses are the public namespace's own: a tracker there binds them.
    for no in [1, 2] {
        for ip in [net.tracker_ip(no), net.tracker_ip6(no)] {
            net.public()
                .tcp_listen(SocketAddr::new(ip, PORT))
                .unwrap_or_else(|e| panic!("cannot bind {ip} in the public namespace: {e}"));
        }
    }
}
