//! Checking an arrived piece against its SHA-1 and writing it, in a task of its own so the
//! connection that received it keeps reading. At most `VERIFY_SLOTS` pieces per download are
//! in verification at once, which bounds the memory they hold.

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
        let expected = dl.record.meta.pieces[piece].clone();
        let verified = tokio::task::spawn_blocking(move || {
            (hex::encode(Sha1::digest(&data)) == expected, data)
        })
        .await;
        let Ok((ok, data)) = verified else {
            // The check never ran: the piece is simply missing again.
            dl.picker.with(|p| p.failed(piece));
            return;
        };
        if !ok {
            dl.picker.with(|p| p.failed(piece));
            // Banned here, not only by the connection: a peer that hangs up right after a bad
            // piece must not come back on the next refresh.
            dl.ban(&peer, "sent a piece that failed SHA-1 verification");
            bad_piece.cancel();
            return;
        }
        if dl.picker.with(|p| p.is_done(piece)) {
            // Another copy won the race.
            dl.picker.with(|p| p.release(piece));
            return;
        }
        let len = data.len() as u64;
        if let Err(e) = dl.storage.write_piece(piece, data).await {
            // The piece is missing again; a full disk makes the download wait, not fail.
            dl.picker.with(|p| p.release(piece));
            dl.disk_failure(e);
            return;
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
