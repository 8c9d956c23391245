//! Inputs for decoders of JSON bodies: valid encodings of real messages, mutated in their
//! structure and in their bytes, plus some random values and random bytes.

use crate::mutate;
use fastrand::Rng;
use serde_json::Value;

/// The seeds of one JSON target.
pub struct JsonSeeds {
    /// The bytes the real encoder produced.
    pub encoded: Vec<Vec<u8>>,
    /// The same, parsed back for structural mutation.
    pub values: Vec<Value>,
    /// Keys, tags and strings of the seeds.
    pub dict: Vec<Vec<u8>>,
    /// Longest input made.
    pub max_len: usize,
}

impl JsonSeeds {
    /// Seeds from bodies the real encoders made.
    pub fn new(encoded: Vec<Vec<u8>>, max_len: usize) -> Self {
        let values: Vec<Value> = encoded
            .iter()
            .filter_map(|e| serde_json::from_slice(e).ok())
            .collect();
        assert_eq!(
            values.len(),
            encoded.len(),
            "every seed is valid JSON from the real encoder"
        );
        let dict = mutate::dictionary(&values);
        Self {
            encoded,
            values,
            dict,
            max_len,
        }
    }

    /// One structurally mutated seed, re-encoded.
    fn structural(&self, rng: &mut Rng) -> Vec<u8> {
        let mut v = self.values[rng.usize(0..self.values.len())].clone();
        for _ in 0..1 + rng.usize(0..4) {
            mutate::mutate_value(&mut v, rng, &self.values, &self.dict);
            if serde_json::to_vec(&v).map_or(0, |b| b.len()) > self.max_len {
                break;
            }
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// One input.
    pub fn generate(&self, rng: &mut Rng) -> Vec<u8> {
        let mut out = match rng.u8(0..100) {
            0..4 => mutate::random_bytes(rng, 256),
            4..10 => {
                serde_json::to_vec(&mutate::random_value(rng, 4, &self.dict)).unwrap_or_default()
            }
            10..15 => self.encoded[rng.usize(0..self.encoded.len())].clone(),
            15..55 => self.structural(rng),
            _ => {
                let mut data = if rng.bool() {
                    self.encoded[rng.usize(0..self.encoded.len())].clone()
                } else {
                    self.structural(rng)
                };
                mutate::mutate_bytes(&mut data, rng, &self.encoded, &self.dict, self.max_len);
                data
            }
        };
        out.truncate(self.max_len);
        out
    }
}

/// Heap one decode of an `n`-byte JSON body may hold. It is linear in the body, never the
/// declared frame size, but the factor is large, and measured, not chosen: serde buffers the
/// content of an internally tagged enum (`op`, `cmd`, `reply`, `type`) before it knows the
/// variant, unknown fields included, at 32 bytes a value in vectors that may be twice their
/// length (`[0,0,…]` inside a call costs 24 x, nested arrays about 60 x), and a
/// `serde_json::Value` object (a cluster `Record`) is a B-tree node of about 500 bytes
/// (`[{"":0},…]` costs about 106 x).
pub fn limit(n: usize) -> usize {
    128 * n + 64 * 1024
}
