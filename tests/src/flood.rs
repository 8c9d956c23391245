//! A seeder that is not p2pd: it answers a downloader's HELLO with a WELCOME saying it holds
//! every piece, then sends nothing but frames that carry no news (KEEPALIVEs and HAVEs of a
//! piece it announced already) as fast as it can, and records whether the downloader hung up.

use crate::tls::accept;
use crate::wire::{peer, peer_frame};
use p2p_proto::identity::Identity;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Frames sent per write: one TLS record's worth.
const BATCH: usize = 1000;
/// The flood gives up after this many frames (about 30 MB) if the downloader never hangs up.
pub const FLOOD_LIMIT: u64 = 2_000_000;

/// What the flooding seeder saw of one downloader.
#[derive(Debug, Clone, Default)]
pub struct Flooded {
    /// Frames of noise written before the connection failed (or the limit).
    pub frames: u64,
    /// The downloader closed the connection: a write failed.
    pub closed_by_downloader: bool,
}

/// The flooding seeder, serving downloaders one after the other on a port of its own.
pub struct FloodingSeeder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Flooded>>>,
}

impl FloodingSeeder {
    /// Listens on 127.0.0.1 with `identity` (the key the tracker lists for it) for a file of
    /// `pieces` pieces.
    pub fn start(identity: Identity, pieces: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        // Detached: it lives as long as the test process, blocked in accept when idle.
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let _ = tcp.set_read_timeout(Some(crate::wire::IO_TIMEOUT));
                let _ = tcp.set_write_timeout(Some(crate::wire::IO_TIMEOUT));
                let Ok(mut conn) = accept(tcp, &identity) else {
                    continue;
                };
                if read_frame(&mut conn).is_none_or(|kind| kind != peer::HELLO) {
                    continue;
                }
                let outcome = flood(&mut conn, pieces);
                record.lock().unwrap().push(outcome);
            }
        });
        Self { addr, seen }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The downloaders flooded so far, in order.
    pub fn seen(&self) -> Vec<Flooded> {
        self.seen.lock().unwrap().clone()
    }

    /// Polls until a flood is over; returns it.
    #[track_caller]
    pub fn wait_flooded(&self, timeout: Duration) -> Flooded {
        crate::wait_for(
            &format!("a downloader to be flooded by the seeder at {}", self.addr),
            timeout,
            || {
                self.seen()
                    .into_iter()
                    .next()
                    .ok_or_else(|| "none yet".into())
            },
        )
    }
}

/// WELCOME with every piece, then noise until a write fails or [`FLOOD_LIMIT`].
fn flood(conn: &mut impl Write, pieces: usize) -> Flooded {
    let mut bits = vec![0u8; pieces.div_ceil(8)];
    for i in 0..pieces {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    let mut outcome = Flooded::default();
    if conn.write_all(&peer_frame(peer::WELCOME, &bits)).is_err() {
        outcome.closed_by_downloader = true;
        return outcome;
    }
    let mut batch = Vec::new();
    for i in 0..BATCH {
        if i % 2 == 0 {
            batch.extend_from_slice(&peer_frame(peer::KEEPALIVE, &[]));
        } else {
            batch.extend_from_slice(&peer_frame(peer::HAVE, &0u32.to_be_bytes()));
        }
    }
    while outcome.frames < FLOOD_LIMIT {
        if conn.write_all(&batch).and_then(|()| conn.flush()).is_err() {
            outcome.closed_by_downloader = true;
            break;
        }
        outcome.frames += BATCH as u64;
    }
    outcome
}

/// Reads one whole peer frame; its type, or `None` on a close or a timeout.
fn read_frame(conn: &mut impl Read) -> Option<u8> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    // A HELLO is small; anything larger is not one.
    if len == 0 || len > 64 * 1024 {
        return None;
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    Some(body[0])
}
