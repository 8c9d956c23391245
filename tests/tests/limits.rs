//! Limits and bounded replies (docs/ARCHITECTURE.md, "Limits"): one account cannot make more
//! groups than the limit, whatever it does the others' listings keep working, a listing comes in
//! pages that together hold every entry exactly once, and what a running download asks for
//! every second does not carry the file's piece list. Accounts that make many groups fast are
//! test clients with keys of their own ([`Adversary`]) speaking to the real trackers.

use p2p_e2e::adversary::{Adversary, file_meta};
use p2p_e2e::failover::{settled_cluster, wait_primary};
use p2p_e2e::{Cluster, Daemon, make_group, stdout_of};
use serde_json::json;
use std::collections::BTreeSet;

/// Groups one user may own (the tracker's default).
const GROUPS_PER_USER: usize = 100;
/// Entries of a listing's page when none is asked for, and the most one may hold.
const PAGE: usize = 1000;

/// `client` creates `count` groups named `{prefix}-{i}`, each of which must succeed.
fn create_groups(client: &mut Adversary, prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let group = format!("{prefix}-{i:03}");
            client.ok(json!({"op": "create_group", "group": group}));
            group
        })
        .collect()
}

/// One page of `list_groups --json` as `d` sees it: the group names and `more`.
#[track_caller]
fn groups_page(d: &Daemon, args: &[&str]) -> (Vec<String>, bool) {
    let mut full = vec!["list_groups"];
    full.extend_from_slice(args);
    let reply = d.json(&full);
    assert_eq!(reply["reply"], "groups", "{reply}");
    let names = reply["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("list_groups without groups: {reply}"))
        .iter()
        .map(|g| g["group"].as_str().expect("a group name").to_string())
        .collect();
    let more = reply["more"]
        .as_bool()
        .unwrap_or_else(|| panic!("list_groups --json without more: {reply}"));
    (names, more)
}

#[test]
fn one_account_stops_at_its_group_limit_and_everyone_else_still_lists() {
    let mut cluster = settled_cluster();
    let mallory = cluster.user("mallory");
    let alice = cluster.user("alice");
    alice.ok(&["create_group", "alices"]);

    // Mallory makes groups as fast as the tracker takes them, up to the limit.
    let mut flood = Adversary::logged_in(cluster.tracker_addr(1), "mallory");
    create_groups(&mut flood, "m", GROUPS_PER_USER);
    let refusal = flood.err(json!({"op": "create_group", "group": "m-over"}));
    assert_eq!(refusal["kind"], "limit_reached", "{refusal}");
    let limit_message = format!("mallory owns {GROUPS_PER_USER} groups, the most one user may own");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains(&limit_message)),
        "{refusal}"
    );
    // p2pctl says the same, and nothing was made.
    mallory.expect_error(&["create_group", "m-over"], "limit_reached", &limit_message);

    // Everyone's list_groups works and shows every group; others may still create.
    let (names, more) = groups_page(&alice, &[]);
    assert_eq!(names.len(), GROUPS_PER_USER + 1, "{names:?}");
    assert!(!more);
    assert!(!names.iter().any(|g| g == "m-over"));
    alice.ok(&["create_group", "alices-second"]);

    // Leaving one of them (the last member, so it is removed) makes room again.
    mallory.ok(&["leave_group", "m-000"]);
    mallory.ok(&["create_group", "m-again"]);
    mallory.expect_error(&["create_group", "m-over"], "limit_reached", &limit_message);

    // The standby kept the same count: once it has taken over, the limit still holds.
    cluster.wait_caught_up(1, 2, p2p_e2e::failover::CATCH_UP_TIMEOUT);
    cluster.kill9_tracker(1);
    wait_primary(&mut cluster, 2, 1);
    mallory.expect_error(&["create_group", "m-over"], "limit_reached", &limit_message);
    alice.ok(&["create_group", "alices-third"]);
    cluster.assert_no_panics();
}

#[test]
fn paging_through_the_groups_shows_each_exactly_once() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    // More groups than one page holds: ten accounts at their limit and a few more.
    let mut all = BTreeSet::new();
    for n in 0..=PAGE / GROUPS_PER_USER {
        let user = format!("maker{n:02}");
        let mut client = Adversary::new_account(cluster.tracker_addr(1), &user);
        let count = if n == PAGE / GROUPS_PER_USER {
            7
        } else {
            GROUPS_PER_USER
        };
        all.extend(create_groups(&mut client, &user, count));
    }
    assert_eq!(all.len(), PAGE + 7);

    // The default page stops at its size and says there is more; the text ends with the
    // command for the next page, which gives the rest.
    let (first, more) = groups_page(&alice, &[]);
    assert_eq!(first.len(), PAGE);
    assert!(more);
    let text = alice.ok(&["list_groups"]);
    let last = first.last().unwrap();
    assert_eq!(
        text.lines().last(),
        Some(format!("(more: p2pctl list_groups --after {last})").as_str()),
    );
    assert_eq!(text.lines().count(), PAGE + 1);
    let (rest, more) = groups_page(&alice, &["--after", last]);
    assert!(!more);
    let text = alice.ok(&["list_groups", "--after", last]);
    assert!(!text.contains("(more:"), "{text}");

    // Smaller pages, followed to the end: every group once, in order, `more` false last.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["--limit", "333"];
        if let Some(last) = &after {
            args.extend(["--after", last.as_str()]);
        }
        let (page, more) = groups_page(&alice, &args);
        assert!(page.len() <= 333 && !page.is_empty(), "{}", page.len());
        after = page.last().cloned();
        seen.extend(page);
        if !more {
            break;
        }
    }
    let expected: Vec<String> = all.iter().cloned().collect();
    assert_eq!(seen, expected);
    assert_eq!([first, rest].concat(), expected);

    // A page size outside 1..=1000 is a usage error of p2pctl.
    for bad in ["0", "1001"] {
        let out = alice.ctl(&["list_groups", "--limit", bad]);
        assert_eq!(out.status.code(), Some(2), "--limit {bad}: {out:?}");
    }
    cluster.assert_no_panics();
}

#[test]
fn the_file_listing_pages_too() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let mut uploader = Adversary::logged_in(cluster.tracker_addr(1), "alice");
    let names: Vec<String> = (0..5).map(|i| format!("file {i}.txt")).collect();
    for (i, name) in names.iter().enumerate() {
        let meta = file_meta(name, format!("content {i}").as_bytes());
        uploader.ok(json!({"op": "upload_file", "group": "g1", "file": meta, "port": 7000}));
    }
    let page = |args: &[&str]| -> (Vec<String>, bool) {
        let mut full = vec!["list_files", "g1", "--limit", "2"];
        full.extend_from_slice(args);
        let reply = bob.json(&full);
        let files = reply["files"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"));
        let names = files
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        (names, reply["more"].as_bool().unwrap())
    };
    assert_eq!(page(&[]), (names[..2].to_vec(), true));
    // The hint quotes a name with a space so that it can be pasted into a shell.
    let text = stdout_of(&bob.ctl(&["list_files", "g1", "--limit", "2"]));
    assert_eq!(
        text.lines().last(),
        Some("(more: p2pctl list_files g1 --after 'file 1.txt')")
    );
    assert_eq!(
        page(&["--after", "file 1.txt"]),
        (names[2..4].to_vec(), true)
    );
    assert_eq!(
        page(&["--after", "file 3.txt"]),
        (names[4..].to_vec(), false)
    );
    cluster.assert_no_panics();
}

#[test]
fn what_a_running_download_asks_for_does_not_carry_the_piece_list() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    // A large file's metadata: 2,000 pieces (1000 MiB); only the metadata is registered.
    let pieces: Vec<String> = (0..2000).map(|i| format!("{i:040x}")).collect();
    let meta = json!({
        "name": "big.iso",
        "size": 2000u64 * 512 * 1024,
        "sha1": "ab".repeat(20),
        "pieces": pieces,
    });
    let mut seeder = Adversary::logged_in(cluster.tracker_addr(1), "alice");
    seeder.ok(json!({"op": "upload_file", "group": "g1", "file": meta, "port": 7000}));

    let mut downloader = Adversary::logged_in(cluster.tracker_addr(1), "bob");
    // Starting a download: the metadata with every piece hash, once.
    let start = downloader.fetch("g1", "big.iso");
    assert_eq!(start["meta"]["pieces"].as_array().map(Vec::len), Some(2000));
    let start_size = serde_json::to_vec(&start).unwrap().len();
    assert!(start_size > 2000 * 40, "{start_size}");

    // Every second after: the peers and a fresh grant, no metadata.
    let again = downloader.ok(json!({"op": "peers", "group": "g1", "name": "big.iso"}));
    assert_eq!(again["reply"], "peers", "{again}");
    assert!(again.get("meta").is_none(), "{again}");
    assert!(!again.to_string().contains(&pieces[1]), "{again}");
    let peers = again["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{again}");
    assert_eq!(peers[0]["user"], "alice");
    assert!(again["grant"].is_object(), "{again}");
    let size = serde_json::to_vec(&again).unwrap().len();
    assert!(
        size < 2048,
        "a peers answer of {size} bytes for one peer: {again}"
    );
    cluster.assert_no_panics();
}
