//! tracker_info.txt: `TrackerInfo::parse` of the text, and `TrackerInfo::load` of the same
//! bytes from a file for one input in 16 (which adds the size limit and UTF-8 handling).
//! Properties: an accepted file lists 1 to 16 trackers, none on port 0; every refusal is one
//! line without control characters.

use crate::{Meter, Rng, Target, mutate};
use p2p_proto::tracker_info::{MAX_TRACKERS, TrackerInfo};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const TARGET: Target = Target {
    name: "tracker_info",
    about: "tracker_info.txt text (parse), and the same bytes as a file (load) for 1 input in 16",
    limit: "16 x input + 64 KiB per parse or load",
    generate,
    check,
};

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let fp = crate::corpus::downloader().to_string();
        vec![
            b"127.0.0.1:8080\n127.0.0.1:8081\n".to_vec(),
            format!("# trackers\n127.0.0.1 8080 {fp}\n\n  127.0.0.1:8081\t{fp}\n").into_bytes(),
            b"[::1]:8080\r\n[::1] 8081\r\n".to_vec(),
            format!(
                "10.0.0.1:1 {}\n",
                fp.to_ascii_uppercase().replace("SHA256", "sha256")
            )
            .into_bytes(),
            "127.0.0.1:8080\n".repeat(16).into_bytes(),
            b"#only a comment\n".to_vec(),
        ]
    })
}

fn dict() -> &'static Vec<Vec<u8>> {
    static DICT: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    DICT.get_or_init(|| {
        [
            "sha256:",
            "#",
            "\n",
            "\r\n",
            " ",
            "\t",
            ":",
            "[",
            "]",
            "::",
            "0",
            "65535",
            "65536",
            "255.255.255.255",
            "127.0.0.1",
            "[::ffff:1.2.3.4]",
            "%eth0",
            "\u{a0}",
            "\u{2028}",
            "\u{feff}",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    })
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let seeds = seeds();
    let mut text = seeds[rng.usize(0..seeds.len())].clone();
    match rng.u8(0..20) {
        0 => return mutate::random_bytes(rng, 200),
        1 => {
            // Around the file size limit.
            let line = b"127.0.0.1:8080 # padding padding padding padding padding\n";
            let target = 64 * 1024 + rng.usize(0..3) - 1;
            text = line.repeat(target / line.len() + 1);
            text.truncate(target);
        }
        2 => {
            // Around the tracker count limit.
            let n = MAX_TRACKERS + rng.usize(0..3) - 1;
            text = "127.0.0.1:8080\n".repeat(n).into_bytes();
        }
        _ => {}
    }
    if rng.u8(0..5) != 0 {
        mutate::mutate_bytes(&mut text, rng, seeds, dict(), 70 * 1024);
    }
    text
}

thread_local! {
    static SCRATCH: RefCell<Option<(tempfile::TempDir, PathBuf)>> = const { RefCell::new(None) };
}

/// A file of this thread's scratch directory holding `input`.
fn scratch_file(input: &[u8]) -> Option<PathBuf> {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            let dir = crate::scratch_dir().ok()?;
            let path = dir.path().join("tracker_info.txt");
            *s = Some((dir, path));
        }
        let (_, path) = s.as_ref()?;
        std::fs::write(path, input).ok()?;
        Some(path.clone())
    })
}

fn verdict(result: Result<TrackerInfo, p2p_proto::tracker_info::TrackerInfoError>) {
    match result {
        Ok(info) => {
            assert!((1..=MAX_TRACKERS).contains(&info.entries.len()));
            assert!(info.entries.iter().all(|e| e.addr.port() != 0));
            assert_eq!(info.tracker(1), Some(info.entries[0].addr));
        }
        Err(e) => super::assert_one_clean_line("tracker_info", &e.to_string()),
    }
}

fn check(input: &[u8], meter: &mut Meter) {
    let limit = 16 * input.len() + 64 * 1024;
    let text = String::from_utf8_lossy(input);
    let parsed = meter.decode("TrackerInfo::parse", limit, || {
        TrackerInfo::parse(Path::new("tracker_info.txt"), &text)
    });
    verdict(parsed);
    let sample = input
        .iter()
        .fold(0u8, |h, b| h.wrapping_mul(31).wrapping_add(*b));
    if sample % 16 == 0
        && let Some(path) = scratch_file(input)
    {
        let loaded = meter.decode("TrackerInfo::load", limit, || TrackerInfo::load(&path));
        verdict(loaded);
    }
}
