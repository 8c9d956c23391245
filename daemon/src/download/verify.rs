//! Checking an arrived piece against its SHA-1 and writing it, in a task of its own so the
//! connection that received it keeps reading. At most `VERIFY_SLOTS` pieces per download are
//! in verification at once, which bounds the memory they hold. The hash and the write run in
//! one job on the blocking pool: one thread hand-off per piece instead of two.

use super::Download;
use crate::plane::Announce;
use bytes::Bytes;
use sha1::{Digest, Sha1};
use std::sync::Arc;
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
    let (dl, announce) = (Arc::clone(dl), announce.clone());
    let peer = peer.to_string();
    tokio::spawn(async move {
        let len = data.len() as u64;
        let job = Arc::clone(&dl);
        let checked =
            tokio::task::spawn_blocking(move || check_and_write(&job, piece, &data)).await;
        match checked {
            // The check never ran: the piece is simply missing again.
            Err(_) => {
                dl.picker.with(|p| p.failed(piece));
                return;
            }
            Ok(Checked::Corrupt) => {
                dl.picker.with(|p| p.failed(piece));
                // Banned here, not only by the connection: a peer that hangs up right after a
                // bad piece must not come back on the next refresh.
                dl.ban(&peer, "sent a piece that failed SHA-1 verification");
                bad_piece.cancel();
                return;
            }
            Ok(Checked::Duplicate) => {
                // Another copy won the race.
                dl.picker.with(|p| p.release(piece));
                return;
            }
            Ok(Checked::WriteFailed(e)) => {
                // The piece is missing again; a full disk makes the download wait, not fail.
                dl.picker.with(|p| p.release(piece));
                dl.disk_failure(e);
                return;
            }
            Ok(Checked::Written) => {}
        }
        if dl.picker.with(|p| p.complete(piece)) {
            // Our first piece makes us a source: tell the tracker now, not at the next round.
            if dl.holding.add_piece(piece) == 1 {
                announce.now();
            }
            dl.progress.with(|p| p.delivered(&peer, len));
            dl.piece_verified(len);
        }
        drop(permit);
    });
}

/// What became of an arrived piece.
enum Checked {
    /// Its SHA-1 is not the piece's.
    Corrupt,
    /// Another copy of it was verified first; this one was not written.
    Duplicate,
    WriteFailed(std::io::Error),
    Written,
}

/// Hashes piece `piece` and, when it is the piece and no other copy won, writes it (blocking).
fn check_and_write(dl: &Download, piece: usize, data: &Bytes) -> Checked {
    let expected = &dl.record.meta.pieces[piece];
    if hex::encode(Sha1::digest(data)) != *expected {
        return Checked::Corrupt;
    }
    if dl.picker.with(|p| p.is_done(piece)) {
        return Checked::Duplicate;
    }
    match dl.storage.write_piece_blocking(piece, data) {
        Ok(()) => Checked::Written,
        Err(e) => Checked::WriteFailed(e),
    }
}
