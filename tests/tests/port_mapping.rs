//! `p2pd` keeps a port mapping on its gateway (`--port-mapping`), in the test internet of
//! network namespaces (docs/ARCHITECTURE.md, "Test network (namespaces)"): in home A, whose
//! router runs miniupnpd, a daemon maps its listening port by UPnP-IGD (`auto`, `upnp`) or by
//! PCP/NAT-PMP (`natpmp`) with a finite lease, a connection from the public network to the
//! router's public address reaches the daemon's listener, and the mapping is gone once the
//! daemon has exited on SIGTERM; a change of the host's address moves the mapping; with `off`
//! no mapping appears. In home B, whose router has neither, the daemon runs without a mapping
//! and still stops promptly.
//!
//! The mappings are read from the router's nftables ruleset (miniupnpd's DNAT rules) and,
//! for the lease, from `upnpc -l`. No tracker runs: the daemons' tracker_info names an address
//! of the public network where nothing listens.
//!
//! It needs root, iproute2, nftables, miniupnpd-nftables and miniupnpc. Where namespaces
//! cannot be made a test says so in one line and returns, unless `P2P_REQUIRE_NETNS=1`.

use p2p_e2e::netns::{Home, HomeId, Internet, Netns, UPNP_HTTP_PORT, have_client};
use p2p_e2e::tls::{TlsConn, new_identity};
use p2p_e2e::{
    READY_TIMEOUT, bin, run_bounded, stderr_of, wait_for, wait_for_every, wait_for_exit,
};
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::tls::Expect;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

/// The daemons' listening port (each internet is a world of its own: no clash).
const PORT: u16 = 4000;

/// How long a mapping may take to appear: it only bounds a hang (a daemon maps within a
/// second of its start).
const MAPPING: Duration = Duration::from_secs(20);

/// How long a moved mapping may take to appear: the daemon reads the network every 30 s.
const REMAPPING: Duration = Duration::from_secs(75);

/// How long a connection that must be made may take.
const CONNECT: Duration = Duration::from_secs(10);

/// How long a connection that must not be made is tried: a SYN the router drops is retried
/// after one second, so two seconds see it dropped twice.
const BLOCKED: Duration = Duration::from_secs(2);

/// How long `nft` or `upnpc` may run.
const CLIENT: Duration = Duration::from_secs(30);

/// How often the router is asked: each look runs a program.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// One `p2pd --foreground` on a home's host, in a directory of the internet's.
struct P2pd {
    child: Option<Child>,
    name: String,
    dir: PathBuf,
}

impl P2pd {
    /// Starts it in `home`'s host, listening on every address at `port`, with
    /// `--port-mapping mode`, and waits until it is ready.
    fn start(net: &Internet, home: &Home, port: u16, mode: &str) -> Self {
        let name = format!("p2pd-{}-{port}-{mode}", home.id().tag());
        let dir = net.dir().join(&name);
        std::fs::create_dir_all(dir.join("home")).expect("daemon directory");
        let tracker = SocketAddr::new(net.tracker_ip(1), 7000);
        std::fs::write(dir.join("tracker_info.txt"), format!("{tracker}\n")).expect("tracker_info");
        let log = std::fs::File::create(dir.join("p2pd.log")).expect("log file");
        let mut cmd = home.host().command(bin("p2pd"));
        cmd.env("HOME", dir.join("home"))
            .env("XDG_RUNTIME_DIR", dir.join("runtime"))
            .env("XDG_STATE_HOME", dir.join("xdg-state"))
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .env("RUST_LOG", "info,p2pd::reach=debug")
            .env_remove("P2PD_PORT_MAPPING")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .arg("--foreground")
            .arg("--socket")
            .arg(dir.join("run").join("p2pd.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--tracker-info")
            .arg(dir.join("tracker_info.txt"))
            .arg("--listen")
            .arg(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).to_string())
            .arg("--port-mapping")
            .arg(mode)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let child = cmd.spawn().expect("cannot start p2pd");
        let mut daemon = Self {
            child: Some(child),
            name,
            dir,
        };
        daemon.wait_ready();
        daemon
    }

    /// Waits until its control socket accepts a connection: by then it has its key and its
    /// peer listener. (`p2pctl status` would also wait for the tracker, which is not there.)
    fn wait_ready(&mut self) {
        let what = format!("{}'s control socket", self.name);
        let socket = self.dir.join("run").join("p2pd.sock");
        wait_for(&what, READY_TIMEOUT, || {
            if !self.is_running() {
                panic!("{} exited before it was ready:\n{}", self.name, self.log());
            }
            UnixStream::connect(&socket)
                .map(drop)
                .map_err(|e| format!("{}: {e}", socket.display()))
        });
    }

    /// The key it made at its start: the one its listener presents.
    fn key(&self) -> Fingerprint {
        Identity::load_or_create(&self.dir.join("state").join("identity.key"))
            .expect("the daemon's key")
            .fingerprint()
    }

    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// SIGTERM, then its exit status (it must exit within [`READY_TIMEOUT`]).
    fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("p2pd runs");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        wait_for_exit(&mut child, &format!("{} after SIGTERM", self.name))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("p2pd.log")).unwrap_or_default()
    }
}

impl Drop for P2pd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// The TCP port mappings miniupnpd holds on `home`'s router, from its DNAT rules
/// (`… th dport <external> dnat ip to <internal>`): external port → internal address.
fn mappings(home: &Home) -> Vec<(u16, SocketAddrV4)> {
    let ruleset = run_ok(
        home.router(),
        "nft",
        &["list", "chain", "inet", "filter", "prerouting_miniupnpd"],
    );
    ruleset
        .lines()
        .filter(|line| line.contains("@nh,72,8 0x6")) // IP protocol 6: TCP
        .filter_map(|line| {
            let external = line.split("dport ").nth(1)?.split_whitespace().next()?;
            let internal = line
                .split("dnat ip to ")
                .nth(1)?
                .split_whitespace()
                .next()?;
            Some((external.parse().ok()?, internal.parse().ok()?))
        })
        .collect()
}

/// The external port of the mapping to `internal`, if the router holds one.
fn mapped_port(home: &Home, internal: SocketAddrV4) -> Option<u16> {
    mappings(home)
        .into_iter()
        .find(|(_, to)| *to == internal)
        .map(|(external, _)| external)
}

/// Waits until `home`'s router maps a port to `internal`; gives the external port.
#[track_caller]
fn wait_for_mapping(
    home: &Home,
    internal: SocketAddrV4,
    timeout: Duration,
    daemon: &mut P2pd,
) -> u16 {
    wait_for_every(
        &format!("a mapping to {internal} on the router"),
        timeout,
        LOOK_EVERY,
        || {
            if !daemon.is_running() {
                panic!("{} exited:\n{}", daemon.name, daemon.log());
            }
            mapped_port(home, internal).ok_or_else(|| format!("mappings: {:?}", mappings(home)))
        },
    )
}

/// One line of `upnpc -l`: ` 0 TCP  4000->192.168.1.2:4000  'p2pd' '' 3600`.
#[derive(Debug)]
struct Entry {
    external: u16,
    internal: SocketAddrV4,
    description: String,
    lease: u64,
}

/// The mappings miniupnpd lists by UPnP (all of them, whichever protocol made them), asked at
/// its description URL.
fn upnp_entries(home: &Home) -> Vec<Entry> {
    let url = format!("http://{}:{UPNP_HTTP_PORT}/rootDesc.xml", home.gateway_ip());
    let listing = run_ok(home.host(), "upnpc", &["-u", &url, "-l"]);
    listing
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().split_once(" TCP ")?.1.trim_start();
            let (ports, rest) = rest.split_once(char::is_whitespace)?;
            let (external, internal) = ports.split_once("->")?;
            let rest = rest.trim_start().strip_prefix('\'')?;
            let (description, rest) = rest.split_once('\'')?;
            let lease = rest.split_whitespace().last()?;
            Some(Entry {
                external: external.parse().ok()?,
                internal: internal.parse().ok()?,
                description: description.to_string(),
                lease: lease.parse().ok()?,
            })
        })
        .collect()
}

/// Runs `program args` in `ns` and checks it exits 0; returns its stdout.
#[track_caller]
fn run_ok(ns: &Netns, program: &str, args: &[&str]) -> String {
    ns.run_ok(program, args, CLIENT)
}

/// A TLS connection from the public network to `to` reaches the daemon: the listener there
/// presents the daemon's key.
#[track_caller]
fn reaches_daemon(net: &Internet, to: SocketAddr, daemon: &P2pd) {
    let tcp = net
        .public()
        .tcp_connect(to, CONNECT)
        .unwrap_or_else(|e| panic!("the public network cannot connect to {to}: {e}"));
    let tls = TlsConn::over(tcp, &new_identity(), Expect::AnyKey)
        .unwrap_or_else(|e| panic!("TLS through {to}: {e}"));
    assert_eq!(
        tls.peer,
        daemon.key(),
        "the listener behind {to} is {}'s",
        daemon.name
    );
}

/// A connection from the public network to `to` is not made: the SYN gets no answer.
#[track_caller]
fn blocked(net: &Internet, to: SocketAddr) {
    match net.public().tcp_connect(to, BLOCKED) {
        Ok(_) => panic!("the public network reached {to}; nothing should be mapped there"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "connecting to {to}: {e}"),
    }
}

/// In home A with `mode`: the router maps the daemon's port to it with a finite lease and a
/// description that starts with `made_by`; the public network reaches the daemon through it;
/// after SIGTERM the daemon has exited cleanly and the mapping is gone.
fn maps_then_unmaps(mode: &str, made_by: &[&str]) {
    let Some(mut net) = Internet::build_or_skip() else {
        return;
    };
    if !have_client("upnpc", "miniupnpc") {
        return;
    }
    let home = net.home(HomeId::A);
    let internal = SocketAddrV4::new(home.host_ip(), PORT);
    assert_eq!(
        mapped_port(home, internal),
        None,
        "no mapping before the daemon"
    );

    let mut daemon = P2pd::start(&net, home, PORT, mode);
    let external = wait_for_mapping(home, internal, MAPPING, &mut daemon);
    assert_eq!(
        external, PORT,
        "the router gives the listening port itself when it is free"
    );
    let entries = upnp_entries(home);
    let entry = entries
        .iter()
        .find(|e| e.internal == internal && e.external == external)
        .unwrap_or_else(|| panic!("upnpc -l does not list the mapping: {entries:?}"));
    assert!(
        made_by.iter().any(|p| entry.description.starts_with(p)),
        "--port-mapping {mode}: the mapping should be made by {made_by:?}: {entry:?}"
    );
    assert!(
        (1..=3600).contains(&entry.lease),
        "the lease is finite, an hour at most: {entry:?}"
    );
    let public = SocketAddr::from((home.public_ip(), external));
    reaches_daemon(&net, public, &daemon);

    let status = daemon.sigterm();
    assert!(status.success(), "p2pd exits 0 on SIGTERM: {status}");
    assert_eq!(
        mapped_port(home, internal),
        None,
        "the daemon removed its mapping before it exited; log:\n{}",
        daemon.log()
    );
    blocked(&net, public);
    if let Err(why) = net.check_miniupnpd() {
        panic!("miniupnpd did not survive the test: {why}");
    }
}

#[test]
fn auto_maps_the_port_by_upnp_and_removes_the_mapping_on_sigterm() {
    maps_then_unmaps("auto", &["p2pd"]);
}

#[test]
fn upnp_maps_the_port_and_removes_the_mapping_on_sigterm() {
    maps_then_unmaps("upnp", &["p2pd"]);
}

#[test]
fn natpmp_maps_the_port_by_pcp_or_nat_pmp_and_removes_the_mapping_on_sigterm() {
    // miniupnpd names the mappings it makes for PCP and NAT-PMP clients itself.
    maps_then_unmaps("natpmp", &["PCP MAP", "NAT-PMP"]);
}

#[test]
fn off_makes_no_mapping() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let home = net.home(HomeId::A);
    let mut off = P2pd::start(&net, home, PORT, "off");
    // A daemon started after it, allowed to map, shows how long a mapping takes: once its
    // mapping is there, one from the first daemon would be too.
    let witness_port = PORT + 1;
    let mut witness = P2pd::start(&net, home, witness_port, "upnp");
    wait_for_mapping(
        home,
        SocketAddrV4::new(home.host_ip(), witness_port),
        MAPPING,
        &mut witness,
    );
    let mapped = mappings(home);
    assert_eq!(
        mapped.iter().filter(|(_, to)| to.port() == PORT).count(),
        0,
        "--port-mapping off made a mapping: {mapped:?}"
    );
    blocked(&net, SocketAddr::from((home.public_ip(), PORT)));
    assert!(
        off.sigterm().success(),
        "p2pd --port-mapping off exits 0 on SIGTERM"
    );
    assert!(
        witness.sigterm().success(),
        "the witness exits 0 on SIGTERM"
    );
}

#[test]
fn without_upnp_or_nat_pmp_the_daemon_runs_unmapped_and_stops_promptly() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let home = net.home(HomeId::B);
    let mut daemon = P2pd::start(&net, home, PORT, "auto");
    // Nothing answers its SSDP search, its PCP and NAT-PMP requests are refused: nothing
    // outside reaches it, and it goes on running.
    blocked(&net, SocketAddr::from((home.public_ip(), PORT)));
    assert!(
        daemon.is_running(),
        "p2pd stopped without a gateway to map on:\n{}",
        daemon.log()
    );
    // Told to stop while it may still be waiting for an answer, it exits within the
    // harness's bound all the same.
    let status = daemon.sigterm();
    assert!(status.success(), "p2pd exits 0 on SIGTERM: {status}");
}

#[test]
fn a_new_address_of_the_host_moves_the_mapping() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    let home = net.home(HomeId::A);
    let before = SocketAddrV4::new(home.host_ip(), PORT);
    let mut daemon = P2pd::start(&net, home, PORT, "auto");
    wait_for_mapping(home, before, MAPPING, &mut daemon);

    // The host gets another address on the LAN in place of its own, as from a new DHCP
    // lease (the default route goes with the old address, and comes back).
    let [a, b, c, _] = home.host_ip().octets();
    let new_ip = Ipv4Addr::new(a, b, c, 3);
    let script = format!(
        "addr del {}/24 dev eth0\naddr add {new_ip}/24 dev eth0\nroute replace default via {}\n",
        home.host_ip(),
        home.gateway_ip()
    );
    let mut ip = std::process::Command::new("ip");
    ip.args(["-n", home.host().name(), "-batch", "-"]);
    let out = run_bounded(&mut ip, Some(script.as_bytes()), CLIENT);
    assert!(out.status.success(), "ip: {}", stderr_of(&out));

    let after = SocketAddrV4::new(new_ip, PORT);
    let external = wait_for_mapping(home, after, REMAPPING, &mut daemon);
    // (miniupnpd lets only the old address remove the old mapping, so it may stay until its
    // lease ends: it is not looked at.)
    reaches_daemon(
        &net,
        SocketAddr::from((home.public_ip(), external)),
        &daemon,
    );
    assert!(daemon.sigterm().success(), "p2pd exits 0 on SIGTERM");
    assert_eq!(
        mapped_port(home, after),
        None,
        "the new mapping is removed at exit"
    );
}

#[test]
fn the_harness_reads_mappings_made_by_hand() {
    let Some(net) = Internet::build_or_skip() else {
        return;
    };
    if !have_client("upnpc", "miniupnpc") {
        return;
    }
    let home = net.home(HomeId::A);
    let ip = home.host_ip().to_string();
    run_ok(
        home.host(),
        "upnpc",
        &["-e", "by hand", "-a", &ip, "4100", "4200", "TCP", "600"],
    );
    let internal = SocketAddrV4::new(home.host_ip(), 4100);
    wait_for("the mapping made by hand", MAPPING, || {
        mapped_port(home, internal).ok_or_else(|| format!("{:?}", mappings(home)))
    });
    assert_eq!(mapped_port(home, internal), Some(4200));
    let entries = upnp_entries(home);
    assert!(
        entries.iter().any(|e| e.external == 4200
            && e.internal == internal
            && e.description == "by hand"
            && (1..=600).contains(&e.lease)),
        "{entries:?}"
    );
}
