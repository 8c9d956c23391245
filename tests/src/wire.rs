//! Raw frames: a 4-byte big-endian length, then that many bytes of JSON (or, on the peer
//! port, a type byte and a payload). For poking at the trackers' TCP port, the control socket
//! and a seeder's peer port with well-formed and malformed input, and for checking exactly
//! what came back before the other side closed.

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for a server to answer or to close a connection. Only bounds a hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// `body` behind its length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("frame too large for a u32 prefix");
    let mut raw = len.to_be_bytes().to_vec();
    raw.extend_from_slice(body);
    raw
}

/// A JSON value as a frame.
pub fn json_frame(value: &Value) -> Vec<u8> {
    frame(&serde_json::to_vec(value).expect("serialize"))
}

/// Connects to a tracker with read and write timeouts set.
pub fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Connects to a control socket with read and write timeouts set.
pub fn connect_unix(path: &std::path::Path) -> std::os::unix::net::UnixStream {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", path.display()));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// The versions of the protocols (proto's `TRACKER_VERSION`, `CLUSTER_VERSION`, ...).
pub const VERSION: u64 = 2;

/// A tracker request frame: `{"v":2,"id":request_id(n),"session":..,"call":call}`.
pub fn tracker_request(n: u64, session: Option<&str>, call: Value) -> Vec<u8> {
    let mut request = serde_json::json!({"v": VERSION, "id": request_id(n), "call": call});
    if let Some(session) = session {
        request["session"] = Value::from(session);
    }
    json_frame(&request)
}

/// The first frame of a cluster connection: the tracker request `cluster_hello` from tracker
/// `from` (any JSON value, to try bad ones) with a proof of the cluster key.
pub fn cluster_hello(n: u64, from: Value, proof: &str) -> Vec<u8> {
    tracker_request(
        n,
        None,
        serde_json::json!({"op": "cluster_hello", "from": from, "proof": proof}),
    )
}

/// A frame of the cluster protocol: `{"v":2,"msg":msg}`.
pub fn cluster_frame(msg: Value) -> Vec<u8> {
    json_frame(&serde_json::json!({"v": VERSION, "msg": msg}))
}

/// The proof of the cluster `key` that `side` (`"connector"` or `"acceptor"`) sends over a
/// TLS session with `exporter`: what `trackerd/src/cluster/auth.rs` computes.
pub fn cluster_proof(key: &[u8], side: &str, exporter: &[u8; 32]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("p2p-cluster-v2 {side}").as_bytes());
    mac.update(exporter);
    hex::encode(mac.finalize().into_bytes())
}

/// Reads one frame and parses it as JSON. Panics on a timeout, a close before a whole frame,
/// or a body that is not JSON.
pub fn read_json_frame(stream: &mut impl Read) -> Value {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .unwrap_or_else(|e| panic!("no reply frame (length prefix): {e}"));
    let len = u32::from_be_bytes(len) as usize;
    assert!(len <= 64 << 20, "reply frame of {len} bytes");
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .unwrap_or_else(|e| panic!("reply frame of {len} bytes cut short: {e}"));
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "reply frame is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// Reads until the peer closes the connection (EOF or reset) and returns what came before.
/// Panics if the peer keeps it open for [`IO_TIMEOUT`].
pub fn read_until_closed(stream: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                assert!(got.len() < 1 << 20, "server sent more than 1 MiB back");
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the server kept the connection open for {IO_TIMEOUT:?} after bad input; \
                     received so far: {:?}",
                    String::from_utf8_lossy(&got)
                )
            }
            // A reset is a close too: the server may close without reading all we sent.
            Err(_) => return got,
        }
    }
}

/// The JSON frames `bytes` consist of. Panics if a frame is cut short, if anything follows the
/// last whole frame, or if a body is not JSON: what a server sent before closing must be
/// whole frames and nothing else.
#[track_caller]
pub fn split_json_frames(bytes: &[u8]) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 4,
            "{} stray bytes after {} whole frame(s): {:?}",
            rest.len(),
            frames.len(),
            String::from_utf8_lossy(bytes)
        );
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(
            rest.len() >= 4 + len,
            "a frame of {len} bytes cut short after {} whole frame(s): {:?}",
            frames.len(),
            String::from_utf8_lossy(bytes)
        );
        let value: Value = serde_json::from_slice(&rest[4..4 + len]).unwrap_or_else(|e| {
            panic!(
                "a frame is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&rest[4..4 + len])
            )
        });
        frames.push(value);
        rest = &rest[4 + len..];
    }
    frames
}

/// Reads until the server closes the connection and returns the frames it sent, each whole
/// (see [`split_json_frames`]).
#[track_caller]
pub fn json_frames_until_closed(stream: &mut impl Read) -> Vec<Value> {
    split_json_frames(&read_until_closed(stream))
}

/// Reads until the server closes the connection, checks it sent exactly one frame before
/// closing, and returns it.
#[track_caller]
pub fn one_frame_then_closed(stream: &mut impl Read, what: &str) -> Value {
    let frames = json_frames_until_closed(stream);
    assert_eq!(
        frames.len(),
        1,
        "{what}: expected exactly one frame and then a close, got {frames:?}"
    );
    frames.into_iter().next().unwrap()
}

/// Reads until the server closes the connection and checks it sent nothing at all.
#[track_caller]
pub fn nothing_then_closed(stream: &mut impl Read, what: &str) {
    let got = read_until_closed(stream);
    assert!(
        got.is_empty(),
        "{what}: expected a close without a word, got {} bytes: {:?}",
        got.len(),
        String::from_utf8_lossy(&got)
    );
}

/// Writes all of `bytes`, ignoring a reset or broken pipe (the server may close early).
pub fn write_lenient(stream: &mut impl Write, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
    let _ = stream.flush();
}

/// The `error` object of a reply whose `result` is `{"Err": {...}}`; panics otherwise.
#[track_caller]
pub fn error_of(reply: &Value) -> &Value {
    let error = &reply["result"]["Err"];
    assert!(
        error["kind"].is_string(),
        "expected an error reply, got {reply}"
    );
    error
}

/// The `Ok` payload of a reply whose `result` is `{"Ok": {...}}`; panics otherwise.
#[track_caller]
pub fn ok_of(reply: &Value) -> &Value {
    let ok = &reply["result"]["Ok"];
    assert!(!ok.is_null(), "expected a successful reply, got {reply}");
    ok
}

/// A request id of the shape the tracker wants (32 hex characters), distinct per `n`.
pub fn request_id(n: u64) -> String {
    format!(
        "{:032x}",
        0xe2e0_0000_0000_0000_u64 as u128 * 7919 + n as u128
    )
}

/// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Frame types of the peer protocol (`proto/src/peer.rs`): a 4-byte big-endian length of what
/// follows, one type byte, then the payload.
pub mod peer {
    pub const HELLO: u8 = 1;
    pub const WELCOME: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const REQUEST: u8 = 5;
    pub const CANCEL: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const REJECT: u8 = 8;
    pub const KEEPALIVE: u8 = 9;
    pub const GRANT: u8 = 10;
}

/// A peer-protocol frame of type `kind` carrying `payload`.
pub fn peer_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(payload);
    frame(&body)
}

/// The peer-protocol frames `bytes` consist of, as (type, payload). Panics if a frame is cut
/// short, has no type byte, or if anything follows the last whole frame.
#[track_caller]
pub fn split_peer_frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 4,
            "{} stray bytes after {} whole peer frame(s)",
            rest.len(),
            frames.len()
        );
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(
            len >= 1 && rest.len() >= 4 + len,
            "a peer frame of {len} bytes is empty or cut short after {} whole frame(s)",
            frames.len()
        );
        frames.push((rest[4], rest[5..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    frames
}
