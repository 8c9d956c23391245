//! Sessions (docs/SECURITY.md, "Sessions"): the tracker makes the token, binds it to the key of
//! the daemon that logged in, lets it idle out after `--session-idle` and revokes it at
//! `logout`. Test clients with keys of their own ([`Adversary`]) try the token from elsewhere.

use p2p_e2e::adversary::{Adversary, unix_now, wait_unix_past};
use p2p_e2e::capture::tokens_in;
use p2p_e2e::wire::{VERSION, error_of, ok_of};
use p2p_e2e::{Cluster, password_of};
use p2p_proto::identity::Identity;
use serde_json::{Value, json};

fn whoami() -> Value {
    json!({"op": "whoami"})
}

/// `reply` is an error of kind `not_logged_in` saying exactly `message`.
#[track_caller]
fn assert_not_logged_in(reply: &Value, message: &str) {
    let error = error_of(reply);
    assert_eq!(
        (error["kind"].as_str(), error["message"].as_str()),
        (Some("not_logged_in"), Some(message)),
        "{reply}"
    );
}

#[test]
fn a_token_used_from_another_key_is_refused() {
    let cluster = Cluster::start();
    let mut with_a = Adversary::new_account(cluster.tracker_addr(1), "alice");
    let token = with_a.token.clone().unwrap();

    let mut with_b = Adversary::new(cluster.tracker_addr(1));
    assert_not_logged_in(
        &with_b.call_as(Some(&token), whoami()),
        "this session was opened by another daemon's key; log in again",
    );
    // The refusal did not close the session: from key A it works.
    assert_eq!(
        with_a.ok(whoami()),
        json!({"reply": "user", "user": "alice"})
    );
}

#[test]
fn the_client_cannot_choose_its_token() {
    let cluster = Cluster::start();
    let mut bob = Adversary::new_account(cluster.tracker_addr(1), "bob");
    let bobs = bob.token.clone().unwrap();
    let mut alice = Adversary::new(cluster.tracker_addr(1));
    let password = password_of("alice");
    alice.ok(json!({"op": "create_user", "user": "alice", "password": password}));

    // A login offering bob's token, in the call and beside it.
    let id = alice.next_request_id();
    let reply = alice.send_raw(&json!({
        "v": VERSION, "id": id, "session": bobs, "token": bobs,
        "call": {"op": "login", "user": "alice", "password": password, "token": bobs},
    }));
    let logged_in = ok_of(&reply);
    assert_eq!(logged_in["user"], "alice", "{reply}");
    let token = logged_in["token"].as_str().unwrap();
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "a token of 256 bits in hex: {token:?}"
    );
    assert_ne!(token, bobs, "the tracker made the token, not the client");

    let mine = alice.call_as(Some(token), whoami());
    assert_eq!(ok_of(&mine)["user"], "alice", "{mine}");
    assert_eq!(
        bob.ok(whoami()),
        json!({"reply": "user", "user": "bob"}),
        "bob's session is unaffected"
    );
}

#[test]
fn sessions_idle_out() {
    let cluster = Cluster::start_with_tracker_args(&["--session-idle", "3s"]);
    let mut client = Adversary::new_account(cluster.tracker_addr(1), "carol");
    let alice = cluster.user("alice");
    let logged_in = unix_now();
    assert_eq!(alice.status()["user"], "alice");

    // Neither session is used for more than 3 s (whole seconds, as the tracker counts).
    wait_unix_past(logged_in + 3);
    assert_not_logged_in(
        &client.call(whoami()),
        "session expired after 3s without use; log in again",
    );
    assert_not_logged_in(
        &client.call(whoami()),
        "session expired or unknown; log in again",
    );

    // The daemon learns it at its next call and shows it logged out.
    alice.expect_error(
        &["list_groups"],
        "not_logged_in",
        "session expired after 3s without use; log in again",
    );
    assert_eq!(alice.status()["user"], Value::Null, "{}", alice.status());
    alice.login("alice");
    assert_eq!(alice.status()["user"], "alice");
    assert!(alice.groups().is_empty());
}

#[test]
fn logout_revokes_the_token() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let tokens = tokens_in(&alice.state_dir().join("p2pd.redb"));
    assert_eq!(
        tokens.len(),
        1,
        "one session token in alice's database: {tokens:?}"
    );
    let token = tokens.into_iter().next().unwrap();
    // The daemon's own key, so only the logout can make the token fail.
    let key = Identity::load_or_create(&alice.state_dir().join("identity.key")).unwrap();
    let mut as_daemon = Adversary::with_identity(cluster.tracker_addr(1), key);
    let before = as_daemon.call_as(Some(&token), whoami());
    assert_eq!(ok_of(&before)["user"], "alice", "{before}");

    alice.ok(&["logout"]);
    assert_not_logged_in(
        &as_daemon.call_as(Some(&token), whoami()),
        "session expired or unknown; log in again",
    );
}

/// `--session-idle` is how long a session may go *unused*: a session used without a pause
/// must outlive it.
#[test]
fn a_session_in_use_does_not_idle_out() {
    let cluster = Cluster::start_with_tracker_args(&["--session-idle", "3s"]);
    let mut client = Adversary::new_account(cluster.tracker_addr(1), "dave");
    let logged_in = unix_now();
    let mut calls = 0;
    while unix_now() <= logged_in + 6 {
        let reply = client.call(whoami());
        assert_eq!(
            reply["result"]["Ok"]["user"],
            "dave",
            "call {calls}, {}s after login: {reply}",
            unix_now() - logged_in
        );
        calls += 1;
    }
}
