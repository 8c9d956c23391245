//! What this daemon can serve to peers right now: every share of the logged-in user and the
//! verified pieces of every download in progress, indexed by (group, file SHA-1).
//!
//! A download's [`Holding`] is the one record of its verified pieces: the downloader sets bits
//! in it as pieces pass verification, and the peer server reads them to answer requests and
//! forwards each new bit as a HAVE to the peers connected to us.

use crate::sync::{Locked, Shared};
use crate::upload_spread::UploadSpread;
use p2p_proto::bitfield::Bitfield;
use p2p_proto::files::FileMeta;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub struct Holding {
    pub group: String,
    /// The internal id of the group, once known: a grant must name it (a group removed and
    /// created again under the same name has another id, and nothing of ours).
    group_id: Shared<Option<String>>,
    pub meta: Arc<FileMeta>,
    /// The file the pieces are read from (a download's part file until it completes).
    path: Shared<PathBuf>,
    /// A download's open part file: pieces are served through it, never by reopening the path
    /// (which someone may have swapped).
    file: Shared<Option<Arc<std::fs::File>>>,
    have: Shared<Bitfield>,
    /// Announces each newly verified piece to the peer connections serving this file.
    haves: broadcast::Sender<u32>,
    /// `Some(key)` for a share: the key of its share record, to withdraw it when it changed.
    pub share_key: Option<String>,
    /// For a share: the size and mtime its file had when hashed.
    expected_stat: Option<(u64, i128)>,
    /// For a share: how often each piece went out (see `upload_spread`).
    spread: Option<Locked<UploadSpread>>,
    /// Peer connections being served from this holding now.
    serving: AtomicUsize,
    /// Cancelled when the holding is withdrawn (stop_share, logout, changed file): the peer
    /// connections serving it end at once.
    revoked: CancellationToken,
}

/// Keeps a holding's count of served connections up while it lives.
pub struct ServingGuard(Arc<Holding>);

impl Drop for ServingGuard {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Holding {
    pub fn new(
        group: String,
        meta: Arc<FileMeta>,
        path: PathBuf,
        have: Bitfield,
        share_key: Option<String>,
    ) -> Self {
        let (haves, _) = broadcast::channel(1024);
        Self {
            group,
            group_id: Shared::new(None),
            meta,
            path: Shared::new(path),
            file: Shared::new(None),
            have: Shared::new(have),
            haves,
            share_key,
            expected_stat: None,
            spread: None,
            serving: AtomicUsize::new(0),
            revoked: CancellationToken::new(),
        }
    }

    pub fn group_id(&self) -> Option<String> {
        self.group_id.read(Clone::clone)
    }

    pub fn set_group_id(&self, id: Option<String>) {
        self.group_id.write(|g| *g = id);
    }

    /// Resolves when the holding is withdrawn.
    pub async fn revoked(&self) {
        self.revoked.cancelled().await
    }

    /// Makes this holding steer simultaneous downloaders to each other (for complete files).
    pub fn spread_uploads(&mut self, pieces: usize) {
        self.spread = Some(Locked::new(UploadSpread::new(pieces, Instant::now())));
    }

    /// Counts a peer connection served from this holding while the guard lives.
    pub fn serving(self: &Arc<Self>) -> ServingGuard {
        self.serving.fetch_add(1, Ordering::Relaxed);
        ServingGuard(Arc::clone(self))
    }

    /// Whether `piece` may be uploaded now; records the upload if so.
    pub fn take_upload(&self, piece: usize) -> bool {
        let Some(spread) = &self.spread else {
            return true;
        };
        let downloaders = self.serving.load(Ordering::Relaxed);
        spread.with(|spread| {
            if !spread.allows(piece, downloaders, Instant::now()) {
                return false;
            }
            spread.sent(piece);
            true
        })
    }

    pub fn set_expected_stat(&mut self, size: u64, mtime_ns: i128) {
        self.expected_stat = Some((size, mtime_ns));
    }

    pub fn expected_stat(&self) -> Option<(u64, i128)> {
        self.expected_stat
    }

    pub fn path(&self) -> PathBuf {
        self.path.read(|p| p.clone())
    }

    /// The download's open file, if this holding is a download's.
    pub fn open_file(&self) -> Option<Arc<std::fs::File>> {
        self.file.read(Clone::clone)
    }

    pub fn set_file(&self, file: Arc<std::fs::File>) {
        self.file.write(|f| *f = Some(file));
    }

    pub fn set_path(&self, path: PathBuf) {
        self.path.write(|p| *p = path);
    }

    pub fn has(&self, piece: usize) -> bool {
        self.have.read(|h| h.get(piece))
    }

    pub fn bitfield(&self) -> Bitfield {
        self.have.read(|h| h.clone())
    }

    pub fn count(&self) -> usize {
        self.have.read(|h| h.count())
    }

    /// Records a verified piece and tells connected peers. Returns the number of pieces held.
    pub fn add_piece(&self, piece: usize) -> usize {
        let count = self.have.write(|h| {
            h.set(piece);
            h.count()
        });
        let _ = self.haves.send(piece as u32);
        count
    }

    pub fn subscribe(&self) -> broadcast::Receiver<u32> {
        self.haves.subscribe()
    }
}

type Key = (String, String);

/// Every holding of the logged-in user.
#[derive(Default)]
pub struct Holdings {
    map: Locked<HashMap<Key, Arc<Holding>>>,
}

impl Holdings {
    pub fn insert(&self, holding: Arc<Holding>) {
        let key = (holding.group.clone(), holding.meta.sha1.clone());
        self.map.with(|map| map.insert(key, holding));
    }

    pub fn get(&self, group: &str, sha1: &str) -> Option<Arc<Holding>> {
        self.map
            .with(|map| map.get(&(group.to_string(), sha1.to_string())).cloned())
    }

    /// Removes the holding of `name` in `group`, returning it.
    pub fn remove_named(&self, group: &str, name: &str) -> Option<Arc<Holding>> {
        let removed = self.map.with(|map| {
            let key = map
                .iter()
                .find(|(_, h)| h.group == group && h.meta.name == name)
                .map(|(k, _)| k.clone())?;
            map.remove(&key)
        });
        if let Some(h) = &removed {
            h.revoked.cancel();
        }
        removed
    }

    /// Withdraws a holding; peers being served from it are cut off.
    pub fn remove(&self, group: &str, sha1: &str) {
        let removed = self
            .map
            .with(|map| map.remove(&(group.to_string(), sha1.to_string())));
        if let Some(h) = removed {
            h.revoked.cancel();
        }
    }

    /// Withdraws every holding (logout).
    pub fn clear(&self) {
        let all: Vec<_> = self.map.with(|map| map.drain().collect());
        for (_, h) in all {
            h.revoked.cancel();
        }
    }

    pub fn all(&self) -> Vec<Arc<Holding>> {
        self.map.with(|m| m.values().cloned().collect())
    }
}
