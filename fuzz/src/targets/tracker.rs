//! Tracker protocol bodies, as `trackerd` reads requests and `p2pd` reads responses, and the
//! checks both apply to the values before using them.

use crate::json::{self, JsonSeeds};
use crate::{Meter, Rng, Target, corpus};
use p2p_proto::files::{FileMeta, is_sha1_hex, validate_file_name};
use p2p_proto::frame::{self, Message};
use p2p_proto::ids::{validate_id, validate_password};
use p2p_proto::token::{is_request_id, is_session_token};
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use p2p_proto::views::page_limit;
use std::fmt::Debug;
use std::sync::OnceLock;

pub const TARGET: Target = Target {
    name: "tracker",
    about: "tracker request and response bodies (frame::decode), then the checks trackerd and p2pd apply to ids, passwords, pages, file metadata, grants and cluster proofs",
    limit: "128 x body + 64 KiB per decode",
    generate,
    check,
};

fn seeds() -> &'static JsonSeeds {
    static SEEDS: OnceLock<JsonSeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut encoded = corpus::encoded(&corpus::tracker_requests());
        encoded.extend(corpus::encoded(&corpus::tracker_responses()));
        JsonSeeds::new(encoded, 256 * 1024)
    })
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    seeds().generate(rng)
}

/// Decodes `body` as `T` within the JSON limit; a message that decodes must survive a round
/// trip through the real encoder unchanged.
pub fn decode_round_trip<T: Message + PartialEq + Debug>(
    body: &[u8],
    meter: &mut Meter,
) -> Option<T> {
    let decoded = meter.decode(T::PROTOCOL, json::limit(body.len()), || {
        frame::decode::<T>(body)
    });
    let msg = decoded.ok()?;
    let again = frame::encode(&msg)
        .map_err(|e| e.to_string())
        .and_then(|b| frame::decode::<T>(&b).map_err(|e| e.to_string()));
    if again.as_ref().ok() != Some(&msg) {
        // serde_json reads floats to within one unit of the last place only (its exact
        // mode would change every program's build); a value holding one may not come back
        // bit for bit. No message of ours has a float field.
        assert!(holds_float(body), "round trip: {again:?}");
    }
    Some(msg)
}

/// True when `body` is JSON with a non-integer number somewhere.
fn holds_float(body: &[u8]) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) => n.is_f64(),
            serde_json::Value::Array(a) => a.iter().any(walk),
            serde_json::Value::Object(m) => m.values().any(walk),
            _ => false,
        }
    }
    serde_json::from_slice(body).is_ok_and(|v| walk(&v))
}

fn check(body: &[u8], meter: &mut Meter) {
    if let Some(req) = decode_round_trip::<TrackerRequest>(body, meter) {
        let _ = is_request_id(&req.id);
        if let Some(s) = &req.session {
            let _ = is_session_token(s);
        }
        exercise_call(&req.call);
    }
    if let Some(resp) = decode_round_trip::<TrackerResponse>(body, meter) {
        match &resp.result {
            Ok(reply) => exercise_reply(reply),
            Err(e) => super::assert_one_clean_line("error kind", &format!("{:?}", e.kind)),
        }
    }
}

fn id(what: &str, s: &str) {
    if let Err(e) = validate_id(what, s) {
        super::assert_one_clean_line("validate_id", &e.message);
    } else {
        assert!(!s.is_empty() && s.len() <= p2p_proto::ids::MAX_ID_LEN);
    }
}

fn meta(m: &FileMeta) {
    match m.validate() {
        Ok(()) => {
            assert!(m.size <= p2p_proto::files::MAX_FILE_SIZE);
            assert_eq!(m.pieces.len(), FileMeta::piece_count(m.size));
            for i in 0..m.pieces.len().min(4) {
                assert!(m.piece_len(i) <= p2p_proto::files::PIECE_SIZE);
            }
        }
        Err(e) => super::assert_one_clean_line("FileMeta::validate", &e.to_string()),
    }
}

fn name(s: &str) {
    if let Err(e) = validate_file_name(s) {
        super::assert_one_clean_line("validate_file_name", &e.to_string());
    }
}

fn exercise_call(call: &TrackerCall) {
    let _ = call.name();
    match call {
        TrackerCall::ClusterHello { proof, .. } => {
            let key = b"0123456789abcdef0123456789abcdef";
            let side = trackerd::cluster::auth::Side::Connector;
            let genuine = trackerd::cluster::auth::prove(key, side, &[9; 32]);
            let ok = trackerd::cluster::auth::verify(key, side, &[9; 32], proof);
            // Only the genuine proof verifies (hex digits may differ in case).
            assert_eq!(ok, proof.eq_ignore_ascii_case(&genuine), "{proof:?}");
        }
        TrackerCall::CreateUser { user, password } | TrackerCall::Login { user, password } => {
            id("user id", user);
            if let Err(e) = validate_password(password) {
                super::assert_one_clean_line("validate_password", &e.message);
            }
        }
        TrackerCall::CreateGroup { group }
        | TrackerCall::JoinGroup { group }
        | TrackerCall::LeaveGroup { group } => id("group id", group),
        TrackerCall::ListGroups { after, limit } => {
            let _ = page_limit(*limit);
            if let Some(a) = after {
                id("group id", a);
            }
        }
        TrackerCall::ListRequests {
            group,
            after,
            limit,
        } => {
            id("group id", group);
            let _ = page_limit(*limit);
            if let Some(a) = after {
                id("user id", a);
            }
        }
        TrackerCall::ListFiles {
            group,
            after,
            limit,
        } => {
            id("group id", group);
            let _ = page_limit(*limit);
            if let Some(a) = after {
                name(a);
            }
        }
        TrackerCall::AcceptRequest { group, user } => {
            id("group id", group);
            id("user id", user);
        }
        TrackerCall::UploadFile { group, file, .. } => {
            id("group id", group);
            meta(file);
        }
        TrackerCall::FetchFile { group, name: n }
        | TrackerCall::Peers { group, name: n }
        | TrackerCall::StopShare { group, name: n } => {
            id("group id", group);
            name(n);
        }
        TrackerCall::Announce { shares, .. } => {
            for s in shares {
                id("group id", &s.group);
                name(&s.name);
                let _ = is_sha1_hex(&s.sha1);
            }
        }
        TrackerCall::Punch { group, name: n, .. } => {
            id("group id", group);
            name(n);
        }
        TrackerCall::RelayOpen { name: n, grant, .. } => {
            name(n);
            super::grant::check_grant(grant);
        }
        TrackerCall::RelayAccept { invite } => {
            let _ = p2p_proto::token::is_request_id(invite);
        }
        TrackerCall::Ping
        | TrackerCall::Poll
        | TrackerCall::Logout
        | TrackerCall::Whoami
        | TrackerCall::SigningKey => {}
    }
}

fn exercise_reply(reply: &TrackerReply) {
    match reply {
        TrackerReply::FileDetails {
            meta: m,
            peers,
            grant,
            ..
        } => {
            meta(m);
            super::grant::check_grant(grant);
            for p in peers {
                let _ = p.addr.parse::<std::net::SocketAddr>();
                let _ = p.key.to_string();
            }
        }
        TrackerReply::Peers { peers, grant, .. } => {
            super::grant::check_grant(grant);
            for p in peers {
                let _ = p.addr.parse::<std::net::SocketAddr>();
            }
        }
        TrackerReply::SigningKey { public_key } => {
            let _ = p2p_proto::grant::key_id(public_key);
        }
        _ => {}
    }
}
