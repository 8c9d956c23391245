//! Control protocol bodies, as `p2pd` reads `p2pctl`'s requests and `p2pctl` reads the
//! daemon's answers, and the checks the daemon applies before acting.

use super::tracker::decode_round_trip;
use crate::json::JsonSeeds;
use crate::{Meter, Rng, Target, corpus};
use p2p_proto::control::{CtlCommand, CtlRequest, CtlResponse};
use p2p_proto::identity::Fingerprint;
use p2p_proto::ids::{validate_id, validate_password};
use std::sync::OnceLock;

pub const TARGET: Target = Target {
    name: "control",
    about: "control request and response bodies (frame::decode), then id, password, page and fingerprint checks",
    limit: "128 x body + 64 KiB per decode",
    generate,
    check,
};

fn seeds() -> &'static JsonSeeds {
    static SEEDS: OnceLock<JsonSeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut encoded = corpus::encoded(&corpus::ctl_requests());
        encoded.extend(corpus::encoded(&corpus::ctl_responses()));
        JsonSeeds::new(encoded, 256 * 1024)
    })
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    seeds().generate(rng)
}

fn id(what: &str, s: &str) {
    if let Err(e) = validate_id(what, s) {
        super::assert_one_clean_line("validate_id", &e.message);
    }
}

fn check(body: &[u8], meter: &mut Meter) {
    if let Some(req) = decode_round_trip::<CtlRequest>(body, meter) {
        match &req.cmd {
            CtlCommand::CreateUser { user, password } | CtlCommand::Login { user, password } => {
                id("user id", user);
                let _ = validate_password(password);
            }
            CtlCommand::CreateGroup { group }
            | CtlCommand::JoinGroup { group }
            | CtlCommand::LeaveGroup { group } => id("group id", group),
            CtlCommand::ListGroups { limit, .. }
            | CtlCommand::ListRequests { limit, .. }
            | CtlCommand::ListFiles { limit, .. } => {
                let _ = p2p_proto::views::page_limit(*limit);
            }
            CtlCommand::TrustTracker {
                tracker,
                fingerprint,
            } => {
                let _ = tracker.parse::<std::net::SocketAddr>();
                if let Err(e) = fingerprint.parse::<Fingerprint>() {
                    super::assert_one_clean_line("fingerprint", &e.to_string());
                }
            }
            CtlCommand::DownloadFile {
                file, destination, ..
            } => {
                let _ = p2p_proto::files::validate_file_name(file);
                let _ = destination.is_absolute();
            }
            _ => {}
        }
    }
    let _ = decode_round_trip::<CtlResponse>(body, meter);
}
