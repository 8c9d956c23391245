//! Writes across a tracker fault: a loop of `create_user` runs while the primary is killed,
//! while the standby is killed, and while the standby is frozen. No acknowledged write is lost,
//! none is applied twice, writes go on through the tracker that is left, and a standby that
//! comes back catches up without a takeover.
//!
//! See [`p2p_e2e::failover`] for the starting state and the timing bounds.

use p2p_e2e::failover::{
    CATCH_UP_TIMEOUT, FAILOVER_BOUND, LEASE, Outcome, StopOnDrop, Writer, assert_all_succeeded,
    assert_no_double_apply, assert_user_exists, ctl_until_ok, print_outcomes, settled_cluster,
    wait_primary, wait_standby_dropped,
};
use p2p_e2e::{PIECE_SIZE, assert_file_content, make_group, write_test_file};
use std::time::{Duration, Instant};

#[test]
fn primary_killed_during_writes_loses_no_acknowledged_write() {
    let mut cluster = settled_cluster();
    let sam = cluster.user("sam");
    let dora = cluster.user("dora");
    let writer_daemon = cluster.daemon("writer");
    let checker = cluster.daemon("checker");

    // A group with a shared file, before the fault.
    make_group(&sam, "g1", &[&dora]);
    let size = 3 * PIECE_SIZE as usize + 4321;
    let path = sam.dir().join("movie.bin");
    let content = write_test_file(&path, 11, size);
    sam.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    dora.wait_seeders("g1", "movie.bin", 1);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    let writer = Writer::new();
    let (outcomes, killed_at) = std::thread::scope(|s| {
        let handle = s.spawn(|| writer.run(&writer_daemon, "u"));
        let _stop = StopOnDrop(&writer);
        let start = Instant::now();
        writer.wait_successes_since(start, 5, "before the kill");

        cluster.kill9_tracker(1);
        let killed_at = Instant::now();
        println!("killed tracker 1 (kill -9)");

        // Another logged-in client reads through the new primary within the bound.
        let (reply, took) = ctl_until_ok(
            &dora,
            &["list_files", "g1"],
            killed_at,
            Duration::from_secs(30),
        );
        println!("list_files succeeded {took:?} after the kill");
        assert!(
            reply["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["name"] == "movie.bin")),
            "the new primary lists the file shared before the kill: {reply}"
        );
        assert!(
            took < FAILOVER_BOUND,
            "list_files took {took:?} after the primary was killed (bound {FAILOVER_BOUND:?}, \
             target 5 s)"
        );
        let status = wait_primary(&mut cluster, 2, 1);
        println!("tracker 2 after takeover: {}", status.line);
        assert_eq!(
            dora.status()["tracker"],
            cluster.tracker_addr(2).to_string(),
            "p2pctl status names the tracker in use"
        );

        // Writes go on through the new primary.
        writer.wait_successes_since(killed_at, 5, "after the kill");
        writer.stop();
        handle.join().expect("writer thread panicked");
        (writer.outcomes(), killed_at)
    });
    print_outcomes(
        "create_user loop across kill -9 of the primary",
        &outcomes,
        killed_at,
    );
    assert_no_double_apply(&outcomes);

    // Every acknowledged create_user exists on the new primary.
    for o in outcomes.iter().filter(|o| o.error.is_none()) {
        assert_user_exists(&checker, &o.user);
    }
    // ... with its password: log in as the first and the last acknowledged ones.
    let acked: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_none()).collect();
    for o in [acked[0], acked[acked.len() - 1]] {
        checker.login(&o.user);
        checker.ok(&["logout"]);
    }

    // A download started after the kill completes: the seeder re-announces to the new
    // primary (its swarm is soft state that started empty there).
    let dest = dora.dir().join("movie.bin");
    let since = Instant::now();
    let (_, took) = ctl_until_ok(
        &dora,
        &["download_file", "g1", "movie.bin", &dest.to_string_lossy()],
        since,
        Duration::from_secs(60),
    );
    println!(
        "download_file accepted {took:?} after it was first tried (waits for the seeder's re-announce)"
    );
    dora.wait_download("g1", "movie.bin");
    println!("download complete {:?} after the kill", killed_at.elapsed());
    assert_file_content(&dest, &content);
    // The standby took over, once: the primary it replaced never came back.
    let status = cluster.tracker_status(2);
    assert_eq!(
        status.counter("takeovers"),
        1,
        "tracker 2 took over exactly once: {}",
        status.line
    );
    cluster.assert_no_panics();
}

#[test]
fn standby_killed_during_writes_then_restarted_catches_up() {
    let mut cluster = settled_cluster();
    let writer_daemon = cluster.daemon("writer");
    let checker = cluster.daemon("checker");

    let writer = Writer::new();
    let (outcomes, killed_at) = std::thread::scope(|s| {
        let handle = s.spawn(|| writer.run(&writer_daemon, "w"));
        let _stop = StopOnDrop(&writer);
        writer.wait_successes_since(Instant::now(), 3, "before the kill");
        cluster.kill9_tracker(2);
        let killed_at = Instant::now();
        println!("killed tracker 2 (kill -9)");
        writer.wait_successes_since(killed_at, 5, "after the kill");
        writer.stop();
        handle.join().expect("writer thread panicked");
        (writer.outcomes(), killed_at)
    });
    print_outcomes(
        "create_user loop across kill -9 of the standby",
        &outcomes,
        killed_at,
    );
    assert_all_succeeded(&outcomes, &mut cluster, 1);
    let alone = cluster.tracker_status(1);
    println!("tracker 1 alone: {}", alone.line);
    assert!(alone.is_primary() && alone.epoch == 0, "{}", alone.line);

    // The standby comes back and catches up.
    cluster.start_tracker(2);
    let (p, s) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    println!(
        "after the restart: tracker 1 {}; tracker 2 {}",
        p.line, s.line
    );
    assert_eq!(p.epoch, 0, "no takeover: {}", p.line);
    assert!(p.last_seq >= alone.last_seq);

    // What it caught up is real: with tracker 1 gone, tracker 2 knows every user.
    cluster.kill9_tracker(1);
    wait_primary(&mut cluster, 2, 1);
    for o in &outcomes {
        assert_user_exists(&checker, &o.user);
    }
    cluster.assert_no_panics();
}

/// The standby is frozen (SIGSTOP) until the primary has given up on it and served alone past
/// its lease, then continued: it must re-attach as the standby, not take over.
#[test]
fn standby_frozen_briefly_reconnects_and_catches_up_without_takeover() {
    let mut cluster = settled_cluster();
    let writer_daemon = cluster.daemon("writer");
    let (p0, s0) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    let writer = Writer::new();
    let (outcomes, frozen_at, thawed_at) = std::thread::scope(|s| {
        let handle = s.spawn(|| writer.run(&writer_daemon, "f"));
        let _stop = StopOnDrop(&writer);
        writer.wait_successes_since(Instant::now(), 2, "before the freeze");
        cluster.freeze_tracker(2);
        let frozen_at = Instant::now();
        println!("froze tracker 2 (SIGSTOP)");
        // The fault lasts longer than the trackers' follower and lease timeouts: until the
        // primary has given up on the frozen standby (its link to it is dropped, so the
        // standby finds it broken when it is continued), and has gone on alone past the lease
        // the standby's last acknowledgement gave it. Writes must go on meanwhile.
        let alone = wait_standby_dropped(&mut cluster, 1);
        println!(
            "tracker 1 dropped the frozen standby {:?} after the freeze: {}",
            frozen_at.elapsed(),
            alone.line
        );
        writer.wait_successes_since(
            frozen_at + LEASE,
            1,
            "started after the lease from the frozen standby ran out",
        );
        cluster.thaw_tracker(2);
        let thawed_at = Instant::now();
        println!(
            "continued tracker 2 (SIGCONT) after {:?}",
            thawed_at - frozen_at
        );
        writer.wait_successes_since(thawed_at, 3, "after the standby is continued");
        writer.stop();
        handle.join().expect("writer thread panicked");
        (writer.outcomes(), frozen_at, thawed_at)
    });
    print_outcomes(
        "create_user loop across a SIGSTOP of the standby",
        &outcomes,
        frozen_at,
    );
    let during = outcomes
        .iter()
        .filter(|o| o.started >= frozen_at && o.started < thawed_at)
        .count();
    println!("{during} create_user started while tracker 2 was frozen");
    assert_all_succeeded(&outcomes, &mut cluster, 1);

    // It follows again (a new replication link), and catches up.
    let again = cluster.wait_tracker_status(
        2,
        "tracker 2 to follow the primary again",
        CATCH_UP_TIMEOUT,
        |s| s.counter("follows") > s0.counter("follows"),
    );
    println!("tracker 2 re-attached: {}", again.line);
    let (p, s) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    println!("after SIGCONT: tracker 1 {}; tracker 2 {}", p.line, s.line);
    assert_eq!(
        p.epoch, p0.epoch,
        "the primary's epoch is unchanged: {}",
        p.line
    );
    assert_eq!(p.leader, 1, "{}", p.line);
    assert_eq!(s.epoch, p0.epoch, "{}", s.line);
    s.assert_unchanged_since(&s0, &["takeovers"], "the briefly frozen standby");
    p.assert_unchanged_since(&p0, &["step_downs"], "the primary");
    cluster.assert_no_panics();
}
