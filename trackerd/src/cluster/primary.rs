//! The primary's side of replication: bring a follower up to date (from the log, or with a
//! snapshot when its log is missing or has diverged), then stream every new record and a
//! heartbeat, collecting acknowledgements.

use super::Cluster;
use super::counters::Counters;
use super::link::{Link, recv, send, send_all};
use crate::store::{RECORDS_READ_BYTES, SNAPSHOT_CHUNK_BYTES};
use p2p_proto::cluster::{ClusterMsg, Position, SnapshotRow};
use p2p_proto::{FrameError, cluster::ClusterFrame};
use std::net::SocketAddr;
use std::time::Duration;

/// Heartbeat interval on a replication link.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A follower silent for this long is dropped.
pub const FOLLOWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Records sent per batch.
const BATCH: usize = 256;
/// Fewer records than this, just committed, are read without a blocking thread.
const INLINE_READ: u64 = 64;

pub async fn serve_follower(cluster: &Cluster, mut link: Link, peer: SocketAddr, theirs: Position) {
    tracing::info!(%peer, last_seq = theirs.last_seq, "standby connected");
    Counters::bump(&cluster.counters.standbys_served);
    // Bring it up to a point both agree on before counting it as attached: until then client
    // writes do not wait for it (a snapshot can take a while).
    let next = match catch_up_point(cluster, &mut link, &theirs).await {
        Ok(next) => next,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "standby could not be brought up to date");
            return;
        }
    };
    let generation = cluster.follower_connected(next.saturating_sub(1));
    let result = stream(cluster, &mut link, next, generation).await;
    cluster.follower_gone(generation);
    match result {
        Ok(()) => tracing::info!(%peer, "standby link closed"),
        Err(e) => tracing::warn!(%peer, error = %e, "standby link lost"),
    }
}

/// True when the follower at `theirs` can continue from our log.
fn can_continue(cluster: &Cluster, theirs: &Position) -> Result<bool, String> {
    let store = &cluster.store;
    let ours = store.position().map_err(|e| e.to_string())?;
    if theirs.last_seq > ours.last_seq {
        return Ok(false);
    }
    let same_history = if theirs.last_seq == 0 {
        true
    } else {
        store
            .record_epoch(theirs.last_seq)
            .map_err(|e| e.to_string())?
            == Some(theirs.last_epoch)
    };
    // theirs.last_seq < ours.last_seq here, so the + 1 cannot overflow.
    let have_next = theirs.last_seq == ours.last_seq
        || store
            .record_epoch(theirs.last_seq.saturating_add(1))
            .map_err(|e| e.to_string())?
            .is_some();
    Ok(same_history && have_next)
}

/// The first record the follower needs: right after its own position if our logs agree there,
/// or after a snapshot we send it now.
async fn catch_up_point(
    cluster: &Cluster,
    link: &mut Link,
    theirs: &Position,
) -> Result<u64, String> {
    let next = if can_continue(cluster, theirs)? {
        theirs.last_seq.checked_add(1)
    } else {
        send_snapshot(cluster, link).await?.checked_add(1)
    };
    next.ok_or_else(|| "sequence numbers used up".to_string())
}

async fn stream(
    cluster: &Cluster,
    link: &mut Link,
    mut next: u64,
    generation: u64,
) -> Result<(), String> {
    let mut last_seq = cluster.store.subscribe();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut seen = tokio::time::Instant::now();
    loop {
        if !cluster.is_current_follower(generation) {
            return Ok(());
        }
        let newest = *last_seq.borrow_and_update();
        if next <= newest {
            let store = std::sync::Arc::clone(&cluster.store);
            let from = next;
            let read = move || store.records_from(from, BATCH, RECORDS_READ_BYTES);
            // The few records just committed are in redb's cache: read inline, cheaper than a
            // hand-off to a blocking thread (and the acknowledgements are read sooner).
            let records = if newest - next < INLINE_READ {
                read()
            } else {
                tokio::task::spawn_blocking(read)
                    .await
                    .map_err(|e| e.to_string())?
            }
            .map_err(|e| e.to_string())?;
            if records.is_empty() {
                return Err(format!("log has no record {next}"));
            }
            // In one write: a batch committed together reaches the standby together, and it
            // applies it in one transaction.
            next += records.len() as u64;
            send_all(
                link,
                records
                    .into_iter()
                    .map(|record| ClusterMsg::Record { record }),
            )
            .await
            .map_err(|e| e.to_string())?;
            continue;
        }
        tokio::select! {
            _ = cluster.shutdown.cancelled() => return Ok(()),
            _ = last_seq.changed() => {}
            _ = heartbeat.tick() => {
                if seen.elapsed() > FOLLOWER_TIMEOUT {
                    return Err("standby stopped answering".into());
                }
                let position = cluster.position()?;
                send(link, ClusterMsg::Heartbeat { position })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            frame = link.recv::<ClusterFrame>() => match frame {
                Ok(Some(ClusterFrame { msg: ClusterMsg::Ack { seq }, .. })) => {
                    seen = tokio::time::Instant::now();
                    cluster.acked(generation, seq);
                }
                Ok(Some(other)) => return Err(format!("unexpected message {:?}", other.msg)),
                Ok(None) => return Ok(()),
                Err(FrameError::Io(e)) => return Err(e.to_string()),
                Err(e) => return Err(e.to_string()),
            },
        }
    }
}

/// Streams the whole state in chunks of at most [`SNAPSHOT_CHUNK_BYTES`], read from one read
/// transaction on a blocking thread a chunk or two ahead of the link (so the link's pace holds
/// the reader back); returns the sequence number it represents.
async fn send_snapshot(cluster: &Cluster, link: &mut Link) -> Result<u64, String> {
    let store = std::sync::Arc::clone(&cluster.store);
    let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<Vec<SnapshotRow>>(2);
    let (position_tx, position_rx) = tokio::sync::oneshot::channel::<Position>();
    let export = tokio::task::spawn_blocking(move || {
        store.export_snapshot_chunks(
            SNAPSHOT_CHUNK_BYTES,
            |position| {
                let _ = position_tx.send(position);
            },
            |rows| chunks_tx.blocking_send(rows).is_ok(),
        )
    });
    let position = position_rx
        .await
        .map_err(|_| "cannot read the state for a snapshot".to_string());
    let position = match position {
        Ok(p) => p,
        Err(e) => {
            return Err(match export.await {
                Ok(Err(why)) => format!("{e}: {why}"),
                _ => e,
            });
        }
    };
    tracing::info!(last_seq = position.last_seq, "sending snapshot to standby");
    // One chunk is held back until the next one arrives, so that the last can be flagged.
    let mut held: Option<Vec<SnapshotRow>> = None;
    let mut rows_sent = 0usize;
    while let Some(rows) = chunks.recv().await {
        if let Some(prev) = held.replace(rows) {
            rows_sent += prev.len();
            send(
                link,
                ClusterMsg::Snapshot {
                    rows: prev,
                    last: false,
                    position,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    // The channel closed: the export is done (or failed; then nothing is flagged last).
    match export.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("snapshot export failed: {e}")),
        Err(e) => return Err(e.to_string()),
    }
    let rows = held.unwrap_or_default();
    rows_sent += rows.len();
    send(
        link,
        ClusterMsg::Snapshot {
            rows,
            last: true,
            position,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(
        rows = rows_sent,
        last_seq = position.last_seq,
        "snapshot sent"
    );
    // The follower acknowledges the snapshot once it is installed.
    match recv(link, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?
    {
        ClusterMsg::Ack { seq } if seq == position.last_seq => {
            Counters::bump(&cluster.counters.snapshots_sent);
            Ok(position.last_seq)
        }
        other => Err(format!("snapshot not acknowledged: {other:?}")),
    }
}
