//! Keys are pinned (docs/SECURITY.md, "Trackers are pinned" and "Grants"): a daemon accepts
//! only the tracker key it pinned on first use or that tracker_info.txt names, and a downloader
//! only the seeder key the tracker listed. The impostors are [`FakeServer`]s: real TLS with a
//! key of their own, on the port the real process had.

use p2p_e2e::tls::{FakeServer, Seen, new_identity};
use p2p_e2e::wire::IO_TIMEOUT;
use p2p_e2e::{Cluster, Daemon, assert_fails, make_group, stderr_of, wait_for, write_test_file};
use p2p_proto::identity::Identity;
use serde_json::{Value, json};

/// Every connection the fake got ended in a failed TLS handshake, before any application data:
/// no request (no password, no token) reached it.
#[track_caller]
fn assert_nothing_reached(fake: &FakeServer) {
    let seen: Vec<Seen> = fake.wait_all_done(IO_TIMEOUT);
    for s in &seen {
        assert!(
            matches!(s.handshake, Some(Err(_))) && s.received.is_empty(),
            "a connection to the fake at {} got past the handshake or sent data: {seen:?}",
            fake.addr()
        );
    }
}

/// A fake tracker that answers every request with an empty group list (under the request's
/// id), so a daemon that accepts its key sees a working tracker.
fn fake_tracker(cluster: &Cluster, identity: Identity) -> FakeServer {
    FakeServer::tracker(cluster.tracker_addr(1), identity, |request: &Value| {
        Some(json!({
            "v": 2, "id": request["id"],
            "result": {"Ok": {"reply": "groups", "groups": []}},
        }))
    })
}

/// A logged-in daemon for a new user `name` whose tracker_info.txt lists tracker 1 alone, as
/// `line` (its address, with or without a fingerprint): a key refused there is then the whole
/// story of a failed call (the last test has two trackers).
fn user_of_tracker_1(cluster: &Cluster, name: &str, line: &str) -> Daemon {
    let info = cluster.root().join(format!("tracker_info-{name}.txt"));
    std::fs::write(&info, format!("{line}\n")).unwrap();
    let mut daemon = cluster.daemon_unstarted(name);
    daemon.set_tracker_info(&info);
    daemon.start();
    daemon.create_user(name);
    daemon.login(name);
    daemon
}

/// Stops both trackers; the daemons then reach only what listens on their ports.
fn stop_trackers(cluster: &mut Cluster) {
    cluster.quit_tracker(2);
    cluster.quit_tracker(1);
}

#[test]
fn a_changed_tracker_key_is_refused_until_trusted() {
    let mut cluster = Cluster::start();
    let addr = cluster.tracker_addr(1);
    let alice = user_of_tracker_1(&cluster, "alice", &addr.to_string());
    let pinned = cluster.tracker_fingerprint(1);
    assert_eq!(alice.status()["tracker_fingerprint"], pinned.as_str());
    stop_trackers(&mut cluster);
    let fake = fake_tracker(&cluster, new_identity());
    let presented = fake.fingerprint().to_string();

    let out = alice.ctl(&["list_groups"]);
    assert_fails(&out, &format!("tracker {addr} presented key {presented}"));
    let line = stderr_of(&out);
    for part in [
        format!("but {pinned} is pinned for it"),
        format!("`p2pctl trust_tracker {addr} {presented}`"),
    ] {
        assert!(
            line.contains(&part),
            "the error line should say {part:?}: {line}"
        );
    }
    assert_nothing_reached(&fake);

    assert_eq!(
        alice.ok(&["trust_tracker", &addr.to_string(), &presented]),
        format!("tracker {addr} is trusted with key {presented}")
    );
    assert!(alice.groups().is_empty(), "the fake's answer is taken");
    let seen = fake.seen();
    let asked = seen
        .iter()
        .find(|s| String::from_utf8_lossy(&s.received).contains("\"list_groups\""))
        .unwrap_or_else(|| panic!("the request reached the now trusted fake: {seen:?}"));
    assert_eq!(
        asked.handshake,
        Some(Ok(alice_key(&alice))),
        "over a completed handshake with alice's key"
    );
}

#[test]
fn a_fingerprinted_tracker_info_accepts_only_the_keys_it_names() {
    let mut cluster = Cluster::start_fingerprinted();
    let listed = cluster.tracker_fingerprint(1);
    let info = std::fs::read_to_string(cluster.tracker_info()).unwrap();
    let addr = cluster.tracker_addr(1);
    assert!(info.contains(&format!("{addr} {listed}\n")), "{info}");
    let alice = user_of_tracker_1(&cluster, "alice", &format!("{addr} {listed}"));
    assert_eq!(alice.status()["tracker_fingerprint"], listed.as_str());
    stop_trackers(&mut cluster);
    let fake = fake_tracker(&cluster, new_identity());
    let presented = fake.fingerprint().to_string();

    let out = alice.ctl(&["list_groups"]);
    assert_fails(
        &out,
        &format!(
            "tracker {addr} presented key {presented}, but tracker_info.txt names {listed} for it"
        ),
    );
    assert_nothing_reached(&fake);

    alice.expect_error(
        &["trust_tracker", &addr.to_string(), &presented],
        "conflict",
        &format!(
            "tracker_info.txt names key {listed} for {addr}; edit that line to change the key \
             it accepts"
        ),
    );
    let out = alice.ctl(&["list_groups"]);
    assert_fails(&out, "but tracker_info.txt names");
    assert_nothing_reached(&fake);
}

/// The fingerprint of `daemon`'s key, as its identity file holds it.
fn alice_key(daemon: &Daemon) -> p2p_proto::identity::Fingerprint {
    Identity::load_or_create(&daemon.state_dir().join("identity.key"))
        .unwrap()
        .fingerprint()
}

#[test]
fn a_seeder_impostor_gets_banned_and_gives_nothing() {
    let cluster = Cluster::start();
    let mut alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let path = alice.dir().join("data.bin");
    write_test_file(&path, 21, 2 * 512 * 1024 + 99);
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    bob.wait_seeders("g1", "data.bin", 1);
    let seeder = alice.peer_addr();
    let listed = alice.status()["fingerprint"].as_str().unwrap().to_string();

    // alice dies without a word; the tracker still lists her (and her key) for a while, and
    // someone else takes her port.
    alice.kill9();
    let fake = FakeServer::listen(seeder, new_identity());
    let presented = fake.fingerprint().to_string();
    let dest = bob.dir().join("data.bin");
    bob.ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);

    let peer = seeder.to_string();
    let download = wait_for("bob's download to ban the impostor", IO_TIMEOUT, || {
        let d = bob.download("g1", "data.bin").ok_or("no download")?;
        if d["banned"].as_array().is_some_and(|b| !b.is_empty()) {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    });
    assert_eq!(
        download["banned"],
        json!([{
            "peer": peer,
            "reason": format!("presented key {presented}, not the {listed} the tracker listed"),
        }]),
        "{download}"
    );
    assert_eq!(
        download["pieces_done"], 0,
        "nothing taken from it: {download}"
    );
    assert_eq!(download["bytes_done"], 0, "{download}");
    assert_nothing_reached(&fake);
}

#[test]
fn status_shows_the_daemon_and_tracker_fingerprints() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let status = alice.status();
    assert_eq!(
        status["fingerprint"],
        alice_key(&alice).to_string().as_str()
    );
    assert_eq!(
        status["tracker"],
        cluster.tracker_addr(1).to_string().as_str()
    );
    assert_eq!(
        status["tracker_fingerprint"],
        cluster.tracker_fingerprint(1).as_str(),
        "{status}"
    );
}

/// The story of the first test with the cluster's own tracker_info.txt (both trackers), both
/// stopped and the fake on tracker 1's port: the other tracker's "cannot connect" does not
/// hide the changed key.
#[test]
fn a_changed_tracker_key_is_named_while_the_other_tracker_is_down() {
    let mut cluster = Cluster::start();
    let alice = cluster.user("alice");
    let pinned = cluster.tracker_fingerprint(1);
    stop_trackers(&mut cluster);
    let fake = fake_tracker(&cluster, new_identity());
    let presented = fake.fingerprint().to_string();
    let addr = cluster.tracker_addr(1);

    let out = alice.ctl(&["list_groups"]);
    assert_fails(
        &out,
        &format!(
            "tracker {addr} presented key {presented}, but {pinned} is pinned for it; if its key \
             was changed on purpose, run `p2pctl trust_tracker {addr} {presented}`"
        ),
    );
    assert_nothing_reached(&fake);
}
