//! Raw frames: a 4-byte big-endian length, then that many bytes of JSON. For poking at the
//! trackers' TCP port and the control socket with well-formed and malformed input.

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

/// A tracker request frame: `{"v":1,"id":request_id(n),"session":..,"call":call}`.
pub fn tracker_request(n: u64, session: Option<&str>, call: Value) -> Vec<u8> {
    let mut request = serde_json::json!({"v": 1, "id": request_id(n), "call": call});
    if let Some(session) = session {
        request["session"] = Value::from(session);
    }
    json_frame(&request)
}

/// The first frame of a cluster connection: the tracker request `cluster_hello` from tracker
/// `from` (any JSON value, to try bad ones) with the connector's nonce.
pub fn cluster_hello(n: u64, from: Value, nonce: &str) -> Vec<u8> {
    tracker_request(
        n,
        None,
        serde_json::json!({"op": "cluster_hello", "from": from, "nonce": nonce}),
    )
}

/// A frame of the cluster protocol: `{"v":1,"msg":msg}`.
pub fn cluster_frame(msg: Value) -> Vec<u8> {
    json_frame(&serde_json::json!({"v": 1, "msg": msg}))
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
}

/// A peer-protocol frame of type `kind` carrying `payload`.
pub fn peer_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(payload);
    frame(&body)
}

/// The whole frames in `bytes`, as (type, payload); a frame cut short at the end is left out.
pub fn parse_peer_frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if len == 0 || rest.len() < 4 + len {
            break;
        }
        frames.push((rest[4], rest[5..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    frames
}
