//! One peer connection against a scripted fake peer over an in-memory stream: what the
//! download does with a good piece, a bad one, a REJECT, a HAVE, silence and a peer that hangs
//! up in the middle of a piece.

use super::*;
use crate::state::{DownloadRecord, StateDb, StoredState};
use p2p_proto::files::{FileMeta, PIECE_SIZE};
use p2p_proto::identity::Identity;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncWriteExt, DuplexStream};

const PEER: &str = "10.0.0.9:4000";

struct Setup {
    link: PeerLink,
    /// The download task's side of the grant: a test renews through it.
    grants: watch::Sender<Grant>,
    content: Vec<u8>,
    _dir: tempfile::TempDir,
}

/// A fresh download of a file of two and a half pieces, with its part file in a temp dir.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..PIECE_SIZE * 2 + PIECE_SIZE / 2)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let pieces = content
        .chunks(PIECE_SIZE as usize)
        .map(|c| hex::encode(Sha1::digest(c)))
        .collect();
    let meta = FileMeta {
        name: "f.bin".into(),
        size: content.len() as u64,
        sha1: hex::encode(Sha1::digest(&content)),
        pieces,
    };
    let record = DownloadRecord {
        user: "bob".into(),
        group: "g".into(),
        meta,
        destination: dir.path().join("f.bin"),
        part_path: dir.path().join("f.bin.p2p-part"),
        state: StoredState::Active,
        error: None,
        banned: Vec::new(),
        sources: Vec::new(),
        group_id: Some("1d".into()),
    };
    let db = StateDb::open(&dir.path().join("state.redb")).unwrap();
    let dl = Download::open(record, true, &db, CancellationToken::new()).unwrap();
    let (grants, grant) = watch::channel(grant());
    Setup {
        link: PeerLink {
            dl: Arc::new(dl),
            download_limit: Arc::new(RateLimit::new(None)),
            announce: Announce::default(),
            identity: Identity::ephemeral().unwrap(),
            grant,
            relayed: false,
        },
        grants,
        content,
        _dir: dir,
    }
}

fn grant() -> Grant {
    Grant {
        key_id: String::new(),
        user: "bob".into(),
        group: "g".into(),
        group_id: "1d".into(),
        file_sha1: "0".repeat(40),
        downloader: Identity::ephemeral().unwrap().fingerprint(),
        expires: u64::MAX,
        signature: String::new(),
    }
}

fn piece_of(content: &[u8], piece: usize) -> Bytes {
    let start = piece * PIECE_SIZE as usize;
    let end = (start + PIECE_SIZE as usize).min(content.len());
    Bytes::copy_from_slice(&content[start..end])
}

/// The fake peer's end: reads HELLO and answers WELCOME with `bits`.
async fn welcome(stream: DuplexStream, bits: &Bitfield) -> Framed<DuplexStream, PeerCodec> {
    let mut peer = Framed::new(stream, PeerCodec::default());
    match peer.next().await {
        Some(Ok(PeerFrame::Hello(_))) => {}
        other => panic!("expected HELLO, got {other:?}"),
    }
    let welcome = PeerFrame::Welcome(Bytes::copy_from_slice(bits.as_bytes()));
    peer.send(welcome).await.unwrap();
    peer
}

/// The next REQUEST the fake peer gets (other frames are skipped).
async fn next_request(peer: &mut Framed<DuplexStream, PeerCodec>) -> Option<usize> {
    loop {
        match peer.next().await {
            Some(Ok(PeerFrame::Request(i))) => return Some(i as usize),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

fn start(link: &PeerLink) -> (DuplexStream, tokio::task::JoinHandle<Result<(), PeerEnd>>) {
    let (ours, theirs) = tokio::io::duplex(4 << 20);
    let link = link.clone();
    let task = tokio::spawn(run(link, ours, PEER.into()));
    (theirs, task)
}

fn pieces(link: &PeerLink) -> usize {
    link.dl.record.meta.pieces.len()
}

#[tokio::test]
async fn good_pieces_are_verified_written_and_offered() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    let mut served = Vec::new();
    while served.len() < pieces(&s.link) {
        let piece = next_request(&mut peer).await.expect("a request");
        served.push(piece);
        let data = piece_of(&s.content, piece);
        peer.send(PeerFrame::Piece {
            index: piece as u32,
            data,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        task.await.unwrap(),
        Ok(()),
        "done once every piece verified"
    );
    served.sort_unstable();
    assert_eq!(served, vec![0, 1, 2], "each piece asked once");
    assert!(s.link.dl.picker.with(|p| p.is_complete()));
    assert_eq!(s.link.dl.holding.count(), 3, "verified pieces are offered");
    let written = std::fs::read(&s.link.dl.record.part_path).unwrap();
    assert_eq!(written, s.content);
    let sources = s.link.dl.progress.with(|p| p.sources.clone());
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].peer, PEER);
    assert_eq!(
        sources[0].bytes,
        s.content.len() as u64,
        "what it delivered"
    );
    assert!(!sources[0].connected, "the connection ended");
}

#[tokio::test]
async fn a_bad_piece_bans_the_peer_and_the_piece_is_wanted_again() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    let piece = next_request(&mut peer).await.unwrap();
    let mut data = piece_of(&s.content, piece).to_vec();
    data[7] ^= 0xff;
    peer.send(PeerFrame::Piece {
        index: piece as u32,
        data: data.into(),
    })
    .await
    .unwrap();
    let end = task.await.unwrap();
    assert!(
        matches!(&end, Err(PeerEnd::Banned(r)) if r.contains("SHA-1")),
        "{end:?}"
    );
    assert!(s.link.dl.is_banned(PEER));
    assert!(!s.link.dl.picker.with(|p| p.is_done(piece)));
    let full = Bitfield::full(pieces(&s.link));
    let again = s.link.dl.picker.with(|p| p.pick(&full, &[], false));
    assert!(
        again.is_some(),
        "nothing stays requested from a banned peer"
    );
}

#[tokio::test]
async fn a_piece_nobody_asked_for_bans_the_peer() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    assert!(next_request(&mut peer).await.is_some());
    // Every piece of the file may be asked already (8 in flight); 99 certainly was not.
    peer.send(PeerFrame::Piece {
        index: 99,
        data: piece_of(&s.content, 0),
    })
    .await
    .unwrap();
    let end = task.await.unwrap();
    assert!(
        matches!(&end, Err(PeerEnd::Banned(r)) if r.contains("nobody asked for")),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_rejected_piece_is_asked_again_later() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    let mut rejected = None;
    let mut requests = Vec::new();
    let mut done = 0;
    while done < pieces(&s.link) {
        let piece = next_request(&mut peer).await.expect("a request");
        requests.push(piece);
        if rejected.is_none() {
            rejected = Some(piece);
            peer.send(PeerFrame::Reject(piece as u32)).await.unwrap();
            continue;
        }
        peer.send(PeerFrame::Piece {
            index: piece as u32,
            data: piece_of(&s.content, piece),
        })
        .await
        .unwrap();
        done += 1;
    }
    assert_eq!(task.await.unwrap(), Ok(()));
    let rejected = rejected.unwrap();
    assert_eq!(
        requests.iter().filter(|&&p| p == rejected).count(),
        2,
        "the rejected piece was asked once more: {requests:?}"
    );
    assert!(s.link.dl.picker.with(|p| p.is_complete()));
}

#[tokio::test]
async fn pieces_a_peer_announces_with_have_are_requested() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::new(pieces(&s.link))).await;
    // The peer holds nothing yet: it gets no request until it says it has piece 1.
    peer.send(PeerFrame::Have(1)).await.unwrap();
    assert_eq!(next_request(&mut peer).await, Some(1));
    peer.send(PeerFrame::Piece {
        index: 1,
        data: piece_of(&s.content, 1),
    })
    .await
    .unwrap();
    for piece in [0, 2] {
        peer.send(PeerFrame::Have(piece)).await.unwrap();
        assert_eq!(next_request(&mut peer).await, Some(piece as usize));
        peer.send(PeerFrame::Piece {
            index: piece,
            data: piece_of(&s.content, piece as usize),
        })
        .await
        .unwrap();
    }
    assert_eq!(task.await.unwrap(), Ok(()));
    assert_eq!(s.link.dl.holding.count(), 3);
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_its_requests_released() {
    tokio::time::pause();
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    assert!(next_request(&mut peer).await.is_some());
    // The fake peer reads on but never delivers; with the clock paused, the runtime skips
    // ahead to the delivery deadline.
    let reader = tokio::spawn(async move { while next_request(&mut peer).await.is_some() {} });
    let end = task.await.unwrap();
    assert_eq!(
        end,
        Err(PeerEnd::Failed(format!(
            "no piece delivered for {}s",
            REQUEST_TIMEOUT.as_secs()
        )))
    );
    assert!(!s.link.dl.is_banned(PEER), "silence is not misbehaviour");
    let full = Bitfield::full(pieces(&s.link));
    let again: Vec<_> = (0..pieces(&s.link))
        .map_while(|_| s.link.dl.picker.with(|p| p.pick(&full, &[], false)))
        .collect();
    assert_eq!(again.len(), 3, "every piece can be asked elsewhere");
    reader.abort();
}

#[tokio::test]
async fn a_peer_that_hangs_up_mid_piece_is_dropped_not_banned() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    let piece = next_request(&mut peer).await.unwrap();
    // Half a PIECE frame, then the connection ends.
    let mut raw = bytes::BytesMut::new();
    let data = piece_of(&s.content, piece);
    tokio_util::codec::Encoder::encode(
        &mut PeerCodec::default(),
        PeerFrame::Piece {
            index: piece as u32,
            data,
        },
        &mut raw,
    )
    .unwrap();
    let mut stream = peer.into_inner();
    stream.write_all(&raw[..raw.len() / 2]).await.unwrap();
    drop(stream);
    let end = task.await.unwrap();
    assert!(
        matches!(&end, Err(PeerEnd::Failed(r)) if r.contains("middle of a frame")),
        "{end:?}"
    );
    assert!(!s.link.dl.is_banned(PEER));
    assert!(!s.link.dl.picker.with(|p| p.is_done(piece)));
}

#[tokio::test]
async fn a_renewed_grant_is_passed_on_to_the_peer() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = welcome(stream, &Bitfield::new(pieces(&s.link))).await;
    let mut renewed = grant();
    renewed.expires = 12345;
    s.grants.send_replace(renewed.clone());
    loop {
        match peer.next().await {
            Some(Ok(PeerFrame::Grant(got))) => {
                assert_eq!(got, renewed);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected GRANT, got {other:?}"),
        }
    }
    drop(peer);
    assert!(task.await.unwrap().is_err(), "the peer hung up");
}

#[tokio::test]
async fn a_refused_handshake_is_a_failure_with_the_reason() {
    let s = setup();
    let (stream, task) = start(&s.link);
    let mut peer = Framed::new(stream, PeerCodec::default());
    assert!(matches!(peer.next().await, Some(Ok(PeerFrame::Hello(_)))));
    peer.send(PeerFrame::Error("file not shared here".into()))
        .await
        .unwrap();
    assert_eq!(
        task.await.unwrap(),
        Err(PeerEnd::Failed("refused: file not shared here".into()))
    );
}

/// Like [`start`], counting the connection's work.
fn start_counted(
    link: &PeerLink,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Result<(), PeerEnd>>,
    Arc<Work>,
) {
    let (ours, theirs) = tokio::io::duplex(4 << 20);
    let work = Arc::new(Work::default());
    let task = tokio::spawn(run_counted(
        link.clone(),
        ours,
        PEER.into(),
        Arc::clone(&work),
    ));
    (theirs, task, work)
}

/// Lets the connection's task run until it has taken `frames` frames in.
async fn until_received(work: &Work, frames: u64) {
    while Work::get(&work.frames) < frames {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn keepalives_and_duplicate_haves_run_no_picker() {
    // A paused clock: no tick can come between the frames and add a picker run of its own.
    tokio::time::pause();
    let s = setup();
    let (stream, task, work) = start_counted(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    for _ in 0..pieces(&s.link) {
        assert!(next_request(&mut peer).await.is_some());
    }
    assert_eq!(
        Work::get(&work.full_picks),
        1,
        "one run asked for all three"
    );
    let noise = MAX_NOISE_PER_SEC as u64;
    for i in 0..noise {
        let frame = if i % 2 == 0 {
            PeerFrame::KeepAlive
        } else {
            PeerFrame::Have((i % 3) as u32)
        };
        peer.send(frame).await.unwrap();
    }
    until_received(&work, noise).await;
    assert_eq!(
        Work::get(&work.full_picks),
        1,
        "keep-alives and duplicate HAVEs ran the picker"
    );
    assert_eq!(Work::get(&work.single_picks), 0);
    drop(peer);
    assert_eq!(
        task.await.unwrap(),
        Err(PeerEnd::Failed("closed the connection".into())),
        "as many as allowed in a second is no flood"
    );
}

#[tokio::test]
async fn new_haves_cost_a_single_pick_each() {
    tokio::time::pause();
    let s = setup();
    let (stream, task, work) = start_counted(&s.link);
    let mut peer = welcome(stream, &Bitfield::new(pieces(&s.link))).await;
    for piece in [2, 0, 1] {
        peer.send(PeerFrame::Have(piece)).await.unwrap();
        assert_eq!(next_request(&mut peer).await, Some(piece as usize));
    }
    assert_eq!(Work::get(&work.full_picks), 1, "only the one after WELCOME");
    assert_eq!(Work::get(&work.single_picks), 3);
    drop(peer);
    assert!(task.await.unwrap().is_err());
}

#[tokio::test]
async fn a_keepalive_flood_bans_the_peer_without_running_the_picker() {
    tokio::time::pause();
    let s = setup();
    let (stream, task, work) = start_counted(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    for _ in 0..=MAX_NOISE_PER_SEC {
        peer.send(PeerFrame::KeepAlive).await.unwrap();
    }
    let end = task.await.unwrap();
    assert!(
        matches!(&end, Err(PeerEnd::Banned(r)) if r.contains("flooded") && r.contains("keep-alives")),
        "{end:?}"
    );
    assert_eq!(Work::get(&work.full_picks), 1);
    assert_eq!(
        Work::get(&work.frames),
        u64::from(MAX_NOISE_PER_SEC) + 1,
        "banned at the first frame over the limit"
    );
    // What it was asked for can be asked elsewhere.
    let full = Bitfield::full(pieces(&s.link));
    assert!(
        s.link
            .dl
            .picker
            .with(|p| p.pick(&full, &[], false))
            .is_some()
    );
}

#[tokio::test]
async fn a_duplicate_have_flood_bans_the_peer() {
    tokio::time::pause();
    let s = setup();
    let (stream, task, _work) = start_counted(&s.link);
    let mut peer = welcome(stream, &Bitfield::new(pieces(&s.link))).await;
    peer.send(PeerFrame::Have(0)).await.unwrap();
    assert_eq!(next_request(&mut peer).await, Some(0));
    // The same piece again and again, and pieces the file does not have.
    for i in 0..=MAX_NOISE_PER_SEC {
        let piece = if i % 2 == 0 { 0 } else { 1000 + i };
        peer.send(PeerFrame::Have(piece)).await.unwrap();
    }
    let end = task.await.unwrap();
    assert!(
        matches!(&end, Err(PeerEnd::Banned(r)) if r.contains("flooded") && r.contains("HAVE")),
        "{end:?}"
    );
}

#[tokio::test]
async fn noise_is_counted_per_second() {
    tokio::time::pause();
    let s = setup();
    let (stream, task, work) = start_counted(&s.link);
    let mut peer = welcome(stream, &Bitfield::full(pieces(&s.link))).await;
    let per_second = u64::from(MAX_NOISE_PER_SEC);
    for second in 1..=3 {
        for _ in 0..per_second {
            peer.send(PeerFrame::KeepAlive).await.unwrap();
        }
        until_received(&work, second * per_second).await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    drop(peer);
    assert_eq!(
        task.await.unwrap(),
        Err(PeerEnd::Failed("closed the connection".into()))
    );
}

#[test]
fn per_second_windows_restart_after_a_second() {
    let start = Instant::now();
    let mut window = PerSecond::new(start);
    assert_eq!(window.hit(start), 1);
    assert_eq!(window.hit(start + Duration::from_millis(999)), 2);
    assert_eq!(window.hit(start + Duration::from_secs(1)), 1);
    assert_eq!(window.hit(start + Duration::from_millis(1500)), 2);
}
