//! The task that drives one download: asks the tracker for peers (and fresh grants), keeps a
//! connection to every usable peer, commits verified pieces to the database after they are on
//! disk, and hands the complete file to `finish`.

use super::Download;
use super::error::DownloadError;
use super::finish::{fail, finish};
use super::peer::{self, PeerEnd, PeerLink};
use crate::plane::Plane;
use crate::reach::dial::Dialer;
use crate::state::StoredBitmap;
use p2p_proto::ErrorKind;
use p2p_proto::control::DownloadState;
use p2p_proto::grant::{Grant, unix_now};
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the tracker is asked for peers (and a fresh grant): often enough that downloaders
/// of one file find each other (and feed each other) within a second.
const REFRESH: Duration = Duration::from_secs(1);
/// How often verified pieces are made durable.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often a download waiting for disk space tries again.
const DISK_RETRY: Duration = Duration::from_secs(2);

type PeerTasks = JoinSet<(String, Result<(), PeerEnd>)>;

pub async fn run(plane: &Arc<Plane>, dl: &Arc<Download>) {
    recheck(dl).await;
    let mut peers = PeerTasks::new();
    let mut connected: HashSet<String> = HashSet::new();
    let mut next_refresh = Instant::now();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting_for = String::from("looking for peers");
    let mut grant_slot: GrantSlot = None;
    loop {
        if let Some(reason) = dl.progress.with(|p| p.fatal.clone()) {
            fail(plane, dl, reason).await;
            break;
        }
        if dl.disk_wait.with(|w| w.is_some()) {
            peers.shutdown().await;
            connected.clear();
            if !wait_for_disk(plane, dl).await {
                break;
            }
            next_refresh = Instant::now();
            continue;
        }
        if dl.picker.with(|p| p.is_complete()) {
            peers.shutdown().await;
            connected.clear();
            match finish(plane, dl).await {
                Ok(()) => break,
                Err(e) if e.is_disk_wait() => {
                    dl.disk_wait.with(|w| *w = Some(e.to_string()));
                    continue;
                }
                Err(e) => {
                    fail(plane, dl, e.to_string()).await;
                    break;
                }
            }
        }
        if Instant::now() >= next_refresh {
            // A slow tracker must not hold up a cancel (logout, shutdown).
            let refreshed = tokio::select! {
                r = refresh(plane, dl, &mut peers, &mut connected, &mut grant_slot) => r,
                _ = dl.cancel.cancelled() => Err(DownloadError::Cancelled),
            };
            match refreshed {
                Ok(()) if connected.is_empty() => {
                    waiting_for = "no peer with a missing piece is online".into();
                }
                Ok(()) => {}
                Err(reason) => waiting_for = reason.to_string(),
            }
            next_refresh = Instant::now() + REFRESH;
        }
        set_progress(dl, connected.len(), &waiting_for);
        tokio::select! {
            _ = dl.cancel.cancelled() => {
                peers.shutdown().await;
                let _ = flush_pieces(plane, dl).await;
                break;
            }
            _ = dl.events.notified() => {}
            _ = flush.tick() => {
                match flush_pieces(plane, dl).await {
                    Ok(()) => {}
                    Err(DownloadError::Disk(e)) => dl.disk_failure(e),
                    Err(e) => dl.fatal(e.to_string()),
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

/// Pieces re-hashed per blocking job by [`recheck`]: progress shows each batch as it is done.
const RECHECK_BATCH: usize = 32;

/// Re-hashes the pieces a stored bitmap claims when the part file changed since it was
/// committed, keeping only those that still match. Pieces count as they are checked, batch by
/// batch, so a resumed download shows what it has within moments, not after the last one.
async fn recheck(dl: &Arc<Download>) {
    let Some(claimed) = dl.recheck.with(Option::take) else {
        return;
    };
    let claimed: Vec<usize> = claimed.iter_set().collect();
    let total = claimed.len();
    let mut good_total = 0;
    for (done, batch) in claimed.chunks(RECHECK_BATCH).enumerate() {
        dl.progress.with(|p| {
            p.detail = Some(format!(
                "checking {total} pieces already on disk ({} checked)",
                done * RECHECK_BATCH
            ));
        });
        let file = dl.storage.file();
        let meta = Arc::clone(&dl.holding.meta);
        let batch = batch.to_vec();
        let good = tokio::task::spawn_blocking(move || {
            use sha1::{Digest, Sha1};
            let mut buf = vec![0u8; p2p_proto::files::PIECE_SIZE as usize];
            batch
                .into_iter()
                .filter(|&piece| {
                    super::storage::read_piece(&file, meta.size, piece, &mut buf)
                        .is_ok_and(|data| hex::encode(Sha1::digest(data)) == meta.pieces[piece])
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        good_total += good.len();
        for piece in good {
            if dl.picker.with(|p| p.complete(piece)) {
                dl.holding.add_piece(piece);
                dl.piece_verified(0);
            }
        }
        if dl.cancel.is_cancelled() {
            return;
        }
    }
    tracing::info!(download = %dl.key, good = good_total, claimed = total, "re-checked pieces of a changed part file");
}

/// The download's current grant, handed to every connection (each passes a renewal on).
type GrantSlot = Option<watch::Sender<Grant>>;

/// Asks the tracker who has the file (and for a fresh grant) and connects to the peers not yet
/// connected.
async fn refresh(
    plane: &Arc<Plane>,
    dl: &Arc<Download>,
    peers: &mut PeerTasks,
    connected: &mut HashSet<String>,
    grant_slot: &mut GrantSlot,
) -> Result<(), DownloadError> {
    let call = TrackerCall::Peers {
        group: dl.record.group.clone(),
        name: dl.record.meta.name.clone(),
    };
    let (group_id, list, grant) = match plane.tracker.call(call).await {
        Ok(TrackerReply::Peers {
            group_id,
            peers,
            grant,
        }) => (group_id, peers, grant),
        Ok(other) => {
            return Err(DownloadError::Tracker(p2p_proto::ErrorReply::internal(
                format!("unexpected tracker reply {other:?}"),
            )));
        }
        Err(e) if e.kind == ErrorKind::NotLoggedIn => return Err(DownloadError::LoggedOut),
        Err(e) => return Err(DownloadError::Tracker(e)),
    };
    if grant.file_sha1 != dl.record.meta.sha1 {
        return Err(DownloadError::ContentChanged);
    }
    match dl.holding.group_id() {
        None => dl.holding.set_group_id(Some(group_id)),
        Some(known) if known != group_id => return Err(DownloadError::GroupReplaced),
        Some(_) => {}
    }
    let grants = publish(grant_slot, grant);
    let relay_ok = dl.progress.with(|p| p.direct_peers()) < peer::ENOUGH_DIRECT;
    let dialer = Dialer {
        plane: Arc::clone(plane),
        group: dl.record.group.clone(),
        name: dl.record.meta.name.clone(),
    };
    for peer in list {
        if connected.contains(&peer.addr) || dl.is_banned(&peer.addr) {
            continue;
        }
        connected.insert(peer.addr.clone());
        let link = PeerLink {
            dl: Arc::clone(dl),
            download_limit: Arc::clone(&plane.limits.download),
            announce: plane.announce.clone(),
            identity: plane.identity.clone(),
            grant: grants.subscribe(),
            relayed: false,
        };
        let dialer = dialer.clone();
        peers.spawn(async move {
            let addr = peer.addr.clone();
            let result = peer::connect_and_run(link, dialer, peer, relay_ok).await;
            (addr, result)
        });
    }
    Ok(())
}

/// Hands `fresh` to the connections when the grant they have is past half its life (renewing
/// on every refresh would send a GRANT frame to every peer every second); returns the slot.
fn publish(slot: &mut GrantSlot, fresh: Grant) -> &watch::Sender<Grant> {
    let now = unix_now();
    let life = fresh.expires.saturating_sub(now);
    let current = slot.get_or_insert_with(|| watch::Sender::new(fresh.clone()));
    let left = current.borrow().expires.saturating_sub(now);
    if left.saturating_mul(2) < life {
        current.send_replace(fresh);
    }
    current
}

fn set_progress(dl: &Download, peers: usize, waiting_for: &str) {
    dl.progress.with(|p| {
        p.peers = peers;
        if peers == 0 {
            p.state = DownloadState::Waiting;
            p.detail = Some(waiting_for.to_string());
        } else {
            p.state = DownloadState::Downloading;
            p.detail = None;
        }
    });
}

/// Makes the verified pieces durable: snapshot, sync the part file, then commit the snapshot.
/// If that fails, the pieces stay to be flushed next time.
async fn flush_pieces(plane: &Plane, dl: &Download) -> Result<(), DownloadError> {
    if !dl.progress.with(|p| std::mem::take(&mut p.dirty)) {
        return Ok(());
    }
    let snapshot = dl.holding.bitfield();
    let flushed = async {
        let stat = dl
            .storage
            .sync_and_stat()
            .await
            .map_err(DownloadError::Disk)?;
        let key = dl.key.clone();
        plane
            .state
            .run(move |s| s.put_bitmap(&key, &StoredBitmap::new(&snapshot, stat)))
            .await?;
        Ok(())
    }
    .await;
    if flushed.is_err() {
        dl.progress.with(|p| p.dirty = true);
    }
    flushed
}

/// The disk cannot take the download's bytes (full, say): with no peer connected, shows why
/// in `show_downloads`, keeps the verified pieces recorded, and tries every [`DISK_RETRY`]
/// until the file's space can be reserved again. False if the download was cancelled
/// meanwhile.
async fn wait_for_disk(plane: &Plane, dl: &Download) -> bool {
    loop {
        let Some(reason) = dl.disk_wait.get() else {
            return true;
        };
        tracing::warn!(download = %dl.key, reason, "download waits for the disk");
        dl.progress.with(|p| {
            p.state = DownloadState::Waiting;
            p.peers = 0;
            p.detail = Some(format!(
                "waiting for the disk: {reason}; retrying every {} s",
                DISK_RETRY.as_secs()
            ));
        });
        if let Err(e) = flush_pieces(plane, dl).await {
            tracing::warn!(download = %dl.key, error = %e, "cannot record verified pieces yet");
        }
        tokio::select! {
            _ = dl.cancel.cancelled() => return false,
            _ = tokio::time::sleep(DISK_RETRY) => {}
        }
        let storage = dl.storage.clone();
        let probe = tokio::task::spawn_blocking(move || storage.allocate())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match probe {
            Ok(()) => {
                tracing::info!(download = %dl.key, "disk writable again; download resumes");
                dl.disk_wait.with(|w| *w = None);
            }
            Err(e) if super::storage::is_disk_wait(&e) => {
                dl.disk_wait.with(|w| *w = Some(e.to_string()));
            }
            Err(e) => {
                dl.disk_wait.with(|w| *w = None);
                dl.fatal(e.to_string());
                return true;
            }
        }
    }
}
