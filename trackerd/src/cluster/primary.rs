//! The primary's side of replication: bring a follower up to date (from the log, or with a
//! snapshot when its log is missing or has diverged), then stream every new record and a
//! heartbeat, collecting acknowledgements.

use super::Cluster;
use super::counters::Counters;
use super::link::{Link, recv, send};
use p2p_proto::cluster::{ClusterMsg, Position, SNAPSHOT_CHUNK, SnapshotRow};
use p2p_proto::{FrameError, cluster::ClusterFrame};
use std::net::SocketAddr;
use std::time::Duration;

/// Heartbeat interval on a replication link.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A follower silent for this long is dropped.
pub const FOLLOWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Records sent per batch.
const BATCH: usize = 256;

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
    let generation = cluster.follower_connected(next - 1);
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
    let have_next = theirs.last_seq == ours.last_seq
        || store
            .record_epoch(theirs.last_seq + 1)
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
    if can_continue(cluster, theirs)? {
        Ok(theirs.last_seq + 1)
    } else {
        Ok(send_snapshot(cluster, link).await? + 1)
    }
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
            let records = tokio::task::spawn_blocking(move || store.records_from(from, BATCH))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if records.is_empty() {
                return Err(format!("log has no record {next}"));
            }
            for record in records {
                send(link, ClusterMsg::Record { record })
                    .await
                    .map_err(|e| e.to_string())?;
                next += 1;
            }
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

/// Sends the whole state in chunks; returns the sequence number it represents.
async fn send_snapshot(cluster: &Cluster, link: &mut Link) -> Result<u64, String> {
    let store = std::sync::Arc::clone(&cluster.store);
    let (rows, position) = tokio::task::spawn_blocking(move || store.export_snapshot())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!(
        rows = rows.len(),
        last_seq = position.last_seq,
        "sending snapshot to standby"
    );
    let mut chunk: Vec<SnapshotRow> = Vec::new();
    let mut size = 0;
    let mut rows = rows.into_iter().peekable();
    loop {
        let row = rows.next();
        let last = rows.peek().is_none();
        if let Some(row) = row {
            size += row.key.len() + row.value.len() + row.table.len() + 64;
            chunk.push(row);
        }
        if size >= SNAPSHOT_CHUNK || last {
            send(
                link,
                ClusterMsg::Snapshot {
                    rows: std::mem::take(&mut chunk),
                    last,
                    position,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            size = 0;
        }
        if last {
            break;
        }
    }
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
