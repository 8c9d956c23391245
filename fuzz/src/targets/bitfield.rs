//! Wire bitfields (WELCOME payloads) and the hex bitfields p2pd stores, read for a piece count
//! of any size. Properties: a bitfield is accepted exactly when its size fits the piece count
//! and no spare bit is set; what is read back is what was sent; the count is the number of set
//! bits.

use crate::{Meter, Rng, Target, mutate};
use p2p_proto::bitfield::Bitfield;

pub const TARGET: Target = Target {
    name: "bitfield",
    about: "Bitfield::from_bytes of wire bytes and of stored hex, for piece counts near, at and far from the size",
    limit: "4 x input + 4 KiB per read",
    generate,
    check,
};

/// Input: a 4-byte big-endian piece count, then the bitfield.
fn generate(rng: &mut Rng) -> Vec<u8> {
    let pieces = rng.usize(0..2000);
    let mut bits = Bitfield::new(pieces);
    match rng.u8(0..3) {
        0 => bits = Bitfield::full(pieces),
        1 => {
            for _ in 0..rng.usize(0..=pieces) {
                bits.set(rng.usize(0..pieces.max(1)));
            }
        }
        _ => {}
    }
    let count = match rng.u8(0..6) {
        0 => {
            let u32s = mutate::interesting_u32s();
            u32s[rng.usize(0..u32s.len())]
        }
        1 => (pieces as u32).wrapping_add(rng.u32(0..9)),
        2 => (pieces as u32).wrapping_sub(rng.u32(0..9)),
        _ => pieces as u32,
    };
    let mut out = count.to_be_bytes().to_vec();
    if rng.u8(0..4) == 0 {
        out.extend_from_slice(hex::encode(bits.as_bytes()).as_bytes());
    } else {
        out.extend_from_slice(bits.as_bytes());
    }
    if rng.u8(0..3) == 0 {
        let mut tail = out.split_off(4);
        mutate::mutate_bytes(&mut tail, rng, &[], &[], 8192);
        out.extend(tail);
    }
    out
}

fn read(bytes: &[u8], pieces: usize, meter: &mut Meter) {
    let limit = 4 * bytes.len() + 4096;
    let got = meter.decode("Bitfield::from_bytes", limit, || {
        Bitfield::from_bytes(bytes, pieces)
    });
    let spare_set = (pieces..bytes.len() * 8).any(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0);
    let fits = bytes.len() == pieces.div_ceil(8);
    assert_eq!(got.is_some(), fits && !spare_set, "accepted wrongly");
    if let Some(b) = got {
        assert_eq!(b.as_bytes(), bytes);
        assert_eq!(b.len(), pieces);
        let ones: u32 = bytes.iter().map(|b| b.count_ones()).sum();
        assert_eq!(b.count(), ones as usize);
        assert_eq!(b.iter_set().count(), b.count());
        assert_eq!(b.is_complete(), b.count() == pieces);
    }
}

fn check(input: &[u8], meter: &mut Meter) {
    let Some((head, bits)) = input.split_first_chunk::<4>() else {
        return;
    };
    let pieces = u32::from_be_bytes(*head) as usize;
    read(bits, pieces, meter);
    read(bits, bits.len() * 8, meter);
    // As p2pd reads its own state: hex, then the bitfield.
    if let Ok(raw) = hex::decode(bits) {
        read(&raw, pieces, meter);
    }
}
