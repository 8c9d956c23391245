//! Cluster protocol bodies, as each tracker reads the other's, with the log records a standby
//! applies (`ClusterMsg::Record`, decoded to trackerd's `LogRecord`) and the cluster proofs
//! it checks. Log records are also decoded straight from the bytes, as trackerd reads them
//! back from its database.

use super::tracker::decode_round_trip;
use crate::json::{self, JsonSeeds};
use crate::{Meter, Rng, Target, corpus};
use p2p_proto::cluster::{ClusterFrame, ClusterMsg};
use std::sync::OnceLock;
use trackerd::cluster::auth::{self, Side};
use trackerd::log::LogRecord;

pub const TARGET: Target = Target {
    name: "cluster",
    about: "cluster frame bodies (frame::decode), the log records inside them (trackerd LogRecord, also from raw bytes) and cluster proofs",
    limit: "128 x body + 64 KiB per decode",
    generate,
    check,
};

fn seeds() -> &'static JsonSeeds {
    static SEEDS: OnceLock<JsonSeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut encoded = corpus::encoded(&corpus::cluster_frames());
        encoded.extend(
            corpus::log_records()
                .iter()
                .filter_map(|r| serde_json::to_vec(r).ok()),
        );
        JsonSeeds::new(encoded, 256 * 1024)
    })
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    seeds().generate(rng)
}

fn record_round_trip(r: &LogRecord) {
    let again: Option<LogRecord> = serde_json::to_vec(r)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    assert_eq!(again.as_ref(), Some(r), "log record round trip");
}

fn check(body: &[u8], meter: &mut Meter) {
    if let Some(f) = decode_round_trip::<ClusterFrame>(body, meter) {
        match f.msg {
            ClusterMsg::Record { record } => {
                let decoded = meter.decode("log record", json::limit(body.len()), || {
                    serde_json::from_value::<LogRecord>(record)
                });
                if let Ok(r) = decoded {
                    record_round_trip(&r);
                }
            }
            ClusterMsg::Accepted { proof } => {
                let key = b"0123456789abcdef0123456789abcdef";
                let genuine = auth::prove(key, Side::Acceptor, &[3; 32]);
                let ok = auth::verify(key, Side::Acceptor, &[3; 32], &proof);
                assert_eq!(ok, proof.eq_ignore_ascii_case(&genuine), "{proof:?}");
            }
            ClusterMsg::Hello { position, .. }
            | ClusterMsg::Status { position, .. }
            | ClusterMsg::Heartbeat { position } => {
                let _ = position.outranks(&position);
            }
            _ => {}
        }
    }
    let stored = meter.decode("stored log record", json::limit(body.len()), || {
        serde_json::from_slice::<LogRecord>(body)
    });
    if let Ok(r) = stored {
        record_round_trip(&r);
    }
}
