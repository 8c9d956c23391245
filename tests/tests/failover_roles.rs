//! Roles across tracker faults: the standby takes over when the primary is killed or frozen;
//! an old primary that comes back (restarted, continued after SIGSTOP, or with a log that
//! diverged meanwhile) steps down, follows the new primary, holds its whole history, and can
//! take over again with nothing lost.
//!
//! See [`p2p_e2e::failover`] for the starting state and the timing bounds.

use p2p_e2e::failover::{
    CATCH_UP_TIMEOUT, FAILOVER_BOUND, ctl_until_ok, raw_call, relogin, settled_cluster,
    wait_primary, wait_standby_dropped,
};
use p2p_e2e::tls::tls_to;
use p2p_e2e::wire::{error_of, read_json_frame, tracker_request};
use p2p_e2e::{make_group, password_of};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn returning_primary_catches_up_and_keeps_the_standbys_writes() {
    let mut cluster = settled_cluster();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    cluster.kill9_tracker(1);
    let taken_over = wait_primary(&mut cluster, 2, 1);
    println!("tracker 2 took over: {}", taken_over.line);

    // Done while only the standby lives: new users, logins, groups, joins and accepts.
    let carol = cluster.user("carol");
    carol.ok(&["join_group", "g1"]);
    alice.ok(&["accept_request", "g1", "carol"]);
    let dave = cluster.user("dave");
    make_group(&dave, "g2", &[&alice]);
    bob.ok(&["join_group", "g2"]);
    let erin = cluster.daemon("erin");
    erin.create_user("erin");
    let before_return = cluster.tracker_status(2);

    // The old primary comes back with its data dir, sees the higher epoch, follows.
    cluster.start_tracker(1);
    let (primary, standby) = cluster.wait_caught_up(2, 1, CATCH_UP_TIMEOUT);
    println!(
        "after the return: tracker 2 {}; tracker 1 {}",
        primary.line, standby.line
    );
    assert_eq!(
        primary.epoch, taken_over.epoch,
        "no new takeover: {}",
        primary.line
    );
    assert_eq!(
        standby.leader, 2,
        "tracker 1 knows tracker 2 leads: {}",
        standby.line
    );
    assert!(primary.last_seq >= before_return.last_seq);
    // The restarted process opened a replication link to the new primary.
    let following = cluster.wait_tracker_status(
        1,
        "the restarted tracker 1 to count its link to the primary",
        CATCH_UP_TIMEOUT,
        |s| s.counter("follows") >= 1,
    );
    println!("tracker 1 follows: {}", following.line);

    // Now the standby-era primary goes; the old primary takes over again.
    cluster.kill9_tracker(2);
    let again = wait_primary(&mut cluster, 1, taken_over.epoch + 1);
    println!("tracker 1 took over again: {}", again.line);
    assert!(
        again.last_seq >= primary.last_seq,
        "tracker 1 has the whole log it caught up: {} vs {}",
        again.line,
        primary.line
    );

    // Everything done while tracker 1 was away is there.
    let g1 = alice.expect_group("g1");
    assert_eq!(g1["owner"], "alice", "{g1}");
    assert_eq!(g1["members"], 3, "{g1}");
    assert_eq!(carol.expect_group("g1")["membership"], "member");
    assert_eq!(bob.expect_group("g1")["membership"], "member");
    let g2 = dave.expect_group("g2");
    assert_eq!(g2["owner"], "dave", "{g2}");
    assert_eq!(g2["members"], 2, "{g2}");
    assert_eq!(g2["membership"], "owner", "{g2}");
    assert_eq!(alice.expect_group("g2")["membership"], "member");
    assert_eq!(bob.expect_group("g2")["membership"], "pending");
    assert_eq!(dave.requests("g2"), ["bob"]);
    // Users created then log in with their passwords; sessions opened then still work.
    relogin(&carol);
    relogin(&dave);
    erin.login("erin");
    // And the cluster takes new writes.
    assert_eq!(erin.ok(&["create_group", "g3"]), "created group g3");
    dave.ok(&["accept_request", "g2", "bob"]);
    assert_eq!(bob.expect_group("g2")["membership"], "member");

    // The other tracker comes back too and follows the new primary.
    cluster.start_tracker(2);
    let (p, s) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    println!("finally: tracker 1 {}; tracker 2 {}", p.line, s.line);
    cluster.assert_no_panics();
}

#[test]
fn frozen_primary_is_replaced_and_steps_down_when_continued() {
    let mut cluster = settled_cluster();
    let alice = cluster.user("alice");
    alice.ok(&["create_group", "g1"]);
    let frank = cluster.daemon("frank");
    // A daemon that knows only tracker 1 (a tracker_info.txt with its line alone).
    let only1 = cluster.root().join("tracker_info-only-1.txt");
    std::fs::write(&only1, format!("{}\n", cluster.tracker_addr(1))).unwrap();
    let mut lonely = cluster.daemon_unstarted("lonely");
    lonely.set_tracker_info(&only1);
    lonely.start();
    let (p0, s0) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let addr1 = cluster.tracker_addr(1);

    cluster.freeze_tracker(1);
    let frozen_at = Instant::now();
    println!("froze tracker 1 (SIGSTOP)");

    // A write from a daemon that has not talked to any tracker yet.
    let (_, took) = ctl_until_ok(
        &frank,
        &["create_user", "frank", &password_of("frank")],
        frozen_at,
        Duration::from_secs(40),
    );
    println!("create_user succeeded {took:?} after the freeze");
    assert!(
        took < FAILOVER_BOUND,
        "create_user took {took:?} with the primary frozen (bound {FAILOVER_BOUND:?}, target 5 s)"
    );
    // A read from a logged-in daemon whose pooled connection goes to the frozen tracker.
    let since = Instant::now();
    let (_, took) = ctl_until_ok(&alice, &["list_groups"], since, Duration::from_secs(40));
    println!(
        "alice's list_groups succeeded in {took:?} ({:?} after the freeze)",
        frozen_at.elapsed()
    );
    assert!(
        took < FAILOVER_BOUND,
        "list_groups took {took:?} with the primary frozen (bound {FAILOVER_BOUND:?})"
    );
    let taken_over = wait_primary(&mut cluster, 2, p0.epoch + 1);
    println!("tracker 2: {}", taken_over.line);
    assert_eq!(
        taken_over.grown_since(&s0, "takeovers"),
        1,
        "tracker 2 took over once: {}",
        taken_over.line
    );
    frank.login("frank");
    frank.ok(&["join_group", "g1"]);
    alice.ok(&["accept_request", "g1", "frank"]);

    // Requests sent to the frozen tracker before it is continued (their connections wait in
    // its accept queue): it must not answer them from its stale state (it does not know frank;
    // it would create `stale`).
    let addr2 = cluster.tracker_addr(2).to_string();
    let queued = |n: u64, call: serde_json::Value| {
        std::thread::spawn(move || {
            let mut s = tls_to(addr1);
            s.write_all(&tracker_request(n, None, call)).unwrap();
            read_json_frame(&mut s)
        })
    };
    let stale_create = queued(
        31,
        json!({"op": "create_user", "user": "stale", "password": password_of("stale")}),
    );
    let stale_login = queued(
        32,
        json!({"op": "login", "user": "frank", "password": password_of("frank")}),
    );

    cluster.thaw_tracker(1);
    println!(
        "continued tracker 1 (SIGCONT) {:?} after the freeze",
        frozen_at.elapsed()
    );
    // It holds them until it has re-checked its role, finds it was replaced, steps down and
    // follows the new primary: then it redirects them there.
    for (what, answer) in [
        ("create_user stale", stale_create),
        ("login frank", stale_login),
    ] {
        let reply = answer.join().expect("the queued request's thread");
        println!("tracker 1 answered the queued {what}: {reply}");
        let error = &reply["result"]["Err"];
        assert!(
            error["kind"] == "not_primary" && error["redirect"] == addr2.as_str(),
            "tracker 1, continued after SIGSTOP, should redirect `{what}` to the new primary \
             {addr2}, not answer it from its stale state: {reply}\n--- tracker 1 stderr ---\n{}",
            cluster.tracker(1).stderr_tail(30)
        );
    }

    // It is the standby of the new epoch and catches up.
    let (p, s) = cluster.wait_caught_up(2, 1, CATCH_UP_TIMEOUT);
    println!("after SIGCONT: tracker 2 {}; tracker 1 {}", p.line, s.line);
    assert_eq!(p.epoch, taken_over.epoch, "no further takeover: {}", p.line);
    assert_eq!(
        s.grown_since(&p0, "step_downs"),
        1,
        "tracker 1 stepped down once: before the freeze {}, now {}",
        p0.line,
        s.line
    );
    // Asked directly, it redirects to the primary.
    let reply = raw_call(addr1, 33, json!({"op": "list_groups"}));
    let error = error_of(&reply);
    assert_eq!(error["kind"], "not_primary", "{reply}");
    assert_eq!(error["redirect"], addr2.as_str(), "{reply}");
    // A client that knows only tracker 1 is refused (not served stale data), saying why: the
    // redirect leads outside its tracker list.
    let since = Instant::now();
    let error = lonely.expect_error(
        &["create_user", "lonely", &password_of("lonely")],
        "unavailable",
        &format!("this tracker is the standby; the primary is {addr2}"),
    );
    println!(
        "the daemon that knows only tracker 1 got, after {:?}: {error}",
        since.elapsed()
    );

    // The user created while tracker 1 was frozen survives the other tracker's death.
    cluster.kill9_tracker(2);
    let again = wait_primary(&mut cluster, 1, taken_over.epoch + 1);
    println!("tracker 1 took over: {}", again.line);
    relogin(&frank);
    assert_eq!(frank.expect_group("g1")["membership"], "member");
    assert_eq!(alice.expect_group("g1")["members"], 2);
    // What tracker 1 was asked before it stepped down was not kept: `stale` is free.
    lonely.create_user("stale");
    lonely.create_user("lonely");
    cluster.assert_no_panics();
}

/// The standby is frozen, the primary goes on alone and acknowledges writes the standby never
/// sees; then the primary is frozen and the (continued) standby takes over without them and
/// writes a history of its own. When the old primary is continued, its log has diverged: it
/// must step down and take the new primary's history (a snapshot), keeping nothing of its
/// own branch, so that both trackers hold the same state.
#[test]
fn diverged_old_primary_is_resynced_to_the_new_history() {
    let mut cluster = settled_cluster();
    let writer = cluster.daemon("writer");
    let checker = cluster.daemon("checker");
    let (p0, _) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    // Tracker 1 alone: `twin` with password A, and `lonewolf`. They are written once it has
    // dropped its frozen standby, so that they never reach it (were the link still up, they
    // would wait in the standby's socket and be read as soon as it is continued).
    cluster.freeze_tracker(2);
    let dropped = wait_standby_dropped(&mut cluster, 1);
    println!("tracker 1 dropped its frozen standby: {}", dropped.line);
    writer.ok(&["create_user", "twin", "password-A-1111"]);
    writer.create_user("lonewolf");
    let alone = cluster.tracker_status(1);
    println!("tracker 1 with its standby frozen: {}", alone.line);
    assert!(
        alone.is_primary() && alone.epoch == p0.epoch,
        "{}",
        alone.line
    );
    assert!(
        alone.last_seq >= p0.last_seq + 2,
        "{} / {}",
        p0.line,
        alone.line
    );

    // Tracker 2 takes over without them and writes `twin` with password B, and `newcomer`.
    cluster.freeze_tracker(1);
    cluster.thaw_tracker(2);
    let taken_over = wait_primary(&mut cluster, 2, p0.epoch + 1);
    println!("tracker 2 took over: {}", taken_over.line);
    writer.ok(&["create_user", "twin", "password-B-2222"]);
    writer.create_user("newcomer");

    // The old primary is continued: it must give up its branch for a snapshot of tracker 2's.
    cluster.thaw_tracker(1);
    let (p, s) = cluster.wait_caught_up(2, 1, CATCH_UP_TIMEOUT);
    println!("after SIGCONT: tracker 2 {}; tracker 1 {}", p.line, s.line);
    assert!(
        s.grown_since(&alone, "snapshots_installed") >= 1,
        "tracker 1's diverged log is replaced by a snapshot: before {}, after {}",
        alone.line,
        s.line
    );
    assert!(
        p.grown_since(&taken_over, "snapshots_sent") >= 1,
        "tracker 2 sent tracker 1 a snapshot: before {}, after {}",
        taken_over.line,
        p.line
    );

    // With tracker 2 gone, tracker 1 serves exactly tracker 2's history.
    cluster.kill9_tracker(2);
    let again = wait_primary(&mut cluster, 1, taken_over.epoch + 1);
    println!("tracker 1 took over: {}", again.line);
    checker.ok(&["login", "twin", "password-B-2222"]);
    checker.ok(&["logout"]);
    checker.expect_error(
        &["login", "twin", "password-A-1111"],
        "auth_failed",
        "wrong user id or password",
    );
    checker.login("newcomer");
    checker.ok(&["logout"]);
    // `lonewolf` was acknowledged by tracker 1 alone and is not in the history that won.
    checker.expect_error(
        &["login", "lonewolf", &password_of("lonewolf")],
        "auth_failed",
        "wrong user id or password",
    );
    println!(
        "note: `lonewolf`, acknowledged while the standby was frozen, is gone after the \
         double fault (the standby took over without it)"
    );
    cluster.assert_no_panics();
}
