//! Reachability behind NATs, in the small internet the tests build in network namespaces
//! (tests/src/netns.rs): both trackers on the public network; home A behind a NAT whose router
//! runs miniupnpd, B and B′ behind plain port-preserving NATs, C behind a NAT that picks a
//! random port for every connection; A and B also have IPv6.
//!
//! Every home shares a file and downloads every other home's; each download must complete
//! byte for byte, and `show_downloads --json` must say how each peer was reached: A through its
//! port mapping (or directly over IPv6 from B), B and B′ by a hole punch, C only through the
//! relay. A relayed download goes on through the standby when the primary tracker is killed.
//!
//! These tests need root and the tools named in tests/src/netns.rs; where namespaces cannot be
//! made they say so in one line and return (CI sets `P2P_REQUIRE_NETNS=1`, which makes that a
//! failure).

use p2p_e2e::netns::{HomeId, Internet};
use p2p_e2e::{Cluster, Daemon, assert_file_content, make_group, wait_for, write_test_file};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The peer port every daemon listens on (each home is a machine of its own).
const PEER_PORT: u16 = 4000;
/// How long the trackers' connect-back checks and a port mapping may take to show.
const REACH_TIMEOUT: Duration = Duration::from_secs(30);

/// The users, one per home.
const USERS: [(HomeId, &str); 4] = [
    (HomeId::A, "ann"),
    (HomeId::B, "ben"),
    (HomeId::B2, "bea"),
    (HomeId::C, "cal"),
];

/// The trackers on the public network, and one logged-in user's daemon in each home.
struct World {
    // Fields drop in order: the daemons and trackers before the namespaces they run in.
    daemons: Vec<(HomeId, Daemon)>,
    cluster: Cluster,
    net: Internet,
}

impl World {
    /// Builds the internet, starts both trackers and a daemon per home (each with the extra
    /// arguments `args` gives its home), all members of group `g`. `None` where namespaces
    /// cannot be made.
    fn build(args: impl Fn(HomeId) -> Vec<String>) -> Option<Self> {
        Self::build_with(|_| {}, |_, home| args(home))
    }

    /// Like [`build`](Self::build), running `prepare` on the internet before any process
    /// starts, and `args` seeing the internet.
    fn build_with(
        prepare: impl FnOnce(&Internet),
        args: impl Fn(&Internet, HomeId) -> Vec<String>,
    ) -> Option<Self> {
        let net = Internet::build_or_skip()?;
        prepare(&net);
        let addrs = [1, 2].map(|no| SocketAddr::new(net.tracker_ip(no), 7000 + no as u16));
        let mut cluster = Cluster::in_netns(net.public(), addrs);
        cluster.start_tracker(1);
        cluster.start_tracker(2);
        let listen = format!("[::]:{PEER_PORT}");
        let daemons: Vec<(HomeId, Daemon)> = USERS
            .iter()
            .map(|&(home, user)| {
                let mut extra = args(&net, home);
                // Test daemons map nothing by default (P2PD_PORT_MAPPING=off keeps them off
                // this machine's own gateway); here every home's gateway is the test's.
                if !extra.iter().any(|a| a == "--port-mapping") {
                    extra.extend(["--port-mapping".to_string(), "auto".to_string()]);
                }
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                let daemon = cluster.user_in(user, net.home(home).host(), &listen, &extra);
                (home, daemon)
            })
            .collect();
        let world = Self {
            daemons,
            cluster,
            net,
        };
        let members: Vec<&Daemon> = world.daemons[1..].iter().map(|(_, d)| d).collect();
        make_group(world.daemon(HomeId::A), "g", &members);
        Some(world)
    }

    fn daemon(&self, home: HomeId) -> &Daemon {
        &self
            .daemons
            .iter()
            .find(|(h, _)| *h == home)
            .expect("a daemon in every home")
            .1
    }

    /// Waits until `home`'s daemon knows, from the tracker, whether peers reach it; returns
    /// its `status --json`.
    #[track_caller]
    fn wait_reachability(&self, home: HomeId, expected: &str) -> Value {
        let daemon = self.daemon(home);
        wait_for(
            &format!("{}'s status to say reachable: {expected}", daemon.name()),
            REACH_TIMEOUT,
            || {
                let status = daemon.status();
                if status["reach"]["reachable"] == expected {
                    Ok(status)
                } else {
                    Err(status["reach"].to_string())
                }
            },
        )
    }
}

/// Shares a file of `size` bytes from `home` (named after its user) and returns its name and
/// content.
fn share(world: &World, home: HomeId, seed: u64, size: usize) -> (String, Vec<u8>) {
    let daemon = world.daemon(home);
    let name = format!("from-{}.bin", daemon.name());
    let path = daemon.dir().join(&name);
    let content = write_test_file(&path, seed, size);
    daemon.ok(&["upload_file", "g", &path.to_string_lossy()]);
    (name, content)
}

/// Starts `downloader`'s download of `name` into its own directory; returns the destination.
fn start_download(world: &World, downloader: HomeId, name: &str) -> PathBuf {
    let daemon = world.daemon(downloader);
    let dest = daemon.dir().join(format!("got-{name}"));
    daemon.ok(&["download_file", "g", name, &dest.to_string_lossy()]);
    dest
}

/// How the download says the peer of user `seeder` was reached.
#[track_caller]
fn via(download: &Value, seeder: &str) -> String {
    let sources = download["sources"].as_array().cloned().unwrap_or_default();
    let source = sources
        .iter()
        .find(|s| s["user"] == seeder)
        .unwrap_or_else(|| panic!("{seeder} is not among the sources of {download}"));
    source["via"]
        .as_str()
        .unwrap_or_else(|| panic!("a source without `via`: {source}"))
        .to_string()
}

/// The way a downloader in `from` reaches the only seeder, in `to`.
fn expected_way(from: HomeId, to: HomeId) -> &'static str {
    use HomeId::*;
    match (from, to) {
        // Both have IPv6, open end to end: tried first.
        (A, B) | (B, A) => "direct",
        // A's gateway mapped its port.
        (_, A) => "mapped",
        // Nothing can punch through C's NAT, in either direction.
        (C, _) | (_, C) => "relayed",
        // Port-preserving NATs on both sides (or a mapping on A's): a simultaneous open.
        _ => "punched",
    }
}

#[test]
fn every_home_downloads_from_every_other_the_way_its_nat_allows() {
    let Some(world) = World::build(|_| Vec::new()) else {
        return;
    };
    let a = world.wait_reachability(HomeId::A, "mapped");
    let mapping = &a["reach"]["mapping"];
    let a_public = world.net.home(HomeId::A).public_ip();
    assert!(
        mapping["external"]
            .as_str()
            .is_some_and(|e| e.starts_with(&format!("{a_public}:"))),
        "A's port mapping is on its router's public address {a_public}: {a}"
    );
    assert_eq!(a["reach"]["public_addr"], mapping["external"], "{a}");
    for home in [HomeId::B, HomeId::B2, HomeId::C] {
        let status = world.wait_reachability(home, "none");
        let public = world.net.home(home).public_ip().to_string();
        assert_eq!(
            status["reach"]["observed"], public,
            "the tracker sees {home:?} at its router's address: {status}"
        );
        assert!(
            status["reach"]["mapping"].is_null(),
            "no gateway of {home:?} maps ports: {status}"
        );
    }
    let b = world.daemon(HomeId::B).status();
    let b6 = world.net.home(HomeId::B).host_ip6().expect("B has IPv6");
    assert_eq!(
        b["reach"]["ipv6"],
        serde_json::json!([format!("[{b6}]:{PEER_PORT}")]),
        "B's IPv6 address is reachable: {b}"
    );

    let shared: Vec<(HomeId, String, Vec<u8>)> = USERS
        .iter()
        .enumerate()
        .map(|(i, &(home, _))| {
            // Odd seeds: the generator makes the same bytes of seeds 2k and 2k + 1.
            let (name, content) = share(&world, home, 11 + 2 * i as u64, 3 * 512 * 1024 + 777);
            (home, name, content)
        })
        .collect();
    for (home, name, _) in &shared {
        for &(downloader, _) in &USERS {
            if downloader != *home {
                world.daemon(downloader).wait_seeders("g", name, 1);
            }
        }
    }
    // One download at a time, each stopped sharing once complete: a downloader becomes a
    // source of what it has, and each download must meet only the home that shared the file.
    let mut ways = Vec::new();
    let mut pairs = Vec::new();
    for (seeder, name, content) in &shared {
        for &(downloader, _) in &USERS {
            if downloader == *seeder {
                continue;
            }
            let dest = start_download(&world, downloader, name);
            let done = world.daemon(downloader).wait_download("g", name);
            assert_file_content(&dest, content);
            let seeder_user = world.daemon(*seeder).name().to_string();
            ways.push((downloader, *seeder, via(&done, &seeder_user)));
            pairs.push((downloader, *seeder));
            world.daemon(downloader).ok(&["stop_share", "g", name]);
        }
    }
    let expected: Vec<(HomeId, HomeId, String)> = pairs
        .iter()
        .map(|&(d, s)| (d, s, expected_way(d, s).to_string()))
        .collect();
    assert_eq!(ways, expected, "how each downloader reached each seeder");
    world.cluster.assert_no_panics();
}

#[test]
fn a_relayed_download_goes_on_through_the_standby_when_the_primary_is_killed() {
    // B seeds slowly, so the download is still running when the primary goes.
    let Some(mut world) = World::build(|home| match home {
        HomeId::B => vec!["--upload-limit".into(), "2M".into()],
        _ => Vec::new(),
    }) else {
        return;
    };
    world.wait_reachability(HomeId::C, "none");
    let (name, content) = share(&world, HomeId::B, 77, 24 * 1024 * 1024);
    let cal = world.daemon(HomeId::C);
    cal.wait_seeders("g", &name, 1);
    let dest = start_download(&world, HomeId::C, &name);
    wait_for(
        "cal's relayed download to make progress",
        REACH_TIMEOUT,
        || {
            let d = cal.download("g", &name).ok_or("not listed yet")?;
            if d["pieces_done"].as_u64().unwrap_or(0) >= 4 && via(&d, "ben") == "relayed" {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    );
    world.cluster.kill9_tracker(1);
    let cal = world.daemon(HomeId::C);
    let done = cal.wait_download("g", &name);
    assert_file_content(&dest, &content);
    assert_eq!(via(&done, "ben"), "relayed", "{done}");
    let status = cal.status();
    assert_eq!(
        status["tracker"],
        world.cluster.tracker_addr(2).to_string(),
        "cal finished through the standby: {status}"
    );
}

#[test]
fn a_port_forward_made_by_hand_is_announced_with_public_addr() {
    // B's router forwards public port 5000 to B's daemon, as an operator would by hand.
    const FORWARDED: u16 = 5000;
    let forward = |net: &Internet| {
        let home = net.home(HomeId::B);
        let host = home.host_ip();
        for rule in [
            format!(
                "add rule inet filter prerouting_miniupnpd tcp dport {FORWARDED} \
                 dnat ip to {host}:{PEER_PORT}"
            ),
            format!("add rule inet filter miniupnpd ip daddr {host} tcp dport {PEER_PORT} accept"),
        ] {
            let args: Vec<&str> = rule.split_whitespace().collect();
            home.router().run_ok("nft", &args, REACH_TIMEOUT);
        }
    };
    let Some(world) = World::build_with(forward, |net, home| match home {
        HomeId::B => vec![
            "--port-mapping".into(),
            "off".into(),
            "--public-addr".into(),
            format!("{}:{FORWARDED}", net.home(HomeId::B).public_ip()),
        ],
        _ => Vec::new(),
    }) else {
        return;
    };
    let status = world.wait_reachability(HomeId::B, "direct");
    let public = format!("{}:{FORWARDED}", world.net.home(HomeId::B).public_ip());
    assert_eq!(status["reach"]["public_addr"], public, "{status}");
    // C, which reaches nobody but A without the relay, now dials B at its forward.
    let (name, content) = share(&world, HomeId::B, 5, 2 * 512 * 1024);
    world.daemon(HomeId::C).wait_seeders("g", &name, 1);
    let dest = start_download(&world, HomeId::C, &name);
    let done = world.daemon(HomeId::C).wait_download("g", &name);
    assert_file_content(&dest, &content);
    assert_eq!(via(&done, "ben"), "direct", "{done}");
}
