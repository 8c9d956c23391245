//! Sharing and fetching files: upload_file, list_files, download_file, show_downloads,
//! stop_share, and who may do what.

use p2p_e2e::{
    Cluster, assert_fails, assert_file_content, assert_ok, make_group, piece_count, stdout_of,
    write_test_file,
};

/// Not a multiple of the 512 KiB piece size: the last piece is short.
const SIZE: usize = 3 * 1024 * 1024 + 12345;

#[test]
fn upload_list_and_download_a_file() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    let carol = cluster.user("carol");
    make_group(&alice, "g1", &[&bob]);

    let shared = alice.dir().join("shared");
    let content = write_test_file(&shared.join("data.bin"), 1, SIZE);
    let pieces = piece_count(SIZE as u64);
    assert_eq!(pieces, 7);

    // A non-member cannot share into the group.
    carol.expect_kind(
        &[
            "upload_file",
            "g1",
            &shared.join("data.bin").to_string_lossy(),
        ],
        "permission_denied",
    );

    // A relative path is resolved against p2pctl's working directory.
    let out = alice.ctl_in(&shared, &["upload_file", "g1", "data.bin"]);
    assert_ok(&out);
    assert_eq!(
        stdout_of(&out).trim_end(),
        format!("shared data.bin in g1 ({SIZE} bytes, {pieces} pieces)")
    );

    // Members see it with its one seeder; text and JSON agree.
    let files = bob.files("g1");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["name"], "data.bin", "{files:?}");
    assert_eq!(files[0]["size"], SIZE as u64, "{files:?}");
    assert_eq!(files[0]["seeders"], 1, "{files:?}");
    assert_eq!(alice.files("g1"), files);
    let text = bob.ok(&["list_files", "g1"]);
    assert!(
        text.starts_with("data.bin") && text.contains("1 seeder"),
        "list_files:\n{text}"
    );

    // A non-member can neither list nor download it; a missing group is not found.
    let dest = carol.dir().join("downloads");
    std::fs::create_dir_all(&dest).unwrap();
    let carol_dest = dest.to_string_lossy().into_owned();
    let not_a_member = "you are not a member of g1";
    carol.expect_error(&["list_files", "g1"], "permission_denied", not_a_member);
    assert_fails(&carol.ctl(&["list_files", "g1"]), not_a_member);
    carol.expect_error(
        &["download_file", "g1", "data.bin", &carol_dest],
        "permission_denied",
        not_a_member,
    );
    assert_fails(
        &carol.ctl(&["download_file", "g1", "data.bin", &carol_dest]),
        not_a_member,
    );
    assert!(
        std::fs::read_dir(&dest).unwrap().next().is_none(),
        "a refused download leaves nothing behind"
    );
    bob.expect_kind(&["list_files", "nope"], "not_found");
    assert!(carol.downloads().is_empty(), "{:?}", carol.downloads());

    // Refusals of download_file, each before anything starts.
    let downloads = bob.dir().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let bob_dest = downloads.to_string_lossy().into_owned();
    bob.expect_kind(
        &["download_file", "g1", "no-such.bin", &bob_dest],
        "not_found",
    );
    assert_fails(
        &bob.ctl(&["download_file", "g1", "no-such.bin", &bob_dest]),
        "no-such.bin",
    );
    let missing_parent = downloads.join("no-dir").join("data.bin");
    let missing_parent = missing_parent.to_string_lossy();
    let no_dir = format!(
        "destination directory {} does not exist",
        downloads.join("no-dir").display()
    );
    bob.expect_error(
        &["download_file", "g1", "data.bin", &missing_parent],
        "invalid_argument",
        &no_dir,
    );
    assert_fails(
        &bob.ctl(&["download_file", "g1", "data.bin", &missing_parent]),
        &no_dir,
    );
    let existing = downloads.join("existing.bin");
    std::fs::write(&existing, b"keep me").unwrap();
    let existing_arg = existing.to_string_lossy();
    let exists = format!("{existing_arg} already exists");
    bob.expect_error(
        &["download_file", "g1", "data.bin", &existing_arg],
        "already_exists",
        &exists,
    );
    assert_fails(
        &bob.ctl(&["download_file", "g1", "data.bin", &existing_arg]),
        &exists,
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // A directory holding a file of that name is an existing destination too.
    let taken = bob.dir().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("data.bin"), b"mine").unwrap();
    bob.expect_kind(
        &["download_file", "g1", "data.bin", &taken.to_string_lossy()],
        "already_exists",
    );
    assert_eq!(std::fs::read(taken.join("data.bin")).unwrap(), b"mine");
    assert!(bob.downloads().is_empty(), "{:?}", bob.downloads());

    // The real download, into an existing directory named relative to p2pctl's cwd.
    let out = bob.ctl_in(bob.dir(), &["download_file", "g1", "data.bin", "downloads"]);
    assert_ok(&out);
    let target = downloads.join("data.bin");
    assert_eq!(
        stdout_of(&out).trim_end(),
        format!(
            "downloading data.bin from 1 peer(s) into {}",
            target.display()
        )
    );
    let done = bob.wait_download("g1", "data.bin");
    assert_file_content(&target, &content);
    assert_eq!(
        done["destination"],
        target.to_string_lossy().as_ref(),
        "{done}"
    );
    assert_eq!(done["size"], SIZE as u64, "{done}");
    assert_eq!(done["pieces_total"], pieces, "{done}");
    assert_eq!(done["pieces_done"], pieces, "{done}");
    assert_eq!(done["bytes_done"], SIZE as u64, "{done}");
    assert_eq!(done["banned"], serde_json::json!([]), "{done}");
    let mut part = target.clone().into_os_string();
    part.push(".p2p-part");
    assert!(
        !std::path::Path::new(&part).exists(),
        "the part file is gone once the download is complete"
    );
    assert_eq!(
        bob.ok(&["show_downloads"]),
        "[C] [g1] data.bin  100%  3.0 MiB"
    );
    // The uploader's copy is untouched, and the downloader now seeds it too.
    assert_file_content(&shared.join("data.bin"), &content);
    alice.wait_seeders("g1", "data.bin", 2);
    cluster.assert_no_panics();
}

#[test]
fn logout_and_stop_share_withdraw_a_file() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    let carol = cluster.user("carol");
    make_group(&alice, "g1", &[&bob, &carol]);
    let content = write_test_file(&alice.dir().join("f.bin"), 5, SIZE);
    alice.ok(&[
        "upload_file",
        "g1",
        &alice.dir().join("f.bin").to_string_lossy(),
    ]);
    bob.wait_seeders("g1", "f.bin", 1);
    let bob_dest = bob.dir().to_string_lossy().into_owned();
    let carol_dest = carol.dir().to_string_lossy().into_owned();

    // The only seeder logs out: nobody has the file online.
    alice.ok(&["logout"]);
    assert_eq!(
        bob.file("g1", "f.bin").expect("the file stays listed")["seeders"],
        0
    );
    bob.expect_error(
        &["download_file", "g1", "f.bin", &bob_dest],
        "unavailable",
        "no peer with f.bin is online in g1",
    );
    assert_fails(
        &bob.ctl(&["download_file", "g1", "f.bin", &bob_dest]),
        "no peer with f.bin is online in g1",
    );
    assert!(bob.downloads().is_empty(), "{:?}", bob.downloads());
    assert!(!bob.dir().join("f.bin").exists());

    // Logging in again on the same daemon shares it again.
    alice.login("alice");
    bob.wait_seeders("g1", "f.bin", 1);
    bob.ok(&["download_file", "g1", "f.bin", &bob_dest]);
    bob.wait_download("g1", "f.bin");
    assert_file_content(&bob.dir().join("f.bin"), &content);
    carol.wait_seeders("g1", "f.bin", 2);

    // stop_share of something not shared is not found.
    carol.expect_kind(&["stop_share", "g1", "f.bin"], "not_found");
    assert_fails(&carol.ctl(&["stop_share", "g1", "f.bin"]), "f.bin");
    alice.expect_kind(&["stop_share", "g1", "other.bin"], "not_found");

    // Every holder stops sharing: a new download is refused.
    assert_eq!(
        alice.ok(&["stop_share", "g1", "f.bin"]),
        "stopped sharing f.bin in g1"
    );
    assert_eq!(carol.file("g1", "f.bin").unwrap()["seeders"], 1);
    bob.ok(&["stop_share", "g1", "f.bin"]);
    assert_eq!(carol.file("g1", "f.bin").unwrap()["seeders"], 0);
    alice.expect_kind(&["stop_share", "g1", "f.bin"], "not_found");
    carol.expect_kind(
        &["download_file", "g1", "f.bin", &carol_dest],
        "unavailable",
    );
    assert!(carol.downloads().is_empty(), "{:?}", carol.downloads());
    // The files themselves are left alone.
    assert_file_content(&alice.dir().join("f.bin"), &content);
    assert_file_content(&bob.dir().join("f.bin"), &content);
    cluster.assert_no_panics();
}

#[test]
fn a_shared_file_changed_on_disk_is_withdrawn() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    let carol = cluster.user("carol");
    make_group(&alice, "g1", &[&bob, &carol]);
    let path = alice.dir().join("f.bin");
    write_test_file(&path, 9, SIZE);
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    bob.wait_seeders("g1", "f.bin", 1);

    // The file grows behind the daemon's back.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"one more line\n").unwrap();
    }

    // A download that starts now gets nothing from alice: she checks the file when bob
    // connects (and before each announcement), and withdraws it. Whether the tracker still
    // lists her when bob asks depends on which of the two came first: either the download is
    // accepted, or it is refused because nobody offers the file.
    let dest = bob.dir().join("f.bin");
    let (out, value) = bob.ctl_json(&["download_file", "g1", "f.bin", &dest.to_string_lossy()]);
    if !out.status.success() {
        assert_eq!(value["error"]["kind"], "unavailable", "{value}");
        assert_eq!(
            value["error"]["message"], "no peer with f.bin is online in g1",
            "{value}"
        );
    }
    bob.wait_seeders("g1", "f.bin", 0);
    if let Some(d) = bob.download("g1", "f.bin") {
        assert_eq!(
            d["pieces_done"], 0,
            "nothing came from the changed file: {d}"
        );
        assert_ne!(d["state"], "complete", "{d}");
    }
    assert!(!dest.exists(), "no file appears at the destination");
    carol.expect_error(
        &[
            "download_file",
            "g1",
            "f.bin",
            &carol.dir().to_string_lossy(),
        ],
        "unavailable",
        "no peer with f.bin is online in g1",
    );
    // It is no longer hers to stop.
    alice.expect_kind(&["stop_share", "g1", "f.bin"], "not_found");
    cluster.assert_no_panics();
}
