//! Serves pieces to other members' daemons.
//!
//! Every connection is TLS; the downloader proves its key in the handshake. Its first frame
//! must be a HELLO carrying a grant signed by the trackers, checked offline against the
//! trackers' public key: it must name the downloader's key, the file asked for, and a group
//! (by internal id) in which we share that file ourselves. Only then does the peer get our
//! bitfield, and only pieces we hold verified are sent. The grant's expiry is checked again on
//! every REQUEST; the downloader renews it with GRANT frames. Each new piece a download
//! verifies is forwarded as HAVE, so downloaders feed each other.

use crate::holdings::Holding;
use crate::plane::Plane;
use futures_util::{SinkExt, StreamExt};
use p2p_proto::admission::{Admission, Caps};
use p2p_proto::grant::{Grant, GrantError, unix_now};
use p2p_proto::identity::Fingerprint;
use p2p_proto::peer::{Hello, PeerCodec, PeerFrame, PeerWireError, send_piece};
use p2p_proto::refusal_log::RefusalLog;
use p2p_proto::tls::{self, TlsAcceptor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::Framed;
use tokio_util::task::TaskTracker;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A downloader that sends nothing (not even a keep-alive) for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A peer that takes longer than this to accept one frame (it stopped reading) is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers served at once, and from one address (a peer opens one connection per file it
/// downloads from us; several users may share an address behind a NAT).
const PEER_CAPS: Caps = Caps {
    total: 256,
    per_source: 64,
};

/// Why a served connection ended (logged; the peer got an ERROR frame where it helps).
#[derive(Debug, thiserror::Error)]
enum ServeEnd {
    #[error("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs())]
    NoHandshake,
    #[error("first frame was not HELLO")]
    NotHello,
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("share withdrawn")]
    Withdrawn,
    #[error("the peer's grant expired")]
    GrantExpired,
    #[error("refused a renewed grant: {0}")]
    BadRenewal(Refusal),
    #[error("plaintext peer refused (an older p2pd?)")]
    Plaintext,
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("idle for {}s", IDLE_TIMEOUT.as_secs())]
    Idle,
    #[error("peer stopped reading for {}s", WRITE_TIMEOUT.as_secs())]
    Stalled,
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    #[error("{0}")]
    Wire(#[from] PeerWireError),
    #[error("{0}")]
    Disk(std::io::Error),
}

/// Why a HELLO was not admitted; the text is what the peer is told.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("not sharing (logged out)")]
    LoggedOut,
    #[error("cannot check grants now: {0}")]
    NoKey(String),
    #[error("{0}")]
    Grant(#[from] GrantError),
    #[error("file not shared here")]
    NotShared,
    #[error("a renewed grant must be for the same file, group and key")]
    NotSameGrant,
    #[error("a renewed grant must expire later than the one in use")]
    NotLater,
}

pub async fn serve(listener: TcpListener, plane: Arc<Plane>) {
    let acceptor = match tls::acceptor(&plane.identity) {
        Ok(acceptor) => acceptor,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up TLS for peers; not serving");
            return;
        }
    };
    let slots = Admission::new(PEER_CAPS);
    let refusals = RefusalLog::new("peer");
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = plane.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a cap: dropping the stream closes it at once.
        let permit = match slots.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                refusals.refused(peer, &why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let plane = Arc::clone(&plane);
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            if let Err(reason) = open(stream, peer, &plane, &acceptor).await {
                tracing::info!(%peer, %reason, "peer connection ended");
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Serves one connection the listener did not accept: our side of a hole punch or of a relay
/// a downloader asked for. TLS as the server, as for any peer; only the invited key `expect` is
/// served. The error says why it ended, for the log.
pub async fn serve_met<S>(
    stream: S,
    peer: SocketAddr,
    plane: &Plane,
    expect: Fingerprint,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = tls::acceptor(&plane.identity).map_err(|e| e.to_string())?;
    let (stream, handshake) = tls::accept(stream, &acceptor, HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if handshake.peer != expect {
        return Err(format!(
            "presented key {}, not the invited {expect}",
            handshake.peer
        ));
    }
    connection(stream, peer, handshake.peer, plane)
        .await
        .map_err(|e| e.to_string())
}

type PeerFramed<S> = Framed<S, PeerCodec>;

/// TLS first; a plaintext peer (an older release) gets one plaintext ERROR saying why.
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    plane: &Plane,
    acceptor: &TlsAcceptor,
) -> Result<(), ServeEnd> {
    if !tls::opens_with_tls(&stream, HANDSHAKE_TIMEOUT).await? {
        let mut framed = Framed::new(stream, PeerCodec::serving());
        let why = format!(
            "this peer speaks peer protocol v{} inside TLS; upgrade p2pd",
            p2p_proto::peer::PEER_VERSION
        );
        let _ = send(&mut framed, PeerFrame::Error(why)).await;
        return Err(ServeEnd::Plaintext);
    }
    let (stream, handshake) = tls::accept(stream, acceptor, HANDSHAKE_TIMEOUT).await?;
    connection(stream, peer, handshake.peer, plane).await
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    peer_key: Fingerprint,
    plane: &Plane,
) -> Result<(), ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, PeerCodec::serving());
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next()).await {
        Err(_) => return Err(ServeEnd::NoHandshake),
        Ok(None) => return Ok(()),
        Ok(Some(Err(e))) => {
            let _ = send(&mut framed, PeerFrame::Error(e.to_string())).await;
            return Err(e.into());
        }
        Ok(Some(Ok(PeerFrame::Hello(hello)))) => hello,
        Ok(Some(Ok(_))) => {
            let _ = send(&mut framed, PeerFrame::Error("expected HELLO".into())).await;
            return Err(ServeEnd::NotHello);
        }
    };
    let holding = match admit(plane, &hello, peer_key).await {
        Ok(h) => h,
        Err(refusal) => {
            let _ = send(&mut framed, PeerFrame::Error(refusal.to_string())).await;
            return Err(refusal.into());
        }
    };
    tracing::debug!(%peer, user = %hello.grant.user, file = %holding.meta.name, "serving peer");
    let mut grant = hello.grant;
    let _serving = holding.serving();
    let mut haves = holding.subscribe();
    send(
        &mut framed,
        PeerFrame::Welcome(holding.bitfield().as_bytes().to_vec().into()),
    )
    .await?;
    // A download's part file is read through the download's own descriptor.
    let file = match holding.open_file() {
        Some(file) => file,
        None => {
            let path = holding.path();
            std::fs::File::open(&path)
                .map(Arc::new)
                .map_err(|e| ServeEnd::Disk(crate::download::storage::annotate(e, "open", &path)))?
        }
    };
    loop {
        tokio::select! {
            _ = plane.shutdown.cancelled() => return Ok(()),
            _ = holding.revoked() => {
                let _ = send(&mut framed, PeerFrame::Error("no longer shared".into())).await;
                return Err(ServeEnd::Withdrawn);
            }
            have = haves.recv() => match have {
                Ok(piece) => send(&mut framed, PeerFrame::Have(piece)).await?,
                // Lagged: the peer can live without some HAVEs; closed: the holding is gone.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            frame = tokio::time::timeout(IDLE_TIMEOUT, framed.next()) => {
                let frame = match frame {
                    Err(_) => return Err(ServeEnd::Idle),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => {
                        let _ = send(&mut framed, PeerFrame::Error(e.to_string())).await;
                        return Err(e.into());
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                match frame {
                    PeerFrame::Request(index) => {
                        if grant.check_expiry(unix_now()).is_err() {
                            let _ = send(&mut framed, PeerFrame::Error("grant expired".into())).await;
                            return Err(ServeEnd::GrantExpired);
                        }
                        serve_request(plane, &holding, &file, &mut framed, index).await?;
                    }
                    PeerFrame::Grant(renewed) => {
                        if let Err(refusal) = renew(plane, &grant, &renewed, peer_key).await {
                            let _ = send(&mut framed, PeerFrame::Error(refusal.to_string())).await;
                            return Err(ServeEnd::BadRenewal(refusal));
                        }
                        grant = renewed;
                    }
                    PeerFrame::Cancel(_) | PeerFrame::KeepAlive => {}
                    other => {
                        let name = other.name();
                        let _ = send(&mut framed, PeerFrame::Error("unexpected frame".into())).await;
                        return Err(ServeEnd::Unexpected(name));
                    }
                }
            }
        }
    }
}

/// Answers one REQUEST: the piece, or REJECT when we do not hold it or the upload spreading
/// steers this downloader elsewhere.
async fn serve_request<S>(
    plane: &Plane,
    holding: &Holding,
    file: &Arc<std::fs::File>,
    framed: &mut PeerFramed<S>,
    index: u32,
) -> Result<(), ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let piece = index as usize;
    if !holding.has(piece) || !holding.take_upload(piece) {
        return send(framed, PeerFrame::Reject(index)).await;
    }
    let data = read_piece(file, holding, piece).await?;
    plane.limits.upload.acquire(data.len() as u64).await;
    tokio::time::timeout(WRITE_TIMEOUT, send_piece(framed, index, data))
        .await
        .map_err(|_| ServeEnd::Stalled)??;
    Ok(())
}

/// Sends one frame, giving up on a peer that stopped reading.
async fn send<S>(framed: &mut PeerFramed<S>, frame: PeerFrame) -> Result<(), ServeEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(WRITE_TIMEOUT, framed.send(frame))
        .await
        .map_err(|_| ServeEnd::Stalled)??;
    Ok(())
}

/// Checks a grant against the trackers' key, asking the tracker for its key again once if the
/// grant is signed by another (the trackers' key changed).
async fn verify_grant(
    plane: &Plane,
    grant: &Grant,
    file: &str,
    peer_key: Fingerprint,
) -> Result<(), Refusal> {
    let key = plane
        .grant_key
        .get()
        .await
        .map_err(|e| Refusal::NoKey(e.message))?;
    match grant.verify(&key, file, peer_key, unix_now()) {
        Err(GrantError::OtherSigner(_)) => {
            let Some(fresh) = plane
                .grant_key
                .refresh()
                .await
                .map_err(|e| Refusal::NoKey(e.message))?
            else {
                return Err(GrantError::OtherSigner(grant.key_id.clone()).into());
            };
            Ok(grant.verify(&fresh, file, peer_key, unix_now())?)
        }
        other => Ok(other?),
    }
}

/// Checks the HELLO: we are sharing, the grant verifies for this file and the connecting key,
/// and we share the file ourselves in the very group (by id) the grant names.
async fn admit(
    plane: &Plane,
    hello: &Hello,
    peer_key: Fingerprint,
) -> Result<Arc<Holding>, Refusal> {
    if plane.tracker.session().is_none() {
        return Err(Refusal::LoggedOut);
    }
    verify_grant(plane, &hello.grant, &hello.file, peer_key).await?;
    let holding = plane
        .holdings
        .get(&hello.grant.group, &hello.file)
        .ok_or(Refusal::NotShared)?;
    if holding.group_id().as_deref() != Some(hello.grant.group_id.as_str()) {
        return Err(Refusal::NotShared);
    }
    if let Some(share_key) = &holding.share_key
        && crate::shares::changed(&holding)
    {
        crate::shares::withdraw(plane, share_key, &holding).await;
        return Err(Refusal::NotShared);
    }
    Ok(holding)
}

/// Checks a GRANT frame: a valid grant for the same file, group and key as the one in use,
/// expiring later. A replayed or older grant is refused before its signature is checked, so a
/// peer cannot make us verify one signature per frame it sends.
async fn renew(
    plane: &Plane,
    current: &Grant,
    renewed: &Grant,
    peer_key: Fingerprint,
) -> Result<(), Refusal> {
    if renewed.file_sha1 != current.file_sha1
        || renewed.group_id != current.group_id
        || renewed.group != current.group
    {
        return Err(Refusal::NotSameGrant);
    }
    if renewed.expires <= current.expires {
        return Err(Refusal::NotLater);
    }
    verify_grant(plane, renewed, &current.file_sha1, peer_key).await
}

async fn read_piece(
    file: &Arc<std::fs::File>,
    holding: &Holding,
    piece: usize,
) -> Result<bytes::Bytes, ServeEnd> {
    let file = Arc::clone(file);
    let size = holding.meta.size;
    let path = holding.path();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; p2p_proto::files::PIECE_SIZE as usize];
        let len = crate::download::storage::read_piece(&file, size, piece, &mut buf)
            .map_err(|e| crate::download::storage::annotate(e, "read", &path))?
            .len();
        buf.truncate(len);
        Ok(bytes::Bytes::from(buf))
    })
    .await
    .map_err(|e| ServeEnd::Disk(std::io::Error::other(e)))?
    .map_err(ServeEnd::Disk)
}
