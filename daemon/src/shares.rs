//! The user's shares: restored at login and start-up, checked against the disk, withdrawn
//! when the file changed behind our back.

use crate::download::Downloads;
use crate::hashing::size_and_mtime;
use crate::holdings::Holding;
use crate::plane::Plane;
use crate::state::{ShareRecord, StoredState, file_key};
use p2p_proto::bitfield::Bitfield;
use p2p_proto::files::FileMeta;
use std::sync::Arc;

/// True when a share's file no longer has the size and mtime it was hashed with.
pub fn changed(holding: &Holding) -> bool {
    let Some(expected) = holding.expected_stat() else {
        return false;
    };
    size_and_mtime(&holding.path()).map_or(true, |actual| actual != expected)
}

/// Stops offering a share whose file changed, with a warning.
pub async fn withdraw(plane: &Plane, share_key: &str, holding: &Holding) {
    tracing::warn!(
        file = %holding.path().display(),
        group = %holding.group,
        "shared file changed on disk (size or mtime); no longer offered"
    );
    plane.holdings.remove(&holding.group, &holding.meta.sha1);
    let key = share_key.to_string();
    if let Err(e) = plane.state.run(move |s| s.remove_share(&key)).await {
        tracing::error!(error = %e, "cannot forget a withdrawn share");
    }
    plane.announce.now();
}

/// Stops offering `holding` because the tracker refused it (`reason`): a share is forgotten, a
/// download's pieces stop being offered. Peers being served from it are cut off.
pub async fn stop_offering(plane: &Plane, holding: &Holding, reason: &str) {
    tracing::warn!(group = %holding.group, file = %holding.meta.name, reason, "no longer offered");
    plane.holdings.remove(&holding.group, &holding.meta.sha1);
    if let Some(key) = holding.share_key.clone()
        && let Err(e) = plane.state.run(move |s| s.remove_share(&key)).await
    {
        tracing::error!(error = %e, "cannot forget a withdrawn share");
    }
}

/// A holding for a share record. Piece hashes are not kept with shares (a downloader checks
/// every piece), so the metadata carries the size and whole-file hash only.
pub fn holding_for(share: &ShareRecord) -> Holding {
    let meta = FileMeta {
        name: share.name.clone(),
        size: share.size,
        sha1: share.sha1.clone(),
        pieces: Vec::new(),
    };
    let mut holding = Holding::new(
        share.group.clone(),
        Arc::new(meta),
        share.path.clone(),
        Bitfield::full(share.pieces),
        Some(file_key(&share.user, &share.group, &share.name)),
    );
    holding.set_expected_stat(share.size, share.mtime_ns);
    holding.spread_uploads(share.pieces);
    holding.set_group_id(share.group_id.clone());
    holding
}

/// Offers every share of `user` again and resumes their downloads (after login or start-up).
pub async fn restore(plane: &Arc<Plane>, running: &Arc<Downloads>, user: &str) {
    let shares = plane.state.run(|s| s.shares()).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read shares");
        Vec::new()
    });
    for share in shares.into_iter().filter(|s| s.user == user) {
        let holding = holding_for(&share);
        if changed(&holding) {
            let key = file_key(&share.user, &share.group, &share.name);
            withdraw(plane, &key, &holding).await;
            continue;
        }
        plane.holdings.insert(Arc::new(holding));
    }
    let downloads = plane
        .state
        .run(|s| s.downloads())
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read downloads");
            Vec::new()
        });
    for record in downloads
        .into_iter()
        .filter(|r| r.user == user && r.state == StoredState::Active)
    {
        let name = record.meta.name.clone();
        if !record.part_path.exists() && record.destination.exists() {
            // Moved into place, but the daemon died before recording it complete.
            crate::download::recover_moved(plane, record).await;
            continue;
        }
        match crate::download::start(plane, running, record, false).await {
            Ok(()) => tracing::info!(file = %name, "download resumed"),
            Err(e) => tracing::error!(file = %name, error = %e, "cannot resume download"),
        }
    }
    plane.announce.now();
}
