//! The end of a download: the move into place, the new share, and the records that say so; or
//! the failure, with its reason.
//!
//! A file whose every piece was verified against the piece hashes the (authenticated) tracker
//! gave is the uploader's file: the whole file is not hashed again, so every byte is hashed
//! once.

use super::Download;
use super::error::DownloadError;
use crate::hashing::pieces_match;
use crate::plane::Plane;
use crate::state::{DownloadRecord, ShareRecord, StoredBitmap, StoredState};
use p2p_proto::control::DownloadState;
use std::path::Path;
use std::sync::Arc;

/// Moves the file, every piece of it verified, into place and makes it a share. The download
/// shows complete as soon as the file is in place; the data is then synced and the completion
/// committed. A crash between the two is recovered at the next start (see [`recover_moved`]).
pub async fn finish(plane: &Plane, dl: &Arc<Download>) {
    let part = dl.record.part_path.clone();
    let dest = dl.record.destination.clone();
    let moved = tokio::task::spawn_blocking(move || move_into_place(&part, &dest)).await;
    let (size, mtime_ns) = match moved {
        Ok(Ok(stat)) => stat,
        Ok(Err(e)) => return fail(plane, dl, e.to_string()).await,
        Err(e) => return fail(plane, dl, e.to_string()).await,
    };
    // Peers still connected to the download's holding read from the final path from now on.
    dl.holding.set_path(dl.record.destination.clone());
    let mut record = dl.record.clone();
    record.state = StoredState::Complete;
    (record.banned, record.sources) = dl.progress.with(|p| (p.banned.clone(), p.sources.clone()));
    for source in &mut record.sources {
        source.connected = false;
    }
    let mut share = share_of(&record, size, mtime_ns);
    share.group_id = dl.holding.group_id();
    plane
        .holdings
        .insert(Arc::new(crate::shares::holding_for(&share)));
    dl.progress.with(|p| {
        p.state = DownloadState::Complete;
        p.detail = None;
        p.peers = 0;
    });
    plane.announce.now();
    tracing::info!(download = %dl.key, dest = %dl.record.destination.display(), "download complete");
    if let Err(e) = dl.storage.sync().await {
        tracing::error!(download = %dl.key, error = %e, "cannot sync finished download");
    }
    let bitmap = StoredBitmap::new(&dl.holding.bitfield(), (size, mtime_ns));
    let key = dl.key.clone();
    let saved = plane
        .state
        .run(move |s| {
            s.put_bitmap(&key, &bitmap)?;
            s.put_download(&record)?;
            s.put_share(&share)
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(download = %dl.key, error = %e, "cannot record finished download");
    }
}

/// Links the verified part file to the destination (a hard link never replaces an existing
/// file, unlike rename), removes the part file, and returns the destination's size and mtime.
fn move_into_place(part: &Path, dest: &Path) -> Result<(u64, i128), DownloadError> {
    use super::storage::annotate;
    std::fs::hard_link(part, dest).map_err(|e| DownloadError::Disk(annotate(e, "create", dest)))?;
    std::fs::remove_file(part).map_err(|e| DownloadError::Disk(annotate(e, "remove", part)))?;
    crate::hashing::size_and_mtime(dest).map_err(|e| DownloadError::Disk(annotate(e, "stat", dest)))
}

fn share_of(record: &DownloadRecord, size: u64, mtime_ns: i128) -> ShareRecord {
    ShareRecord {
        user: record.user.clone(),
        group: record.group.clone(),
        name: record.meta.name.clone(),
        path: record.destination.clone(),
        size,
        mtime_ns,
        sha1: record.meta.sha1.clone(),
        pieces: record.meta.pieces.len(),
        group_id: record.group_id.clone(),
    }
}

/// A download that was moved into place but not yet recorded complete when the daemon died:
/// its part file is gone and the destination exists. Verifies the destination's pieces and
/// records it complete (and shared), or failed if it is not the file.
pub async fn recover_moved(plane: &Plane, mut record: DownloadRecord) {
    let dest = record.destination.clone();
    let meta = record.meta.clone();
    let checked = tokio::task::spawn_blocking(move || {
        use super::storage::annotate;
        let matches = pieces_match(&dest, &meta)
            .map_err(|e| DownloadError::Disk(annotate(e, "read", &dest)))?;
        if !matches {
            return Err(DownloadError::NotTheFile(dest));
        }
        crate::hashing::size_and_mtime(&dest)
            .map_err(|e| DownloadError::Disk(annotate(e, "stat", &dest)))
    })
    .await
    .unwrap_or_else(|e| Err(DownloadError::Task(e)));
    let share = match checked {
        Ok((size, mtime_ns)) => {
            record.state = StoredState::Complete;
            Some(share_of(&record, size, mtime_ns))
        }
        Err(reason) => {
            record.state = StoredState::Failed;
            record.error = Some(reason.to_string());
            None
        }
    };
    let holding = share.as_ref().map(crate::shares::holding_for);
    let saved = plane
        .state
        .run(move |s| {
            s.put_download(&record)?;
            match &share {
                Some(share) => s.put_share(share),
                None => Ok(()),
            }
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "cannot record a recovered download");
    }
    if let Some(holding) = holding {
        plane.holdings.insert(Arc::new(holding));
        plane.announce.now();
    }
}

/// Ends the download as failed, with `reason` recorded and shown.
pub async fn fail(plane: &Plane, dl: &Download, reason: String) {
    tracing::error!(download = %dl.key, reason, "download failed");
    let mut record = dl.record.clone();
    record.state = StoredState::Failed;
    record.error = Some(reason.clone());
    (record.banned, record.sources) = dl.progress.with(|p| (p.banned.clone(), p.sources.clone()));
    for source in &mut record.sources {
        source.connected = false;
    }
    let saved = plane.state.run(move |s| s.put_download(&record)).await;
    if let Err(e) = saved {
        tracing::error!(download = %dl.key, error = %e, "cannot record the failure");
    }
    plane
        .holdings
        .remove(&dl.record.group, &dl.record.meta.sha1);
    dl.progress.with(|p| {
        p.state = DownloadState::Failed;
        p.detail = Some(reason);
        p.peers = 0;
    });
}
