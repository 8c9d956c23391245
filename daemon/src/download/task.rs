//! The task that drives one download: asks the tracker for peers (and fresh grants), keeps a
//! connection to every usable peer, commits verified pieces to the database after they are on
//! disk, and finishes the file.

use super::Download;
use super::peer::{self, PeerEnd};
use crate::daemon::Daemon;
use crate::hashing::whole_file_sha1;
use crate::state::{ShareRecord, StoredBitmap, StoredState};
use p2p_proto::ErrorKind;
use p2p_proto::control::DownloadState;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the tracker is asked for peers while some are connected: often enough that
/// downloaders of one file find each other (and feed each other) within a second.
const REFRESH: Duration = Duration::from_secs(1);
/// ... and while none is.
const REFRESH_WAITING: Duration = Duration::from_secs(1);
/// How often verified pieces are made durable.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub async fn run(daemon: Arc<Daemon>, dl: Arc<Download>) {
    recheck(&dl).await;
    let mut whole = Some(tokio::spawn(super::whole_hash::run(Arc::clone(&dl))));
    let mut peers: JoinSet<(String, Result<(), PeerEnd>)> = JoinSet::new();
    let mut connected: HashSet<String> = HashSet::new();
    let mut next_refresh = Instant::now();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting_for = String::from("looking for peers");
    loop {
        if let Some(reason) = dl.progress.lock().ok().and_then(|p| p.fatal.clone()) {
            fail(&daemon, &dl, reason).await;
            break;
        }
        if dl.picker.lock().is_ok_and(|p| p.is_complete())
            && let Some(whole) = whole.take()
        {
            peers.shutdown().await;
            let digest = match whole.await {
                Ok(result) => result,
                Err(e) => Err(e.to_string()),
            };
            finish(&daemon, &dl, digest).await;
            break;
        }
        if Instant::now() >= next_refresh {
            // A slow tracker must not hold up a cancel (logout, shutdown).
            let refreshed = tokio::select! {
                r = refresh(&daemon, &dl, &mut peers, &mut connected) => r,
                _ = dl.cancel.cancelled() => Err("cancelled".into()),
            };
            match refreshed {
                Ok(()) if connected.is_empty() => {
                    waiting_for = "no peer with a missing piece is online".into();
                }
                Ok(()) => {}
                Err(reason) => waiting_for = reason,
            }
            next_refresh = Instant::now()
                + if connected.is_empty() {
                    REFRESH_WAITING
                } else {
                    REFRESH
                };
        }
        set_progress(&dl, connected.len(), &waiting_for);
        tokio::select! {
            _ = dl.cancel.cancelled() => {
                if let Some(whole) = whole.take() {
                    whole.abort();
                }
                peers.shutdown().await;
                let _ = flush_pieces(&daemon, &dl).await;
                break;
            }
            _ = dl.events.notified() => {}
            _ = flush.tick() => {
                if let Err(e) = flush_pieces(&daemon, &dl).await {
                    dl.fatal(e);
                }
            }
            Some(ended) = peers.join_next() => {
                if let Ok((addr, result)) = ended {
                    connected.remove(&addr);
                    match result {
                        Ok(()) => tracing::debug!(download = %dl.key, peer = %addr, "peer done"),
                        Err(PeerEnd::Banned(reason)) => dl.ban(&addr, &reason),
                        Err(PeerEnd::Failed(reason)) => {
                            tracing::info!(download = %dl.key, peer = %addr, reason, "peer dropped");
                        }
                    }
                    if connected.is_empty() {
                        next_refresh = next_refresh.min(Instant::now() + Duration::from_millis(200));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_refresh) => {}
        }
    }
}

/// Re-hashes the pieces a stored bitmap claims when the part file changed since it was
/// committed, keeping only those that still match.
async fn recheck(dl: &Arc<Download>) {
    let Some(claimed) = dl.recheck.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    if let Ok(mut p) = dl.progress.lock() {
        p.detail = Some(format!(
            "checking {} pieces already on disk",
            claimed.count()
        ));
    }
    let file = dl.storage.file();
    let meta = Arc::clone(&dl.holding.meta);
    let good = tokio::task::spawn_blocking(move || {
        use sha1::{Digest, Sha1};
        let mut buf = vec![0u8; p2p_proto::files::PIECE_SIZE as usize];
        claimed
            .iter_set()
            .filter(|&piece| {
                super::storage::read_piece(&file, meta.size, piece, &mut buf)
                    .is_ok_and(|data| hex::encode(Sha1::digest(data)) == meta.pieces[piece])
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    tracing::info!(download = %dl.key, good = good.len(), "re-checked pieces of a changed part file");
    for piece in good {
        if dl.picker.lock().is_ok_and(|mut p| p.complete(piece)) {
            dl.holding.add_piece(piece);
            dl.piece_verified(0);
        }
    }
}

/// Asks the tracker who has the file and connects to the peers not yet connected.
async fn refresh(
    daemon: &Arc<Daemon>,
    dl: &Arc<Download>,
    peers: &mut JoinSet<(String, Result<(), PeerEnd>)>,
    connected: &mut HashSet<String>,
) -> Result<(), String> {
    let call = TrackerCall::FetchFile {
        group: dl.record.group.clone(),
        name: dl.record.meta.name.clone(),
    };
    let (meta, list, grant) = match daemon.call_as_user(call).await {
        Ok(TrackerReply::FileDetails {
            meta, peers, grant, ..
        }) => (meta, peers, grant),
        Ok(other) => return Err(format!("unexpected tracker reply {other:?}")),
        Err(e) if e.kind == ErrorKind::NotLoggedIn => return Err("logged out".into()),
        Err(e) => return Err(format!("tracker: {}", e.message)),
    };
    if meta.sha1 != dl.record.meta.sha1 {
        return Err("the group's file of this name now has other content".into());
    }
    for peer in list {
        if connected.contains(&peer.addr) || dl.is_banned(&peer.addr) {
            continue;
        }
        connected.insert(peer.addr.clone());
        let (daemon, dl, grant) = (Arc::clone(daemon), Arc::clone(dl), grant.clone());
        peers.spawn(async move {
            let result = peer::run(daemon, dl, peer.addr.clone(), grant).await;
            (peer.addr, result)
        });
    }
    Ok(())
}

fn set_progress(dl: &Download, peers: usize, waiting_for: &str) {
    if let Ok(mut p) = dl.progress.lock() {
        p.peers = peers;
        if peers == 0 {
            p.state = DownloadState::Waiting;
            p.detail = Some(waiting_for.to_string());
        } else {
            p.state = DownloadState::Downloading;
            p.detail = None;
        }
    }
}

/// Makes the verified pieces durable: snapshot, sync the part file, then commit the snapshot.
async fn flush_pieces(daemon: &Daemon, dl: &Download) -> Result<(), String> {
    let dirty = dl
        .progress
        .lock()
        .map(|mut p| std::mem::take(&mut p.dirty))
        .unwrap_or(false);
    if !dirty {
        return Ok(());
    }
    let snapshot = dl.holding.bitfield();
    dl.storage.sync().await.map_err(|e| e.to_string())?;
    let stat = crate::hashing::size_and_mtime(&dl.storage.path).map_err(|e| e.to_string())?;
    let key = dl.key.clone();
    daemon
        .with_state(move |s| Ok(s.put_bitmap(&key, &StoredBitmap::new(&snapshot, stat))?))
        .await
        .map_err(|e| e.message)
}

/// Checks the whole file's SHA-1 (computed during the download), moves the file into place
/// and makes it a share. The download shows complete as soon as the file is in place; the data
/// is then synced and the completion committed. A crash between the two is recovered at the
/// next start (see `recover_moved`).
async fn finish(daemon: &Arc<Daemon>, dl: &Arc<Download>, digest: Result<String, String>) {
    let expected = dl.record.meta.sha1.clone();
    match digest {
        Ok(actual) if actual == expected => {}
        Ok(actual) => {
            let reason = format!("whole-file SHA-1 mismatch (got {actual}, expected {expected})");
            return fail(daemon, dl, reason).await;
        }
        Err(e) => return fail(daemon, dl, e).await,
    }
    let part = dl.record.part_path.clone();
    let dest = dl.record.destination.clone();
    let moved = tokio::task::spawn_blocking(move || move_into_place(&part, &dest)).await;
    let (size, mtime_ns) = match moved {
        Ok(Ok(stat)) => stat,
        Ok(Err(reason)) => return fail(daemon, dl, reason).await,
        Err(e) => return fail(daemon, dl, e.to_string()).await,
    };
    // Peers still connected to the download's holding read from the final path from now on.
    dl.holding.set_path(dl.record.destination.clone());
    let mut record = dl.record.clone();
    record.state = StoredState::Complete;
    record.banned = banned(dl);
    let share = share_of(&record, size, mtime_ns);
    daemon
        .holdings
        .insert(Arc::new(crate::shares::holding_for(&share)));
    if let Ok(mut p) = dl.progress.lock() {
        p.state = DownloadState::Complete;
        p.detail = None;
        p.peers = 0;
    }
    daemon.announce_now.notify_one();
    tracing::info!(download = %dl.key, dest = %dl.record.destination.display(), "download complete");
    if let Err(e) = dl.storage.sync().await {
        tracing::error!(download = %dl.key, error = %e, "cannot sync finished download");
    }
    let bitmap = StoredBitmap::new(&dl.holding.bitfield(), (size, mtime_ns));
    let key = dl.key.clone();
    let saved = daemon
        .with_state(move |s| {
            s.put_bitmap(&key, &bitmap)?;
            s.put_download(&record)?;
            s.put_share(&share)?;
            Ok(())
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(download = %dl.key, error = %e, "cannot record finished download");
    }
}

/// Links the verified part file to the destination (a hard link never replaces an existing
/// file, unlike rename), removes the part file, and returns the destination's size and mtime.
fn move_into_place(part: &std::path::Path, dest: &std::path::Path) -> Result<(u64, i128), String> {
    std::fs::hard_link(part, dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    std::fs::remove_file(part).map_err(|e| format!("cannot remove {}: {e}", part.display()))?;
    crate::hashing::size_and_mtime(dest).map_err(|e| format!("cannot stat {}: {e}", dest.display()))
}

fn share_of(record: &crate::state::DownloadRecord, size: u64, mtime_ns: i128) -> ShareRecord {
    ShareRecord {
        user: record.user.clone(),
        group: record.group.clone(),
        name: record.meta.name.clone(),
        path: record.destination.clone(),
        size,
        mtime_ns,
        sha1: record.meta.sha1.clone(),
        pieces: record.meta.pieces.len(),
    }
}

/// A download that was moved into place but not yet recorded complete when the daemon died:
/// its part file is gone and the destination exists. Verifies the destination and records it
/// complete (and shared), or failed if it is not the file.
pub async fn recover_moved(daemon: &Arc<Daemon>, mut record: crate::state::DownloadRecord) {
    let dest = record.destination.clone();
    let expected = record.meta.sha1.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let actual =
            whole_file_sha1(&dest).map_err(|e| format!("cannot read {}: {e}", dest.display()))?;
        if actual != expected {
            return Err(format!(
                "{} exists but is not the downloaded file",
                dest.display()
            ));
        }
        crate::hashing::size_and_mtime(&dest)
            .map_err(|e| format!("cannot stat {}: {e}", dest.display()))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let share = match checked {
        Ok((size, mtime_ns)) => {
            record.state = StoredState::Complete;
            Some(share_of(&record, size, mtime_ns))
        }
        Err(reason) => {
            record.state = StoredState::Failed;
            record.error = Some(reason);
            None
        }
    };
    let holding = share.as_ref().map(crate::shares::holding_for);
    let saved = daemon
        .with_state(move |s| {
            s.put_download(&record)?;
            if let Some(share) = &share {
                s.put_share(share)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "cannot record a recovered download");
    }
    if let Some(holding) = holding {
        daemon.holdings.insert(Arc::new(holding));
        daemon.announce_now.notify_one();
    }
}

async fn fail(daemon: &Daemon, dl: &Download, reason: String) {
    tracing::error!(download = %dl.key, reason, "download failed");
    let mut record = dl.record.clone();
    record.state = StoredState::Failed;
    record.error = Some(reason.clone());
    record.banned = banned(dl);
    let _ = daemon
        .with_state(move |s| Ok(s.put_download(&record)?))
        .await;
    daemon
        .holdings
        .remove(&dl.record.group, &dl.record.meta.sha1);
    if let Ok(mut p) = dl.progress.lock() {
        p.state = DownloadState::Failed;
        p.detail = Some(reason);
        p.peers = 0;
    }
}

fn banned(dl: &Download) -> Vec<p2p_proto::control::BannedPeer> {
    dl.progress
        .lock()
        .map(|p| p.banned.clone())
        .unwrap_or_default()
}
