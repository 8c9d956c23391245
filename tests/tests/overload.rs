//! Overload and abuse from one address (docs/SECURITY.md, "Denial of service"): the attacker
//! connects from 127.0.0.2, honest users from 127.0.0.1. An idle flood is cut off and starves
//! neither clients nor the cluster link; guessing is slowed per account, and an unknown user
//! gets the answer a wrong password gets; account farming is limited per address; frames
//! before a session is proven are small.

use p2p_e2e::adversary::Adversary;
use p2p_e2e::failover::{CATCH_UP_TIMEOUT, settled_cluster};
use p2p_e2e::source::{ATTACKER, tcp_from};
use p2p_e2e::tls::TlsConn;
use p2p_e2e::wire::{one_frame_then_closed, write_lenient};
use p2p_e2e::{Cluster, password_of};
use serde_json::{Value, json};
use std::io::Read;
use std::time::Duration;

/// Connections the attacker opens to each tracker: far more than one address may hold.
const FLOOD: usize = 200;

/// Reads from `stream` until the other end closes it; true if it did within `limit`.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn an_idle_flood_from_one_address_is_cut_off_and_starves_nobody() {
    let mut cluster = settled_cluster();
    let alice = cluster.user("alice");
    let before = cluster.tracker_status(1);
    let mut flood = Vec::new();
    for no in 1..=2 {
        for _ in 0..FLOOD {
            flood.push(tcp_from(ATTACKER, cluster.tracker_addr(no)).expect("flood connect"));
        }
    }
    // While the flood holds every socket it can: the honest user is served, the standby stays
    // attached and nobody takes over.
    alice.ok(&["create_group", "g1"]);
    alice.ok(&["list_groups"]);
    let (primary, standby) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    assert_eq!(primary.epoch, before.epoch, "{}", primary.line);
    assert_eq!(standby.leader, 1, "{}", standby.line);
    // Every flood connection is closed by the trackers: those over the per-address cap at
    // once, the admitted ones when their handshake time runs out.
    let mut open = 0;
    for stream in &mut flood {
        if !closed_within(stream, Duration::from_secs(20)) {
            open += 1;
        }
    }
    assert_eq!(open, 0, "flood connections the trackers left open");
    alice.ok(&["list_groups"]);
}

/// A user `name` created by an honest client; returns its password.
fn honest_account(cluster: &Cluster, name: &str) -> String {
    let mut honest = Adversary::new(cluster.tracker_addr(1));
    let password = password_of(name);
    honest.ok(json!({"op": "create_user", "user": name, "password": password}));
    password
}

fn login(user: &str, password: &str) -> Value {
    json!({"op": "login", "user": user, "password": password})
}

#[track_caller]
fn assert_error(error: &Value, kind: &str, message: &str) {
    assert_eq!(error["kind"], kind, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(message)),
        "{error} should say {message:?}"
    );
}

#[test]
fn guessing_is_slowed_per_account_and_an_unknown_user_looks_like_a_wrong_password() {
    let cluster = Cluster::start();
    let password = honest_account(&cluster, "bob");
    let mut attacker = Adversary::from_source(cluster.tracker_addr(1), ATTACKER);
    for user in ["bob", "nobody"] {
        for _ in 0..5 {
            let error = attacker.err(login(user, "guess"));
            assert_eq!(
                error,
                json!({"kind": "auth_failed", "message": "wrong user id or password"}),
                "{user}"
            );
        }
        let error = attacker.err(login(user, "guess"));
        assert_error(
            &error,
            "rate_limited",
            &format!("too many failed logins for {user}; try again in 1s"),
        );
    }
    // The delay holds for the right password too (it is not even checked) ...
    let error = attacker.err(login("bob", &password));
    assert_error(&error, "rate_limited", "too many failed logins for bob");
    // ... and for nobody else's account.
    let carol = honest_account(&cluster, "carol");
    let mut honest = Adversary::new(cluster.tracker_addr(1));
    honest.login("carol", &carol);
}

#[test]
fn one_address_gets_its_rates_and_another_address_its_own() {
    let cluster =
        Cluster::start_with_tracker_args(&["--logins-per-minute", "3", "--accounts-per-hour", "2"]);
    let mut attacker = Adversary::from_source(cluster.tracker_addr(1), ATTACKER);
    for n in 0..2 {
        let user = format!("farm{n}");
        attacker.ok(json!({"op": "create_user", "user": user, "password": password_of(&user)}));
    }
    let error = attacker.err(json!({"op": "create_user", "user": "farm2", "password": "x1234567"}));
    assert_error(
        &error,
        "rate_limited",
        "too many accounts created from your address",
    );
    for _ in 0..3 {
        attacker.err(login("farm0", "guess"));
    }
    let error = attacker.err(login("farm0", &password_of("farm0")));
    assert_error(
        &error,
        "rate_limited",
        "too many login attempts from your address",
    );
    // 127.0.0.1 has rates of its own.
    let password = honest_account(&cluster, "dave");
    Adversary::new(cluster.tracker_addr(1)).login("dave", &password);
}

#[test]
fn a_large_frame_before_a_session_is_refused_unread() {
    let cluster = Cluster::start();
    let tcp = tcp_from(ATTACKER, cluster.tracker_addr(1)).unwrap();
    let mut conn = TlsConn::over(
        tcp,
        &p2p_e2e::tls::new_identity(),
        p2p_proto::tls::Expect::AnyKey,
    )
    .unwrap();
    // A header announcing 1 MiB, and a little of it.
    let mut bytes = (1u32 << 20).to_be_bytes().to_vec();
    bytes.extend_from_slice(b"{\"v\":2,\"id\":\"x\",\"call\":{\"op\":\"upload_file\"");
    write_lenient(&mut conn, &bytes);
    let reply = one_frame_then_closed(&mut conn, "a 1 MiB frame before any session");
    assert_error(
        &reply["result"]["Err"],
        "protocol",
        "frame of more than 65536 bytes refused",
    );
}
