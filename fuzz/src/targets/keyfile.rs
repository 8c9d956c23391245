//! Key files: the PEM of a process's Ed25519 key (`Identity::load_or_create`, which reads,
//! parses and loads it through rustls and aws-lc) and trackerd's cluster key file, both read
//! from a file holding the input. Properties: no panic, the documented size limit holds, a key
//! that loads names the same fingerprint every time, a cluster key is at least 16 bytes.

use crate::{Meter, Rng, Target, mutate};
use base64::Engine;
use p2p_proto::identity::Identity;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

pub const TARGET: Target = Target {
    name: "keyfile",
    about: "identity key files (PEM, PKCS#8 Ed25519) through Identity::load_or_create, and trackerd cluster key files",
    limit: "4 x input + 256 KiB per load (heap of the Rust side; aws-lc allocates through C)",
    generate,
    check,
};

/// PKCS#8 v1 of an Ed25519 key: the fixed prefix, then the 32-byte seed.
fn pkcs8(seed: [u8; 32]) -> Vec<u8> {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap_or_default();
    der.extend_from_slice(&seed);
    der
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| vec![pkcs8([7; 32]), pkcs8([0; 32]), pkcs8([0xff; 32])])
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let ders = seeds();
    const LABELS: &[&str] = &[
        "PRIVATE KEY",
        "PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "RSA PRIVATE KEY",
        "CERTIFICATE",
        "ENCRYPTED PRIVATE KEY",
        "",
    ];
    match rng.u8(0..20) {
        0 => mutate::random_bytes(rng, 300),
        1 => {
            // Around the 64 KiB limit of a key file.
            let n = 64 * 1024 + rng.usize(0..3) - 1;
            let mut big = pem("PRIVATE KEY", &ders[0]);
            big.resize(n, b'\n');
            big
        }
        2 => {
            // A cluster key: hex, maybe too short, maybe with spaces.
            let n = [0, 2, 30, 31, 32, 33, 64, 65, 200][rng.usize(0..9)];
            let mut key = hex::encode(mutate::random_bytes(rng, n)).into_bytes();
            key.push(b'\n');
            key
        }
        3..12 => {
            let mut der = ders[rng.usize(0..ders.len())].clone();
            if rng.u8(0..5) != 0 {
                mutate::mutate_bytes(&mut der, rng, ders, &[], 4096);
            }
            pem(LABELS[rng.usize(0..LABELS.len())], &der)
        }
        _ => {
            let mut text = pem("PRIVATE KEY", &ders[rng.usize(0..ders.len())]);
            mutate::mutate_bytes(&mut text, rng, &[], &[], 70 * 1024);
            text
        }
    }
}

struct Scratch {
    _dir: tempfile::TempDir,
    key: PathBuf,
    cluster: PathBuf,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

fn with_files<R>(input: &[u8], f: impl FnOnce(&Scratch) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let scratch = s.get_or_insert_with(|| {
            let dir = crate::scratch_dir().expect("a scratch directory for key files");
            Scratch {
                key: dir.path().join("id.key"),
                cluster: dir.path().join("cluster.key"),
                _dir: dir,
            }
        });
        for path in [&scratch.key, &scratch.cluster] {
            let fresh = !path.exists();
            std::fs::write(path, input).expect("writing a scratch key file");
            if fresh {
                // Rewriting keeps the mode: once is enough.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod 600 of a scratch key file");
            }
        }
        f(scratch)
    })
}

fn check(input: &[u8], meter: &mut Meter) {
    let limit = 4 * input.len() + 256 * 1024;
    with_files(input, |files| {
        let loaded = meter.decode("Identity::load_or_create", limit, || {
            Identity::load_or_create(&files.key)
        });
        match loaded {
            Ok(id) => {
                let again = Identity::load_or_create(&files.key).map(|i| i.fingerprint());
                assert_eq!(again.ok(), Some(id.fingerprint()), "same key, same name");
            }
            Err(e) => super::assert_one_clean_line("key file", &e.to_string()),
        }
        let cluster = meter.decode("cluster key", limit, || {
            trackerd::cluster::key::load_or_create(&files.cluster)
        });
        if let Ok(key) = cluster {
            assert!(key.len() >= 16);
        }
    });
}
