//! The tracker's relay (docs/relay-arch.md, docs/relay-security.md), driven by test clients
//! with keys of their own ([`Adversary`]) against the real trackerd: a downloader opens a relay
//! with its grant, the seeder takes the invite at its poll and joins, and from then on the two
//! connections carry each other's bytes, both ways, with half-closes passed on. TLS between the
//! two clients runs end to end inside, so each checks the other's key itself.
//!
//! And what the relay refuses: a grant of another key or user, an expired or forged one, a
//! member who left, a peer that does not hold the file, an invite taken by another daemon, a
//! relay request in the middle of a connection, more relays than the caps allow; and what it
//! ends: a relay nobody joins, a relay where nothing moves.

use p2p_e2e::Cluster;
use p2p_e2e::adversary::{Adversary, file_meta, wait_expired};
use p2p_e2e::tls::{TlsConn, new_identity};
use p2p_e2e::wire::{VERSION, error_of, json_frame, ok_of, read_json_frame};
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::tls::Expect;
use rustls::{ClientConnection, ServerConnection, StreamOwned};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;

const FILE: &str = "data.bin";

/// Two members of g1: alice holds data.bin (registered with `upload_file` from her key), bob
/// may download it; carol has an account and is in no group.
struct World {
    cluster: Cluster,
    alice: Adversary,
    bob: Adversary,
    carol: Adversary,
}

impl World {
    fn start(args: &[&str]) -> Self {
        let cluster = Cluster::start_with_tracker_args(args);
        let tracker = cluster.tracker_addr(1);
        let mut alice = Adversary::new_account(tracker, "alice");
        let mut bob = Adversary::new_account(tracker, "bob");
        let carol = Adversary::new_account(tracker, "carol");
        alice.ok(json!({"op": "create_group", "group": "g1"}));
        bob.ok(json!({"op": "join_group", "group": "g1"}));
        alice.ok(json!({"op": "accept_request", "group": "g1", "user": "bob"}));
        let meta = file_meta(FILE, b"what alice shares");
        alice.ok(json!({"op": "upload_file", "group": "g1", "file": meta, "port": 7000}));
        Self {
            cluster,
            alice,
            bob,
            carol,
        }
    }

    /// A fresh grant for bob's key, and alice's key as the tracker lists it.
    fn grant(&mut self) -> (Value, String) {
        let peers = self
            .bob
            .ok(json!({"op": "peers", "group": "g1", "name": FILE}));
        let alice = peers["peers"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["user"] == "alice"))
            .unwrap_or_else(|| panic!("alice is not listed: {peers}"));
        assert_eq!(alice["key"], self.alice.identity.fingerprint().to_string());
        (
            peers["grant"].clone(),
            alice["key"].as_str().unwrap().to_string(),
        )
    }
}

/// A connection of `client` whose first request is `call`; the answer is left to read.
fn leg(client: &mut Adversary, call: Value) -> TlsConn {
    let request = json!({"v": VERSION, "id": client.next_request_id(),
        "session": client.token, "call": call});
    let mut conn = TlsConn::connect(client.tracker(), &client.identity);
    conn.write_all(&json_frame(&request)).unwrap();
    conn.flush().unwrap();
    conn
}

fn relay_open(grant: &Value, peer: &str) -> Value {
    json!({"op": "relay_open", "name": FILE, "peer": peer, "grant": grant})
}

fn relay_accept(invite: &str) -> Value {
    json!({"op": "relay_accept", "invite": invite})
}

/// The relay invites waiting for `client`'s daemon, polled until there is one.
#[track_caller]
fn poll_invite(client: &mut Adversary) -> Value {
    p2p_e2e::wait_for(
        "a relay invite at the seeder's poll",
        Duration::from_secs(10),
        || {
            let polled = client.ok(json!({"op": "poll"}));
            match polled["invites"].as_array().and_then(|i| i.first()) {
                Some(invite) => Ok(invite.clone()),
                None => Err(polled.to_string()),
            }
        },
    )
}

/// Reads the answer on `conn` and checks it is `relaying`.
#[track_caller]
fn expect_relaying(conn: &mut TlsConn, who: &str) {
    let answer = read_json_frame(conn);
    assert_eq!(ok_of(&answer)["reply"], "relaying", "{who}: {answer}");
}

/// Reads the answer on `conn`: an error, then a close. Returns (kind, message).
#[track_caller]
fn expect_refusal(conn: &mut TlsConn, what: &str) -> (String, String) {
    let answer = read_json_frame(conn);
    let error = error_of(&answer);
    let rest = read_to_close(conn);
    assert!(rest.is_empty(), "{what}: more after the refusal: {rest:?}");
    (
        error["kind"].as_str().unwrap().to_string(),
        error["message"].as_str().unwrap().to_string(),
    )
}

/// bob opens a relay to alice, alice joins it: both legs answered `relaying`.
fn paired(world: &mut World) -> (TlsConn, TlsConn) {
    let (grant, alice_key) = world.grant();
    let mut down = leg(&mut world.bob, relay_open(&grant, &alice_key));
    let invite = poll_invite(&mut world.alice);
    assert_eq!(invite["user"], "bob", "{invite}");
    assert_eq!(invite["key"], world.bob.identity.fingerprint().to_string());
    assert_eq!(invite["kind"]["how"], "relay", "{invite}");
    let id = invite["id"].as_str().unwrap().to_string();
    assert!(
        id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "at least 128 random bits: {id}"
    );
    let mut up = leg(&mut world.alice, relay_accept(&id));
    expect_relaying(&mut up, "the seeder's leg");
    expect_relaying(&mut down, "the downloader's leg");
    (down, up)
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Reads until the other side ends the connection (a close, with or without TLS close_notify);
/// returns what came before. Panics on a timeout.
fn read_to_close(conn: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return got;
            }
            Err(e) => panic!("no close: {e}"),
        }
    }
}

fn read_exactly(conn: &mut impl Read, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    conn.read_exact(&mut got).unwrap();
    got
}

/// TLS as the daemons run it inside a relay: `conn` carries it; the client expects `peer`.
fn inner_client(
    conn: TlsConn,
    me: &Identity,
    peer: Fingerprint,
) -> StreamOwned<ClientConnection, TlsConn> {
    let (config, _) = p2p_proto::tls::client_config(me, Expect::Key(peer)).unwrap();
    let name = rustls_pki_types::ServerName::try_from("p2p").unwrap();
    let mut tls = StreamOwned::new(ClientConnection::new(config, name).unwrap(), conn);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

fn inner_server(conn: TlsConn, me: &Identity) -> StreamOwned<ServerConnection, TlsConn> {
    let config = p2p_proto::tls::server_config(me).unwrap();
    let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), conn);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

#[test]
fn a_relay_carries_end_to_end_tls_both_ways_with_half_closes() {
    let mut world = World::start(&[]);
    let (mut down, mut up) = paired(&mut world);

    // Plain bytes first, both ways, in turns: what one leg writes the other reads.
    for round in 0..16u32 {
        let chunk = pattern(64 * 1024 + round as usize, round);
        down.write_all(&chunk).unwrap();
        down.flush().unwrap();
        assert!(
            read_exactly(&mut up, chunk.len()) == chunk,
            "round {round}, to alice"
        );
        let chunk = pattern(8 * 1024 + round as usize, round + 100);
        up.write_all(&chunk).unwrap();
        up.flush().unwrap();
        assert!(
            read_exactly(&mut down, chunk.len()) == chunk,
            "round {round}, to bob"
        );
    }

    // Then the daemons' own TLS inside, each side on a thread of its own: bob expects alice's
    // key, alice learns bob's, and 8 MiB cross each way in 256 KiB turns.
    const TURN: usize = 256 * 1024;
    let alice_id = world.alice.identity.clone();
    let bob_id = world.bob.identity.clone();
    let alice_fp = alice_id.fingerprint();
    let bob_fp = bob_id.fingerprint();
    let to_alice = pattern(8 << 20, 1);
    let to_bob = pattern(8 << 20, 2);
    let send_alice = to_alice.clone();
    let bob_side = std::thread::spawn(move || {
        let mut tls = inner_client(down, &bob_id, alice_fp);
        let mut got = Vec::new();
        for chunk in send_alice.chunks(TURN) {
            tls.write_all(chunk).unwrap();
            tls.flush().unwrap();
            got.extend_from_slice(&read_exactly(&mut tls, TURN));
        }
        // Bob is done sending: close_notify and a half-close of his TCP connection. The relay
        // passes it on, and alice can still answer.
        tls.conn.send_close_notify();
        tls.conn.complete_io(&mut tls.sock).unwrap();
        tls.sock.shutdown_write();
        let last = read_to_close(&mut tls);
        (got, last)
    });
    let mut tls = inner_server(up, &alice_id);
    assert_eq!(
        p2p_proto::tls::peer_key(&tls.conn),
        Some(bob_fp),
        "alice sees bob's own key through the relay"
    );
    let mut got = Vec::new();
    for chunk in to_bob.chunks(TURN) {
        got.extend_from_slice(&read_exactly(&mut tls, chunk.len()));
        tls.write_all(chunk).unwrap();
        tls.flush().unwrap();
    }
    assert!(got == to_alice, "alice got bob's 8 MiB intact");
    let mut end = [0u8; 1];
    assert_eq!(tls.read(&mut end).unwrap(), 0, "bob's close reached alice");
    tls.write_all(b"after your close").unwrap();
    tls.flush().unwrap();
    tls.conn.send_close_notify();
    tls.conn.complete_io(&mut tls.sock).unwrap();
    tls.sock.shutdown_write();
    let (got, last) = bob_side.join().unwrap();
    assert!(got == to_bob, "bob got alice's 8 MiB intact");
    assert_eq!(
        last, b"after your close",
        "alice's answer after bob's half-close"
    );
    world.cluster.assert_no_panics();
}

#[test]
fn the_relay_refuses_grants_that_are_not_the_callers_own() {
    let mut world = World::start(&[]);
    let (grant, alice_key) = world.grant();
    let tracker = world.cluster.tracker_addr(1);

    // Bob's grant from another key logged in as bob, and from carol's.
    let mut other_key = Adversary::logged_in(tracker, "bob");
    let mut conn = leg(&mut other_key, relay_open(&grant, &alice_key));
    assert_eq!(
        expect_refusal(&mut conn, "bob's grant from another key"),
        (
            "permission_denied".into(),
            "grant was issued to another key".into()
        )
    );
    let mut conn = leg(&mut world.carol, relay_open(&grant, &alice_key));
    assert_eq!(
        expect_refusal(&mut conn, "bob's grant from carol").0,
        "permission_denied"
    );

    // Forged: any change to what the trackers signed.
    for (field, value) in [
        ("user", json!("carol")),
        ("expires", json!(grant["expires"].as_u64().unwrap() + 3600)),
        (
            "downloader",
            json!(new_identity().fingerprint().to_string()),
        ),
        ("group_id", json!("00".repeat(16))),
        ("signature", json!("00".repeat(64))),
    ] {
        let mut forged = grant.clone();
        forged[field] = value;
        let mut conn = leg(&mut world.bob, relay_open(&forged, &alice_key));
        assert_eq!(
            expect_refusal(&mut conn, field),
            (
                "permission_denied".into(),
                "grant signature does not verify".into()
            ),
            "a grant with another {field}"
        );
    }

    // A peer that does not hold the file, and a file the grant is not for.
    let stranger = new_identity().fingerprint().to_string();
    let mut conn = leg(&mut world.bob, relay_open(&grant, &stranger));
    let (kind, message) = expect_refusal(&mut conn, "a peer that holds nothing");
    assert_eq!(kind, "not_found", "{message}");
    let meta = file_meta("other.bin", b"another file");
    world
        .alice
        .ok(json!({"op": "upload_file", "group": "g1", "file": meta, "port": 7000}));
    let mut call = relay_open(&grant, &alice_key);
    call["name"] = json!("other.bin");
    let mut conn = leg(&mut world.bob, call);
    assert_eq!(
        expect_refusal(&mut conn, "a grant for another file"),
        (
            "permission_denied".into(),
            "grant is for another file".into()
        )
    );

    // A member who left keeps a grant that still verifies, but is no member any more.
    world.bob.ok(json!({"op": "leave_group", "group": "g1"}));
    let mut conn = leg(&mut world.bob, relay_open(&grant, &alice_key));
    assert_eq!(
        expect_refusal(&mut conn, "a member who left"),
        (
            "permission_denied".into(),
            "you are not a member of g1".into()
        )
    );
    // None of it reached alice.
    let polled = world.alice.ok(json!({"op": "poll"}));
    assert_eq!(polled["invites"], json!([]), "{polled}");
    world.cluster.assert_no_panics();
}

#[test]
fn an_expired_grant_opens_no_relay() {
    let mut world = World::start(&["--grant-lifetime", "1s"]);
    let (grant, alice_key) = world.grant();
    wait_expired(&grant);
    let mut conn = leg(&mut world.bob, relay_open(&grant, &alice_key));
    let (kind, message) = expect_refusal(&mut conn, "an expired grant");
    assert_eq!(kind, "permission_denied");
    assert!(message.starts_with("grant expired"), "{message}");
}

#[test]
fn an_invite_is_joined_only_by_the_daemon_it_is_for() {
    let mut world = World::start(&[]);
    let (grant, alice_key) = world.grant();
    let mut down = leg(&mut world.bob, relay_open(&grant, &alice_key));
    let invite = poll_invite(&mut world.alice);
    let id = invite["id"].as_str().unwrap().to_string();
    let tracker = world.cluster.tracker_addr(1);

    // alice's account from another key, carol, and a made-up id: the same answer each time.
    let mut alice_elsewhere = Adversary::logged_in(tracker, "alice");
    let mut guess = id.clone();
    guess.replace_range(..1, if id.starts_with('0') { "1" } else { "0" });
    let attempts = [
        ("alice's account from another key", 0, id.as_str()),
        ("carol", 1, id.as_str()),
        ("alice with a guessed id", 2, guess.as_str()),
        ("alice with a malformed id", 2, "not an id"),
    ];
    for (who, which, invite) in attempts {
        let client = match which {
            0 => &mut alice_elsewhere,
            1 => &mut world.carol,
            _ => &mut world.alice,
        };
        let mut conn = leg(client, relay_accept(invite));
        let (kind, message) = expect_refusal(&mut conn, who);
        assert_eq!(kind, "not_found", "{who}: {message}");
        assert!(
            message.contains("no relay waits for you"),
            "{who}: {message}"
        );
    }
    // Without a session the invite is not even looked at.
    let mut anonymous = Adversary::new(tracker);
    let mut conn = leg(&mut anonymous, relay_accept(&id));
    assert_eq!(expect_refusal(&mut conn, "no session").0, "not_logged_in");

    // The invite still waits for alice's own daemon.
    let mut up = leg(&mut world.alice, relay_accept(&id));
    expect_relaying(&mut up, "alice");
    expect_relaying(&mut down, "bob");
    down.write_all(b"ping").unwrap();
    down.flush().unwrap();
    assert_eq!(read_exactly(&mut up, 4), b"ping");
    // And a relay pairs once.
    let mut again = leg(&mut world.alice, relay_accept(&id));
    assert_eq!(expect_refusal(&mut again, "a second join").0, "not_found");
}

#[test]
fn relays_are_capped_per_user_and_in_total() {
    let mut world = World::start(&["--relay-per-user", "2", "--relay-max", "3"]);
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(paired(&mut world));
    }
    let (grant, alice_key) = world.grant();
    let mut third = leg(&mut world.bob, relay_open(&grant, &alice_key));
    let (kind, message) = expect_refusal(&mut third, "bob's third relay");
    assert_eq!(kind, "limit_reached");
    assert!(
        message.contains("bob has 2 relayed connections open"),
        "{message}"
    );

    // carol joins g1 and takes the third place; a fourth relay finds the relay full.
    world.carol.ok(json!({"op": "join_group", "group": "g1"}));
    world
        .alice
        .ok(json!({"op": "accept_request", "group": "g1", "user": "carol"}));
    let peers = world
        .carol
        .ok(json!({"op": "peers", "group": "g1", "name": FILE}));
    let carol_grant = peers["grant"].clone();
    let _waiting = leg(&mut world.carol, relay_open(&carol_grant, &alice_key));
    poll_invite(&mut world.alice);
    let mut fourth = leg(&mut world.carol, relay_open(&carol_grant, &alice_key));
    let (kind, message) = expect_refusal(&mut fourth, "a fourth relay");
    assert_eq!(kind, "limit_reached");
    assert!(message.contains("the relay is full"), "{message}");

    // One of bob's relays closes (both sides): its place comes back.
    let (mut down, mut up) = open.pop().unwrap();
    down.shutdown_write();
    up.shutdown_write();
    read_to_close(&mut up);
    read_to_close(&mut down);
    p2p_e2e::wait_for(
        "bob's closed relay to give its place back",
        Duration::from_secs(10),
        || try_relay(&mut world),
    );
}

/// bob opens a relay to alice: `Ok` with both legs once alice has joined, or `Err` with the
/// tracker's refusal.
fn try_relay(world: &mut World) -> Result<(TlsConn, TlsConn), String> {
    let (grant, alice_key) = world.grant();
    let conn = leg(&mut world.bob, relay_open(&grant, &alice_key));
    // A refusal comes at once, an accepted open answers only once alice has joined: read it
    // on a thread while alice polls.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut conn = conn;
        let answer = read_json_frame(&mut conn);
        let _ = tx.send(());
        (conn, answer)
    });
    let invite = p2p_e2e::wait_for("an invite or a refusal", Duration::from_secs(10), || {
        if rx.try_recv().is_ok() {
            return Ok(None);
        }
        let polled = world.alice.ok(json!({"op": "poll"}));
        match polled["invites"].as_array().and_then(|i| i.first()) {
            Some(invite) => Ok(Some(invite.clone())),
            None => Err(polled.to_string()),
        }
    });
    let Some(invite) = invite else {
        let (_, answer) = reader.join().unwrap();
        return Err(answer.to_string());
    };
    let mut up = leg(
        &mut world.alice,
        relay_accept(invite["id"].as_str().unwrap()),
    );
    expect_relaying(&mut up, "alice");
    let (down, answer) = reader.join().unwrap();
    assert_eq!(ok_of(&answer)["reply"], "relaying", "{answer}");
    Ok((down, up))
}

#[test]
fn a_relay_nobody_joins_is_answered_unavailable() {
    let mut world = World::start(&[]);
    let (grant, alice_key) = world.grant();
    let mut conn = leg(&mut world.bob, relay_open(&grant, &alice_key));
    // alice never polls: after the pairing timeout bob is told, and the connection closes.
    assert_eq!(
        expect_refusal(&mut conn, "a relay nobody joined"),
        ("unavailable".into(), "peer did not join the relay".into())
    );
}

#[test]
fn a_relay_where_nothing_moves_is_closed_and_relay_requests_come_first() {
    let mut world = World::start(&["--relay-idle", "1s"]);
    let (mut down, mut up) = paired(&mut world);
    down.write_all(b"one message").unwrap();
    down.flush().unwrap();
    assert_eq!(read_exactly(&mut up, 11), b"one message");
    // Then silence: the tracker closes both legs (each reads the end; neither side closed).
    assert!(read_to_close(&mut up).is_empty());
    assert!(read_to_close(&mut down).is_empty());

    // A relay request after another request on a connection is refused.
    let mut conn = TlsConn::connect(world.cluster.tracker_addr(1), &world.bob.identity);
    let token = world.bob.token.clone();
    let whoami = json!({"v": VERSION, "id": world.bob.next_request_id(), "session": token,
        "call": {"op": "whoami"}});
    conn.write_all(&json_frame(&whoami)).unwrap();
    assert_eq!(ok_of(&read_json_frame(&mut conn))["user"], "bob");
    let (grant, alice_key) = world.grant();
    let late = json!({"v": VERSION, "id": world.bob.next_request_id(), "session": token,
        "call": relay_open(&grant, &alice_key)});
    conn.write_all(&json_frame(&late)).unwrap();
    let (kind, _) = expect_refusal(&mut conn, "a relay_open after whoami");
    assert_eq!(kind, "protocol");
}
