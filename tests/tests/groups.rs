//! Groups: create, join, requests, accept, list, leave and ownership.

use p2p_e2e::{Cluster, Daemon, assert_fails, assert_fails_one_of, stdout_of};
use serde_json::Value;

#[track_caller]
fn group_of(d: &Daemon, group: &str) -> Value {
    d.group(group)
        .unwrap_or_else(|| panic!("{} does not see group {group}: {:?}", d.name(), d.groups()))
}

#[track_caller]
fn assert_group(d: &Daemon, group: &str, owner: &str, members: u64, membership: &str) {
    let g = group_of(d, group);
    assert_eq!(g["owner"], owner, "{} sees {g}", d.name());
    assert_eq!(g["members"], members, "{} sees {g}", d.name());
    assert_eq!(g["membership"], membership, "{} sees {g}", d.name());
}

#[test]
fn create_group_and_duplicates() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");

    assert_eq!(alice.ok(&["create_group", "g1"]), "created group g1");
    assert_group(&alice, "g1", "alice", 1, "owner");
    assert_group(&bob, "g1", "alice", 1, "none");
    assert_eq!(alice.groups().len(), 1, "{:?}", alice.groups());

    assert_fails(&alice.ctl(&["create_group", "g1"]), "exists");
    alice.expect_kind(&["create_group", "g1"], &["already_exists"]);
    assert_fails(&bob.ctl(&["create_group", "g1"]), "exists");
    bob.expect_kind(&["create_group", "g1"], &["already_exists"]);
    // The refused attempts changed nothing.
    assert_group(&bob, "g1", "alice", 1, "none");

    assert_eq!(bob.ok(&["create_group", "g2"]), "created group g2");
    assert_group(&alice, "g2", "bob", 1, "none");
    assert_eq!(alice.groups().len(), 2);
    cluster.assert_no_panics();
}

#[test]
fn join_of_a_missing_group_is_refused() {
    let cluster = Cluster::start();
    let bob = cluster.user("bob");
    let out = bob.ctl(&["join_group", "nope"]);
    assert_fails_one_of(&out, &["nope", "not found", "no such", "does not exist"]);
    bob.expect_kind(&["join_group", "nope"], &["not_found"]);
    bob.expect_kind(&["list_requests", "nope"], &["not_found"]);
    bob.expect_kind(&["leave_group", "nope"], &["not_found"]);
    assert!(bob.groups().is_empty());
    cluster.assert_no_panics();
}

#[test]
fn join_requests_and_accept() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    let carol = cluster.user("carol");
    alice.ok(&["create_group", "g1"]);

    assert_eq!(
        bob.ok(&["join_group", "g1"]),
        "asked to join g1; the owner must accept"
    );
    assert_group(&bob, "g1", "alice", 1, "pending");

    // The owner sees the request, one user per line.
    assert_eq!(alice.ok(&["list_requests", "g1"]), "bob");
    assert_eq!(alice.requests("g1"), ["bob"]);

    // Only the owner lists and accepts requests.
    assert_fails_one_of(
        &bob.ctl(&["list_requests", "g1"]),
        &["owner", "permission", "not allowed"],
    );
    bob.expect_kind(&["list_requests", "g1"], &["permission_denied"]);
    assert_fails_one_of(
        &bob.ctl(&["accept_request", "g1", "bob"]),
        &["owner", "permission", "not allowed"],
    );
    bob.expect_kind(&["accept_request", "g1", "bob"], &["permission_denied"]);
    carol.expect_kind(&["list_requests", "g1"], &["permission_denied"]);
    carol.expect_kind(&["accept_request", "g1", "bob"], &["permission_denied"]);

    // Only a real request can be accepted: carol never asked, ghost does not exist.
    let out = alice.ctl(&["accept_request", "g1", "carol"]);
    assert_fails_one_of(&out, &["carol", "request", "not found"]);
    alice.expect_kind(
        &["accept_request", "g1", "carol"],
        &["conflict", "not_found"],
    );
    alice.expect_kind(
        &["accept_request", "g1", "ghost"],
        &["conflict", "not_found"],
    );
    assert_group(&carol, "g1", "alice", 1, "none");

    // Asking twice is a conflict.
    bob.expect_kind(&["join_group", "g1"], &["conflict"]);

    assert_eq!(
        alice.ok(&["accept_request", "g1", "bob"]),
        "accepted bob into g1"
    );
    assert_group(&alice, "g1", "alice", 2, "owner");
    assert_group(&bob, "g1", "alice", 2, "member");
    assert_group(&carol, "g1", "alice", 2, "none");
    assert!(alice.requests("g1").is_empty());
    // Like the other listings, an empty one says so in words; scripts read `--json`.
    let out = alice.ctl(&["list_requests", "g1"]);
    assert_eq!(
        stdout_of(&out).trim(),
        "no pending requests for g1",
        "no request left: {out:?}"
    );

    // A member asking to join again, the owner asking to join its own group, and accepting
    // the same user twice are all refused.
    let out = bob.ctl(&["join_group", "g1"]);
    assert_fails_one_of(&out, &["member", "already", "g1"]);
    bob.expect_kind(&["join_group", "g1"], &["conflict"]);
    alice.expect_kind(&["join_group", "g1"], &["conflict"]);
    alice.expect_kind(&["accept_request", "g1", "bob"], &["conflict", "not_found"]);
    // A member who is not the owner still may not see requests.
    bob.expect_kind(&["list_requests", "g1"], &["permission_denied"]);
    assert_group(&alice, "g1", "alice", 2, "owner");
    cluster.assert_no_panics();
}

#[test]
fn leave_group_passes_ownership_to_the_oldest_member() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    let carol = cluster.user("carol");
    let dave = cluster.user("dave");
    alice.ok(&["create_group", "g1"]);

    // A user who is not in the group cannot leave it.
    let out = carol.ctl(&["leave_group", "g1"]);
    assert_fails_one_of(&out, &["member", "g1", "not"]);
    carol.expect_kind(
        &["leave_group", "g1"],
        &["not_found", "permission_denied", "conflict"],
    );

    // dave asks first but stays pending: a pending user is no member and never owner.
    dave.ok(&["join_group", "g1"]);
    bob.ok(&["join_group", "g1"]);
    alice.ok(&["accept_request", "g1", "bob"]);
    carol.ok(&["join_group", "g1"]);
    alice.ok(&["accept_request", "g1", "carol"]);
    assert_group(&alice, "g1", "alice", 3, "owner");

    // The owner leaves: bob, the longest-standing member, owns the group now.
    assert_eq!(
        alice.ok(&["leave_group", "g1"]),
        "left g1; bob is the new owner"
    );
    assert_group(&carol, "g1", "bob", 2, "member");
    assert_group(&bob, "g1", "bob", 2, "owner");
    assert_group(&alice, "g1", "bob", 2, "none");
    alice.expect_kind(&["list_requests", "g1"], &["permission_denied"]);
    assert_eq!(bob.requests("g1"), ["dave"]);
    // The former owner is no member any more.
    alice.expect_kind(
        &["leave_group", "g1"],
        &["not_found", "permission_denied", "conflict"],
    );

    let left = bob.json(&["leave_group", "g1"]);
    assert_eq!(left["reply"], "left", "{left}");
    assert_eq!(left["group"], "g1", "{left}");
    assert_eq!(left["new_owner"], "carol", "{left}");
    assert_eq!(left["removed"], false, "{left}");
    assert_group(&carol, "g1", "carol", 1, "owner");

    // The last member leaves: the group is removed.
    assert_eq!(
        carol.ok(&["leave_group", "g1"]),
        "left g1; the group was removed (no members left)"
    );
    for d in [&alice, &bob, &carol, &dave] {
        assert!(
            d.group("g1").is_none(),
            "{} still sees g1: {:?}",
            d.name(),
            d.groups()
        );
    }
    dave.expect_kind(&["join_group", "g1"], &["not_found"]);
    // Its name is free again.
    assert_eq!(dave.ok(&["create_group", "g1"]), "created group g1");
    assert_group(&alice, "g1", "dave", 1, "none");
    cluster.assert_no_panics();
}

#[test]
fn a_member_leaves_and_the_owner_stays() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    alice.ok(&["create_group", "g2"]);
    bob.ok(&["join_group", "g2"]);
    alice.ok(&["accept_request", "g2", "bob"]);

    assert_eq!(bob.ok(&["leave_group", "g2"]), "left g2");
    assert_group(&alice, "g2", "alice", 1, "owner");
    assert_group(&bob, "g2", "alice", 1, "none");

    // The owner alone leaves with --json: the group is removed.
    let left = alice.json(&["leave_group", "g2"]);
    assert_eq!(left["reply"], "left", "{left}");
    assert!(left["new_owner"].is_null(), "{left}");
    assert_eq!(left["removed"], true, "{left}");
    assert!(alice.group("g2").is_none());
    cluster.assert_no_panics();
}
