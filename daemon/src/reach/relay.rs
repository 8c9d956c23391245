//! Relayed connections through the tracker: both daemons connect out to the tracker, which
//! passes bytes between them; TLS between the daemons runs end to end inside.
//!
//! The downloader opens a connection of its own to the tracker in use and asks `relay_open`
//! with its grant; the tracker invites the seeder, whose daemon takes the invite at its next
//! poll and joins with `relay_accept` on a connection of its own to the tracker that invited
//! it. Once both are there the tracker answers each `relaying`, and from then on each
//! connection carries the other daemon's bytes: the caller runs the daemon-to-daemon TLS over
//! the [`RelayedStream`] (the downloader as the client expecting the seeder's key, the seeder
//! as the server expecting the invited key), so the tracker sees only that TLS's ciphertext.
//!
//! Every wait is bounded: the connection and its handshake by the tracker client's attempt
//! timeout, the downloader's wait for the seeder by [`RELAY_PAIRING_TIMEOUT`] (the tracker
//! answers by then) and a margin, the seeder's answer (immediate once paired) by
//! [`ACCEPT_WAIT`].

use crate::tracker_client::{Dedicated, DedicatedError, TrackerClient};
use bytes::{Buf, BytesMut};
use p2p_proto::grant::Grant;
use p2p_proto::identity::Fingerprint;
use p2p_proto::reach::RELAY_PAIRING_TIMEOUT;
use p2p_proto::tls::TlsStream;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::{ErrorKind, ErrorReply};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How much longer than the tracker's pairing timeout the downloader waits for its answer.
const OPEN_MARGIN: Duration = Duration::from_secs(5);

/// How long the seeder waits for the tracker to answer its `relay_accept`.
pub const ACCEPT_WAIT: Duration = Duration::from_secs(10);

/// A connection through the relay: the TLS stream to the tracker, carrying the other daemon's
/// bytes.
pub struct RelayedStream {
    /// Boxed: a TLS stream is large, and callers move this one around.
    stream: Box<TlsStream<TcpStream>>,
    /// The other daemon's first bytes, read along with the tracker's answer.
    early: BytesMut,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no tracker in use")]
    NoTracker,
    #[error(transparent)]
    Link(#[from] DedicatedError),
    #[error("the tracker refused: {0}")]
    Refused(ErrorReply),
    #[error("the tracker answered {0} instead of relaying")]
    Unexpected(String),
}

/// The downloader's side: asks the tracker in use to relay to `peer`, a holder of `name` in
/// the grant's group, and waits until the peer has joined.
pub async fn open(
    client: &TrackerClient,
    session: &str,
    name: &str,
    peer: Fingerprint,
    grant: Grant,
) -> Result<RelayedStream, RelayError> {
    let mut tracker = client.status().current.ok_or(RelayError::NoTracker)?;
    let call = TrackerCall::RelayOpen {
        name: name.to_string(),
        peer,
        grant,
    };
    let wait = RELAY_PAIRING_TIMEOUT + OPEN_MARGIN;
    let mut redirected = false;
    loop {
        let answer = client
            .dedicated(tracker, Some(session), call.clone(), wait)
            .await?;
        match relaying(answer) {
            // A tracker that just stepped down names the primary: follow it once.
            Err(RelayError::Refused(e)) if e.kind == ErrorKind::NotPrimary && !redirected => {
                let to = e.redirect.as_deref().and_then(|r| r.parse().ok());
                match to.filter(|t| client.trackers().contains(t)) {
                    Some(to) => {
                        tracker = to;
                        redirected = true;
                    }
                    None => return Err(RelayError::Refused(e)),
                }
            }
            done => return done,
        }
    }
}

/// The invited side: joins the relay `invite` at `tracker`, the tracker whose poll carried
/// the invite.
pub async fn accept(
    client: &TrackerClient,
    tracker: SocketAddr,
    session: &str,
    invite: &str,
) -> Result<RelayedStream, RelayError> {
    let call = TrackerCall::RelayAccept {
        invite: invite.to_string(),
    };
    let answer = client
        .dedicated(tracker, Some(session), call, ACCEPT_WAIT)
        .await?;
    relaying(answer)
}

fn relaying(answer: Dedicated) -> Result<RelayedStream, RelayError> {
    match answer.reply {
        Ok(TrackerReply::Relaying) => Ok(RelayedStream {
            stream: Box::new(answer.stream),
            early: answer.early,
        }),
        Ok(other) => Err(RelayError::Unexpected(format!("{other:?}"))),
        Err(e) => Err(RelayError::Refused(e)),
    }
}

impl AsyncRead for RelayedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.advance(n);
            if this.early.is_empty() {
                // Give the buffer's memory back.
                this.early = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for RelayedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
