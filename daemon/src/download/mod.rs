//! Downloads: one task per file, one connection task per peer, pieces verified and written in
//! parallel. `PIECES.md` beside this file states the invariants of a piece's life.
//!
//! Module map (dependencies run down this list, never up):
//! - `mod.rs`: [`Download`] (one download's shared state), [`Downloads`] (the running ones),
//!   [`start`] and [`list`];
//! - `task.rs`: the task that drives one download (peers from the tracker, flushes);
//! - `finish.rs`: the end of a download: the move into place, the share;
//! - `peer.rs`: one connection to one peer, as a struct with one method per event;
//! - `verify.rs`: checking a piece and writing it, off the connection's task;
//! - `runs.rs`: writing verified pieces in runs of consecutive ones;
//! - `picker.rs`, `storage.rs`, `direct.rs`: pure piece selection, the part file, and its
//!   writes past the page cache.
//!
//! Lock order: a [`Download`]'s locks (`picker`, `progress`, `recheck`) are each taken alone,
//! for the length of a closure, never two at once and never across an `.await`; the one
//! exception is `runs`, which asks the picker whether a piece is done while it holds its own
//! lock (never the other way round).

mod direct;
mod error;
mod finish;
mod peer;
pub mod picker;
mod progress;
mod runs;
pub mod storage;
mod task;
mod verify;

pub use error::DownloadError;
pub use finish::recover_moved;
pub use peer::{PeerEnd, PeerLink};
pub use progress::Progress;

use crate::holdings::Holding;
use crate::plane::Plane;
use crate::state::{DownloadRecord, StateDb, StateError, StoredState, file_key};
use crate::sync::Locked;
use p2p_proto::bitfield::Bitfield;
use p2p_proto::control::{DownloadInfo, DownloadState};
use p2p_proto::{ErrorKind, ErrorReply};
use picker::Picker;
use std::collections::HashMap;
use std::sync::Arc;
use storage::{Reopened, Storage};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Pieces being verified and written at once, per download (bounds memory to a few MiB).
const VERIFY_SLOTS: usize = 8;

/// One download in progress, shared by its task, its peer connections and the commands.
pub struct Download {
    pub key: String,
    pub record: DownloadRecord,
    pub holding: Arc<Holding>,
    pub picker: Locked<Picker>,
    pub storage: Storage,
    pub progress: Locked<Progress>,
    pub cancel: CancellationToken,
    /// Wakes the download task: the last piece verified, a failure, the disk full.
    pub events: Notify,
    pub verify_slots: Arc<Semaphore>,
    /// Verified pieces waiting to be written with the ones after them.
    runs: runs::Runs<verify::Job>,
    /// Pieces the stored bitmap claims but that must be re-hashed first (the part file changed).
    pub recheck: Locked<Option<Bitfield>>,
    /// Why the disk cannot take the download's bytes now (full, say): the task stops fetching
    /// and tries again every few seconds.
    pub disk_wait: Locked<Option<String>>,
}

impl Download {
    /// Opens (or, when `fresh`, creates) the part file of `record` and loads the verified pieces
    /// recorded for it. A part file found at a restart is used only if it is the one created
    /// for this download (see `storage.rs`); otherwise the download is refused. Blocking
    /// (fallocate, redb): call it on the blocking pool.
    pub fn open(
        record: DownloadRecord,
        fresh: bool,
        db: &StateDb,
        cancel: CancellationToken,
    ) -> Result<Self, DownloadError> {
        let key = file_key(&record.user, &record.group, &record.meta.name);
        let n = record.meta.pieces.len();
        let size = record.meta.size;
        let recorded = db.part_file(&key)?;
        let reopened = if fresh {
            Reopened::Missing
        } else {
            Storage::reopen(&record.part_path, size, recorded)?
        };
        let (storage, created) = match reopened {
            Reopened::Ours(storage) => (storage, false),
            Reopened::Missing | Reopened::Unrecorded => (
                Storage::create(&record.part_path, size).map_err(DownloadError::Disk)?,
                true,
            ),
        };
        if recorded != Some(storage.id) {
            // Recorded before a byte is written into it.
            db.put_part_file(&key, storage.id)?;
        }
        // Trust the stored bitmap only if the part file is still the one it describes (same
        // file, size and mtime); otherwise its pieces are re-hashed before the download goes on.
        let stored = if created { None } else { db.bitmap(&key)? };
        let current = storage.size_and_mtime().map_err(DownloadError::Disk)?;
        let (done, recheck) = match stored {
            Some(s) if current == (s.part_size, s.part_mtime_ns) => {
                (s.bitfield(n).unwrap_or_else(|| Bitfield::new(n)), None)
            }
            Some(s) => (Bitfield::new(n), s.bitfield(n).filter(|b| b.count() > 0)),
            None => (Bitfield::new(n), None),
        };
        // Reserve the space (again, if a full disk stopped it last time). A full disk makes the
        // download wait, not fail: the task retries.
        let mut disk_wait = None;
        if created || current.0 < size {
            match storage.allocate() {
                Ok(()) => {}
                Err(e) if storage::is_disk_wait(&e) => disk_wait = Some(e.to_string()),
                Err(e) => return Err(DownloadError::Disk(e)),
            }
        }
        let holding = Arc::new(Holding::new(
            record.group.clone(),
            Arc::new(record.meta.clone()),
            record.part_path.clone(),
            done.clone(),
            None,
        ));
        holding.set_group_id(record.group_id.clone());
        holding.set_file(storage.file());
        let start = rand::random::<u32>() as usize;
        Ok(Self {
            key,
            holding,
            picker: Locked::new(Picker::new(done, start)),
            storage,
            progress: Locked::new(Progress::new(record.banned.clone(), record.sources.clone())),
            cancel,
            events: Notify::new(),
            verify_slots: Arc::new(Semaphore::new(VERIFY_SLOTS)),
            runs: runs::Runs::default(),
            recheck: Locked::new(recheck),
            disk_wait: Locked::new(disk_wait),
            record,
        })
    }

    pub fn is_banned(&self, peer: &str) -> bool {
        self.progress.with(|p| p.is_banned(peer))
    }

    /// Bans `peer` from this download and says why, in the log and in `show_downloads`.
    pub fn ban(&self, peer: &str, reason: &str) {
        tracing::warn!(download = %self.key, %peer, reason, "peer banned from download");
        self.progress.with(|p| p.ban(peer, reason));
    }

    /// Records a verified piece of `bytes` bytes. Only the last one wakes the download task:
    /// the others change nothing it acts on (it makes them durable on its flush tick).
    pub fn piece_verified(&self, bytes: u64) {
        self.progress.with(|p| p.piece_verified(bytes));
        if self.picker.with(|p| p.is_complete()) {
            self.events.notify_one();
        }
    }

    /// A disk operation of the download failed: a full (or failing) disk makes it wait and
    /// retry; anything else ends it.
    pub fn disk_failure(&self, e: std::io::Error) {
        if storage::is_disk_wait(&e) {
            self.disk_wait.with(|w| {
                w.get_or_insert_with(|| e.to_string());
            });
            self.events.notify_one();
        } else {
            self.fatal(e.to_string());
        }
    }

    /// Ends the download with an error (a disk failure, say).
    pub fn fatal(&self, reason: String) {
        self.progress.with(|p| {
            p.fatal.get_or_insert(reason);
        });
        self.events.notify_one();
    }

    fn info(&self) -> DownloadInfo {
        let meta = &self.record.meta;
        let have = self.holding.bitfield();
        let bytes_done: u64 = have.iter_set().map(|i| meta.piece_len(i)).sum();
        let mut info = DownloadInfo {
            group: self.record.group.clone(),
            file: meta.name.clone(),
            destination: self.record.destination.clone(),
            size: meta.size,
            state: DownloadState::Waiting,
            pieces_done: have.count() as u64,
            pieces_total: have.len() as u64,
            bytes_done,
            rate: 0,
            peers: 0,
            detail: None,
            banned: Vec::new(),
            sources: Vec::new(),
        };
        self.progress.with(|p| p.fill(&mut info));
        info
    }
}

/// The live downloads of this daemon, by key.
#[derive(Default)]
pub struct Downloads {
    map: Locked<HashMap<String, Arc<Download>>>,
}

impl Downloads {
    pub fn get(&self, key: &str) -> Option<Arc<Download>> {
        self.map.with(|m| m.get(key).cloned())
    }

    /// Adds `dl` unless a download with its key is running; false if one is.
    fn insert_new(&self, dl: &Arc<Download>) -> bool {
        self.map.with(|map| match map.entry(dl.key.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Arc::clone(dl));
                true
            }
        })
    }

    /// Removes `dl`, but not a newer download of the same file that replaced it.
    fn remove(&self, dl: &Arc<Download>) {
        self.map.with(|map| {
            if map.get(&dl.key).is_some_and(|d| Arc::ptr_eq(d, dl)) {
                map.remove(&dl.key);
            }
        });
    }

    /// The running downloads of files of `group`.
    pub fn in_group(&self, group: &str) -> Vec<Arc<Download>> {
        self.map.with(|map| {
            map.values()
                .filter(|d| d.record.group == group)
                .cloned()
                .collect()
        })
    }

    /// Stops every download (logout, shutdown); their state stays in the database.
    pub fn stop_all(&self) {
        let all: Vec<_> = self.map.with(|map| map.drain().map(|(_, dl)| dl).collect());
        for dl in all {
            dl.cancel.cancel();
        }
    }
}

/// Starts (or resumes) the download of `record`. `fresh` discards any part file.
/// It joins `downloads` while it runs.
pub async fn start(
    plane: &Arc<Plane>,
    downloads: &Arc<Downloads>,
    record: DownloadRecord,
    fresh: bool,
) -> Result<(), ErrorReply> {
    let key = file_key(&record.user, &record.group, &record.meta.name);
    if downloads.get(&key).is_some() {
        return Err(already_running(&record));
    }
    let cancel = plane.shutdown.child_token();
    let dl = plane
        .state
        .run(move |db| {
            let opened = Download::open(record.clone(), fresh, db, cancel);
            if let Err(e @ DownloadError::Refused(_)) = &opened {
                // Shown by show_downloads, and not tried again at every start.
                tracing::error!(file = %record.meta.name, reason = %e, "download refused");
                let mut failed = record;
                failed.state = StoredState::Failed;
                failed.error = Some(e.to_string());
                db.put_download(&failed)?;
            }
            opened
        })
        .await?;
    let dl = Arc::new(dl);
    if !downloads.insert_new(&dl) {
        return Err(already_running(&dl.record));
    }
    plane.holdings.insert(Arc::clone(&dl.holding));
    let (plane, downloads) = (Arc::clone(plane), Arc::clone(downloads));
    tokio::spawn(async move {
        task::run(&plane, &dl).await;
        // Whatever ended the task, nothing of it keeps running.
        dl.cancel.cancel();
        downloads.remove(&dl);
    });
    Ok(())
}

/// Ends a running download for good (its user left the group): it stops, and is recorded as
/// failed with `reason` so that it does not resume at the next start.
pub async fn abandon(plane: &Plane, dl: &Download, reason: &str) {
    dl.cancel.cancel();
    finish::fail(plane, dl, reason.to_string()).await;
}

fn already_running(record: &DownloadRecord) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::Conflict,
        format!(
            "{} from {} is already being downloaded",
            record.meta.name, record.group
        ),
    )
}

/// Every download of `user`: live ones with their progress, finished ones as stored. Blocking
/// (redb): call it on the blocking pool.
pub fn list(db: &StateDb, live: &Downloads, user: &str) -> Result<Vec<DownloadInfo>, StateError> {
    let mut out = Vec::new();
    for record in db.downloads()? {
        if record.user != user {
            continue;
        }
        let key = file_key(&record.user, &record.group, &record.meta.name);
        if let Some(dl) = live.get(&key) {
            out.push(dl.info());
            continue;
        }
        let n = record.meta.pieces.len() as u64;
        let done = match record.state {
            StoredState::Complete => n,
            _ => db
                .bitmap(&key)?
                .and_then(|b| b.bitfield(n as usize))
                .map_or(0, |b| b.count() as u64),
        };
        let bytes_done = if done == n {
            record.meta.size
        } else {
            done * p2p_proto::files::PIECE_SIZE
        };
        out.push(DownloadInfo {
            group: record.group.clone(),
            file: record.meta.name.clone(),
            destination: record.destination.clone(),
            size: record.meta.size,
            state: match record.state {
                StoredState::Complete => DownloadState::Complete,
                StoredState::Failed => DownloadState::Failed,
                StoredState::Active => DownloadState::Waiting,
            },
            pieces_done: done,
            pieces_total: n,
            bytes_done,
            rate: 0,
            peers: 0,
            detail: record.error.clone().or_else(|| {
                (record.state == StoredState::Active).then(|| "paused: not running".to_string())
            }),
            banned: record.banned.clone(),
            sources: record.sources.clone(),
        });
    }
    Ok(out)
}
