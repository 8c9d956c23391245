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
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

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
        let (config, _) = client_config(identity, expect).map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("p2p").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("cannot connect: {e}"))?;
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
