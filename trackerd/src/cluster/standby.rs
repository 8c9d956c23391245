//! The standby's side of replication: follow the primary's log, applying each record (or a
//! snapshot) and acknowledging it once durable. The records that have already arrived when
//! one is applied are applied with it, in one transaction (one commit), and acknowledged by
//! the last one's seq: the primary commits concurrent writes together, and its standby keeps
//! up the same way.

use super::Cluster;
use super::counters::Counters;
use super::link::{Link, LinkError, connect, recv, send};
use super::primary::FOLLOWER_TIMEOUT;
use crate::log::LogRecord;
use crate::store::{MAX_BATCH, SnapshotInstaller};
use futures_util::FutureExt;
use p2p_proto::cluster::{ClusterMsg, Purpose, Role};
use std::net::SocketAddr;
use std::sync::Arc;

/// How long the first message after the handshake may take (a snapshot export).
const FIRST_MESSAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Follows the primary at `addr` until the link breaks; returns why it ended.
pub async fn follow(cluster: &Cluster, addr: SocketAddr) -> String {
    let (mut link, role, _) = match connect(cluster, addr, Purpose::Follow).await {
        Ok(l) => l,
        Err(e) => return e.to_string(),
    };
    cluster.note_paired();
    if role != Role::Primary {
        return format!("the other tracker is {role:?}, not primary");
    }
    cluster.set_link_up(true);
    tracing::info!(primary = %addr, "following the primary");
    Counters::bump(&cluster.counters.follows);
    let reason = receive(cluster, &mut link).await;
    cluster.set_link_up(false);
    reason
}

async fn receive(cluster: &Cluster, link: &mut Link) -> String {
    // A snapshot being installed, chunk by chunk (dropping it mid-way changes nothing).
    let mut snapshot: Option<SnapshotInstaller> = None;
    // The primary may first export a snapshot of its whole state: allow it time for that.
    let mut wait = FIRST_MESSAGE_TIMEOUT;
    // A message read while gathering records, to handle next; or why the link ended then.
    let mut held: Option<Result<ClusterMsg, LinkError>> = None;
    loop {
        if cluster.shutdown.is_cancelled() {
            return "shutting down".into();
        }
        let msg = match held.take() {
            Some(m) => m,
            None => tokio::select! {
                _ = cluster.shutdown.cancelled() => return "shutting down".into(),
                msg = recv(link, wait) => msg,
            },
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return format!("primary link: {e}"),
        };
        wait = FOLLOWER_TIMEOUT;
        let ack = match msg {
            ClusterMsg::Record { record } => {
                let mut records = Vec::new();
                let mut next = Some(record);
                while let Some(record) = next.take() {
                    match serde_json::from_value::<LogRecord>(record) {
                        Ok(r) => records.push(r),
                        Err(e) => return format!("unreadable record: {e}"),
                    }
                    if records.len() >= MAX_BATCH {
                        break;
                    }
                    // Only what has arrived already: never wait for more.
                    match recv(link, FOLLOWER_TIMEOUT).now_or_never() {
                        None => {}
                        Some(Ok(ClusterMsg::Record { record })) => next = Some(record),
                        Some(other) => held = Some(other),
                    }
                }
                let Some(seq) = records.last().map(|r| r.seq) else {
                    continue;
                };
                let store = Arc::clone(&cluster.store);
                match tokio::task::spawn_blocking(move || store.apply_replicated_batch(&records))
                    .await
                {
                    Ok(Ok(())) => seq,
                    Ok(Err(e)) => return format!("cannot apply records up to {seq}: {e}"),
                    Err(e) => return e.to_string(),
                }
            }
            ClusterMsg::Snapshot {
                rows,
                last,
                position,
            } => {
                let installer = snapshot.get_or_insert_with(|| {
                    tracing::info!(last_seq = position.last_seq, "receiving a snapshot");
                    SnapshotInstaller::start(Arc::clone(&cluster.store))
                });
                if let Err(e) = installer.rows(rows).await {
                    return e;
                }
                if !last {
                    continue;
                }
                let Some(installer) = snapshot.take() else {
                    return "snapshot installer lost".into();
                };
                if let Err(e) = installer.finish(position).await {
                    return e;
                }
                tracing::info!(last_seq = position.last_seq, "snapshot installed");
                Counters::bump(&cluster.counters.snapshots_installed);
                cluster.caught_up().await;
                position.last_seq
            }
            ClusterMsg::Heartbeat { position } => {
                if let Err(e) = cluster.learn(position) {
                    return e;
                }
                let ours = match cluster.position() {
                    Ok(p) => p.last_seq,
                    Err(e) => return e,
                };
                // The primary sends a heartbeat only once it has sent us everything.
                if ours >= position.last_seq {
                    cluster.caught_up().await;
                }
                ours
            }
            ClusterMsg::Refuse { reason } => return format!("refused: {reason}"),
            other => return format!("unexpected message {other:?}"),
        };
        if let Err(e) = send(link, ClusterMsg::Ack { seq: ack }).await {
            return format!("primary link: {e}");
        }
    }
}
