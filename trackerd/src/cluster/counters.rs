//! What the cluster machinery has done since the tracker started, for the `status` line: how
//! often it took over or stepped down, followed or served a standby, sent or installed a
//! snapshot, lost and regained its storage, caught up after it had to, and refused a connection that did not prove the cluster key. Operators (and the
//! tests) read these instead of grepping the log.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    pub takeovers: AtomicU64,
    pub step_downs: AtomicU64,
    /// Replication links this tracker opened to a primary, as its standby.
    pub follows: AtomicU64,
    /// Standbys this tracker served, as primary.
    pub standbys_served: AtomicU64,
    pub snapshots_sent: AtomicU64,
    pub snapshots_installed: AtomicU64,
    /// Cluster connections refused because they did not prove the cluster key.
    pub refused_bad_proof: AtomicU64,
    /// Cluster connections refused because they named a tracker not in tracker_info.txt.
    pub refused_unknown_tracker: AtomicU64,
    /// Storage failures (full disk, I/O errors) that stopped this tracker from writing.
    pub storage_faults: AtomicU64,
    /// Times the database was reopened and found writable after a storage failure.
    pub reopens: AtomicU64,
    /// Times this tracker caught up from the other one after it had to (a corrupt database
    /// replaced, a storage failure), which lets it lead again.
    pub resyncs: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `name=value` words, in a fixed order.
    pub fn words(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "takeovers={} step_downs={} follows={} standbys_served={} snapshots_sent={} \
             snapshots_installed={} refused_bad_proof={} refused_unknown_tracker={} \
             storage_faults={} reopens={} resyncs={}",
            get(&self.takeovers),
            get(&self.step_downs),
            get(&self.follows),
            get(&self.standbys_served),
            get(&self.snapshots_sent),
            get(&self.snapshots_installed),
            get(&self.refused_bad_proof),
            get(&self.refused_unknown_tracker),
            get(&self.storage_faults),
            get(&self.reopens),
            get(&self.resyncs),
        )
    }
}
