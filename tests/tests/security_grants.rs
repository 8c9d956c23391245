//! Grants, from the attacker's side (docs/SECURITY.md, "Grants" and "Membership changes"): a
//! grant is bound to the key it was issued to, lives `--grant-lifetime` and is checked on every
//! request, names a group by its internal id, and is only honoured by a seeder that shares the
//! file itself in that very group. The attackers are test clients with keys of their own
//! ([`Adversary`], [`PeerConn`]) speaking to real trackers and a real seeder.

use p2p_e2e::adversary::{Adversary, Greeting, PeerConn, file_meta, wait_expired, wait_unix_past};
use p2p_e2e::tls::new_identity;
use p2p_e2e::wire::peer;
use p2p_e2e::{Cluster, Daemon, make_group, sha1_hex, write_test_file};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// Three pieces and a bit.
const SIZE: usize = 3 * 512 * 1024 + 4321;

/// `owner` shares a new test file `name` (made from `seed`) in `group`; returns its bytes,
/// its SHA-1 and the address of `owner`'s seeder.
#[track_caller]
fn share(owner: &Daemon, group: &str, name: &str, seed: u64) -> (Vec<u8>, String, SocketAddr) {
    let path = owner.dir().join(name);
    let content = write_test_file(&path, seed, SIZE);
    owner.ok(&["upload_file", group, &path.to_string_lossy()]);
    let sha1 = sha1_hex(&content);
    (content, sha1, owner.peer_addr())
}

/// The error a tracker call answered, as (kind, message).
#[track_caller]
fn refusal(client: &mut Adversary, call: Value) -> (String, String) {
    let error = client.err(call);
    (
        error["kind"].as_str().unwrap().to_string(),
        error["message"].as_str().unwrap().to_string(),
    )
}

#[track_caller]
fn assert_welcome(greeting: Greeting, what: &str) {
    assert!(
        matches!(greeting, Greeting::Welcome(_)),
        "{what}: the seeder should WELCOME, it answered {greeting:?}"
    );
}

#[test]
fn a_grant_captured_by_one_key_is_useless_to_another() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let (content, sha1, seeder) = share(&alice, "g1", "data.bin", 11);

    // Key A logs in as bob, a real member, and gets a grant naming key A.
    let mut spy = Adversary::logged_in(cluster.tracker_addr(1), "bob");
    let grant = spy.fetch("g1", "data.bin")["grant"].clone();
    assert_eq!(grant["downloader"], spy.identity.fingerprint().to_string());

    let mut with_a = PeerConn::connect(seeder, &spy.identity);
    assert_welcome(
        with_a.hello(&sha1, &grant),
        "the grant from the key it names",
    );
    with_a.expect_piece(0, &content);

    // The same grant bytes from a connection proving another key.
    let mut with_b = PeerConn::connect(seeder, &new_identity());
    assert_eq!(
        with_b.hello(&sha1, &grant),
        Greeting::Error("grant was issued to another key".into())
    );
    assert_eq!(
        with_b.next_frame(),
        None,
        "the seeder closes after refusing"
    );
}

#[test]
fn a_member_who_left_keeping_its_grants_is_cut_off_within_the_grant_lifetime() {
    let cluster = Cluster::start_with_tracker_args(&["--grant-lifetime", "4s"]);
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let (content, sha1, seeder) = share(&alice, "g1", "data.bin", 12);

    let mut spy = Adversary::logged_in(cluster.tracker_addr(1), "bob");
    let grant = spy.fetch("g1", "data.bin")["grant"].clone();
    let lifetime = grant["expires"].as_u64().unwrap() - p2p_e2e::adversary::unix_now();
    assert!(lifetime <= 4, "the grant lives --grant-lifetime: {grant}");
    let mut conn = PeerConn::connect(seeder, &spy.identity);
    assert_welcome(conn.hello(&sha1, &grant), "bob's grant while a member");
    conn.expect_piece(0, &content);

    // bob leaves, keeping the grant and the open connection.
    let left = spy.ok(json!({"op": "leave_group", "group": "g1"}));
    assert_eq!(left["removed"], false, "alice is still in g1: {left}");
    let not_member = (
        "permission_denied".to_string(),
        "you are not a member of g1".to_string(),
    );
    let fetch = json!({"op": "fetch_file", "group": "g1", "name": "data.bin"});
    assert_eq!(
        refusal(&mut spy, fetch),
        not_member,
        "fetch_file after leaving"
    );
    // Nor can the running "download" renew its grant: no new grant is issued.
    let peers = json!({"op": "peers", "group": "g1", "name": "data.bin"});
    assert_eq!(refusal(&mut spy, peers), not_member, "peers after leaving");

    wait_expired(&grant);
    assert_eq!(
        conn.request(1),
        Some((peer::ERROR, b"grant expired".to_vec())),
        "a request on the open connection once the grant expired"
    );
    assert_eq!(conn.next_frame(), None, "the seeder closes the connection");
    // The old grant opens no new connection either.
    let mut again = PeerConn::connect(seeder, &spy.identity);
    assert_eq!(
        again.hello(&sha1, &grant),
        Greeting::Error("grant expired".into())
    );
}

#[test]
fn a_renewed_grant_keeps_a_connection_going_past_the_first_grants_expiry() {
    let cluster = Cluster::start_with_tracker_args(&["--grant-lifetime", "3s"]);
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let (content, sha1, seeder) = share(&alice, "g1", "data.bin", 13);

    let mut spy = Adversary::logged_in(cluster.tracker_addr(1), "bob");
    let first = spy.fetch("g1", "data.bin")["grant"].clone();
    let first_expires = first["expires"].as_u64().unwrap();
    let mut conn = PeerConn::connect(seeder, &spy.identity);
    assert_welcome(conn.hello(&sha1, &first), "the first grant");
    conn.expect_piece(0, &content);

    // A grant issued a second later expires later; the connection gets it before the first
    // one expires, as a downloader renews.
    wait_unix_past(first_expires - 3);
    let peers = json!({"op": "peers", "group": "g1", "name": "data.bin"});
    let fresh = spy.ok(peers)["grant"].clone();
    assert!(
        fresh["expires"].as_u64().unwrap() > first_expires,
        "a fresh grant outlives the first: {first} then {fresh}"
    );
    conn.renew(&fresh);

    wait_expired(&first);
    conn.expect_piece(1, &content);
    // Without the renewal the first grant is worth nothing now.
    let mut stale = PeerConn::connect(seeder, &spy.identity);
    assert_eq!(
        stale.hello(&sha1, &first),
        Greeting::Error("grant expired".into())
    );
}

#[test]
fn a_recreated_group_is_another_group() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    alice.ok(&["create_group", "secretg"]);
    let (_, sha1, seeder) = share(&alice, "secretg", "plans.bin", 14);
    // alice's file as the tracker recorded it, and the group's id.
    let mut alice_elsewhere = Adversary::logged_in(cluster.tracker_addr(1), "alice");
    let old = alice_elsewhere.fetch("secretg", "plans.bin");

    // alice leaves from another session, so her daemon is not told and may still hold its
    // share (with the old group's id). She was alone: the group goes.
    let left = alice_elsewhere.ok(json!({"op": "leave_group", "group": "secretg"}));
    assert_eq!(left["removed"], true, "alice was alone in secretg: {left}");

    // mallory takes the name and registers the same metadata (she has the hashes, not the
    // bytes), then stops offering it herself.
    let mut mallory = Adversary::new_account(cluster.tracker_addr(1), "mallory");
    mallory.ok(json!({"op": "create_group", "group": "secretg"}));
    let shared = mallory.ok(json!({
        "op": "upload_file", "group": "secretg", "file": old["meta"], "port": 9
    }));
    assert_ne!(
        shared["group_id"], old["group_id"],
        "a re-created group has a new internal id"
    );
    mallory.ok(json!({"op": "stop_share", "group": "secretg", "name": "plans.bin"}));
    let files = mallory.ok(json!({"op": "list_files", "group": "secretg"}));
    assert_eq!(
        files["files"],
        json!([{"name": "plans.bin", "size": SIZE, "seeders": 0}]),
        "nobody seeds the new group's file: {files}"
    );
    let details = mallory.fetch("secretg", "plans.bin");
    assert_eq!(
        details["peers"],
        json!([]),
        "alice is no holder in the new group"
    );
    assert_eq!(details["grant"]["group_id"], shared["group_id"]);

    let mut conn = PeerConn::connect(seeder, &mallory.identity);
    assert_eq!(
        conn.hello(&sha1, &details["grant"]),
        Greeting::Error("file not shared here".into())
    );
}

#[test]
fn a_forged_file_record_in_another_group_gets_nothing() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    alice.ok(&["create_group", "g1"]);
    alice.ok(&["create_group", "g2"]);
    let mut mallory = Adversary::new_account(cluster.tracker_addr(1), "mallory");
    mallory.ok(json!({"op": "join_group", "group": "g2"}));
    alice.ok(&["accept_request", "g2", "mallory"]);
    let (content, sha1, seeder) = share(&alice, "g1", "data.bin", 15);

    // mallory is no member of g1: no grant there.
    let fetch_g1 = json!({"op": "fetch_file", "group": "g1", "name": "data.bin"});
    assert_eq!(
        refusal(&mut mallory, fetch_g1),
        (
            "permission_denied".to_string(),
            "you are not a member of g1".to_string()
        )
    );
    // She registers the file's metadata in g2, where she is, and gets a grant for it there.
    mallory.ok(json!({
        "op": "upload_file", "group": "g2", "file": file_meta("data.bin", &content), "port": 9
    }));
    let grant = mallory.fetch("g2", "data.bin")["grant"].clone();
    assert_eq!(grant["file_sha1"], sha1);

    let mut conn = PeerConn::connect(seeder, &mallory.identity);
    assert_eq!(
        conn.hello(&sha1, &grant),
        Greeting::Error("file not shared here".into())
    );
}

#[test]
fn leave_group_withdraws_the_shares_at_once() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let (content, sha1, seeder) = share(&alice, "g1", "data.bin", 16);
    bob.wait_seeders("g1", "data.bin", 1);
    let mut spy = Adversary::logged_in(cluster.tracker_addr(1), "bob");
    let grant = spy.fetch("g1", "data.bin")["grant"].clone();
    let mut served = PeerConn::connect(seeder, &spy.identity);
    assert_welcome(served.hello(&sha1, &grant), "bob before alice leaves");
    served.expect_piece(0, &content);

    alice.ok(&["leave_group", "g1"]);

    // No waiting: when leave_group has answered, the share is gone everywhere.
    assert_eq!(
        served.next_frame(),
        Some((peer::ERROR, b"no longer shared".to_vec())),
        "the peer being served is cut off"
    );
    assert_eq!(served.next_frame(), None);
    let mut fresh = PeerConn::connect(seeder, &spy.identity);
    assert_eq!(
        fresh.hello(&sha1, &grant),
        Greeting::Error("file not shared here".into()),
        "a valid grant of a member, for a file alice no longer shares in g1"
    );
    let listed = bob
        .file("g1", "data.bin")
        .expect("the file stays registered");
    assert_eq!(
        listed["seeders"], 0,
        "the tracker lists no holder: {listed}"
    );
}

/// A GRANT frame replaying the grant in use (or an older one) is refused before its signature
/// is checked, and ends the connection: a peer cannot make a seeder verify a signature for
/// every frame it sends.
#[test]
fn a_replayed_grant_renewal_ends_the_connection() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let (content, sha1, seeder) = share(&alice, "g1", "data.bin", 15);
    let mut spy = Adversary::logged_in(cluster.tracker_addr(1), "bob");
    let grant = spy.fetch("g1", "data.bin")["grant"].clone();
    let mut conn = PeerConn::connect(seeder, &spy.identity);
    assert_welcome(conn.hello(&sha1, &grant), "the grant");
    conn.expect_piece(0, &content);
    conn.renew(&grant);
    let (kind, payload) = conn.next_frame().expect("an ERROR frame before the close");
    assert_eq!(
        kind,
        p2p_e2e::wire::peer::ERROR,
        "{:?}",
        String::from_utf8_lossy(&payload)
    );
    assert_eq!(
        String::from_utf8_lossy(&payload),
        "a renewed grant must expire later than the one in use"
    );
    assert_eq!(conn.next_frame(), None, "the seeder closes the connection");
}
