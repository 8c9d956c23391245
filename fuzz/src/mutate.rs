//! Mutations: byte-level (bit flips, interesting bytes and integers, truncation, extension,
//! duplication, splices, dictionary tokens) and JSON-structural (replace a node with an
//! interesting or random value, drop or add keys, repeat array elements, nest deeply, splice in
//! a node of another seed).

use fastrand::Rng;
use serde_json::{Map, Value};

/// Bytes that mean something to a JSON or binary parser.
const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0xc0, 0xed, 0xf4, b'\n', b'\r', b'\t', b' ', b'"', b'\\',
    b'{', b'}', b'[', b']', b',', b':', b'-', b'+', b'.', b'0', b'9', b'e', b'u',
];

/// 32-bit values that sit at or near a limit somewhere.
pub fn interesting_u32s() -> &'static [u32] {
    const KIB: u32 = 1024;
    &[
        0,
        1,
        2,
        4,
        5,
        0x7f,
        0x80,
        0xff,
        0x100,
        0x7fff,
        0xffff,
        64 * KIB,
        64 * KIB + 1,
        64 * KIB + 2,
        512 * KIB,
        512 * KIB + 15,
        512 * KIB + 16,
        512 * KIB + 17,
        4096 * KIB,
        4096 * KIB + 1,
        16384 * KIB,
        16384 * KIB + 1,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX - 1,
        u32::MAX,
    ]
}

/// JSON numbers at the edges of every integer type, and some no integer type takes.
const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "3",
    "99",
    "255",
    "256",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "0.5",
    "1e3",
    "1e400",
    "-1e400",
    "1e-400",
    "1.0",
    "2.0",
];

/// Text that JSON parsers, escape handling and our own string checks care about.
const INTERESTING_TEXT: &[&str] = &[
    "\"",
    "\\",
    "\\u",
    "\\u0000",
    "\\ud800",
    "\\udfff",
    "\\ud83d\\ude00",
    "\\uDBFF\\uDFFF",
    "\\x",
    "null",
    "true",
    "false",
    "{}",
    "[]",
    "{\"\":0}",
    ",",
    ":",
    "\"v\":",
    "\"v\":2,",
    "sha256:",
    "\u{1b}[31m",
    "\u{7f}",
    "é",
    "\u{10ffff}",
    "💥",
    "/",
    "..",
    "\0",
];

/// Strings for string leaves of a JSON value.
fn interesting_string(rng: &mut Rng, dict: &[Vec<u8>]) -> String {
    match rng.u8(0..12) {
        0 => String::new(),
        1 => "a".repeat(rng.usize(60..70)),
        2 => "x".repeat(rng.usize(250..260)),
        3 if rng.u8(0..8) == 0 => "y".repeat(rng.usize(1000..70_000)),
        3 => "y".repeat(rng.usize(100..1000)),
        4 => format!("sha256:{}", hex_digits(rng, 64)),
        5 => {
            let n = [16, 32, 39, 40, 41, 63, 64, 65, 128][rng.usize(0..9)];
            hex_digits(rng, n)
        }
        6 => INTERESTING_TEXT[rng.usize(0..INTERESTING_TEXT.len())].to_string(),
        7 => (0..rng.usize(1..20)).map(|_| rng.char(..)).collect(),
        8 => "127.0.0.1:1".into(),
        _ => match dict.get(rng.usize(0..dict.len().max(1))) {
            Some(word) => String::from_utf8_lossy(word).into_owned(),
            None => "x".into(),
        },
    }
}

fn hex_digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| b"0123456789abcdefABCDEF"[rng.usize(0..22)] as char)
        .collect()
}

fn interesting_number(rng: &mut Rng) -> Value {
    let text = INTERESTING_NUMBERS[rng.usize(0..INTERESTING_NUMBERS.len())];
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A random JSON value of at most `depth` levels.
pub fn random_value(rng: &mut Rng, depth: u32, dict: &[Vec<u8>]) -> Value {
    let pick = if depth == 0 {
        rng.u8(0..4)
    } else {
        rng.u8(0..6)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => {
            if rng.bool() {
                interesting_number(rng)
            } else {
                Value::from(rng.u64(..))
            }
        }
        3 => Value::String(interesting_string(rng, dict)),
        4 => Value::Array(
            (0..rng.usize(0..5))
                .map(|_| random_value(rng, depth - 1, dict))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.usize(0..5) {
                let key = interesting_string(rng, dict);
                map.insert(key, random_value(rng, depth - 1, dict));
            }
            Value::Object(map)
        }
    }
}

/// A node of `v` chosen at random (the root included).
fn pick_node<'a>(v: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
    let len = match v {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    };
    if len == 0 || rng.u8(0..4) == 0 {
        return v;
    }
    let i = rng.usize(0..len);
    match v {
        Value::Array(a) => pick_node(&mut a[i], rng),
        Value::Object(m) => match m.values_mut().nth(i) {
            Some(child) => pick_node(child, rng),
            None => unreachable!("index {i} is below the object's {len} entries"),
        },
        other => other,
    }
}

/// A copy of a random node of `v`.
fn random_subtree(v: &Value, rng: &mut Rng) -> Value {
    let children: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => Vec::new(),
    };
    if children.is_empty() || rng.u8(0..4) == 0 {
        return v.clone();
    }
    random_subtree(children[rng.usize(0..children.len())], rng)
}

/// One structural mutation of `v`. `others` are other seeds to splice from.
pub fn mutate_value(v: &mut Value, rng: &mut Rng, others: &[Value], dict: &[Vec<u8>]) {
    let donor = others.get(rng.usize(0..others.len().max(1)));
    let node = pick_node(v, rng);
    match rng.u8(0..12) {
        0 => *node = interesting_number(rng),
        1 => *node = Value::String(interesting_string(rng, dict)),
        2 => *node = random_value(rng, 3, dict),
        3 => *node = [Value::Null, Value::Bool(true), Value::Bool(false)][rng.usize(0..3)].clone(),
        4 => match node {
            Value::Object(m) if !m.is_empty() => {
                let key = m.keys().nth(rng.usize(0..m.len())).cloned();
                if let Some(key) = key {
                    m.remove(&key);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(rng.usize(0..a.len()));
            }
            _ => *node = Value::Null,
        },
        5 => match node {
            Value::Object(m) => {
                let key = interesting_string(rng, dict);
                m.insert(key, random_value(rng, 2, dict));
            }
            Value::Array(a) => a.push(random_value(rng, 2, dict)),
            _ => *node = Value::Array(vec![node.clone()]),
        },
        6 => {
            // Many copies of one element: long lists, big allocations.
            // At most about 64 KiB of copies, or repeated repeats would grow without bound.
            let fits = |v: &Value| 64 * 1024 / serde_json::to_vec(v).map_or(1, |b| b.len().max(1));
            if let Value::Array(a) = node
                && let Some(first) = a.first().cloned()
            {
                let n = [2, 3, 10, 100, 1000][rng.usize(0..5)].min(fits(&first));
                a.extend(std::iter::repeat_n(first, n));
            } else {
                let n = rng.usize(2..200).min(fits(node));
                *node = Value::Array(vec![node.clone(); n]);
            }
        }
        7 => {
            let mut nested = node.clone();
            for _ in 0..[2, 10, 100, 127, 128, 129, 200][rng.usize(0..7)] {
                nested = if rng.bool() {
                    Value::Array(vec![nested])
                } else {
                    let mut m = Map::new();
                    m.insert("v".into(), nested);
                    Value::Object(m)
                };
            }
            *node = nested;
        }
        8 => {
            if let Some(donor) = donor {
                *node = random_subtree(donor, rng);
            }
        }
        9 => {
            // A string of another type's shape: numbers as strings and back.
            let swapped = match &*node {
                Value::Number(n) => Value::String(n.to_string()),
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                other => Value::String(other.to_string()),
            };
            *node = swapped;
        }
        10 => {
            if let Value::String(s) = node {
                let mut bytes = std::mem::take(s).into_bytes();
                mutate_bytes(&mut bytes, rng, &[], dict, 1 << 16);
                *s = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        _ => {
            if let Value::Number(_) = node {
                *node = Value::from(rng.i64(..));
            } else if let Value::Bool(b) = node {
                *b = !*b;
            } else {
                *node = interesting_number(rng);
            }
        }
    }
}

/// Words of the seeds (object keys, string values, tags): what a dictionary-driven fuzzer
/// inserts.
pub fn dictionary(values: &[Value]) -> Vec<Vec<u8>> {
    fn walk(v: &Value, out: &mut Vec<Vec<u8>>) {
        match v {
            Value::String(s) if s.len() <= 80 => out.push(s.as_bytes().to_vec()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => {
                for (k, x) in m {
                    out.push(k.as_bytes().to_vec());
                    out.push(format!("\"{k}\":").into_bytes());
                    walk(x, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    values.iter().for_each(|v| walk(v, &mut out));
    out.sort();
    out.dedup();
    out
}

/// One to a few byte-level mutations of `data`, which stays under `max_len` bytes.
pub fn mutate_bytes(
    data: &mut Vec<u8>,
    rng: &mut Rng,
    others: &[Vec<u8>],
    dict: &[Vec<u8>],
    max_len: usize,
) {
    for _ in 0..1 + rng.usize(0..4) {
        mutate_once(data, rng, others, dict);
    }
    data.truncate(max_len);
}

fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng, others: &[Vec<u8>], dict: &[Vec<u8>]) {
    let len = data.len();
    let at = |rng: &mut Rng| rng.usize(0..=len);
    match rng.u8(0..14) {
        0 if len > 0 => {
            let i = rng.usize(0..len);
            data[i] ^= 1 << rng.u8(0..8);
        }
        1 if len > 0 => {
            let i = rng.usize(0..len);
            data[i] = INTERESTING_BYTES[rng.usize(0..INTERESTING_BYTES.len())];
        }
        2 if len > 0 => {
            let i = rng.usize(0..len);
            data[i] = rng.u8(..);
        }
        3 => {
            let i = at(rng);
            let bytes: Vec<u8> = (0..rng.usize(1..9)).map(|_| rng.u8(..)).collect();
            data.splice(i..i, bytes);
        }
        4 if len > 0 => {
            let i = rng.usize(0..len);
            let n = rng.usize(1..=(len - i).min(64));
            data.drain(i..i + n);
        }
        5 => data.truncate(at(rng)),
        6 => {
            // Extend: random bytes, or one byte many times.
            let n = [1, 2, 7, 100, 4096, 70_000][rng.usize(0..6)];
            // The longest only now and then: it is slow to feed, and one is enough to find
            // what length does.
            let n = if n == 70_000 && rng.u8(0..8) != 0 {
                300
            } else {
                n
            };
            if rng.bool() {
                data.extend((0..n).map(|_| rng.u8(..)));
            } else {
                let b = INTERESTING_BYTES[rng.usize(0..INTERESTING_BYTES.len())];
                data.extend(std::iter::repeat_n(b, n));
            }
        }
        7 if len > 0 => {
            // Duplicate a range somewhere else (repeated keys, repeated frames).
            let i = rng.usize(0..len);
            let n = rng.usize(1..=(len - i).min(512));
            let chunk = data[i..i + n].to_vec();
            let to = at(rng);
            for _ in 0..rng.usize(1..4) {
                data.splice(to..to, chunk.iter().copied());
            }
        }
        8 => {
            // Splice: our head, another seed's tail.
            if let Some(other) = others.get(rng.usize(0..others.len().max(1))) {
                let cut = at(rng);
                let from = rng.usize(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
        9 => {
            if let Some(word) = dict.get(rng.usize(0..dict.len().max(1))) {
                let i = at(rng);
                data.splice(i..i, word.iter().copied());
            }
        }
        10 => {
            let word = INTERESTING_TEXT[rng.usize(0..INTERESTING_TEXT.len())].as_bytes();
            let i = at(rng);
            data.splice(i..i, word.iter().copied());
        }
        11 if len >= 4 => {
            // Rewrite four bytes as an interesting big-endian integer (a length field).
            let i = rng.usize(0..=len - 4);
            let v = interesting_u32s()[rng.usize(0..interesting_u32s().len())];
            data[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        12 => {
            let word = INTERESTING_NUMBERS[rng.usize(0..INTERESTING_NUMBERS.len())].as_bytes();
            let i = at(rng);
            data.splice(i..i, word.iter().copied());
        }
        _ => {
            if len > 0 {
                // Replace a digit run's neighbour: shifts numbers and quotes around.
                let i = rng.usize(0..len);
                data.insert(i, data[i]);
            } else {
                data.push(rng.u8(..));
            }
        }
    }
}

/// Random bytes, of a short random length.
pub fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    (0..rng.usize(0..=max)).map(|_| rng.u8(..)).collect()
}
