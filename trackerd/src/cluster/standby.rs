//! The standby's side of replication: follow the primary's log, applying each record (or a
//! snapshot) in one transaction and acknowledging it once durable.

use super::Cluster;
use super::counters::Counters;
use super::link::{connect, recv, send};
use super::primary::FOLLOWER_TIMEOUT;
use crate::log::LogRecord;
use p2p_proto::cluster::{ClusterMsg, Purpose, Role, SnapshotRow};
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

async fn receive(cluster: &Cluster, link: &mut super::link::Link) -> String {
    let mut snapshot: Vec<SnapshotRow> = Vec::new();
    // The primary may first export a snapshot of its whole state: allow it time for that.
    let mut wait = FIRST_MESSAGE_TIMEOUT;
    loop {
        if cluster.shutdown.is_cancelled() {
            return "shutting down".into();
        }
        let msg = tokio::select! {
            _ = cluster.shutdown.cancelled() => return "shutting down".into(),
            msg = recv(link, wait) => match msg {
                Ok(m) => m,
                Err(e) => return format!("primary link: {e}"),
            },
        };
        wait = FOLLOWER_TIMEOUT;
        let ack = match msg {
            ClusterMsg::Record { record } => {
                let record: LogRecord = match serde_json::from_value(record) {
                    Ok(r) => r,
                    Err(e) => return format!("unreadable record: {e}"),
                };
                let seq = record.seq;
                let store = Arc::clone(&cluster.store);
                match tokio::task::spawn_blocking(move || store.apply_replicated(&record)).await {
                    Ok(Ok(())) => seq,
                    Ok(Err(e)) => return format!("cannot apply record {seq}: {e}"),
                    Err(e) => return e.to_string(),
                }
            }
            ClusterMsg::Snapshot {
                rows,
                last,
                position,
            } => {
                snapshot.extend(rows);
                if !last {
                    continue;
                }
                let rows = std::mem::take(&mut snapshot);
                let store = Arc::clone(&cluster.store);
                tracing::info!(
                    rows = rows.len(),
                    last_seq = position.last_seq,
                    "installing snapshot"
                );
                match tokio::task::spawn_blocking(move || store.install_snapshot(&rows, position))
                    .await
                {
                    Ok(Ok(())) => {
                        Counters::bump(&cluster.counters.snapshots_installed);
                        position.last_seq
                    }
                    Ok(Err(e)) => return format!("cannot install snapshot: {e}"),
                    Err(e) => return e.to_string(),
                }
            }
            ClusterMsg::Heartbeat { position } => {
                if let Err(e) = cluster.learn(position) {
                    return e;
                }
                match cluster.position() {
                    Ok(p) => p.last_seq,
                    Err(e) => return e,
                }
            }
            ClusterMsg::Refuse { reason } => return format!("refused: {reason}"),
            other => return format!("unexpected message {other:?}"),
        };
        if let Err(e) = send(link, ClusterMsg::Ack { seq: ack }).await {
            return format!("primary link: {e}");
        }
    }
}
