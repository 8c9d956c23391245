//! A test-only TLS client with a key of its own, the way the programs connect (raw public keys,
//! TLS 1.3): for speaking to trackers and seeders directly, with well-formed and malformed
//! input, and for the attacks an honest daemon cannot show (another key presenting a captured
//! grant or token, a cluster proof bound to another session).
//!
//! Blocking (std) I/O, like the rest of the harness: a [`TlsConn`] reads and writes plaintext
//! frames inside TLS, so the helpers of [`crate::wire`] work on it unchanged.

use crate::wire::IO_TIMEOUT;
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::tls::{EXPORTER_LABEL, Expect, client_config};
use rustls::{ClientConnection, ServerConnection, StreamOwned};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TLS connection to a tracker or a seeder.
pub struct TlsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
    /// The key the server proved it holds.
    pub peer: Fingerprint,
    /// This session's exporter value (what cluster proofs are bound to).
    pub exporter: [u8; 32],
}

/// A TLS connection to `addr` with a fresh key of its own, accepting any server key.
pub fn tls_to(addr: SocketAddr) -> TlsConn {
    TlsConn::connect(addr, &new_identity())
}

/// A fresh key, as a new daemon (or an attacker) would have.
pub fn new_identity() -> Identity {
    Identity::ephemeral().expect("cannot make a key")
}

impl TlsConn {
    /// Connects to `addr` presenting `identity`, accepting any server key.
    pub fn connect(addr: SocketAddr, identity: &Identity) -> Self {
        Self::try_connect(addr, identity, Expect::AnyKey)
            .unwrap_or_else(|e| panic!("TLS to {addr}: {e}"))
    }

    /// Connects to `addr` presenting `identity`; the handshake's error as text if it fails.
    pub fn try_connect(
        addr: SocketAddr,
        identity: &Identity,
        expect: Expect,
    ) -> Result<Self, String> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("cannot connect: {e}"))?;
        Self::over(tcp, identity, expect)
    }

    /// TLS over an open TCP connection `tcp` (e.g. one from another source address).
    pub fn over(tcp: TcpStream, identity: &Identity, expect: Expect) -> Result<Self, String> {
        let (config, _) = client_config(identity, expect).map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("p2p").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        let peer = p2p_proto::tls::peer_key(&stream.conn).ok_or("the server presented no key")?;
        let mut exporter = [0u8; 32];
        stream
            .conn
            .export_keying_material(&mut exporter, EXPORTER_LABEL, None)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            peer,
            exporter,
        })
    }

    /// Says we will send nothing more (TLS close_notify, then a TCP half-close).
    pub fn shutdown_write(&mut self) {
        self.stream.conn.send_close_notify();
        let _ = self.stream.conn.complete_io(&mut self.stream.sock);
        let _ = self.stream.sock.shutdown(Shutdown::Write);
    }
}

impl Read for TlsConn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for TlsConn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// The server end of a TLS connection, for fake trackers and peers: the client's key is
/// required and verified, as by the real servers.
pub type TlsServerConn = StreamOwned<ServerConnection, TcpStream>;

/// Completes the TLS handshake on an accepted `tcp` connection, presenting `identity`.
pub fn accept(tcp: TcpStream, identity: &Identity) -> Result<TlsServerConn, String> {
    let config = p2p_proto::tls::server_config(identity).map_err(|e| e.to_string())?;
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(stream)
}

/// What a [`FakeServer`] saw of one connection.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The client's key once the TLS handshake completed; `Err` with the handshake's error
    /// if it did not.
    pub handshake: Option<Result<Fingerprint, String>>,
    /// The plaintext (application data) the client sent inside TLS.
    pub received: Vec<u8>,
    /// The connection is over (closed by either side, or the fake stopped).
    pub done: bool,
}

/// A server on a port of its choosing (a tracker's, a seeder's) that speaks TLS with a key of
/// its own: an impostor. Every connection is served on a thread of its own; what each one
/// brought is kept in [`seen`](Self::seen). It answers nothing, unless made with
/// [`tracker`](Self::tracker).
pub struct FakeServer {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How a fake answers one request frame (the JSON of a tracker request): the JSON to send
/// back, or `None` to answer nothing.
type Answer = dyn Fn(&Value) -> Option<Value> + Send + Sync;

impl FakeServer {
    /// Listens on `addr` (freed by the process that had it), presenting `identity`, and
    /// answers nothing: it reads what comes inside TLS until the client closes.
    pub fn listen(addr: SocketAddr, identity: Identity) -> Self {
        Self::start(addr, identity, Arc::new(|_: &Value| None))
    }

    /// Like [`listen`](Self::listen), answering every tracker request frame with `answer`'s
    /// JSON (as one frame).
    pub fn tracker(
        addr: SocketAddr,
        identity: Identity,
        answer: impl Fn(&Value) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        Self::start(addr, identity, Arc::new(answer))
    }

    fn start(addr: SocketAddr, identity: Identity, answer: Arc<Answer>) -> Self {
        use std::sync::atomic::Ordering;
        // The port was just freed; the kernel may take a moment to let it go.
        let listener = crate::wait_for(
            &format!("the fake server to bind {addr}"),
            crate::READY_TIMEOUT,
            || TcpListener::bind(addr).map_err(|e| e.to_string()),
        );
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let fingerprint = identity.fingerprint();
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            let slot = {
                                let mut all = seen.lock().unwrap();
                                all.push(Seen::default());
                                all.len() - 1
                            };
                            let (seen, stop) = (seen.clone(), stop.clone());
                            let (identity, answer) = (identity.clone(), answer.clone());
                            workers.push(std::thread::spawn(move || {
                                serve_fake(tcp, &identity, &*answer, &stop, |f| {
                                    f(&mut seen.lock().unwrap()[slot])
                                });
                                seen.lock().unwrap()[slot].done = true;
                            }));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(crate::POLL_INTERVAL)
                        }
                        Err(_) => std::thread::sleep(crate::POLL_INTERVAL),
                    }
                }
                for worker in workers {
                    let _ = worker.join();
                }
            })
        };
        Self {
            addr,
            fingerprint,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key the fake presents.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Every connection so far, in the order they came.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Polls until at least one connection came and every one is over; returns them.
    #[track_caller]
    pub fn wait_all_done(&self, timeout: Duration) -> Vec<Seen> {
        crate::wait_for(
            &format!("the connections to the fake at {} to end", self.addr),
            timeout,
            || {
                let seen = self.seen();
                if !seen.is_empty() && seen.iter().all(|s| s.done) {
                    Ok(seen)
                } else {
                    Err(format!("{seen:?}"))
                }
            },
        )
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection of a [`FakeServer`]: the handshake, then whatever the client sends, each
/// whole frame answered by `answer`, until the client closes or `stop` is set.
fn serve_fake(
    tcp: TcpStream,
    identity: &Identity,
    answer: &Answer,
    stop: &AtomicBool,
    record: impl Fn(&mut dyn FnMut(&mut Seen)),
) {
    let _ = tcp.set_nonblocking(false);
    // Short reads, so a connection the client keeps open still sees `stop`.
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let mut stream = match accept_until(tcp, identity, stop) {
        Ok(stream) => stream,
        Err(e) => {
            record(&mut |s| s.handshake = Some(Err(e.clone())));
            return;
        }
    };
    let client = p2p_proto::tls::peer_key(&stream.conn);
    record(&mut |s| {
        s.handshake = Some(client.ok_or_else(|| "the client presented no key".to_string()))
    });
    let mut pending = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                record(&mut |s| s.received.extend_from_slice(&buf[..n]));
                pending.extend_from_slice(&buf[..n]);
                while pending.len() >= 4 {
                    let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
                    if pending.len() < 4 + len {
                        break;
                    }
                    let body: Vec<u8> = pending.drain(..4 + len).skip(4).collect();
                    let request = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Some(reply) = answer(&request) {
                        let framed = crate::wire::json_frame(&reply);
                        if stream
                            .write_all(&framed)
                            .and_then(|_| stream.flush())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// [`accept`], retrying the short read timeouts of the fake's sockets until `stop` or
/// [`IO_TIMEOUT`].
fn accept_until(
    tcp: TcpStream,
    identity: &Identity,
    stop: &AtomicBool,
) -> Result<TlsServerConn, String> {
    let config = p2p_proto::tls::server_config(identity).map_err(|e| e.to_string())?;
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(conn, tcp);
    let deadline = Instant::now() + IO_TIMEOUT;
    while stream.conn.is_handshaking() {
        match stream.conn.complete_io(&mut stream.sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && !stop.load(Ordering::SeqCst)
                    && Instant::now() < deadline => {}
            Err(e) => return Err(format!("TLS handshake: {e}")),
        }
    }
    Ok(stream)
}
