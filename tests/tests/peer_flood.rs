//! Work per frame (docs/ARCHITECTURE.md, "Work per frame"): a member who registers as a seeder
//! and then floods a downloader with frames that carry nothing new (keep-alives, HAVEs of a
//! piece it announced already) is banned from the download and disconnected, and the download
//! goes on from an honest seeder.

use p2p_e2e::adversary::{Adversary, file_meta};
use p2p_e2e::flood::{FLOOD_LIMIT, FloodingSeeder};
use p2p_e2e::wire::IO_TIMEOUT;
use p2p_e2e::{
    Cluster, assert_file_content, make_group, password_of, piece_count, wait_for, write_test_file,
};
use serde_json::json;

const SIZE: usize = 6 * 512 * 1024 + 777;

#[test]
fn a_seeder_flooding_a_downloader_is_banned_and_the_download_completes_elsewhere() {
    let cluster = Cluster::start();
    let alice = cluster.user("alice");
    let bob = cluster.user("bob");
    make_group(&alice, "g1", &[&bob]);
    let mut mallory = Adversary::new(cluster.tracker_addr(1));
    mallory.ok(json!({"op": "create_user", "user": "mallory", "password": password_of("mallory")}));
    mallory.login("mallory", &password_of("mallory"));
    mallory.ok(json!({"op": "join_group", "group": "g1"}));
    alice.ok(&["accept_request", "g1", "mallory"]);

    // mallory registers the file first, as its only seeder, at her flooding fake.
    let path = alice.dir().join("data.bin");
    let content = write_test_file(&path, 41, SIZE);
    let fake = FloodingSeeder::start(mallory.identity.clone(), piece_count(SIZE as u64) as usize);
    mallory.ok(json!({
        "op": "upload_file", "group": "g1", "file": file_meta("data.bin", &content),
        "port": fake.port(),
    }));

    let dest = bob.dir().join("data.bin");
    bob.ok(&["download_file", "g1", "data.bin", &dest.to_string_lossy()]);
    let flooded = fake.wait_flooded(IO_TIMEOUT * 4);
    assert!(
        flooded.closed_by_downloader && flooded.frames < FLOOD_LIMIT,
        "bob's daemon took the whole flood: {flooded:?}"
    );
    let mallory_addr = fake.addr().to_string();
    let banned = wait_for("mallory's seeder to show as banned", IO_TIMEOUT, || {
        let d = bob
            .download("g1", "data.bin")
            .ok_or_else(|| "not in show_downloads".to_string())?;
        d["banned"]
            .as_array()
            .and_then(|b| {
                b.iter()
                    .find(|b| b["peer"] == mallory_addr.as_str())
                    .cloned()
            })
            .ok_or_else(|| d.to_string())
    });
    assert!(
        banned["reason"]
            .as_str()
            .is_some_and(|r| r.contains("flood")),
        "{banned}"
    );

    // An honest seeder appears; bob's daemon, not worn out by the flood, downloads from it.
    alice.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    bob.wait_download("g1", "data.bin");
    assert_file_content(&dest, &content);
    assert_eq!(
        fake.seen().len(),
        1,
        "a banned seeder is not connected to again"
    );
}
