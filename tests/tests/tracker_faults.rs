//! Storage faults on the trackers: a primary whose disk fills up steps down and the standby
//! takes over, then it rejoins once space is free; a corrupt database stops a lone tracker
//! with one clear line and exit status 3, while a tracker with a partner keeps the file aside,
//! starts empty and re-syncs, never leading before it has caught up.
//!
//! The tmpfs cases need root (to mount a small tmpfs); without it they print a line and
//! return, unless `P2P_REQUIRE_ROOT=1`.

use p2p_e2e::failover::{
    CATCH_UP_TIMEOUT, PROGRESS_TIMEOUT, assert_user_exists, ctl_until_ok, raw_call,
    settled_cluster, wait_primary,
};
use p2p_e2e::faults::{Tmpfs, files_starting_with, have_root, overwrite_bytes, tracker_db};
use p2p_e2e::wire::error_of;
use p2p_e2e::{Cluster, Daemon, READY_TIMEOUT, TrackerStatus, password_of, run_bounded};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Where 512 bytes are overwritten: the first pages after redb's header, which hold the
/// tables of a small database.
const CORRUPT_AT: u64 = 4096;
const CORRUPT_LEN: usize = 512;

fn create_user(d: &Daemon, user: &str, timeout: Duration) {
    ctl_until_ok(
        d,
        &["create_user", user, &password_of(user)],
        Instant::now(),
        timeout,
    );
}

/// Status of tracker `no` until `ok` holds.
#[track_caller]
fn wait_status(
    cluster: &mut Cluster,
    no: usize,
    what: &str,
    ok: impl Fn(&TrackerStatus) -> bool,
) -> TrackerStatus {
    cluster.wait_tracker_status(no, what, CATCH_UP_TIMEOUT, ok)
}

#[test]
fn a_primary_whose_disk_fills_up_steps_down_and_rejoins_once_space_is_free() {
    if !have_root("a_primary_whose_disk_fills_up_steps_down_and_rejoins_once_space_is_free") {
        return;
    }
    let mut cluster = Cluster::new();
    let tmpfs = Tmpfs::mount(&cluster.tracker_data_dir(1), "16m");
    cluster.start_tracker(1);
    cluster.start_tracker(2);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let writer = cluster.daemon("writer");
    create_user(&writer, "before", PROGRESS_TIMEOUT);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    let filler = tmpfs.fill();
    println!("filled tracker 1's file system");
    // Writes go on until one needs space tracker 1 no longer has; from then on they go
    // through tracker 2, which takes over.
    let mut n = 0;
    let faulted = loop {
        n += 1;
        create_user(&writer, &format!("full{n}"), PROGRESS_TIMEOUT);
        let s1 = cluster.tracker_status(1);
        if s1.counter("storage_faults") > 0 {
            break s1;
        }
        assert!(
            n < 2_000,
            "2000 writes on a full disk and tracker 1 never faulted: {}",
            s1.line
        );
    };
    println!("tracker 1 faulted after {n} writes: {}", faulted.line);
    assert!(!faulted.is_primary(), "a faulted tracker is not primary");
    let primary = wait_primary(&mut cluster, 2, 1);
    println!("tracker 2 took over: {}", primary.line);
    // Client writes keep working, through tracker 2.
    for i in 1..=3 {
        create_user(&writer, &format!("during{i}"), PROGRESS_TIMEOUT);
    }
    assert_eq!(
        writer.status()["tracker"],
        cluster.tracker_addr(2).to_string(),
        "the daemon now uses tracker 2"
    );
    let s1 = cluster.tracker_status(1);
    assert!(!s1.is_primary(), "tracker 1 does not lead: {}", s1.line);

    filler.free();
    println!("freed tracker 1's file system");
    let (p, _) = cluster.wait_caught_up(2, 1, CATCH_UP_TIMEOUT);
    let s = wait_status(&mut cluster, 1, "tracker 1 writable, caught up", |s| {
        s.counter("faulted") == 0 && s.counter("resync") == 0 && s.is_following()
    });
    println!("tracker 1 rejoined: {}\ntracker 2: {}", s.line, p.line);
    assert!(s.counter("reopens") >= 1, "{}", s.line);
    assert!(s.counter("resyncs") >= 1, "{}", s.line);
    assert_eq!(
        s.counter("takeovers"),
        0,
        "tracker 1 never took over: {}",
        s.line
    );

    // Tracker 1 holds everything: with tracker 2 gone it serves the writes made meanwhile.
    cluster.kill9_tracker(2);
    let status = wait_primary(&mut cluster, 1, p.epoch + 1);
    println!("tracker 1 took back over: {}", status.line);
    let checker = cluster.daemon("checker");
    for user in ["before", "during1", "during3", &format!("full{n}")] {
        assert_user_exists(&checker, user);
    }
    cluster.assert_no_panics();
}

/// A one-line tracker_info.txt for a lone tracker on a free port; returns its path.
fn lone_tracker_info(cluster: &Cluster) -> std::path::PathBuf {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let path = cluster.root().join("lone_tracker_info.txt");
    std::fs::write(&path, format!("{port}\n")).expect("cannot write tracker_info.txt");
    path
}

#[test]
fn a_lone_tracker_with_a_corrupt_database_exits_3_with_one_line_naming_the_file() {
    let cluster = Cluster::new();
    let info = lone_tracker_info(&cluster);
    let data_dir = cluster.root().join("lone");
    let run = |input: &[u8]| {
        let mut cmd = cluster.trackerd();
        cmd.arg(&info).arg("1").arg("--data-dir").arg(&data_dir);
        run_bounded(&mut cmd, Some(input), READY_TIMEOUT)
    };
    // A first run creates the database (the first primary writes its secrets).
    let first = run(b"quit\n");
    assert!(first.status.success(), "first start: {first:?}");
    let db = tracker_db(&data_dir);
    let healthy_size = std::fs::metadata(&db).expect("the database exists").len();
    overwrite_bytes(&db, CORRUPT_AT, CORRUPT_LEN);

    let out = run(b"quit\n");
    assert_eq!(
        out.status.code(),
        Some(3),
        "a corrupt database exits 3: {out:?}"
    );
    let line = p2p_e2e::assert_one_line(&p2p_e2e::stderr_of(&out), "trackerd's stderr");
    assert!(
        line.starts_with("trackerd: ") && line.contains(&db.display().to_string()),
        "the line names the file: {line:?}"
    );
    // Nothing was moved or replaced: the operator decides.
    assert_eq!(std::fs::metadata(&db).unwrap().len(), healthy_size);
    assert!(files_starting_with(&data_dir, "tracker.redb.corrupt-").is_empty());
    // And it stays that way on every restart (the unit does not restart on 3).
    assert_eq!(run(b"quit\n").status.code(), Some(3));
}

#[test]
fn a_tracker_with_a_partner_moves_a_corrupt_database_aside_and_resyncs() {
    // A short log tail, so that the empty tracker needs a snapshot.
    let mut cluster = Cluster::start_with_tracker_args(&["--log-keep", "5"]);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let writer = cluster.daemon("writer");
    for i in 1..=8 {
        create_user(&writer, &format!("u{i}"), PROGRESS_TIMEOUT);
    }
    let (p, _) = cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    cluster.quit_tracker(2);
    let data_dir = cluster.tracker_data_dir(2);
    let db = tracker_db(&data_dir);
    let corrupt = {
        overwrite_bytes(&db, CORRUPT_AT, CORRUPT_LEN);
        std::fs::read(&db).expect("read the database")
    };

    cluster.start_tracker(2);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let s = wait_status(&mut cluster, 2, "tracker 2 re-synced", |s| {
        s.counter("resync") == 0 && s.counter("resyncs") == 1
    });
    println!("tracker 2 after the re-sync: {}", s.line);
    assert!(s.last_seq >= p.last_seq, "{}", s.line);
    assert_eq!(
        s.counter("snapshots_installed"),
        1,
        "the empty tracker got a snapshot: {}",
        s.line
    );
    let aside = files_starting_with(&data_dir, "tracker.redb.corrupt-");
    assert_eq!(aside.len(), 1, "the corrupt file is kept: {aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        corrupt,
        "kept byte for byte"
    );

    // It serves the same data: with tracker 1 gone, it answers for every user.
    cluster.kill9_tracker(1);
    wait_primary(&mut cluster, 2, p.epoch + 1);
    let checker = cluster.daemon("checker");
    for i in 1..=8 {
        assert_user_exists(&checker, &format!("u{i}"));
    }
    cluster.assert_no_panics();
}

#[test]
fn a_corrupted_primary_never_leads_before_it_caught_up() {
    let mut cluster = settled_cluster();
    let writer = cluster.daemon("writer");
    for i in 1..=4 {
        create_user(&writer, &format!("u{i}"), PROGRESS_TIMEOUT);
    }
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    // Both stop; tracker 1, the leader both have on record, loses its database.
    cluster.quit_tracker(2);
    cluster.quit_tracker(1);
    overwrite_bytes(
        &tracker_db(&cluster.tracker_data_dir(1)),
        CORRUPT_AT,
        CORRUPT_LEN,
    );

    // Alone, it starts empty and must re-sync: it does not lead, not even once the start-up
    // grace after which a tracker takes over has passed many times.
    cluster.start_tracker(1);
    wait_status(&mut cluster, 1, "tracker 1 up, must re-sync", |s| {
        s.counter("resync") == 1
    });
    let watch_until = Instant::now() + 2 * Duration::from_secs(3) + Duration::from_secs(2);
    let mut polls = 0;
    while Instant::now() < watch_until {
        let s = cluster.tracker_status(1);
        assert!(
            !s.is_primary() && s.counter("takeovers") == 0,
            "an empty tracker that must re-sync leads: {}",
            s.line
        );
        polls += 1;
    }
    let reply = raw_call(
        cluster.tracker_addr(1),
        1,
        serde_json::json!({"op": "list_groups"}),
    );
    assert_eq!(
        error_of(&reply)["kind"],
        "unavailable",
        "it serves nothing: {reply}"
    );
    println!("tracker 1 stayed out of the lead over {polls} status polls");

    // Its partner comes back: it takes over with its data, tracker 1 catches up from it.
    cluster.start_tracker(2);
    wait_primary(&mut cluster, 2, 1);
    let (p, _) = cluster.wait_caught_up(2, 1, CATCH_UP_TIMEOUT);
    let s = wait_status(&mut cluster, 1, "tracker 1 re-synced", |s| {
        s.counter("resync") == 0 && s.counter("resyncs") == 1
    });
    println!("tracker 2: {}\ntracker 1: {}", p.line, s.line);
    assert_eq!(
        p.counter("snapshots_installed"),
        0,
        "tracker 2 was never overwritten by the empty tracker: {}",
        p.line
    );
    let checker = cluster.daemon("checker");
    for i in 1..=4 {
        assert_user_exists(&checker, &format!("u{i}"));
    }
    // Now it may lead again: with tracker 2 gone, it takes over.
    cluster.kill9_tracker(2);
    let s = wait_primary(&mut cluster, 1, p.epoch + 1);
    println!("tracker 1 leads after catching up: {}", s.line);
    for i in 1..=4 {
        assert_user_exists(&checker, &format!("u{i}"));
    }
    cluster.assert_no_panics();
}

#[test]
fn a_detached_p2pd_logs_to_daily_files_and_keeps_seven() {
    let cluster = Cluster::start();
    let d = cluster.daemon_unstarted("alice");
    // Nine files of earlier days, made before the daemon starts (the appender removes the
    // oldest by creation time; these were all made at once, so which ones go is not checked).
    std::fs::create_dir_all(d.state_dir()).expect("create the state dir");
    for day in 1..=9 {
        let old = d.state_dir().join(format!("p2pd.log.2020-01-0{day}"));
        std::fs::write(&old, "an old day\n").expect("write an old log");
    }
    let keep_me = d.state_dir().join("p2pd.redb.unrelated");
    std::fs::write(&keep_me, "x").expect("write a file that is not a log");

    // p2pctl starts the daemon, which detaches.
    let pw = password_of("alice");
    assert_eq!(d.ok(&["create_user", "alice", &pw]), "created user alice");
    d.ok(&["login", "alice", &pw]);

    let logs = files_starting_with(&d.state_dir(), "p2pd.log");
    let names: Vec<String> = logs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        logs.len(),
        7,
        "the newest 7 daily files are kept: {names:?}"
    );
    let today: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("p2pd.log.2020-"))
        .collect();
    assert_eq!(today.len(), 1, "one file for today: {names:?}");
    let date = today[0].trim_start_matches("p2pd.log.");
    assert!(
        date.len() == 10 && date.chars().filter(|c| *c == '-').count() == 2,
        "named p2pd.log.YYYY-MM-DD: {names:?}"
    );
    assert!(
        std::fs::metadata(d.state_dir().join(today[0].as_str()))
            .unwrap()
            .len()
            > 0,
        "today's file has the log"
    );
    assert!(keep_me.exists(), "other files are left alone");
    assert!(d.state_dir().join("p2pd.stderr").exists());
}

#[test]
fn a_standby_whose_disk_fills_up_drops_out_and_catches_up_once_space_is_free() {
    if !have_root("a_standby_whose_disk_fills_up_drops_out_and_catches_up_once_space_is_free") {
        return;
    }
    let mut cluster = Cluster::new();
    let tmpfs = Tmpfs::mount(&cluster.tracker_data_dir(2), "16m");
    cluster.start_tracker(1);
    cluster.start_tracker(2);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let writer = cluster.daemon("writer");
    create_user(&writer, "before", PROGRESS_TIMEOUT);

    let filler = tmpfs.fill();
    // The primary goes on writing; the standby faults on a record it cannot store.
    let mut n = 0;
    let faulted = loop {
        n += 1;
        create_user(&writer, &format!("full{n}"), PROGRESS_TIMEOUT);
        let s2 = cluster.tracker_status(2);
        if s2.counter("storage_faults") > 0 {
            break s2;
        }
        assert!(
            n < 2_000,
            "2000 writes and the standby on a full disk never faulted: {}",
            s2.line
        );
    };
    println!("tracker 2 faulted after {n} writes: {}", faulted.line);
    for i in 1..=3 {
        create_user(&writer, &format!("during{i}"), PROGRESS_TIMEOUT);
    }
    let p = cluster.tracker_status(1);
    assert!(p.is_primary(), "tracker 1 still leads: {}", p.line);
    assert_eq!(p.counter("step_downs"), 0, "{}", p.line);
    assert_eq!(
        writer.status()["tracker"],
        cluster.tracker_addr(1).to_string()
    );

    filler.free();
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    let s = wait_status(&mut cluster, 2, "tracker 2 writable, caught up", |s| {
        s.counter("faulted") == 0 && s.counter("resync") == 0 && s.is_following()
    });
    println!("tracker 2 rejoined: {}", s.line);
    assert_eq!(s.counter("takeovers"), 0, "{}", s.line);
    cluster.kill9_tracker(1);
    wait_primary(&mut cluster, 2, 1);
    let checker = cluster.daemon("checker");
    for user in ["before", "during1", "during3", &format!("full{n}")] {
        assert_user_exists(&checker, user);
    }
    cluster.assert_no_panics();
}
