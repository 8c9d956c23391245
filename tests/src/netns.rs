//! A small internet in network namespaces, built by the test itself and torn down when it is
//! dropped (docs/ARCHITECTURE.md, "Test network (namespaces)").
//!
//! - The public namespace is the internet: one bridge, the trackers' addresses
//!   ([`Internet::tracker_ip`]) and two more for other public servers
//!   ([`Internet::server_ip`]), IPv4 11.0.0.0/24 and IPv6 2001:db8::/64.
//! - Each home ([`HomeId`]) is a router namespace (WAN address on the bridge, LAN
//!   192.168.<n>.0/24 masqueraded by nftables, a stateful firewall) and a host namespace (the
//!   user's machine, 192.168.<n>.2, default route via the router). Home A's router runs
//!   miniupnpd (UPnP-IGD and NAT-PMP); B and B′ are plain port-preserving NATs; C's NAT picks
//!   a random source port for every connection. A and B also have routed IPv6
//!   (2001:db8:<n>::/64), open in both directions.
//!
//! Building one needs root, `ip` (iproute2), `nft` (nftables) and `miniupnpd`
//! (miniupnpd-nftables). Where a namespace cannot be made, [`Internet::build_or_skip`] says so
//! in one line and the test returns, unless `P2P_REQUIRE_NETNS=1` is set (CI), which makes
//! that line a failure. Every name carries the process id and a counter, so tests build their
//! internets in parallel.

mod ns;
mod plan;
mod sock;

pub use ns::{Netns, NsProcess};
pub use plan::{HomeId, NATPMP_PORT, Nat, UPNP_HTTP_PORT};
pub use sock::{accept_within, has_pending};

use crate::process::{COMMAND_TIMEOUT, POLL_INTERVAL, READY_TIMEOUT, poll_until};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The environment variable that turns "namespaces cannot be made here" into a failure.
pub const REQUIRE_NETNS: &str = "P2P_REQUIRE_NETNS";

/// One home: its router and the user's machine behind it.
pub struct Home {
    id: HomeId,
    router: Netns,
    host: Netns,
}

impl Home {
    /// Which home this is.
    pub fn id(&self) -> HomeId {
        self.id
    }

    /// How its router translates.
    pub fn nat(&self) -> Nat {
        self.id.nat()
    }

    /// The router's namespace.
    pub fn router(&self) -> &Netns {
        &self.router
    }

    /// The user's machine's namespace.
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// The router's address on the public network: what the rest of the internet sees the
    /// home's IPv4 connections come from.
    pub fn public_ip(&self) -> Ipv4Addr {
        self.id.wan_ip()
    }

    /// The router's address on the LAN: the host's gateway, where miniupnpd answers in A.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        self.id.lan_ip(1)
    }

    /// The host's IPv4 address on the LAN.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.id.lan_ip(2)
    }

    /// The host's IPv6 address (global, reachable from everywhere), in homes that have IPv6.
    pub fn host_ip6(&self) -> Option<Ipv6Addr> {
        self.id.has_ipv6().then(|| self.id.lan_ip6(2))
    }
}

/// The whole test internet. Dropping it kills the daemons it started and deletes every
/// namespace (which takes their interfaces, rules and connections with it) and its temporary
/// directory.
pub struct Internet {
    dir: tempfile::TempDir,
    public: Netns,
    homes: Vec<Home>,
    /// Every namespace that exists, for the teardown.
    made: Vec<Netns>,
    miniupnpd: Option<NsProcess>,
}

/// Tells the tests of one process apart; the pid tells processes apart.
static BUILT: AtomicUsize = AtomicUsize::new(0);

impl Internet {
    /// Builds the public network and homes A, B, B′ and C. `Err` says why namespaces cannot
    /// be made here (not root, a program missing); a failure after that is a bug of the
    /// harness or the system, and panics.
    pub fn build() -> Result<Self, String> {
        for (program, package) in [
            ("ip", "iproute2"),
            ("nft", "nftables"),
            ("miniupnpd", "miniupnpd-nftables"),
        ] {
            if find_program(program).is_none() {
                return Err(format!(
                    "`{program}` not found; install the Debian package {package}"
                ));
            }
        }
        let id = format!(
            "p2pt{}-{}",
            std::process::id(),
            BUILT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let public = Netns::new(format!("{id}-pub"));
        let homes: Vec<Home> = HomeId::ALL
            .iter()
            .map(|&home| Home {
                id: home,
                router: Netns::new(format!("{id}-r{}", home.tag())),
                host: Netns::new(format!("{id}-h{}", home.tag())),
            })
            .collect();
        let all: Vec<Netns> = std::iter::once(public.clone())
            .chain(
                homes
                    .iter()
                    .flat_map(|h| [h.router.clone(), h.host.clone()]),
            )
            .collect();
        add_namespaces(&all)?;
        let mut internet = Self {
            dir,
            public,
            homes,
            made: all,
            miniupnpd: None,
        };
        internet.wire();
        internet.start_miniupnpd();
        Ok(internet)
    }

    /// [`build`](Self::build), or, where namespaces cannot be made, one line saying so on
    /// stderr and `None` (the test then returns); with `P2P_REQUIRE_NETNS=1`, a panic with
    /// that line.
    pub fn build_or_skip() -> Option<Self> {
        match Self::build() {
            Ok(internet) => Some(internet),
            Err(why) => {
                skip(&format!(
                    "network namespaces unavailable, test skipped: {why}"
                ));
                None
            }
        }
    }

    /// The public network's namespace, where the trackers and other public servers run.
    pub fn public(&self) -> &Netns {
        &self.public
    }

    /// One home.
    pub fn home(&self, id: HomeId) -> &Home {
        self.homes
            .iter()
            .find(|h| h.id == id)
            .expect("every home is built")
    }

    /// Every home, A, B, B′, C.
    pub fn homes(&self) -> &[Home] {
        &self.homes
    }

    /// The IPv4 address for tracker `no` (1 or 2) on the public network (held by the public
    /// namespace: a tracker started there binds it).
    pub fn tracker_ip(&self, no: usize) -> IpAddr {
        IpAddr::V4(plan::public_ip(tracker_no(no)))
    }

    /// Like [`tracker_ip`](Self::tracker_ip), IPv6.
    pub fn tracker_ip6(&self, no: usize) -> IpAddr {
        IpAddr::V6(plan::public_ip6(tracker_no(no)))
    }

    /// The IPv4 address of public server `no` (1 or 2), for anything else that runs on the
    /// public network (a relay, a test's listener).
    pub fn server_ip(&self, no: usize) -> IpAddr {
        IpAddr::V4(plan::public_ip(server_no(no)))
    }

    /// Like [`server_ip`](Self::server_ip), IPv6.
    pub fn server_ip6(&self, no: usize) -> IpAddr {
        IpAddr::V6(plan::public_ip6(server_no(no)))
    }

    /// A temporary directory that lives as long as the internet (logs, configurations).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `Err` with the end of its log if home A's miniupnpd has exited.
    pub fn check_miniupnpd(&mut self) -> Result<(), String> {
        match self.miniupnpd.as_mut() {
            Some(daemon) => daemon.check_running(),
            None => Err("miniupnpd was not started".to_string()),
        }
    }

    /// The pid of home A's miniupnpd.
    pub fn miniupnpd_pid(&self) -> Option<u32> {
        self.miniupnpd.as_ref().map(NsProcess::pid)
    }

    /// Every namespace of this internet.
    pub fn namespaces(&self) -> &[Netns] {
        &self.made
    }

    /// The end of miniupnpd's log, for failure messages.
    pub fn miniupnpd_log(&self) -> String {
        self.miniupnpd
            .as_ref()
            .map(|d| d.log_tail(30))
            .unwrap_or_default()
    }

    /// Interfaces, addresses, routes, forwarding and each router's ruleset.
    fn wire(&self) {
        for ns in &self.made {
            // Addresses are usable at once: no duplicate address detection on the links'
            // IPv6 addresses (the global ones are added with `nodad`).
            ns.sysctl("net/ipv6/conf/default/accept_dad", "0");
            ns.sysctl("net/ipv6/conf/all/accept_dad", "0");
        }
        self.public.sysctl("net/ipv6/conf/all/forwarding", "1");
        for home in &self.homes {
            home.router.sysctl("net/ipv4/ip_forward", "1");
            home.router.sysctl("net/ipv6/conf/all/forwarding", "1");
            ip_batch(
                &home.router,
                &plan::router_script(home.id, self.public.name(), home.host.name()),
            );
        }
        let ids: Vec<HomeId> = self.homes.iter().map(|h| h.id).collect();
        ip_batch(&self.public, &plan::public_script(&ids));
        for home in &self.homes {
            ip_batch(&home.host, &plan::host_script(home.id));
            let rules = self.dir().join(format!("router-{}.nft", home.id.tag()));
            write(&rules, &plan::router_ruleset(home.id));
            let mut nft = home.router.command(program("nft"));
            nft.arg("-f").arg(&rules);
            expect_success(&mut nft, None);
        }
    }

    /// miniupnpd in home A's router, in the foreground, its pid file and configuration in
    /// the temporary directory; ready once its HTTP port accepts a connection from the host.
    fn start_miniupnpd(&mut self) {
        let home = self.home(HomeId::A);
        let (router, host, gateway) = (home.router.clone(), home.host.clone(), home.gateway_ip());
        let conf = self.dir().join("miniupnpd.conf");
        let uuid = format!("3e6b2bd6-7f0b-4f1e-9a49-{:012x}", std::process::id());
        write(&conf, &plan::miniupnpd_conf(HomeId::A, &uuid));
        let pid_file = self.dir().join("miniupnpd.pid");
        let log = self.dir().join("miniupnpd.log");
        let args = [
            "-f".as_ref(),
            conf.as_os_str(),
            "-d".as_ref(),
            "-P".as_ref(),
            pid_file.as_os_str(),
        ];
        let daemon = self
            .miniupnpd
            .insert(router.spawn(program("miniupnpd"), &args, &log));
        let http = SocketAddr::from((gateway, UPNP_HTTP_PORT));
        let ready = poll_until(READY_TIMEOUT, POLL_INTERVAL, || {
            daemon.check_running()?;
            host.tcp_connect(http, Duration::from_secs(1))
                .map(drop)
                .map_err(|e| format!("cannot connect to {http}: {e}"))
        });
        if let Err(why) = ready {
            panic!(
                "miniupnpd not ready within {READY_TIMEOUT:?}: {why}; log: {}",
                daemon.log_tail(30)
            );
        }
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        // Its processes first: a namespace lives on while a process is in it.
        self.miniupnpd = None;
        let script: String = self
            .made
            .iter()
            .map(|ns| format!("netns del {}\n", ns.name()))
            .collect();
        let mut cmd = Command::new(program("ip"));
        cmd.args(["-force", "-batch", "-"]);
        let (status, stderr) = run_short(&mut cmd, &script);
        if !status.success() {
            eprintln!(
                "cannot delete the test network's namespaces: {}",
                stderr.trim()
            );
        }
    }
}

/// With `P2P_REQUIRE_NETNS=1`, a panic with `line`; otherwise `line` on stderr (the caller
/// then returns).
pub fn skip(line: &str) {
    if std::env::var(REQUIRE_NETNS).is_ok_and(|v| v == "1") {
        panic!("{line} ({REQUIRE_NETNS}=1)");
    }
    eprintln!("{line}");
}

/// Whether a test client (`upnpc`, `natpmpc`) is installed; if not, [`skip`]s with a line
/// naming its Debian package.
pub fn have_client(program: &str, package: &str) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    skip(&format!(
        "`{program}` not found, this part skipped; install the Debian package {package}"
    ));
    false
}

/// The absolute path of `name`, searched in PATH and in the sbin directories (a non-root
/// PATH often lacks them).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// [`find_program`], or the bare name (its absence was checked when the internet was built).
fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| PathBuf::from(name))
}

fn tracker_no(no: usize) -> u8 {
    match no {
        1 => 1,
        2 => 2,
        _ => panic!("tracker {no} is not 1 or 2"),
    }
}

fn server_no(no: usize) -> u8 {
    match no {
        1 => 3,
        2 => 4,
        _ => panic!("public server {no} is not 1 or 2"),
    }
}

/// Adds the namespaces (one left by a dead process with the same pid is deleted first). `Err`
/// if `ip netns add` fails, which is what "namespaces cannot be made here" looks like; the
/// ones made before are deleted again.
fn add_namespaces(all: &[Netns]) -> Result<(), String> {
    let stale: String = all
        .iter()
        .filter(|ns| ns.path().exists())
        .map(|ns| format!("netns del {}\n", ns.name()))
        .collect();
    let script: String = all
        .iter()
        .map(|ns| format!("netns add {}\n", ns.name()))
        .collect();
    // No -force: the first failure stops the batch, and its message is the reason.
    let mut cmd = Command::new(program("ip"));
    cmd.args(["-batch", "-"]);
    let (status, stderr) = run_short(&mut cmd, &format!("{stale}{script}"));
    if status.success() {
        return Ok(());
    }
    let made: String = all
        .iter()
        .filter(|ns| ns.path().exists())
        .map(|ns| format!("netns del {}\n", ns.name()))
        .collect();
    let mut undo = Command::new(program("ip"));
    undo.args(["-force", "-batch", "-"]);
    run_short(&mut undo, &made);
    let reason = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    Err(format!(
        "`ip netns add` failed ({status}): {}",
        reason.unwrap_or("no message")
    ))
}

/// Runs `script` with `ip -n <ns> -batch -`; panics with its stderr if a line fails.
fn ip_batch(ns: &Netns, script: &str) {
    let mut cmd = Command::new(program("ip"));
    cmd.args(["-n", ns.name(), "-batch", "-"]);
    expect_success(&mut cmd, Some(script));
}

fn expect_success(cmd: &mut Command, input: Option<&str>) {
    let (status, stderr) = run_short(cmd, input.unwrap_or_default());
    assert!(
        status.success(),
        "{cmd:?} failed with {status}: {}{}",
        stderr.trim(),
        input.map(|i| format!("\ninput:\n{i}")).unwrap_or_default()
    );
}

/// Runs one of the quick configuration commands (`ip`, `nft`) with `input` on its stdin, and
/// gives its exit status and stderr. Like [`run_bounded`](crate::run_bounded), but polls often: building an
/// internet runs a dozen of them, and a poll at the suite's usual interval would double the
/// time it takes. Their output is a few lines, so pipes cannot fill up.
fn run_short(cmd: &mut Command, input: &str) -> (ExitStatus, String) {
    use std::io::{Read, Write};
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        // The program may legitimately exit without reading everything.
        let _ = stdin.write_all(input.as_bytes());
    }
    let status = match poll_until(COMMAND_TIMEOUT, Duration::from_millis(1), || {
        match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(String::new()),
            Err(e) => panic!("cannot wait for {cmd:?}: {e}"),
        }
    }) {
        Ok(status) => status,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {COMMAND_TIMEOUT:?}");
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
