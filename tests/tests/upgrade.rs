//! Upgrade from release 0.1.0: the current `trackerd` and `p2pd` started on the databases
//! 0.1.0 wrote (`tests/fixtures/v0.1.0/`, see its README.md) keep everything: users and their
//! passwords, the daemons' sessions (no new login), groups with owners, members and a pending
//! request, the files, alice's and carol's shares, and bob's interrupted download, which
//! resumes from the pieces his database committed and completes. A second start on the
//! migrated databases works as well.
//!
//! One test: the fixtures' paths are fixed (under `/tmp/p2p-upgrade-fixture`), and
//! [`FixtureRoot`] holds a lock on them for the whole run.

use p2p_e2e::upgrade::{self, FixtureRoot, str_of, u64_of};
use p2p_e2e::{Cluster, DOWNLOAD_TIMEOUT, Daemon, assert_file_content, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long the pair may take to form and the standby to catch up. Bounds a hang only.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// Who is what in each group: the manifest's, then as the test changes it.
#[derive(Clone)]
struct Group {
    owner: String,
    members: Vec<String>,
    pending: Vec<String>,
}

fn expected_groups(manifest: &Value) -> BTreeMap<String, Group> {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("manifest: a list of users: {v}"))
            .iter()
            .map(|u| str_of(u, "user").to_string())
            .collect()
    };
    manifest["groups"]
        .as_object()
        .expect("manifest: groups")
        .iter()
        .map(|(name, g)| {
            let group = Group {
                owner: str_of(&g["owner"], "owner").to_string(),
                members: names(&g["members"]),
                pending: names(&g["pending"]),
            };
            (name.clone(), group)
        })
        .collect()
}

/// `d` (logged in as `user`, without a new login) sees exactly the groups of `groups`, each
/// with its owner, its number of members and `user`'s own standing in it.
#[track_caller]
fn assert_groups(d: &Daemon, user: &str, groups: &BTreeMap<String, Group>) {
    let seen = d.groups();
    let mut names: Vec<&str> = seen
        .iter()
        .map(|g| g["group"].as_str().unwrap_or(""))
        .collect();
    names.sort_unstable();
    let wanted: Vec<&str> = groups.keys().map(String::as_str).collect();
    assert_eq!(names, wanted, "{user} sees the groups of 0.1.0: {seen:?}");
    for (name, g) in groups {
        let info = d.expect_group(name);
        assert_eq!(info["owner"], g.owner.as_str(), "{user} sees {info}");
        assert_eq!(info["members"], g.members.len(), "{user} sees {info}");
        let standing = if g.owner == user {
            "owner"
        } else if g.members.iter().any(|m| m == user) {
            "member"
        } else if g.pending.iter().any(|m| m == user) {
            "pending"
        } else {
            "none"
        };
        assert_eq!(info["membership"], standing, "{user} sees {info}");
    }
}

/// `d`'s `p2pd` resumed the 0.1.0 session of `user`: `status` names the user, and a call that
/// needs the tracker's session (`list_groups`) works with no login.
#[track_caller]
fn assert_session_kept(d: &Daemon, user: &str, groups: &BTreeMap<String, Group>) {
    let status = d.status();
    assert_eq!(status["user"], user, "{user}'s p2pd is logged in: {status}");
    assert_groups(d, user, groups);
}

/// The manifest's file `name` is listed in `group` (asked by member `d`) with its size.
#[track_caller]
fn assert_listed(d: &Daemon, manifest: &Value, name: &str) {
    let entry = upgrade::file_entry(manifest, name);
    let group = str_of(&entry["group"], "file group");
    let files = d.files(group);
    assert_eq!(files.len(), 1, "{group} holds only {name}: {files:?}");
    assert_eq!(files[0]["name"], name, "{files:?}");
    assert_eq!(files[0]["size"], entry["size"], "{files:?}");
}

/// Every byte of a finished download `done` came from `seeder` (and all `size` of them).
#[track_caller]
fn assert_all_from(done: &Value, seeder: &Daemon, size: u64) {
    let addr = seeder.peer_addr().to_string();
    let sources = done["sources"].as_array().expect("sources");
    let from_seeder: u64 = sources
        .iter()
        .filter(|s| s["peer"] == addr.as_str())
        .map(|s| s["bytes"].as_u64().unwrap_or(0))
        .sum();
    let from_others: Vec<&Value> = sources
        .iter()
        .filter(|s| s["peer"] != addr.as_str() && s["bytes"].as_u64() != Some(0))
        .collect();
    assert_eq!(
        from_seeder,
        size,
        "all of the file came from {} ({addr}): {done}",
        seeder.name()
    );
    assert!(from_others.is_empty(), "no bytes from anyone else: {done}");
}

/// `d`, member of `group`, downloads `name` to `dest`; it completes with `bytes`, all of them
/// from `seeder`.
#[track_caller]
fn download_from(d: &Daemon, group: &str, name: &str, dest: &Path, bytes: &[u8], seeder: &Daemon) {
    d.ok(&["download_file", group, name, &dest.to_string_lossy()]);
    let done = d.wait_download(group, name);
    assert_file_content(dest, bytes);
    assert_eq!(done["size"], bytes.len(), "{done}");
    assert_all_from(&done, seeder, bytes.len() as u64);
}

#[test]
fn release_0_1_0_databases_are_upgraded_in_place() {
    let _root = FixtureRoot::claim();
    let manifest = upgrade::manifest();
    let contents: BTreeMap<String, Vec<u8>> =
        upgrade::write_user_files(&manifest).into_iter().collect();
    upgrade::install_part_files(&manifest);
    let mut groups = expected_groups(&manifest);

    // Both trackers on their 0.1.0 databases (fresh ports: no database records any), paired.
    let mut cluster = Cluster::new();
    for no in [1, 2] {
        upgrade::install_tracker(&cluster, &manifest, no);
    }
    cluster.start_tracker(1);
    cluster.start_tracker(2);
    let (primary, _) = cluster.wait_caught_up(1, 2, PAIR_TIMEOUT);
    assert_eq!(primary.role, "primary", "{}", primary.line);

    let mut daemons: BTreeMap<&str, Daemon> = BTreeMap::new();
    for user in ["alice", "bob", "carol", "dave"] {
        let d = cluster.daemon_unstarted(user);
        upgrade::install_daemon(&d, &manifest, user);
        daemons.insert(user, d);
    }
    let download = &manifest["downloads"]["bob"][0];
    let committed = u64_of(&download["pieces_committed"], "pieces_committed");
    let total = u64_of(&download["pieces_total"], "pieces_total");
    let verified_at_kill = u64_of(
        &download["pieces_verified_at_kill"],
        "pieces_verified_at_kill",
    );
    assert!(
        committed > 0 && committed <= verified_at_kill && verified_at_kill < total,
        "the fixture's download is partial, its committed pieces among those verified: \
         {download}"
    );
    let part_path = Path::new(str_of(&download["part_path"], "part_path")).to_path_buf();
    let destination = Path::new(str_of(&download["destination"], "destination")).to_path_buf();
    let holiday = &contents["holiday.bin"];
    let notes = &contents["notes.txt"];

    // bob first, with nobody online who has holiday.bin: his download resumes by itself with
    // the pieces his database committed (re-hashed, as the part file's mtime is not the one
    // committed), and no more can arrive.
    let bob = daemons.get_mut("bob").expect("bob");
    bob.start();
    assert_session_kept(bob, "bob", &groups);
    let resumed = wait_for(
        "bob's download to resume with its committed pieces",
        DOWNLOAD_TIMEOUT,
        || {
            let d = bob
                .download("friends", "holiday.bin")
                .ok_or_else(|| "not in show_downloads".to_string())?;
            match d["pieces_done"].as_u64() {
                Some(n) if n >= committed => Ok(d),
                _ => Err(d.to_string()),
            }
        },
    );
    // pieces_verified_at_kill may be more: pieces verified in the second before the kill were
    // not committed yet (0.1.0 commits once a second), so 0.1.0 itself resumes with
    // pieces_committed. Every committed piece is kept, and nothing else is claimed.
    assert_eq!(resumed["pieces_done"], committed, "{resumed}");
    assert_eq!(resumed["pieces_total"], total, "{resumed}");
    assert_eq!(resumed["size"], holiday.len(), "{resumed}");
    assert_eq!(
        resumed["destination"],
        destination.to_string_lossy().as_ref(),
        "{resumed}"
    );
    assert_eq!(
        resumed["state"], "waiting",
        "nobody has the rest: {resumed}"
    );
    assert!(part_path.exists(), "the part file is kept");
    assert!(!destination.exists(), "nothing at the destination yet");
    assert_listed(bob, &manifest, "holiday.bin");

    // dave: still waiting for friends.
    let dave = daemons.get_mut("dave").expect("dave");
    dave.start();
    assert_session_kept(dave, "dave", &groups);

    // carol: still shares notes.txt in solo.
    let carol = daemons.get_mut("carol").expect("carol");
    carol.start();
    assert_session_kept(carol, "carol", &groups);
    assert_listed(carol, &manifest, "notes.txt");
    carol.wait_seeders("solo", "notes.txt", 1);
    assert_eq!(carol.requests("solo"), Vec::<String>::new());

    // alice: still owns friends with dave's request, still shares holiday.bin; bob's download
    // goes on from her and completes byte-identical, never losing a resumed piece.
    let alice = daemons.get_mut("alice").expect("alice");
    alice.start();
    assert_session_kept(alice, "alice", &groups);
    assert_listed(alice, &manifest, "holiday.bin");
    let pending = &groups["friends"].pending;
    assert_eq!(&alice.requests("friends"), pending);

    let bob = &daemons["bob"];
    let mut fewest = u64::MAX;
    let done = bob.wait_download_with("friends", "holiday.bin", |d| {
        fewest = fewest.min(d["pieces_done"].as_u64().unwrap_or(0));
    });
    assert!(
        fewest >= committed,
        "bob's download never showed fewer than the {committed} resumed pieces (saw {fewest})"
    );
    assert_eq!(done["pieces_done"], total, "{done}");
    assert_file_content(&destination, holiday);
    assert!(!part_path.exists(), "the part file is gone once complete");
    // The resumed pieces were not fetched again: alice sent exactly the others.
    let piece = p2p_e2e::PIECE_SIZE;
    let fetched: u64 = done["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        fetched,
        (total - committed) * piece,
        "only the missing pieces were fetched: {done}"
    );
    assert_all_from(&done, &daemons["alice"], (total - committed) * piece);

    // A new member of each group downloads each file from its 0.1.0 sharer alone (bob, who
    // has holiday.bin now, stopped first), byte-identical: the shares and the tracker's file
    // records (piece hashes) came through.
    assert!(daemons.get_mut("bob").expect("bob").sigterm().success());
    let erin = cluster.user("erin");
    for (group, owner) in [("friends", "alice"), ("solo", "carol")] {
        erin.ok(&["join_group", group]);
        daemons[owner].ok(&["accept_request", group, "erin"]);
        groups
            .get_mut(group)
            .expect("group")
            .members
            .push("erin".into());
    }
    download_from(
        &erin,
        "friends",
        "holiday.bin",
        &erin.dir().join("holiday.bin"),
        holiday,
        &daemons["alice"],
    );
    download_from(
        &erin,
        "solo",
        "notes.txt",
        &erin.dir().join("notes.txt"),
        notes,
        &daemons["carol"],
    );

    // dave's 0.1.0 request can be accepted.
    daemons["alice"].ok(&["accept_request", "friends", "dave"]);
    let friends = groups.get_mut("friends").expect("friends");
    friends.pending.retain(|u| u != "dave");
    friends.members.push("dave".into());
    assert_groups(&daemons["dave"], "dave", &groups);
    assert_eq!(daemons["alice"].requests("friends"), Vec::<String>::new());

    // A second start on the migrated databases: everything as it was left, sessions too.
    let mut erin = erin;
    assert!(erin.sigterm().success());
    for user in ["alice", "carol", "dave"] {
        let d = daemons.get_mut(user).expect("daemon");
        assert!(d.sigterm().success(), "{user}'s p2pd stopped cleanly");
    }
    for no in [2, 1] {
        assert!(cluster.quit_tracker(no).success(), "tracker {no} quit");
    }
    cluster.start_tracker(1);
    cluster.start_tracker(2);
    cluster.wait_caught_up(1, 2, PAIR_TIMEOUT);
    for (user, d) in daemons.iter_mut() {
        d.restart();
        assert_session_kept(d, user, &groups);
    }
    let bob = &daemons["bob"];
    let done = bob
        .download("friends", "holiday.bin")
        .expect("bob's download is still listed");
    assert_eq!(done["state"], "complete", "{done}");
    assert_file_content(&destination, holiday);
    // alice's and bob's holiday.bin, carol's notes.txt: offered again after the restart.
    daemons["dave"].wait_seeders("friends", "holiday.bin", 2);
    daemons["carol"].wait_seeders("solo", "notes.txt", 1);

    // Tracker 2 migrated its own copy: when it takes over, it serves the same users, sessions
    // and groups, and accepts the shares with the group ids the daemons learned from
    // tracker 1 (a different id would make it refuse them).
    cluster.kill9_tracker(1);
    cluster.wait_tracker_status(2, "tracker 2 to take over", PAIR_TIMEOUT, |s| {
        s.is_primary()
    });
    for (user, d) in &daemons {
        assert_session_kept(d, user, &groups);
    }
    daemons["dave"].wait_seeders("friends", "holiday.bin", 2);
    daemons["carol"].wait_seeders("solo", "notes.txt", 1);
    for (user, d) in &daemons {
        let status = d.status();
        assert_eq!(
            status["tracker"],
            cluster.tracker_addr(2).to_string().as_str(),
            "{user}'s p2pd moved to tracker 2: {status}"
        );
    }

    // Every 0.1.0 password still works (and only it).
    let users = manifest["users"].as_object().expect("manifest: users");
    for (user, password) in users {
        let d = &daemons[user.as_str()];
        d.expect_kind(&["login", user, "not-the-password-1"], "auth_failed");
        let password = str_of(password, "password");
        assert_eq!(
            d.ok(&["login", user, password]),
            format!("logged in as {user}")
        );
        assert_session_kept(d, user, &groups);
    }
    cluster.assert_no_panics();
}
