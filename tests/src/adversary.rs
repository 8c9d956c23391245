//! A client of the tracker and of seeders that is not p2pd: its own key, its own sessions, and
//! whatever frames a test makes it send. For the attacks an honest daemon cannot show: a
//! grant or a token used from another key, a member who left and keeps its grants, a forged
//! file record, a group re-created under a removed one's name.

use crate::tls::{TlsConn, new_identity};
use crate::wire::{VERSION, peer, peer_frame, read_json_frame, request_id, split_peer_frames};
use p2p_proto::identity::Identity;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A client with a key of its own, talking to one tracker.
pub struct Adversary {
    pub identity: Identity,
    tracker: SocketAddr,
    /// The session token of the last [`login`](Self::login), if any.
    pub token: Option<String>,
    next_id: u64,
    /// The local address its connections come from (default: the system's choice).
    source: Option<std::net::IpAddr>,
}

impl Adversary {
    /// A client of the tracker at `tracker` (the primary), with a fresh key.
    pub fn new(tracker: SocketAddr) -> Self {
        Self::with_identity(tracker, new_identity())
    }

    pub fn with_identity(tracker: SocketAddr, identity: Identity) -> Self {
        // The tracker remembers every applied write by its request id and answers a repeated
        // id with the first answer: each client numbers its requests in a range of its own, so
        // two clients of one test never send the same id.
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        Self {
            identity,
            tracker,
            token: None,
            next_id: CLIENTS.fetch_add(1, Ordering::Relaxed) << 32,
            source: None,
        }
    }

    /// A client with a key of its own, logged in as `user`, an account with the harness's
    /// password ([`password_of`](crate::password_of)).
    pub fn logged_in(tracker: SocketAddr, user: &str) -> Self {
        let mut client = Self::new(tracker);
        client.login(user, &crate::password_of(user));
        client
    }

    /// A new account `user` (the harness's password), made and logged in by a client with a
    /// key of its own.
    pub fn new_account(tracker: SocketAddr, user: &str) -> Self {
        let mut client = Self::new(tracker);
        let password = crate::password_of(user);
        client.ok(json!({"op": "create_user", "user": user, "password": password}));
        client.login(user, &password);
        client
    }

    /// A client whose connections come from `source` (e.g. [`crate::source::ATTACKER`]).
    pub fn from_source(tracker: SocketAddr, source: std::net::IpAddr) -> Self {
        Self {
            source: Some(source),
            ..Self::new(tracker)
        }
    }

    fn connect(&self) -> TlsConn {
        match self.source {
            None => TlsConn::connect(self.tracker, &self.identity),
            Some(source) => {
                let tcp = crate::source::tcp_from(source, self.tracker)
                    .unwrap_or_else(|e| panic!("cannot connect from {source}: {e}"));
                TlsConn::over(tcp, &self.identity, p2p_proto::tls::Expect::AnyKey)
                    .unwrap_or_else(|e| panic!("TLS to {}: {e}", self.tracker))
            }
        }
    }

    /// Sends `call` (with `session`, or the last login's token) on a new connection; returns the
    /// whole response (`{"v", "id", "result"}`).
    pub fn call_as(&mut self, session: Option<&str>, call: Value) -> Value {
        self.next_id += 1;
        let mut request = json!({"v": VERSION, "id": request_id(self.next_id), "call": call});
        if let Some(token) = session.or(self.token.as_deref()) {
            request["session"] = Value::from(token);
        }
        let frame = crate::wire::json_frame(&request);
        let mut conn = self.connect();
        if let Some(token) = request.get("session").and_then(Value::as_str) {
            // The tracker takes a frame over 64 KiB only once a session is proven on the
            // connection, as p2pd does it: a `whoami` first.
            if frame.len() > 60 * 1024 {
                self.next_id += 1;
                let whoami = json!({"v": VERSION, "id": request_id(self.next_id),
                    "session": token, "call": {"op": "whoami"}});
                conn.write_all(&crate::wire::json_frame(&whoami)).unwrap();
                read_json_frame(&mut conn);
            }
        }
        conn.write_all(&frame).unwrap();
        read_json_frame(&mut conn)
    }

    /// Sends `call` with the last login's token (if any); returns the response.
    pub fn call(&mut self, call: Value) -> Value {
        self.call_as(None, call)
    }

    /// Sends `call` and returns its `Ok` payload; panics on an error reply.
    #[track_caller]
    pub fn ok(&mut self, call: Value) -> Value {
        let reply = self.call(call);
        crate::wire::ok_of(&reply).clone()
    }

    /// Logs in as `user` with `password` from this client's key; keeps and returns the token.
    #[track_caller]
    pub fn login(&mut self, user: &str, password: &str) -> String {
        let reply = self.ok(json!({"op": "login", "user": user, "password": password}));
        let token = reply["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login answered {reply}"))
            .to_string();
        self.token = Some(token.clone());
        token
    }

    /// Sends `request` exactly as given (any fields, any shape) on a new connection and returns
    /// the response.
    pub fn send_raw(&mut self, request: &Value) -> Value {
        let mut conn = self.connect();
        conn.write_all(&crate::wire::json_frame(request)).unwrap();
        read_json_frame(&mut conn)
    }

    /// A request id this client has not used yet.
    pub fn next_request_id(&mut self) -> String {
        self.next_id += 1;
        request_id(self.next_id)
    }

    /// Sends `call` and returns its error object (`kind`, `message`); panics on a success.
    #[track_caller]
    pub fn err(&mut self, call: Value) -> Value {
        let reply = self.call(call);
        crate::wire::error_of(&reply).clone()
    }

    /// The tracker this client talks to.
    pub fn tracker(&self) -> SocketAddr {
        self.tracker
    }

    /// `fetch_file`: the metadata, the peers and a grant for this client's key.
    #[track_caller]
    pub fn fetch(&mut self, group: &str, name: &str) -> Value {
        self.ok(json!({"op": "fetch_file", "group": group, "name": name}))
    }
}

/// What a seeder answered a HELLO: its WELCOME's bitfield, or the ERROR's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    Welcome(Vec<u8>),
    Error(String),
}

/// A connection to a seeder's peer port, made with `identity`.
pub struct PeerConn {
    conn: TlsConn,
}

impl PeerConn {
    pub fn connect(seeder: SocketAddr, identity: &Identity) -> Self {
        Self {
            conn: TlsConn::connect(seeder, identity),
        }
    }

    /// Sends HELLO for file `sha1` with `grant` and reads the answer.
    pub fn hello(&mut self, sha1: &str, grant: &Value) -> Greeting {
        let hello = json!({"v": VERSION, "file": sha1, "grant": grant});
        self.send(peer::HELLO, &serde_json::to_vec(&hello).unwrap());
        match self.next_frame() {
            Some((peer::WELCOME, bits)) => Greeting::Welcome(bits),
            Some((peer::ERROR, reason)) => {
                Greeting::Error(String::from_utf8_lossy(&reason).into_owned())
            }
            other => panic!("the seeder answered HELLO with {other:?}"),
        }
    }

    pub fn send(&mut self, kind: u8, payload: &[u8]) {
        self.conn.write_all(&peer_frame(kind, payload)).unwrap();
        self.conn.flush().unwrap();
    }

    /// Asks for piece `index` and returns the next frame that is not a HAVE: a PIECE's
    /// (type, payload), an ERROR's, or `None` if the seeder closed.
    pub fn request(&mut self, index: u32) -> Option<(u8, Vec<u8>)> {
        self.send(peer::REQUEST, &index.to_be_bytes());
        loop {
            match self.next_frame() {
                Some((peer::HAVE, _)) => continue,
                other => return other,
            }
        }
    }

    /// Sends a GRANT frame (a renewal).
    pub fn renew(&mut self, grant: &Value) {
        self.send(peer::GRANT, &serde_json::to_vec(grant).unwrap());
    }

    /// Asks for piece `index` and checks the seeder sends it: a PIECE frame with that index
    /// and `content`'s bytes of that piece.
    #[track_caller]
    pub fn expect_piece(&mut self, index: u32, content: &[u8]) {
        let start = (index as u64 * crate::PIECE_SIZE) as usize;
        let end = (start + crate::PIECE_SIZE as usize).min(content.len());
        match self.request(index) {
            Some((peer::PIECE, payload)) => {
                assert_eq!(
                    payload[..4],
                    index.to_be_bytes(),
                    "the PIECE frame answers another request"
                );
                assert!(
                    payload[4..] == content[start..end],
                    "piece {index} is not the uploaded bytes"
                );
            }
            Some((kind, payload)) => panic!(
                "piece {index}: the seeder answered frame type {kind}: {:?}",
                String::from_utf8_lossy(&payload)
            ),
            None => panic!("piece {index}: the seeder closed the connection"),
        }
    }

    /// The next whole frame as (type, payload); `None` on a close.
    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        if self.conn.read_exact(&mut len).is_err() {
            return None;
        }
        let len = u32::from_be_bytes(len) as usize;
        let mut body = vec![0u8; len];
        self.conn.read_exact(&mut body).ok()?;
        let mut framed = (len as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        split_peer_frames(&framed).into_iter().next()
    }
}

/// Polls the clock until `grant` (a grant's JSON) has expired: until the Unix time, in whole
/// seconds as the seeder compares it, is past the grant's `expires`.
#[track_caller]
pub fn wait_expired(grant: &Value) {
    let expires = grant["expires"]
        .as_u64()
        .unwrap_or_else(|| panic!("a grant without expires: {grant}"));
    wait_unix_past(expires);
}

/// Polls the clock until the Unix time (whole seconds) is past `at`.
#[track_caller]
pub fn wait_unix_past(at: u64) {
    let wait = Duration::from_secs(at.saturating_sub(unix_now()) + 5);
    crate::wait_for(&format!("the Unix time to pass {at}"), wait, || {
        let now = unix_now();
        if now > at {
            Ok(())
        } else {
            Err(format!("it is {now}"))
        }
    });
}

/// Seconds since the Unix epoch, as the programs count them.
pub fn unix_now() -> u64 {
    p2p_proto::grant::unix_now()
}

/// The metadata a tracker records for a file named `name` holding `content` (what
/// `upload_file` sends): name, size, SHA-1 and the SHA-1 of every piece. Anyone with the
/// metadata can register it; it does not give the bytes.
pub fn file_meta(name: &str, content: &[u8]) -> Value {
    let pieces: Vec<String> = content
        .chunks(crate::PIECE_SIZE as usize)
        .map(crate::sha1_hex)
        .collect();
    json!({
        "name": name,
        "size": content.len(),
        "sha1": crate::sha1_hex(content),
        "pieces": pieces,
    })
}
