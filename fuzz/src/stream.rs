//! Feeding a stream decoder the way `FramedRead` does: bytes arrive in chunks, each chunk is
//! appended to one `BytesMut` and `decode` is called until it wants more; at the end of the
//! stream `decode_eof` is called until it yields nothing.

use bytes::BytesMut;
use fastrand::Rng;
use tokio_util::codec::Decoder;

/// What a decoder made of a stream: its items in order, ending with its error if it failed.
pub type Outcome<T> = Vec<Result<T, String>>;

/// Most items taken from one stream (a stream of empty frames could be long).
const MAX_ITEMS: usize = 100_000;

/// Feeds `input` to `codec` in chunks of the given sizes (the last chunk takes the rest).
pub fn feed<D>(mut codec: D, input: &[u8], chunks: &[usize]) -> Outcome<D::Item>
where
    D: Decoder,
    D::Error: std::fmt::Display,
{
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = input;
    let mut sizes = chunks.iter().copied();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => out.push(Ok(item)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
            if out.len() >= MAX_ITEMS {
                return out;
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => out.push(Ok(item)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e.to_string()));
                return out;
            }
        }
        if out.len() >= MAX_ITEMS {
            return out;
        }
    }
}

/// The ways one input is split: whole, then random chunks (mostly tiny), then one byte at a
/// time for short inputs. Derived from the input alone, so a crash file replays exactly.
pub fn splits(input: &[u8]) -> Vec<Vec<usize>> {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng::with_seed(hash);
    let mut random = Vec::new();
    let mut covered = 0;
    while covered < input.len() {
        let n = [1, 1, 2, 3, 4, 5, 7, 64, 4096][rng.usize(0..9)];
        random.push(n);
        covered += n;
    }
    let mut plans = vec![vec![input.len()], random];
    if input.len() <= 2048 {
        plans.push(vec![1; input.len()]);
    }
    plans
}

/// Heap feeding an `n`-byte stream that gave `items` items may hold, on top of what the codec
/// reserves by design: the buffer, grown by doubling, and the items split off it, kept in a
/// vector (as a test keeps them; a connection hands each on at once).
pub fn limit<T>(n: usize, items: &Outcome<T>) -> usize {
    8 * n + 64 * 1024 + items.len() * (2 * std::mem::size_of::<Result<T, String>>() + 64)
}
