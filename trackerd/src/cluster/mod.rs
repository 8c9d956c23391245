//! The two trackers as one service: a primary that serves and a hot standby that follows its
//! log, with takeover when the primary is gone.
//!
//! - **Roles.** The first tracker of tracker_info.txt leads epoch 0. Each tracker stores the
//!   highest epoch it knows of and its leader. A standby that loses its primary probes it once
//!   more and, if that fails, takes over: epoch + 1, itself as leader, persisted before it
//!   serves. Whenever a tracker learns of a higher epoch (in any handshake or heartbeat) it
//!   adopts it, and a primary that learns of one steps down to standby.
//! - **Leases.** A primary serves clients only while its lease is fresh: renewed by the
//!   standby's acknowledgements, or, with no standby attached, by a probe (every 500 ms) that
//!   finds the other tracker unreachable or not outranking it. A primary frozen and then
//!   continued therefore holds requests until it has re-checked, and steps down instead of
//!   serving stale state if the standby took over meanwhile.
//! - **Replication.** See `primary.rs` and `standby.rs`. A write is acknowledged to the client
//!   only after the standby has it durably, while a standby is attached; if the standby does not
//!   acknowledge within a second it is dropped and the primary goes on alone (after checking
//!   the standby has not taken over).
//! - **Clients at the standby** get `not_primary` with the primary's address (a redirect), or
//!   `unavailable` while it cannot reach any primary.

pub mod auth;
pub mod counters;
pub mod key;
pub mod link;
mod primary;
mod standby;

use crate::store::Store;
use p2p_proto::ErrorReply;
use p2p_proto::cluster::{Position, Purpose, Role};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a lease lasts after its last renewal.
const LEASE: Duration = Duration::from_secs(3);
/// How often a primary without a standby re-checks the other tracker.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a write waits for the standby's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request waits for a primary to re-confirm its lease.
const GATE_WAIT: Duration = Duration::from_millis(2500);
/// How long a tracker that is not the stored leader waits at start-up for the leader.
const STARTUP_GRACE: Duration = Duration::from_secs(3);

struct State {
    role: Role,
    lease_until: Option<Instant>,
    follower: Option<u64>,
    next_generation: u64,
    /// A standby's link to the primary is up.
    link_up: bool,
}

pub struct Cluster {
    pub self_no: usize,
    /// The other tracker, if tracker_info.txt lists one.
    pub peer: Option<(usize, SocketAddr)>,
    pub key: Vec<u8>,
    pub store: Arc<Store>,
    pub shutdown: CancellationToken,
    state: Mutex<State>,
    acked: watch::Sender<u64>,
    changed: Notify,
    pub counters: counters::Counters,
}

impl Cluster {
    pub fn new(
        self_no: usize,
        trackers: &[SocketAddr],
        key: Vec<u8>,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> Self {
        // The other tracker: the first listed that is not us (two trackers are supported).
        let peer = trackers
            .iter()
            .enumerate()
            .map(|(i, a)| (i + 1, *a))
            .find(|(no, _)| *no != self_no);
        Self {
            self_no,
            peer,
            key,
            store,
            shutdown,
            state: Mutex::new(State {
                role: Role::Starting,
                lease_until: None,
                follower: None,
                next_generation: 0,
                link_up: false,
            }),
            acked: watch::Sender::new(0),
            changed: Notify::new(),
            counters: counters::Counters::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn role(&self) -> Role {
        self.state().role
    }

    pub fn position(&self) -> Result<Position, String> {
        self.store.position().map_err(|e| e.to_string())
    }

    pub fn role_and_position(&self) -> Result<(Role, Position), String> {
        Ok((self.role(), self.position()?))
    }

    /// Adopts `theirs` if it outranks what we know; a primary that is outranked steps down.
    pub fn learn(&self, theirs: Position) -> Result<(), String> {
        let ours = self.position()?;
        if !theirs.outranks(&Position {
            epoch: ours.epoch,
            leader: ours.leader,
            ..ours
        }) {
            return Ok(());
        }
        self.store
            .set_leadership(theirs.epoch, theirs.leader)
            .map_err(|e| e.to_string())?;
        let mut st = self.state();
        if theirs.leader != self.self_no && st.role == Role::Primary {
            tracing::warn!(
                epoch = theirs.epoch,
                leader = theirs.leader,
                "the other tracker leads a newer epoch; stepping down to standby"
            );
            st.role = Role::Standby;
            st.lease_until = None;
            st.follower = None;
            counters::Counters::bump(&self.counters.step_downs);
        }
        drop(st);
        self.changed.notify_waiters();
        Ok(())
    }

    fn set_role(&self, role: Role) {
        let mut st = self.state();
        if st.role != role {
            let epoch = self.store.position().map(|p| p.epoch).unwrap_or(0);
            tracing::info!(?role, epoch, "role change");
        }
        st.role = role;
        if role != Role::Primary {
            st.lease_until = None;
        }
        drop(st);
        self.changed.notify_waiters();
    }

    fn renew_lease(&self) {
        let mut st = self.state();
        if st.role == Role::Primary {
            st.lease_until = Some(Instant::now() + LEASE);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    async fn become_primary(&self) {
        self.set_role(Role::Primary);
        self.renew_lease();
        // The first primary creates the trackers' signing key; it is logged and replicated.
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.signing_key()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot create the signing key"),
            Err(e) => tracing::error!(error = %e, "cannot create the signing key"),
        }
    }

    async fn take_over(&self) -> Result<(), String> {
        let ours = self.position()?;
        let epoch = ours.epoch + 1;
        self.store
            .set_leadership(epoch, self.self_no)
            .map_err(|e| e.to_string())?;
        tracing::warn!(epoch, "the primary is unreachable; taking over as primary");
        counters::Counters::bump(&self.counters.takeovers);
        self.become_primary().await;
        Ok(())
    }

    /// Registers a follower that holds everything up to `last_seq` (checked, or just installed
    /// from a snapshot); returns its generation.
    fn follower_connected(&self, last_seq: u64) -> u64 {
        let mut st = self.state();
        st.next_generation += 1;
        st.follower = Some(st.next_generation);
        // Acknowledgements count from what this follower holds, not from an earlier one.
        self.acked.send_replace(last_seq);
        st.next_generation
    }

    fn follower_gone(&self, generation: u64) {
        let mut st = self.state();
        if st.follower == Some(generation) {
            st.follower = None;
        }
    }

    fn is_current_follower(&self, generation: u64) -> bool {
        let st = self.state();
        st.follower == Some(generation) && st.role == Role::Primary
    }

    fn acked(&self, generation: u64, seq: u64) {
        if self.is_current_follower(generation) {
            self.acked.send_if_modified(|a| {
                let bigger = seq > *a;
                *a = (*a).max(seq);
                bigger
            });
            self.renew_lease();
        }
    }

    fn set_link_up(&self, up: bool) {
        self.state().link_up = up;
        self.changed.notify_waiters();
    }

    /// Whether this tracker may answer a client request now; waits briefly for a primary whose
    /// lease is being renewed.
    pub async fn gate(&self) -> Result<(), ErrorReply> {
        if self.peer.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + GATE_WAIT;
        loop {
            let notified = self.changed.notified();
            {
                let st = self.state();
                match st.role {
                    Role::Primary if st.lease_until.is_some_and(|t| t > Instant::now()) => {
                        return Ok(());
                    }
                    Role::Standby if st.link_up => {
                        let primary = self.peer.map(|(_, a)| a.to_string()).unwrap_or_default();
                        return Err(ErrorReply::not_primary(primary));
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(ErrorReply::unavailable(match self.role() {
                    Role::Standby => "this tracker is the standby and cannot reach the primary yet",
                    Role::Starting => "this tracker is starting",
                    Role::Primary => "this tracker cannot confirm it is still the primary",
                }));
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// After a write committed as `seq`: waits until the standby has it (if one is attached).
    pub async fn replicated(&self, seq: u64) -> Result<(), ErrorReply> {
        let Some((_, peer_addr)) = self.peer else {
            return Ok(());
        };
        let Some(generation) = self.state().follower else {
            return Ok(());
        };
        let mut acked = self.acked.subscribe();
        if tokio::time::timeout(ACK_TIMEOUT, acked.wait_for(|a| *a >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            return Ok(());
        }
        tracing::warn!(
            seq,
            "standby did not acknowledge in time; going on without it"
        );
        self.follower_gone(generation);
        // Make sure it did not take over meanwhile (learn() steps us down if it did).
        let _ = link::probe(self, peer_addr).await;
        if self.role() == Role::Primary {
            Ok(())
        } else {
            Err(ErrorReply::unavailable(
                "this tracker lost its primary role during the request; retry",
            ))
        }
    }

    /// The admin view: role, epoch, log position, replication state.
    pub fn status_line(&self) -> String {
        let position = self.position().unwrap_or(Position {
            epoch: 0,
            leader: 0,
            last_seq: 0,
            last_epoch: 0,
        });
        let st = self.state();
        let acked = *self.acked.borrow();
        let replication = match (self.peer, st.role) {
            (None, _) => "single tracker".to_string(),
            (Some(_), Role::Primary) if st.follower.is_some() => format!(
                "standby attached, acknowledged {acked}, lag {}",
                position.last_seq.saturating_sub(acked)
            ),
            (Some(_), Role::Primary) => "no standby attached".to_string(),
            (Some(_), Role::Standby) if st.link_up => "following the primary".to_string(),
            (Some(_), _) => "not connected to a primary".to_string(),
        };
        format!(
            "role={:?} epoch={} leader={} last_seq={} {} ({replication})",
            st.role,
            position.epoch,
            position.leader,
            position.last_seq,
            self.counters.words()
        )
        .to_lowercase()
    }

    /// Decides and maintains this tracker's role until shutdown.
    pub async fn run(self: Arc<Self>) {
        let Some((peer_no, peer_addr)) = self.peer else {
            self.become_primary().await;
            return;
        };
        let started = Instant::now();
        while !self.shutdown.is_cancelled() {
            match self.role() {
                Role::Starting => {
                    let probe = link::probe(&self, peer_addr).await;
                    let leader = self.position().map(|p| p.leader).unwrap_or(1);
                    match probe {
                        Ok((Role::Primary, _)) if leader == peer_no => self.set_role(Role::Standby),
                        _ if leader == self.self_no => self.become_primary().await,
                        _ if started.elapsed() > STARTUP_GRACE => {
                            if let Err(e) = self.take_over().await {
                                tracing::error!(error = %e, "cannot take over");
                            }
                        }
                        _ => self.pause(Duration::from_millis(300)).await,
                    }
                }
                Role::Primary => {
                    self.pause(PROBE_EVERY).await;
                    if self.state().follower.is_some() || self.shutdown.is_cancelled() {
                        continue;
                    }
                    // learn() inside the probe steps us down if the other side outranks us.
                    let _ = link::probe(&self, peer_addr).await;
                    self.renew_lease();
                }
                Role::Standby => {
                    let reason = standby::follow(&self, peer_addr).await;
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                    tracing::warn!(reason, "replication link to the primary ended");
                    match link::probe(&self, peer_addr).await {
                        Ok((Role::Primary, _)) => self.pause(Duration::from_millis(200)).await,
                        Ok(_) | Err(_) => {
                            if let Err(e) = self.take_over().await {
                                tracing::error!(error = %e, "cannot take over");
                                self.pause(Duration::from_millis(500)).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs what an authenticated connection from the other tracker asked for: a standby that
    /// wants to follow gets our log, if we are the primary; a probe is done already.
    pub async fn serve_link(&self, accepted: link::Accepted) {
        if accepted.purpose == Purpose::Follow && accepted.role == Role::Primary {
            primary::serve_follower(self, accepted.link, accepted.peer, accepted.position).await;
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(d) => {}
        }
    }
}
