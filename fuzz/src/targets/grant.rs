//! Grants as seeders read them (the JSON of a HELLO or GRANT frame), then verified against the
//! trackers' key. Property: only a grant the tracker issued verifies; no mutation forges one.

use crate::json::{self, JsonSeeds};
use crate::{Meter, Rng, Target, corpus};
use p2p_proto::grant::{Grant, GrantError};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::OnceLock;

pub const TARGET: Target = Target {
    name: "grant",
    about: "grant JSON, then Grant::verify / verify_signature / check_expiry against the trackers' key, and key_id / public-key parsing of hostile key text",
    limit: "128 x body + 64 KiB per decode",
    generate,
    check,
};

fn seeds() -> &'static JsonSeeds {
    static SEEDS: OnceLock<JsonSeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let encoded = corpus::grants()
            .iter()
            .filter_map(|g| serde_json::to_vec(g).ok())
            .collect();
        JsonSeeds::new(encoded, 64 * 1024)
    })
}

fn issued() -> &'static [Grant] {
    static ISSUED: OnceLock<Vec<Grant>> = OnceLock::new();
    ISSUED.get_or_init(corpus::grants)
}

fn public_hex() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(corpus::grant_public_hex)
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    seeds().generate(rng)
}

/// True when `g` says exactly what an issued grant says (its signature hex may differ in
/// case only).
fn is_issued(g: &Grant) -> bool {
    issued().iter().any(|i| {
        i.key_id == g.key_id
            && i.user == g.user
            && i.group == g.group
            && i.group_id == g.group_id
            && i.file_sha1 == g.file_sha1
            && i.downloader == g.downloader
            && i.expires == g.expires
            && i.signature.eq_ignore_ascii_case(&g.signature)
    })
}

thread_local! {
    /// Grants checked already (as JSON): many inputs carry the same grant, and a signature
    /// check is slow, in a debug build very slow.
    static CHECKED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Everything a seeder does with a grant from the network.
pub fn check_grant(g: &Grant) {
    let key = serde_json::to_string(g).unwrap_or_default();
    let fresh = CHECKED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 4096 {
            c.clear();
        }
        c.insert(key)
    });
    if fresh {
        check_grant_now(g);
    }
}

fn check_grant_now(g: &Grant) {
    let signed = g.verify_signature(public_hex());
    assert_eq!(
        signed.is_ok(),
        is_issued(g),
        "a grant verifies exactly when the tracker issued it: {g:?} gave {signed:?}"
    );
    if let Err(GrantError::OtherSigner(id)) = &signed {
        assert!(id.chars().count() <= 16, "{id:?}");
    }
    // What a seeder checks at the handshake; it starts with the signature, so only a grant
    // whose signature verified is worth the (slow) second verification.
    if signed.is_ok() {
        let full = g.verify(
            public_hex(),
            corpus::FILE_SHA1,
            corpus::downloader(),
            corpus::NOW,
        );
        assert_eq!(
            full.is_ok(),
            g.file_sha1 == corpus::FILE_SHA1
                && g.downloader == corpus::downloader()
                && g.expires >= corpus::NOW,
            "{full:?}"
        );
    }
    let _ = g.check_expiry(u64::MAX);
    // Hostile text where the seeder expects the trackers' public key.
    let _ = issued()[0].verify_signature(&g.key_id);
    let _ = issued()[0].verify_signature(&g.signature);
    let _ = p2p_proto::grant::key_id(&g.signature);
}

fn check(body: &[u8], meter: &mut Meter) {
    let decoded = meter.decode("grant", json::limit(body.len()), || {
        serde_json::from_slice::<Grant>(body)
    });
    if let Ok(g) = decoded {
        check_grant(&g);
        let again: Option<Grant> = serde_json::to_vec(&g)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        assert_eq!(again.as_ref(), Some(&g), "round trip");
    }
}
