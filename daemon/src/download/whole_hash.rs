//! The whole-file SHA-1, computed while the download runs. Pieces are folded in file order as
//! soon as the verified prefix grows, read back from the part file (from the page cache, as
//! they were just written), so when the last piece arrives little is left to hash.

use super::Download;
use super::error::DownloadError;
use super::storage::{annotate, read_piece};
use p2p_proto::files::PIECE_SIZE;
use sha1::{Digest, Sha1};
use std::sync::Arc;

/// Pieces hashed per trip to the blocking pool.
const BATCH: usize = 64;

/// Folds every piece into the whole-file hash and returns it (hex) once all are in.
pub async fn run(dl: Arc<Download>) -> Result<String, DownloadError> {
    let n = dl.record.meta.pieces.len();
    let mut next = 0;
    let mut hasher = Sha1::new();
    loop {
        let mut ready = 0;
        while ready < BATCH && next + ready < n && dl.holding.has(next + ready) {
            ready += 1;
        }
        if ready > 0 {
            let file = dl.storage.file();
            let size = dl.record.meta.size;
            let from = next;
            let path = dl.storage.path.clone();
            hasher = tokio::task::spawn_blocking(move || -> Result<Sha1, DownloadError> {
                let mut buf = vec![0u8; PIECE_SIZE as usize];
                for piece in from..from + ready {
                    let data = read_piece(&file, size, piece, &mut buf)
                        .map_err(|e| DownloadError::Disk(annotate(e, "read back", &path)))?;
                    hasher.update(data);
                }
                Ok(hasher)
            })
            .await??;
            next += ready;
            continue;
        }
        if next == n {
            return Ok(hex::encode(hasher.finalize()));
        }
        tokio::select! {
            _ = dl.cancel.cancelled() => return Err(DownloadError::Cancelled),
            _ = dl.hash_wake.notified() => {}
        }
    }
}
