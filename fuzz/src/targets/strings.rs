//! The strings of untrusted origin that we parse or check ourselves: key fingerprints (from
//! tracker_info.txt, `trust_tracker`, peer lists, log records), user and group ids, passwords,
//! file names, SHA-1 hex, session tokens and request ids. Properties: a fingerprint that
//! parses prints back as itself (hex in lower case); every refusal is one line without control
//! characters; what passes a check has the shape the check promises.

use crate::{Meter, Rng, Target, mutate};
use p2p_proto::files::{MAX_FILE_NAME, is_sha1_hex, validate_file_name};
use p2p_proto::identity::Fingerprint;
use p2p_proto::ids::{MAX_ID_LEN, validate_id, validate_password};
use p2p_proto::token::{is_request_id, is_session_token};
use std::sync::OnceLock;

pub const TARGET: Target = Target {
    name: "strings",
    about: "fingerprints (text and JSON), user/group ids, passwords, file names, SHA-1 hex, session tokens, request ids",
    limit: "16 x input + 16 KiB per check",
    generate,
    check,
};

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let fp = crate::corpus::downloader().to_string();
        vec![
            fp.clone().into_bytes(),
            fp.to_ascii_uppercase().into_bytes(),
            format!("\"{fp}\"").into_bytes(),
            b"alice".to_vec(),
            b"Group_1.x-y".to_vec(),
            "a".repeat(64).into_bytes(),
            b"movie.mkv".to_vec(),
            "r\u{e9}sum\u{e9}.pdf".as_bytes().to_vec(),
            crate::corpus::FILE_SHA1.as_bytes().to_vec(),
            "cd".repeat(32).into_bytes(),
            "0f".repeat(16).into_bytes(),
            b"hunter2".to_vec(),
        ]
    })
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let seeds = seeds();
    if rng.u8(0..10) == 0 {
        return mutate::random_bytes(rng, 80);
    }
    let mut s = seeds[rng.usize(0..seeds.len())].clone();
    if rng.u8(0..5) != 0 {
        mutate::mutate_bytes(&mut s, rng, seeds, seeds, 4096);
    }
    s
}

fn check(input: &[u8], meter: &mut Meter) {
    let limit = 16 * input.len() + 16 * 1024;
    let json: Result<Fingerprint, _> = meter.decode("fingerprint (JSON)", limit, || {
        serde_json::from_slice::<Fingerprint>(input)
    });
    if let Ok(fp) = json {
        let again: Option<Fingerprint> = serde_json::to_vec(&fp)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        assert_eq!(again, Some(fp), "JSON round trip");
    }
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match meter.decode("fingerprint", limit, || text.parse::<Fingerprint>()) {
        Ok(fp) => {
            let shown = fp.to_string();
            assert_eq!(shown.len(), 71);
            assert_eq!(shown, format!("sha256:{}", text[7..].to_ascii_lowercase()));
            assert_eq!(shown.parse::<Fingerprint>().ok(), Some(fp));
        }
        Err(e) => super::assert_one_clean_line("fingerprint", &e.to_string()),
    }
    let id = meter.decode("validate_id", limit, || validate_id("user id", text));
    match id {
        Ok(()) => {
            assert!((1..=MAX_ID_LEN).contains(&text.len()));
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            );
            assert!(text != "." && text != "..");
        }
        Err(e) => super::assert_one_clean_line("validate_id", &e.message),
    }
    match meter.decode("validate_file_name", limit, || validate_file_name(text)) {
        Ok(()) => {
            assert!((1..=MAX_FILE_NAME).contains(&text.len()));
            assert!(!text.contains('/') && !text.chars().any(char::is_control));
        }
        Err(e) => super::assert_one_clean_line("validate_file_name", &e.to_string()),
    }
    if let Err(e) = validate_password(text) {
        super::assert_one_clean_line("validate_password", &e.message);
    }
    if is_sha1_hex(text) {
        assert!(hex::decode(text).is_ok_and(|b| b.len() == 20));
    }
    if is_session_token(text) {
        assert!(hex::decode(text).is_ok_and(|b| b.len() == 32));
    }
    if is_request_id(text) {
        assert!(text.len() % 2 == 1 || hex::decode(text).is_ok());
    }
}
