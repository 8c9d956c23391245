//! What `show_downloads` reports of a live download, and the bookkeeping behind it.

use p2p_proto::control::{BannedPeer, DownloadInfo, DownloadState, SourceInfo};
use p2p_proto::reach::ConnectionKind;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window over which the rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// The shortest time a rate is computed over: right after the first peer connected, the bytes
/// of a few milliseconds do not make a rate.
const RATE_MIN_SPAN: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Progress {
    pub state: DownloadState,
    pub detail: Option<String>,
    pub peers: usize,
    pub banned: Vec<BannedPeer>,
    /// Every peer connected to, and what it delivered.
    pub sources: Vec<SourceInfo>,
    /// (when, bytes) of recently verified pieces, for the rate.
    recent: VecDeque<(Instant, u64)>,
    /// Pieces verified since the bitmap was last committed.
    pub dirty: bool,
    /// A disk error that ends the download.
    pub fatal: Option<String>,
    /// When the first peer connected: until [`RATE_WINDOW`] has passed since, the rate is
    /// over the time since then, not over a window that is mostly empty.
    flowing_since: Option<Instant>,
}

impl Progress {
    /// A download that has not found a peer yet; `banned` as recorded with it.
    pub fn new(banned: Vec<BannedPeer>, sources: Vec<SourceInfo>) -> Self {
        Self {
            state: DownloadState::Waiting,
            detail: Some("looking for peers".into()),
            peers: 0,
            banned,
            sources: sources
                .into_iter()
                .map(|s| SourceInfo {
                    connected: false,
                    ..s
                })
                .collect(),
            recent: VecDeque::new(),
            dirty: false,
            fatal: None,
            flowing_since: None,
        }
    }

    pub fn is_banned(&self, peer: &str) -> bool {
        self.banned.iter().any(|b| b.peer == peer)
    }

    pub fn ban(&mut self, peer: &str, reason: &str) {
        if !self.is_banned(peer) {
            self.banned.push(BannedPeer {
                peer: peer.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    fn source(&mut self, peer: &str) -> &mut SourceInfo {
        let at = match self.sources.iter().position(|s| s.peer == peer) {
            Some(at) => at,
            None => {
                self.sources.push(SourceInfo {
                    peer: peer.to_string(),
                    connected: false,
                    bytes: 0,
                    user: None,
                    via: None,
                });
                self.sources.len() - 1
            }
        };
        &mut self.sources[at]
    }

    /// `peer` connected (the handshake went through) or left.
    pub fn set_connected(&mut self, peer: &str, connected: bool) {
        if connected {
            self.flowing_since.get_or_insert_with(Instant::now);
        }
        self.source(peer).connected = connected;
    }

    /// `peer` (user `user`) was reached by `via`.
    pub fn set_via(&mut self, peer: &str, user: &str, via: ConnectionKind) {
        let source = self.source(peer);
        source.via = Some(via);
        source.user = Some(user.to_string());
    }

    /// Peers connected now other than through the relay.
    pub fn direct_peers(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| s.connected && s.via != Some(ConnectionKind::Relayed))
            .count()
    }

    /// `peer` delivered a verified piece of `bytes` bytes.
    pub fn delivered(&mut self, peer: &str, bytes: u64) {
        self.source(peer).bytes += bytes;
    }

    pub fn piece_verified(&mut self, bytes: u64) {
        let now = Instant::now();
        self.recent.push_back((now, bytes));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
        self.dirty = true;
    }

    /// Writes state, detail, peers, bans and rate into `info`.
    pub fn fill(&self, info: &mut DownloadInfo) {
        let now = Instant::now();
        let recent: u64 = self
            .recent
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
            .map(|(_, b)| *b)
            .sum();
        info.state = self.state;
        info.detail = self.detail.clone();
        info.peers = self.peers;
        info.banned = self.banned.clone();
        info.sources = self.sources.clone();
        info.rate = rate(recent, self.flowing_since, now);
    }
}

/// Bytes per second: `recent` bytes over the rate window, or over the time since the first
/// peer connected when that is shorter (at least [`RATE_MIN_SPAN`]).
fn rate(recent: u64, flowing_since: Option<Instant>, now: Instant) -> u64 {
    let span = flowing_since
        .map_or(RATE_WINDOW, |since| now.saturating_duration_since(since))
        .clamp(RATE_MIN_SPAN, RATE_WINDOW);
    (recent as f64 / span.as_secs_f64()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_right_from_the_first_second() {
        let start = Instant::now();
        // 100 MiB in the first second: 100 MiB/s, not a third of it.
        let mib = 1024 * 1024;
        assert_eq!(
            rate(100 * mib, Some(start), start + Duration::from_secs(1)),
            100 * mib
        );
        // Later, over the whole window.
        assert_eq!(
            rate(300 * mib, Some(start), start + Duration::from_secs(10)),
            100 * mib
        );
        // A few milliseconds in, the span is at least RATE_MIN_SPAN.
        assert_eq!(
            rate(mib, Some(start), start + Duration::from_millis(1)),
            4 * mib
        );
        assert_eq!(rate(0, None, start), 0);
    }
}
