//! The length-prefixed frames of the JSON protocols (`FrameCodec`), fed whole, in random chunks
//! and byte by byte, under the unauthenticated and the full tracker limit. Properties: every
//! split gives the same frames and the same error; no frame exceeds the limit; the buffer
//! grows only with the bytes that arrived (a header claiming 16 MiB reserves nothing); a stream
//! decoded without error re-encodes to itself. Each frame's body is then read as a tracker
//! request, as trackerd would.

use crate::json::{self, JsonSeeds};
use crate::{Meter, Rng, Target, corpus, mutate, stream};
use bytes::{BufMut, Bytes, BytesMut};
use p2p_proto::frame::{self, FrameCodec};
use p2p_proto::limits::{MAX_TRACKER_FRAME, MAX_TRACKER_FRAME_UNAUTHENTICATED};
use p2p_proto::tracker::TrackerRequest;
use std::sync::OnceLock;
use tokio_util::codec::Encoder;

pub const TARGET: Target = Target {
    name: "frame",
    about: "FrameCodec streams (tracker, control and cluster frames) split every way, limits 64 KiB and 16 MiB; bodies then read as tracker requests",
    limit: "8 x stream + 64 KiB per feed, plus the vector of frames taken (never the declared frame size)",
    generate,
    check,
};

fn bodies() -> &'static JsonSeeds {
    static SEEDS: OnceLock<JsonSeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        let mut add = |b: Result<Bytes, p2p_proto::FrameError>| {
            if let Ok(b) = b {
                encoded.push(b.to_vec());
            }
        };
        corpus::tracker_requests()
            .iter()
            .for_each(|m| add(frame::encode(m)));
        corpus::tracker_responses()
            .iter()
            .for_each(|m| add(frame::encode(m)));
        corpus::ctl_requests()
            .iter()
            .for_each(|m| add(frame::encode(m)));
        corpus::cluster_frames()
            .iter()
            .for_each(|m| add(frame::encode(m)));
        JsonSeeds::new(encoded, 32 * 1024)
    })
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut out = BytesMut::new();
    for _ in 0..rng.usize(1..6) {
        let body = if rng.u8(0..10) == 0 {
            mutate::random_bytes(rng, 64)
        } else {
            bodies().generate(rng)
        };
        if rng.u8(0..5) == 0 {
            // A rewritten length field: off by one, at a limit, or absurd.
            let len = match rng.u8(0..3) {
                0 => (body.len() as u32).wrapping_add(1),
                1 => (body.len() as u32).wrapping_sub(1),
                _ => mutate::interesting_u32s()[rng.usize(0..mutate::interesting_u32s().len())],
            };
            out.put_u32(len);
            out.extend_from_slice(&body);
        } else {
            let mut codec = FrameCodec::new(MAX_TRACKER_FRAME);
            let _ = codec.encode(Bytes::from(body), &mut out);
        }
    }
    let mut data = out.to_vec();
    if rng.u8(0..5) == 0 {
        mutate::mutate_bytes(
            &mut data,
            rng,
            &bodies().encoded,
            &bodies().dict,
            256 * 1024,
        );
    } else if rng.u8(0..10) == 0 {
        data.truncate(rng.usize(0..=data.len()));
    }
    data
}

fn check(input: &[u8], meter: &mut Meter) {
    for max in [MAX_TRACKER_FRAME_UNAUTHENTICATED, MAX_TRACKER_FRAME] {
        let mut first: Option<stream::Outcome<BytesMut>> = None;
        for split in stream::splits(input) {
            let got = meter.decode_then_limit(
                "FrameCodec",
                || stream::feed(FrameCodec::new(max), input, &split),
                |got| stream::limit(input.len(), got),
            );
            for frame in got.iter().flatten() {
                assert!(
                    frame.len() <= max,
                    "a frame of {} bytes passed",
                    frame.len()
                );
            }
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "split {split:?} changed the outcome"),
            }
        }
        let Some(frames) = first else { continue };
        if frames.iter().all(Result::is_ok) && frames.len() < 100_000 {
            let mut again = BytesMut::new();
            let mut codec = FrameCodec::new(max);
            for f in frames.iter().flatten() {
                let _ = codec.encode(f.clone().freeze(), &mut again);
            }
            assert_eq!(&again[..], input, "frames re-encode to the stream");
        }
        if max == MAX_TRACKER_FRAME_UNAUTHENTICATED {
            for body in frames.iter().flatten().take(8) {
                let _ = meter.decode("tracker request", json::limit(body.len()), || {
                    frame::decode::<TrackerRequest>(body)
                });
            }
        }
    }
}
