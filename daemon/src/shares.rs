//! The user's shares: restored at login and start-up, checked against the disk, withdrawn
//! when the file changed behind our back.

use crate::daemon::Daemon;
use crate::hashing::size_and_mtime;
use crate::holdings::Holding;
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
pub async fn withdraw(daemon: &Daemon, share_key: &str, holding: &Holding) {
    tracing::warn!(
        file = %holding.path().display(),
        group = %holding.group,
        "shared file changed on disk (size or mtime); no longer offered"
    );
    daemon.holdings.remove(&holding.group, &holding.meta.sha1);
    let key = share_key.to_string();
    let _ = daemon.with_state(move |s| Ok(s.remove_share(&key)?)).await;
    daemon.announce_now.notify_one();
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
    holding
}

/// Offers every share of `user` again and resumes their downloads (after login or start-up).
pub async fn restore(daemon: &Arc<Daemon>, user: &str) {
    let shares = match daemon.with_state(|s| Ok(s.shares()?)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot read shares");
            Vec::new()
        }
    };
    for share in shares.into_iter().filter(|s| s.user == user) {
        let holding = holding_for(&share);
        if changed(&holding) {
            let key = file_key(&share.user, &share.group, &share.name);
            withdraw(daemon, &key, &holding).await;
            continue;
        }
        daemon.holdings.insert(Arc::new(holding));
    }
    let downloads = daemon
        .with_state(|s| Ok(s.downloads()?))
        .await
        .unwrap_or_default();
    for record in downloads
        .into_iter()
        .filter(|r| r.user == user && r.state == StoredState::Active)
    {
        let name = record.meta.name.clone();
        if !record.part_path.exists() && record.destination.exists() {
            // Moved into place, but the daemon died before recording it complete.
            crate::download::recover_moved(daemon, record).await;
            continue;
        }
        if let Err(e) = crate::download::start(daemon, record, false) {
            tracing::error!(file = %name, error = %e, "cannot resume download");
        } else {
            tracing::info!(file = %name, "download resumed");
        }
    }
    daemon.announce_now.notify_one();
}
