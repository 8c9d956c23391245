//! The binary peer protocol (`PeerCodec`), on a downloading connection (frames up to a piece)
//! and a serving one (control-sized frames), fed whole, in random chunks and byte by byte.
//! Then what p2pd does with each frame: HELLO and GRANT grants verified, WELCOME bitfields read
//! for files of several sizes. Properties: every split gives the same frames and the same
//! error; each decoded frame re-encodes and decodes to itself; control payloads stay within
//! their limit; only a PIECE header reserves its frame.

use crate::json::JsonSeeds;
use crate::{Meter, Rng, Target, corpus, mutate, stream};
use bytes::{BufMut, Bytes, BytesMut};
use p2p_proto::bitfield::Bitfield;
use p2p_proto::peer::{
    Hello, MAX_CONTROL_PAYLOAD, MAX_PEER_FRAME, PEER_VERSION, PeerCodec, PeerFrame,
};
use std::sync::OnceLock;
use tokio_util::codec::{Decoder, Encoder};

pub const TARGET: Target = Target {
    name: "peer",
    about: "PeerCodec streams (downloading and serving), split every way; HELLO/GRANT grants verified, WELCOME bitfields read",
    limit: "8 x stream + 64 KiB per feed, plus the vector of frames taken, plus one frame of the codec's limit (a PIECE header reserves it: 512 KiB + 16 downloading, 64 KiB + 1 serving)",
    generate,
    check,
};

const T_HELLO: u8 = 1;
const T_GRANT: u8 = 10;

/// HELLO and GRANT payloads.
fn payloads() -> &'static JsonSeeds {
    static SEEDS: OnceLock<JsonSeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut encoded = Vec::new();
        for grant in corpus::grants() {
            let hello = Hello {
                v: PEER_VERSION,
                file: corpus::FILE_SHA1.into(),
                grant: grant.clone(),
            };
            encoded.extend(serde_json::to_vec(&hello).ok());
            encoded.extend(serde_json::to_vec(&grant).ok());
        }
        JsonSeeds::new(encoded, 16 * 1024)
    })
}

fn valid_frame(rng: &mut Rng) -> PeerFrame {
    let index = || mutate::interesting_u32s();
    let pick = |rng: &mut Rng| index()[rng.usize(0..index().len())];
    match rng.u8(0..10) {
        0 => PeerFrame::Hello(Hello {
            v: PEER_VERSION,
            file: corpus::FILE_SHA1.into(),
            grant: corpus::grants().remove(0),
        }),
        1 => {
            let pieces = rng.usize(0..100);
            let mut bits = Bitfield::new(pieces);
            for _ in 0..rng.usize(0..=pieces) {
                bits.set(rng.usize(0..pieces.max(1)));
            }
            PeerFrame::Welcome(Bytes::copy_from_slice(bits.as_bytes()))
        }
        2 => PeerFrame::Error("piece 3 is not here".into()),
        3 => PeerFrame::Have(pick(rng)),
        4 => PeerFrame::Request(pick(rng)),
        5 => PeerFrame::Cancel(pick(rng)),
        6 => PeerFrame::Reject(pick(rng)),
        7 => PeerFrame::Piece {
            index: pick(rng),
            data: Bytes::from(mutate::random_bytes(rng, 64)),
        },
        8 => PeerFrame::KeepAlive,
        _ => PeerFrame::Grant(corpus::grants().remove(1)),
    }
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut out = BytesMut::new();
    for _ in 0..rng.usize(1..6) {
        match rng.u8(0..10) {
            0..5 => {
                let _ = PeerCodec::default().encode(valid_frame(rng), &mut out);
            }
            5..8 => {
                // A mutated HELLO or GRANT payload behind a correct header.
                let payload = payloads().generate(rng);
                out.put_u32(payload.len() as u32 + 1);
                out.put_u8(if rng.bool() { T_HELLO } else { T_GRANT });
                out.extend_from_slice(&payload);
            }
            _ => {
                // A header of any length and type, then a few bytes.
                let u32s = mutate::interesting_u32s();
                out.put_u32(u32s[rng.usize(0..u32s.len())]);
                out.put_u8(rng.u8(0..13));
                out.extend_from_slice(&mutate::random_bytes(rng, 16));
            }
        }
    }
    let mut data = out.to_vec();
    if rng.u8(0..4) == 0 {
        mutate::mutate_bytes(
            &mut data,
            rng,
            &payloads().encoded,
            &payloads().dict,
            64 * 1024,
        );
    }
    data
}

/// What p2pd does with a frame it received.
fn use_frame(frame: &PeerFrame) {
    match frame {
        PeerFrame::Hello(hello) => {
            assert_eq!(hello.v, PEER_VERSION, "a HELLO of another version passed");
            super::grant::check_grant(&hello.grant);
        }
        PeerFrame::Grant(grant) => super::grant::check_grant(grant),
        PeerFrame::Welcome(bits) => {
            let most = bits.len() * 8;
            for pieces in [most, most.saturating_sub(7), most + 1] {
                if let Some(b) = Bitfield::from_bytes(bits, pieces) {
                    assert_eq!(b.as_bytes(), &bits[..]);
                    assert!(b.count() <= pieces);
                }
            }
        }
        PeerFrame::Error(text) => assert!(text.len() <= 3 * MAX_CONTROL_PAYLOAD),
        _ => {}
    }
}

/// A codec to test: its name, how to make one, and what it may reserve beyond the stream.
type Codec = (&'static str, fn() -> PeerCodec, usize);

fn check(input: &[u8], meter: &mut Meter) {
    let codecs: [Codec; 2] = [
        (
            "PeerCodec (downloading)",
            PeerCodec::default,
            MAX_PEER_FRAME,
        ),
        (
            "PeerCodec (serving)",
            PeerCodec::serving,
            MAX_CONTROL_PAYLOAD + 1 + 4,
        ),
    ];
    for (what, make, reserved) in codecs {
        let mut first: Option<stream::Outcome<PeerFrame>> = None;
        for split in stream::splits(input) {
            let got = meter.decode_then_limit(
                what,
                || stream::feed(make(), input, &split),
                |got| stream::limit(input.len(), got) + reserved,
            );
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "split {split:?} changed the outcome"),
            }
        }
        for frame in first.iter().flatten().flatten().take(16) {
            use_frame(frame);
            if matches!(frame, PeerFrame::Error(t) if t.len() > MAX_CONTROL_PAYLOAD) {
                // Replacement characters grew it; the encoder cuts it to the limit.
                continue;
            }
            let mut buf = BytesMut::new();
            if make().encode(frame.clone(), &mut buf).is_ok() {
                let again = make().decode(&mut buf).map_err(|e| e.to_string());
                assert_eq!(again, Ok(Some(frame.clone())), "frame round trip");
            }
        }
    }
}
