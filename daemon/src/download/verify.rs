//! Checking an arrived piece against its SHA-1 and writing it, off the connection's task so
//! that it keeps reading. At most `VERIFY_SLOTS` pieces per download are in verification at
//! once, which bounds the memory they hold. The hash, the write (with the pieces around it,
//! see `runs.rs`) and the bookkeeping after them run on the blocking pool: one thread hand-off
//! per piece, and no wake-up of an async task when it is done.

use super::Download;
use super::runs::Verified;
use crate::plane::Announce;
use bytes::Bytes;
use sha1::{Digest, Sha1};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

/// Hands `data`, piece `piece` of `dl` from `peer`, to verification. Waits for a verification
/// slot; the check and the write then run without the caller. A bad piece bans the peer from
/// the download and cancels `bad_piece`, which ends its connection. `announce` is rung at the
/// download's first verified piece.
pub async fn submit(
    dl: &Arc<Download>,
    announce: &Announce,
    peer: &str,
    piece: usize,
    data: Bytes,
    bad_piece: CancellationToken,
) {
    let Ok(permit) = Arc::clone(&dl.verify_slots).acquire_owned().await else {
        return;
    };
    let job = Job {
        dl: Arc::clone(dl),
        announce: announce.clone(),
        peer: peer.to_string(),
        piece,
        bad_piece,
        settled: false,
        _slot: permit,
    };
    // Not awaited: the job settles the piece itself, or its drop does (see `Job`).
    drop(tokio::task::spawn_blocking(move || job.run(data)));
}

/// One arrived piece in verification. Dropped without having settled the piece (the job
/// panicked, or never ran because the runtime shut down), it marks the piece missing again.
pub(super) struct Job {
    dl: Arc<Download>,
    announce: Announce,
    peer: String,
    piece: usize,
    bad_piece: CancellationToken,
    settled: bool,
    /// The verification slot, given back when the job ends.
    _slot: OwnedSemaphorePermit,
}

impl Job {
    /// Checks the piece and hands it to be written with its neighbours (see `runs.rs`), which
    /// settles it (blocking).
    fn run(mut self, data: Bytes) {
        let (dl, piece) = (Arc::clone(&self.dl), self.piece);
        if hex::encode(Sha1::digest(&data)) != dl.record.meta.pieces[piece] {
            self.settled = true;
            dl.picker.with(|p| p.failed(piece));
            // Banned here, not only by the connection: a peer that hangs up right after a bad
            // piece must not come back on the next refresh.
            dl.ban(&self.peer, "sent a piece that failed SHA-1 verification");
            self.bad_piece.cancel();
            return;
        }
        // `write` settles a copy that lost the race as a duplicate.
        dl.runs.write(&dl.storage, piece, data, self);
    }
}

impl Verified for Job {
    fn is_done(&self) -> bool {
        self.dl.picker.with(|p| p.is_done(self.piece))
    }

    fn written(mut self, result: std::io::Result<()>) {
        self.settled = true;
        let (dl, piece) = (&self.dl, self.piece);
        if let Err(e) = result {
            // The piece is missing again; a full disk makes the download wait, not fail.
            dl.picker.with(|p| p.release(piece));
            dl.disk_failure(e);
            return;
        }
        if dl.picker.with(|p| p.complete(piece)) {
            // Our first piece makes us a source: tell the tracker now, not at the next round.
            if dl.holding.add_piece(piece) == 1 {
                self.announce.now();
            }
            let len = dl.record.meta.piece_len(piece);
            dl.progress.with(|p| p.delivered(&self.peer, len));
            dl.piece_verified(len);
        }
    }

    /// Another copy won the race.
    fn duplicate(mut self) {
        self.settled = true;
        self.dl.picker.with(|p| p.release(self.piece));
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.settled {
            // The check or the write never ran to its end: the piece is simply missing again.
            self.dl.picker.with(|p| p.failed(self.piece));
        }
    }
}
