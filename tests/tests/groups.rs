//! Groups: create, join, requests, accept, list, leave and ownership.

use p2p_e2e::{Cluster, Daemon, assert_fails, stdout_of};

#[track_caller]
fn assert_group(d: &Daemon, group: &str, owner: &str, members: u64, membership: &str) {
    let g = d.expect_group(group);
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
    alice.expect_kind(&["create_group", "g1"], "already_exists");
    assert_fails(&bob.ctl(&["create_group", "g1"]), "exists");
    bob.expect_kind(&["create_group", "g1"], "already_exists");
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
    assert_fails(&out, "no group named nope");
    for args in [
        ["join_group", "nope"],
        ["list_requests", "nope"],
        ["leave_group", "nope"],
    ] {
        bob.expect_error(&args, "not_found", "no group named nope");
    }
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
    let only_owner_lists = "only the owner of g1 (alice) can list its requests";
    let only_owner_accepts = "only the owner of g1 (alice) can accept requests";
    assert_fails(&bob.ctl(&["list_requests", "g1"]), only_owner_lists);
    bob.expect_error(
        &["list_requests", "g1"],
        "permission_denied",
        only_owner_lists,
    );
    assert_fails(
        &bob.ctl(&["accept_request", "g1", "bob"]),
        only_owner_accepts,
    );
    bob.expect_error(
        &["accept_request", "g1", "bob"],
        "permission_denied",
        only_owner_accepts,
    );
    carol.expect_kind(&["list_requests", "g1"], "permission_denied");
    carol.expect_kind(&["accept_request", "g1", "bob"], "permission_denied");

    // Only a real request can be accepted: carol never asked, ghost does not exist.
    let out = alice.ctl(&["accept_request", "g1", "carol"]);
    assert_fails(&out, "carol has not asked to join g1");
    alice.expect_error(
        &["accept_request", "g1", "carol"],
        "not_found",
        "carol has not asked to join g1",
    );
    alice.expect_error(
        &["accept_request", "g1", "ghost"],
        "not_found",
        "ghost has not asked to join g1",
    );
    assert_group(&carol, "g1", "alice", 1, "none");

    // Asking twice is a conflict.
    bob.expect_error(
        &["join_group", "g1"],
        "conflict",
        "you already asked to join g1; the owner has not accepted yet",
    );

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
    assert_fails(&out, "you are already a member of g1");
    bob.expect_error(
        &["join_group", "g1"],
        "conflict",
        "you are already a member of g1",
    );
    alice.expect_error(
        &["join_group", "g1"],
        "conflict",
        "you are already a member of g1",
    );
    alice.expect_error(
        &["accept_request", "g1", "bob"],
        "conflict",
        "bob is already a member of g1",
    );
    // A member who is not the owner still may not see requests.
    bob.expect_kind(&["list_requests", "g1"], "permission_denied");
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
    assert_fails(&out, "you are not a member of g1");
    carol.expect_error(
        &["leave_group", "g1"],
        "conflict",
        "you are not a member of g1",
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
    alice.expect_kind(&["list_requests", "g1"], "permission_denied");
    assert_eq!(bob.requests("g1"), ["dave"]);
    // The former owner is no member any more.
    alice.expect_error(
        &["leave_group", "g1"],
        "conflict",
        "you are not a member of g1",
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
    dave.expect_kind(&["join_group", "g1"], "not_found");
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
