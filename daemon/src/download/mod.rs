//! Downloads: one task per file, one connection task per peer, pieces verified and written in
//! parallel. `PIECES.md` beside this file states the invariants of a piece's life.

mod peer;
pub mod picker;
pub mod storage;
mod task;
mod whole_hash;

pub use task::recover_moved;

use crate::daemon::Daemon;
use crate::holdings::Holding;
use crate::state::{DownloadRecord, StoredState, file_key};
use p2p_proto::ErrorReply;
use p2p_proto::bitfield::Bitfield;
use p2p_proto::control::{BannedPeer, DownloadInfo, DownloadState};
use picker::Picker;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage::Storage;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Pieces being verified and written at once, per download (bounds memory to a few MiB).
const VERIFY_SLOTS: usize = 8;
/// Window over which the rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// One download in progress, shared by its task, its peer connections and the commands.
pub struct Download {
    pub key: String,
    pub record: DownloadRecord,
    pub holding: Arc<Holding>,
    pub picker: Mutex<Picker>,
    pub storage: Storage,
    pub progress: Mutex<Progress>,
    pub cancel: CancellationToken,
    /// Wakes the download task: a piece verified, a peer left, a failure.
    pub events: Notify,
    /// Wakes the whole-file hasher: the verified prefix may have grown.
    pub hash_wake: Notify,
    pub verify_slots: Arc<Semaphore>,
    /// Pieces the stored bitmap claims but that must be re-hashed first (the part file changed).
    pub recheck: Mutex<Option<Bitfield>>,
}

/// What `show_downloads` reports of a live download.
#[derive(Debug)]
pub struct Progress {
    pub state: DownloadState,
    pub detail: Option<String>,
    pub peers: usize,
    pub banned: Vec<BannedPeer>,
    /// (when, bytes) of recently verified pieces, for the rate.
    recent: VecDeque<(Instant, u64)>,
    /// Pieces verified since the bitmap was last committed.
    pub dirty: bool,
    /// A disk error that ends the download.
    pub fatal: Option<String>,
}

impl Download {
    pub fn is_banned(&self, peer: &str) -> bool {
        self.progress
            .lock()
            .map(|p| p.banned.iter().any(|b| b.peer == peer))
            .unwrap_or(false)
    }

    /// Bans `peer` from this download and says why, in the log and in `show_downloads`.
    pub fn ban(&self, peer: &str, reason: &str) {
        tracing::warn!(download = %self.key, %peer, reason, "peer banned from download");
        if let Ok(mut p) = self.progress.lock()
            && !p.banned.iter().any(|b| b.peer == peer)
        {
            p.banned.push(BannedPeer {
                peer: peer.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// Records a verified piece of `bytes` bytes.
    pub fn piece_verified(&self, bytes: u64) {
        if let Ok(mut p) = self.progress.lock() {
            let now = Instant::now();
            p.recent.push_back((now, bytes));
            while p
                .recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                p.recent.pop_front();
            }
            p.dirty = true;
        }
        self.events.notify_one();
        self.hash_wake.notify_one();
    }

    /// Ends the download with an error (a disk failure, say).
    pub fn fatal(&self, reason: String) {
        if let Ok(mut p) = self.progress.lock() {
            p.fatal.get_or_insert(reason);
        }
        self.events.notify_one();
    }

    fn info(&self) -> DownloadInfo {
        let meta = &self.record.meta;
        let have = self.holding.bitfield();
        let bytes_done: u64 = have.iter_set().map(|i| meta.piece_len(i)).sum();
        let (state, detail, peers, banned, rate) = match self.progress.lock() {
            Ok(p) => {
                let now = Instant::now();
                let recent: u64 = p
                    .recent
                    .iter()
                    .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
                    .map(|(_, b)| *b)
                    .sum();
                (
                    p.state,
                    p.detail.clone(),
                    p.peers,
                    p.banned.clone(),
                    recent / RATE_WINDOW.as_secs(),
                )
            }
            Err(_) => (DownloadState::Failed, None, 0, Vec::new(), 0),
        };
        DownloadInfo {
            group: self.record.group.clone(),
            file: meta.name.clone(),
            destination: self.record.destination.clone(),
            size: meta.size,
            state,
            pieces_done: have.count() as u64,
            pieces_total: have.len() as u64,
            bytes_done,
            rate,
            peers,
            detail,
            banned,
        }
    }
}

/// The live downloads of this daemon, by key.
#[derive(Default)]
pub struct Downloads {
    map: Mutex<HashMap<String, Arc<Download>>>,
}

impl Downloads {
    pub fn get(&self, key: &str) -> Option<Arc<Download>> {
        self.map.lock().ok()?.get(key).cloned()
    }

    /// Adds `dl` unless a download with its key is running; false if one is.
    fn insert_new(&self, dl: &Arc<Download>) -> bool {
        let Ok(mut map) = self.map.lock() else {
            return false;
        };
        match map.entry(dl.key.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Arc::clone(dl));
                true
            }
        }
    }

    /// Removes `dl`, but not a newer download of the same file that replaced it.
    fn remove(&self, dl: &Arc<Download>) {
        if let Ok(mut map) = self.map.lock()
            && map.get(&dl.key).is_some_and(|d| Arc::ptr_eq(d, dl))
        {
            map.remove(&dl.key);
        }
    }

    /// Stops every download (logout, shutdown); their state stays in the database.
    pub fn stop_all(&self) {
        if let Ok(mut map) = self.map.lock() {
            for dl in map.values() {
                dl.cancel.cancel();
            }
            map.clear();
        }
    }
}

/// Starts (or resumes) the download of `record`. `fresh` discards any part file.
pub fn start(daemon: &Arc<Daemon>, record: DownloadRecord, fresh: bool) -> Result<(), ErrorReply> {
    let key = file_key(&record.user, &record.group, &record.meta.name);
    let n = record.meta.pieces.len();
    if daemon.downloads.get(&key).is_some() {
        return Err(already_running(&record));
    }
    let (storage, trusted) = Storage::open(&record.part_path, record.meta.size, fresh)
        .map_err(|e| ErrorReply::internal(e.to_string()))?;
    // Trust the stored bitmap only if the part file is still the one it describes (same size
    // and mtime); otherwise its pieces are re-hashed before the download goes on.
    let stored = if trusted {
        daemon.state.bitmap(&key)?
    } else {
        None
    };
    let current = crate::hashing::size_and_mtime(&record.part_path).ok();
    let (done, recheck) = match stored {
        Some(s) if current == Some((s.part_size, s.part_mtime_ns)) => {
            (s.bitfield(n).unwrap_or_else(|| Bitfield::new(n)), None)
        }
        Some(s) => (Bitfield::new(n), s.bitfield(n).filter(|b| b.count() > 0)),
        None => (Bitfield::new(n), None),
    };
    let holding = Arc::new(Holding::new(
        record.group.clone(),
        Arc::new(record.meta.clone()),
        record.part_path.clone(),
        done.clone(),
        None,
    ));
    let start = rand::random::<u32>() as usize;
    let dl = Arc::new(Download {
        key: key.clone(),
        holding: Arc::clone(&holding),
        picker: Mutex::new(Picker::new(done, start)),
        storage,
        progress: Mutex::new(Progress {
            state: DownloadState::Waiting,
            detail: Some("looking for peers".into()),
            peers: 0,
            banned: record.banned.clone(),
            recent: VecDeque::new(),
            dirty: false,
            fatal: None,
        }),
        cancel: daemon.shutdown.child_token(),
        events: Notify::new(),
        hash_wake: Notify::new(),
        verify_slots: Arc::new(Semaphore::new(VERIFY_SLOTS)),
        recheck: Mutex::new(recheck),
        record,
    });
    if !daemon.downloads.insert_new(&dl) {
        return Err(already_running(&dl.record));
    }
    daemon.holdings.insert(holding);
    let daemon = Arc::clone(daemon);
    tokio::spawn(async move {
        task::run(Arc::clone(&daemon), Arc::clone(&dl)).await;
        // Whatever ended the task, nothing of it keeps running.
        dl.cancel.cancel();
        daemon.downloads.remove(&dl);
    });
    Ok(())
}

fn already_running(record: &DownloadRecord) -> ErrorReply {
    ErrorReply::new(
        p2p_proto::ErrorKind::Conflict,
        format!(
            "{} from {} is already being downloaded",
            record.meta.name, record.group
        ),
    )
}

/// Every download of `user`: live ones with their progress, finished ones as stored.
pub fn list(daemon: &Daemon, user: &str) -> Result<Vec<DownloadInfo>, ErrorReply> {
    let mut out = Vec::new();
    for record in daemon.state.downloads()? {
        if record.user != user {
            continue;
        }
        let key = file_key(&record.user, &record.group, &record.meta.name);
        if let Some(dl) = daemon.downloads.get(&key) {
            out.push(dl.info());
            continue;
        }
        let n = record.meta.pieces.len() as u64;
        let done = match record.state {
            StoredState::Complete => n,
            _ => daemon
                .state
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
        });
    }
    Ok(out)
}
