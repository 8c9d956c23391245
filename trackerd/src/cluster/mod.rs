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
//! - **Storage faults.** A tracker whose database cannot be written (full disk, I/O error)
//!   steps down at once: it answers clients `unavailable`, stops renewing its lease (so the
//!   standby takes over) and tries to reopen the database every [`REOPEN_EVERY`]. Once it can
//!   write again it starts over as a tracker that must re-sync (see `Resync`): it follows the
//!   other tracker and may lead again only once it has caught up.
//! - **Re-sync.** A tracker with the durable "must re-sync" marker (a corrupt database replaced
//!   by an empty one, or a storage fault) never becomes primary or takes over until it has
//!   caught up from the other tracker (a snapshot installed, or the whole log applied up to the
//!   primary's heartbeat).

pub mod auth;
pub mod counters;
pub mod key;
pub mod link;
mod primary;
mod standby;

use crate::store::{Resync, Store};
use link::LinkError;
use p2p_proto::ErrorReply;
use p2p_proto::cluster::{Position, Purpose, Role};
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::tracker_info::TrackerEntry;
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
/// Row of the tracker's local table holding the other tracker's pinned key.
const PEER_KEY: &str = "peer_key";
/// How often a tracker whose storage failed tries to reopen its database.
pub const REOPEN_EVERY: Duration = Duration::from_secs(2);

struct State {
    role: Role,
    lease_until: Option<Instant>,
    follower: Option<u64>,
    next_generation: u64,
    /// A standby's link to the primary is up.
    link_up: bool,
    /// Why the other tracker, which answers, is not accepted as our partner (a configuration
    /// error), until a pairing succeeds.
    misconfigured: Option<String>,
    /// The other tracker's key, pinned the first time it proved the cluster key (when
    /// tracker_info.txt names none).
    pinned: Option<Fingerprint>,
    /// Why this tracker must catch up before it may lead (mirrors the durable marker).
    resync: Option<Resync>,
}

pub struct Cluster {
    pub self_no: usize,
    /// The other tracker, if tracker_info.txt lists one.
    pub peer: Option<(usize, SocketAddr)>,
    pub key: Vec<u8>,
    /// This tracker's own key.
    pub identity: Identity,
    /// The other tracker's key as tracker_info.txt names it.
    configured_pin: Option<Fingerprint>,
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
        trackers: &[TrackerEntry],
        key: Vec<u8>,
        identity: Identity,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> Self {
        // The other tracker: the first listed that is not us (two trackers are supported).
        let other = trackers
            .iter()
            .enumerate()
            .map(|(i, e)| (i + 1, *e))
            .find(|(no, _)| *no != self_no);
        let peer = other.map(|(no, e)| (no, e.addr));
        let configured_pin = other.and_then(|(_, e)| e.fingerprint);
        let pinned = match store.local(PEER_KEY) {
            Ok(pin) => pin.and_then(|p| p.parse().ok()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the other tracker's pinned key");
                None
            }
        };
        let resync = match store.resync() {
            Ok(r) => r,
            Err(e) => {
                // Unknown: the safe assumption is that it must.
                tracing::error!(error = %e, "cannot read the re-sync marker");
                Some(Resync::Corrupt)
            }
        };
        if let Some(why) = resync {
            tracing::warn!(
                ?why,
                "this tracker must catch up from the other tracker before it may lead"
            );
        }
        Self {
            self_no,
            peer,
            key,
            identity,
            configured_pin,
            store,
            shutdown,
            state: Mutex::new(State {
                role: Role::Starting,
                lease_until: None,
                follower: None,
                next_generation: 0,
                link_up: false,
                misconfigured: None,
                pinned,
                resync,
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

    /// The key the other tracker must present: the one tracker_info.txt names, else the one it
    /// had when it first proved the cluster key; `None` before that.
    pub fn peer_pin(&self) -> Option<Fingerprint> {
        self.configured_pin.or(self.state().pinned)
    }

    /// Pins `key` as the other tracker's (if nothing is pinned yet): called once it proved the
    /// cluster key over a TLS session with that key.
    pub fn pin_peer(&self, key: Fingerprint) {
        if self.peer_pin().is_some() {
            return;
        }
        self.state().pinned = Some(key);
        match self.store.set_local(PEER_KEY, &key.to_string()) {
            Ok(()) => tracing::info!(%key, "pinned the other tracker's key"),
            Err(e) => tracing::error!(error = %e, "cannot store the other tracker's key"),
        }
    }

    /// The other tracker answers but is not our partner: loudly, once per new reason.
    pub fn note_misconfigured(&self, why: &LinkError) {
        let why = why.to_string();
        let mut st = self.state();
        if st.misconfigured.as_deref() != Some(why.as_str()) {
            tracing::error!(error = %why, "tracker pair misconfigured; not pairing");
            st.misconfigured = Some(why);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// A pairing succeeded: whatever was misconfigured is fixed.
    pub fn note_paired(&self) {
        let mut st = self.state();
        if st.misconfigured.take().is_some() {
            tracing::info!("tracker pair configuration fixed; pairing again");
        }
    }

    /// Records how a probe or link attempt ended (a configuration error, or a success).
    fn note_attempt<T>(&self, result: &Result<T, LinkError>) {
        match result {
            Ok(_) => self.note_paired(),
            Err(e @ LinkError::Misconfigured(_)) => self.note_misconfigured(e),
            Err(LinkError::Unreachable(_)) => {}
        }
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
        if let Err(e) = self.store.set_leadership(theirs.epoch, theirs.leader) {
            // A tracker that cannot write still steps down; it learns the epoch again once it
            // follows the other tracker.
            if !e.is_fault() {
                return Err(e.to_string());
            }
        }
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
        let faulted = self.store.fault().is_some();
        let mut st = self.state();
        if st.role == Role::Primary && !faulted {
            st.lease_until = Some(Instant::now() + LEASE);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Why this tracker may not lead now, if it may not.
    fn may_not_lead(&self) -> Option<String> {
        if let Some(why) = self.store.fault() {
            return Some(format!("its database cannot be written: {why}"));
        }
        self.state()
            .resync
            .map(|why| format!("it must catch up from the other tracker first ({why:?})"))
    }

    async fn become_primary(&self) {
        if let Some(why) = self.may_not_lead() {
            tracing::warn!(%why, "not becoming primary");
            return;
        }
        self.set_role(Role::Primary);
        self.renew_lease();
        // The first primary creates the trackers' secrets; they are logged and replicated.
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.ensure_secrets()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot create the trackers' secrets"),
            Err(e) => tracing::error!(error = %e, "cannot create the trackers' secrets"),
        }
    }

    async fn take_over(&self) -> Result<(), String> {
        if let Some(why) = self.may_not_lead() {
            // Back to deciding: there, a tracker that must re-sync waits for the other one.
            self.set_role(Role::Starting);
            return Err(format!("not taking over: {why}"));
        }
        let ours = self.position()?;
        // The epoch came from the other tracker too: a hostile or broken value must not
        // overflow.
        let Some(epoch) = ours.epoch.checked_add(1) else {
            return Err(format!(
                "not taking over: the epoch counter is at its maximum ({})",
                ours.epoch
            ));
        };
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
            if let Some(why) = self.store.fault() {
                return Err(ErrorReply::unavailable(format!(
                    "this tracker is not serving: it cannot write to its database ({why})"
                )));
            }
            {
                let st = self.state();
                if st.role != Role::Primary
                    && let Some(why) = &st.misconfigured
                {
                    return Err(ErrorReply::unavailable(format!(
                        "this tracker is not serving: tracker pair misconfigured: {why}"
                    )));
                }
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
        let probe = link::probe(self, peer_addr).await;
        self.note_attempt(&probe);
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
        let pairing = match &st.misconfigured {
            Some(why) => format!("; pair misconfigured: {why}"),
            None => String::new(),
        };
        let faulted = u8::from(self.store.fault().is_some());
        let resync = u8::from(st.resync.is_some());
        let line = format!(
            "role={:?} epoch={} leader={} last_seq={} faulted={faulted} resync={resync} {}",
            st.role,
            position.epoch,
            position.leader,
            position.last_seq,
            self.counters.words()
        )
        .to_lowercase();
        let paired = u8::from(st.misconfigured.is_none());
        format!(
            "{line} paired={paired} key={} ({replication}{pairing})",
            self.identity.fingerprint()
        )
    }

    /// Decides and maintains this tracker's role until shutdown.
    pub async fn run(self: Arc<Self>) {
        let Some((peer_no, peer_addr)) = self.peer else {
            self.become_primary().await;
            // A lone tracker has nobody to hand over to: it only gets its storage back.
            let mut faults = self.store.subscribe_faults();
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    r = faults.wait_for(|f| f.is_some()) => if r.is_err() { return },
                }
                self.recover().await;
            }
        };
        let started = Instant::now();
        while !self.shutdown.is_cancelled() {
            if self.store.fault().is_some() {
                self.recover().await;
                continue;
            }
            match self.role() {
                Role::Starting => {
                    let probe = link::probe(&self, peer_addr).await;
                    self.note_attempt(&probe);
                    let ours = self.position().ok();
                    let leader = ours.map(|p| p.leader).unwrap_or(1);
                    let resync = self.state().resync;
                    match probe {
                        Ok((Role::Primary, _)) if leader == peer_no => self.set_role(Role::Standby),
                        // It answers but is not our partner: we cannot learn whether it leads a
                        // newer epoch, so we serve nothing (rather than risk two primaries)
                        // until the configuration is fixed.
                        Err(LinkError::Misconfigured(_)) => {
                            self.pause(Duration::from_secs(1)).await
                        }
                        Ok((role, theirs)) if resync == Some(Resync::Fault) => {
                            // After a storage fault: if the other tracker has not led since
                            // (it is not primary and holds nothing we lack), nothing was
                            // written without us and the usual start-up rules apply again.
                            let nothing_missed = ours.is_some_and(|o| {
                                theirs.last_seq <= o.last_seq && theirs.last_epoch <= o.last_epoch
                            });
                            if role != Role::Primary && nothing_missed {
                                self.caught_up().await;
                            } else {
                                self.pause(Duration::from_millis(300)).await;
                            }
                        }
                        // It must catch up first: wait for the other tracker to lead.
                        _ if resync.is_some() => self.pause(Duration::from_millis(300)).await,
                        _ if leader == self.self_no => self.become_primary().await,
                        _ if started.elapsed() > STARTUP_GRACE => {
                            if let Err(e) = self.take_over().await {
                                tracing::error!(error = %e, "cannot take over");
                                self.pause(Duration::from_millis(500)).await;
                            }
                        }
                        _ => self.pause(Duration::from_millis(300)).await,
                    }
                }
                Role::Primary => {
                    self.pause(PROBE_EVERY).await;
                    if self.state().follower.is_some()
                        || self.shutdown.is_cancelled()
                        || self.store.fault().is_some()
                    {
                        continue;
                    }
                    // learn() inside the probe steps us down if the other side outranks us.
                    let probe = link::probe(&self, peer_addr).await;
                    self.note_attempt(&probe);
                    self.renew_lease();
                }
                Role::Standby => {
                    let reason = standby::follow(&self, peer_addr).await;
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                    tracing::warn!(%reason, "replication link to the primary ended");
                    if self.store.fault().is_some() {
                        continue;
                    }
                    let probe = link::probe(&self, peer_addr).await;
                    self.note_attempt(&probe);
                    match probe {
                        Ok((Role::Primary, _)) => self.pause(Duration::from_millis(200)).await,
                        // It answers but is not our partner: stay standby, do not serve.
                        Err(LinkError::Misconfigured(_)) => {
                            self.pause(Duration::from_secs(1)).await
                        }
                        Ok(_) | Err(LinkError::Unreachable(_)) => {
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

    /// After a storage fault: steps down at once, then tries to reopen the database every
    /// [`REOPEN_EVERY`] until it can write again. A tracker with a partner then starts over
    /// as one that must re-sync; a lone tracker leads again.
    async fn recover(&self) {
        let why = self.store.fault().unwrap_or_default();
        {
            let mut st = self.state();
            if st.role == Role::Primary {
                counters::Counters::bump(&self.counters.step_downs);
            }
            st.role = if self.peer.is_some() {
                Role::Standby
            } else {
                Role::Starting
            };
            st.lease_until = None;
            st.follower = None;
            st.link_up = false;
        }
        self.changed.notify_waiters();
        counters::Counters::bump(&self.counters.storage_faults);
        tracing::warn!(
            error = %why,
            "storage failure: not serving, not leading; reopening the database every {:?}",
            REOPEN_EVERY
        );
        let mut last_error = String::new();
        loop {
            self.pause(REOPEN_EVERY).await;
            if self.shutdown.is_cancelled() {
                return;
            }
            let store = Arc::clone(&self.store);
            let reopened = match tokio::task::spawn_blocking(move || store.reopen()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let Err(e) = reopened else { break };
            if e != last_error {
                tracing::warn!(error = %e, "database not writable yet");
                last_error = e;
            }
        }
        counters::Counters::bump(&self.counters.reopens);
        if self.peer.is_none() {
            self.become_primary().await;
            return;
        }
        // The other tracker may have taken over meanwhile: follow it before leading again.
        let store = Arc::clone(&self.store);
        let marked = tokio::task::spawn_blocking(move || {
            store.set_resync(Resync::Fault)?;
            store.resync()
        })
        .await;
        match marked {
            Ok(Ok(resync)) => self.state().resync = resync.or(Some(Resync::Fault)),
            // Faulted again: the run loop comes back here.
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the re-sync marker"),
            Err(e) => tracing::warn!(error = %e, "cannot record the re-sync marker"),
        }
        self.set_role(Role::Starting);
    }

    /// This tracker holds everything the other one has (it just installed a snapshot from it,
    /// or applied its whole log, or found it has not led since our fault): a re-sync marker
    /// is cleared and it may lead again.
    async fn caught_up(&self) {
        if self.state().resync.is_none() {
            return;
        }
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.clear_resync()).await {
            Ok(Ok(())) => {
                self.state().resync = None;
                counters::Counters::bump(&self.counters.resyncs);
                tracing::info!("caught up with the other tracker; this tracker may lead again");
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot clear the re-sync marker"),
            Err(e) => tracing::error!(error = %e, "cannot clear the re-sync marker"),
        }
    }

    /// Runs what an authenticated connection from the other tracker asked for: a standby that
    /// wants to follow gets our log, if we are the primary; a probe is done already.
    pub async fn serve_link(&self, accepted: link::Accepted) {
        if accepted.purpose == Purpose::Follow && accepted.role == Role::Primary {
            primary::serve_follower(self, accepted.link, accepted.peer, accepted.position).await;
        }
    }

    /// Waits `d`, or less if the tracker shuts down or its storage fails.
    async fn pause(&self, d: Duration) {
        let mut faults = self.store.subscribe_faults();
        let faulted_before = faults.borrow_and_update().is_some();
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(d) => {}
            _ = faults.wait_for(|f| f.is_some()), if !faulted_before => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(dir: &std::path::Path) -> Cluster {
        let store = Arc::new(Store::open(dir).unwrap());
        let entry = |port| TrackerEntry {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            fingerprint: None,
        };
        Cluster::new(
            1,
            &[entry(1), entry(2)],
            vec![7; 32],
            Identity::ephemeral().unwrap(),
            store,
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn a_takeover_at_the_highest_epoch_is_refused_not_overflowed() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(dir.path());
        // A hostile (or broken) partner claimed the highest epoch; we adopted it.
        c.learn(Position {
            epoch: u64::MAX,
            leader: 2,
            last_seq: 0,
            last_epoch: 0,
        })
        .unwrap();
        assert!(c.take_over().await.is_err());
        let p = c.position().unwrap();
        assert_eq!((p.epoch, p.leader), (u64::MAX, 2), "nothing changed");
        assert_ne!(c.role(), Role::Primary);
        assert_eq!(
            c.counters
                .takeovers
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn a_tracker_that_must_resync_neither_takes_over_nor_becomes_primary() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path())
            .unwrap()
            .set_resync(Resync::Corrupt)
            .unwrap();
        let c = cluster(dir.path());
        assert!(c.take_over().await.is_err());
        c.become_primary().await;
        assert_ne!(c.role(), Role::Primary);
        assert_eq!(c.position().unwrap().epoch, 0);
        assert!(c.gate().await.is_err(), "it serves nothing");
    }

    #[tokio::test]
    async fn a_faulted_tracker_answers_unavailable_and_does_not_lead() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(dir.path());
        c.store
            .mark_faulted(&crate::store::StoreError::Faulted("disk full".into()));
        let e = c.gate().await.unwrap_err();
        assert_eq!(e.kind, p2p_proto::ErrorKind::Unavailable);
        c.become_primary().await;
        assert_ne!(c.role(), Role::Primary);
    }
}
