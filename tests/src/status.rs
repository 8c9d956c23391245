//! The `status` line a tracker prints on stdout when `status` is typed on its stdin.

use std::collections::BTreeMap;

/// One `status` line of a tracker, e.g.
///
/// ```text
/// role=primary epoch=1 leader=2 last_seq=12 takeovers=1 step_downs=0 follows=0
/// standbys_served=1 snapshots_sent=0 snapshots_installed=0 refused_bad_proof=0
/// refused_unknown_tracker=0 paired=1 key=sha256:… (standby attached, acknowledged 12, lag 0)
/// ```
///
/// (one line). Every word before the parenthesis is `name=value`: the role, where the log
/// stands, and counters of what the cluster machinery did since the process started; the
/// parenthesis says how replication stands (`following the primary`, `no standby attached`,
/// ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerStatus {
    pub role: String,
    pub epoch: u64,
    pub leader: u64,
    pub last_seq: u64,
    /// The tracker's key fingerprint (`key=`).
    pub key: String,
    /// Every other `name=value` word: `takeovers`, `step_downs`, `follows`,
    /// `standbys_served`, `snapshots_sent`, `snapshots_installed`, `refused_bad_proof`,
    /// `refused_unknown_tracker`, and `paired` (1, or 0 while the pair is misconfigured).
    pub counters: BTreeMap<String, u64>,
    /// What the parentheses say about replication.
    pub detail: String,
    /// The whole line.
    pub line: String,
}

/// The counters that count things happening to a tracker's role and log (not refusals).
pub const ROLE_AND_LOG_COUNTERS: [&str; 6] = [
    "takeovers",
    "step_downs",
    "follows",
    "standbys_served",
    "snapshots_sent",
    "snapshots_installed",
];

impl TrackerStatus {
    pub fn parse(line: &str) -> Result<Self, String> {
        let line = line.trim();
        let (fields, detail) = match line.split_once('(') {
            Some((f, d)) => (f, d.trim_end_matches(')').trim()),
            None => (line, ""),
        };
        let mut role = None;
        let mut own_key = None;
        let mut numbers: BTreeMap<String, u64> = BTreeMap::new();
        for word in fields.split_whitespace() {
            let (key, value) = word.split_once('=').ok_or_else(|| {
                format!("word {word:?} is not name=value in status line {line:?}")
            })?;
            if key == "role" {
                role = Some(value.to_string());
                continue;
            }
            if key == "key" {
                own_key = Some(value.to_string());
                continue;
            }
            let value = value
                .parse::<u64>()
                .map_err(|e| format!("bad {key} in status line {line:?}: {e}"))?;
            numbers.insert(key.to_string(), value);
        }
        let mut take = |what: &str| {
            numbers
                .remove(what)
                .ok_or_else(|| format!("status line without {what}: {line:?}"))
        };
        Ok(Self {
            epoch: take("epoch")?,
            leader: take("leader")?,
            last_seq: take("last_seq")?,
            role: role.ok_or_else(|| format!("status line without role: {line:?}"))?,
            key: own_key.ok_or_else(|| format!("status line without key: {line:?}"))?,
            counters: numbers,
            detail: detail.to_string(),
            line: line.to_string(),
        })
    }

    pub fn is_primary(&self) -> bool {
        self.role == "primary"
    }

    /// A standby whose replication link to the primary is up.
    pub fn is_following(&self) -> bool {
        self.role == "standby" && self.detail == "following the primary"
    }

    /// A primary with a standby attached that holds everything it has.
    pub fn has_standby_caught_up(&self) -> bool {
        self.is_primary()
            && self.detail.starts_with("standby attached,")
            && self.detail.ends_with(", lag 0")
    }

    /// Counter `name`; panics with the line if it is not there.
    #[track_caller]
    pub fn counter(&self, name: &str) -> u64 {
        *self
            .counters
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name} in status line {:?}", self.line))
    }

    /// How much counter `name` grew since `earlier` (a status of the same tracker process).
    #[track_caller]
    pub fn grown_since(&self, earlier: &TrackerStatus, name: &str) -> u64 {
        self.counter(name)
            .checked_sub(earlier.counter(name))
            .unwrap_or_else(|| {
                panic!(
                    "counter {name} went down (another process?): from {:?} to {:?}",
                    earlier.line, self.line
                )
            })
    }

    /// None of the counters `names` changed since `earlier`: `what` (e.g. "tracker 2 after
    /// the forged traffic") did not do any of those things.
    #[track_caller]
    pub fn assert_unchanged_since(&self, earlier: &TrackerStatus, names: &[&str], what: &str) {
        for name in names {
            assert_eq!(
                self.counter(name),
                earlier.counter(name),
                "{what}: counter {name} changed: before {:?}, after {:?}",
                earlier.line,
                self.line
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_primary_line_with_counters() {
        let s = TrackerStatus::parse(
            "role=primary epoch=1 leader=2 last_seq=12 takeovers=1 step_downs=0 follows=0 \
             standbys_served=1 snapshots_sent=0 snapshots_installed=0 refused_bad_proof=3 \
             refused_unknown_tracker=0 paired=1 key=sha256:ab (standby attached, \
             acknowledged 12, lag 0)",
        )
        .unwrap();
        assert!(s.is_primary() && s.has_standby_caught_up() && !s.is_following());
        assert_eq!((s.epoch, s.leader, s.last_seq), (1, 2, 12));
        assert_eq!(s.counter("takeovers"), 1);
        assert_eq!(s.counter("refused_bad_proof"), 3);
        assert_eq!(s.counter("paired"), 1);
        assert_eq!(s.key, "sha256:ab");
        assert_eq!(s.counters.len(), 9);
        assert_eq!(s.detail, "standby attached, acknowledged 12, lag 0");
    }

    #[test]
    fn parses_a_standby_line() {
        let s = TrackerStatus::parse(
            "role=standby epoch=0 leader=1 last_seq=3 takeovers=0 follows=2 key=k (following the primary)",
        )
        .unwrap();
        assert!(s.is_following() && !s.is_primary());
        assert_eq!(s.counter("follows"), 2);
    }

    #[test]
    fn refuses_lines_it_cannot_read() {
        assert!(TrackerStatus::parse("role=primary epoch=1 leader=2 (x)").is_err());
        assert!(TrackerStatus::parse("role=primary epoch=x leader=2 last_seq=1").is_err());
        assert!(TrackerStatus::parse("epoch=1 leader=2 last_seq=1").is_err());
        assert!(TrackerStatus::parse("role=primary epoch=1 leader=2 last_seq=1 oops").is_err());
    }

    #[test]
    #[should_panic(expected = "no counter takeovers")]
    fn a_missing_counter_panics() {
        TrackerStatus::parse("role=primary epoch=1 leader=2 last_seq=1 key=k")
            .unwrap()
            .counter("takeovers");
    }
}
