//! Parsing of `tracker_info.txt`: one tracker per line, `host:port` or `host port`, optionally
//! followed by whitespace and the tracker's key fingerprint (`sha256:<64 hex>`), which is then
//! the only key accepted for it. Blank lines and lines starting with `#` are ignored. The first
//! tracker is the preferred primary, the second its standby.

use crate::identity::Fingerprint;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Most trackers a file may list.
pub const MAX_TRACKERS: usize = 16;
/// Largest accepted tracker_info.txt.
const MAX_FILE_LEN: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrackerInfoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_FILE_LEN} bytes")]
    TooLarge { path: PathBuf },
    #[error(
        "{path}:{line}: expected `host:port` or `host port`, optionally followed by the \
         tracker's fingerprint (sha256:<64 hex digits>), got {text:?}"
    )]
    BadLine {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{path} lists no tracker")]
    Empty { path: PathBuf },
    #[error("{path} lists more than {MAX_TRACKERS} trackers")]
    TooMany { path: PathBuf },
}

/// One line of tracker_info.txt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerEntry {
    pub addr: SocketAddr,
    /// With a fingerprint, only that key is accepted for this tracker.
    pub fingerprint: Option<Fingerprint>,
}

/// The trackers of a tracker_info.txt, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerInfo {
    pub path: PathBuf,
    pub entries: Vec<TrackerEntry>,
}

impl TrackerInfo {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, TrackerInfoError> {
        let read_err = |source| TrackerInfoError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_FILE_LEN {
            return Err(TrackerInfoError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::parse(path, &text)
    }

    /// Parses the text of a tracker_info.txt; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TrackerInfoError> {
        let mut trackers = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || TrackerInfoError::BadLine {
                path: path.to_path_buf(),
                line: index + 1,
                text: line.chars().take(80).collect(),
            };
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let fingerprint = match words.last() {
                Some(last) if last.starts_with("sha256:") && words.len() > 1 => {
                    let fp = last.parse::<Fingerprint>().map_err(|_| bad())?;
                    words.pop();
                    Some(fp)
                }
                _ => None,
            };
            let joined = match words.as_slice() {
                [one] => (*one).to_string(),
                [host, port] => format!("{host}:{port}"),
                _ => return Err(bad()),
            };
            let addr: SocketAddr = joined.parse().map_err(|_| bad())?;
            if addr.port() == 0 {
                return Err(bad());
            }
            trackers.push(TrackerEntry { addr, fingerprint });
            if trackers.len() > MAX_TRACKERS {
                return Err(TrackerInfoError::TooMany {
                    path: path.to_path_buf(),
                });
            }
        }
        if trackers.is_empty() {
            return Err(TrackerInfoError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries: trackers,
        })
    }

    /// The address of tracker number `no` (1-based), if the file lists it.
    pub fn tracker(&self, no: usize) -> Option<SocketAddr> {
        self.entry(no).map(|e| e.addr)
    }

    /// Line `no` (1-based), if the file lists it.
    pub fn entry(&self, no: usize) -> Option<TrackerEntry> {
        no.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// Every tracker's address, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.entries.iter().map(|e| e.addr).collect()
    }
}

/// Where to look for tracker_info.txt when none is named: `$P2P_TRACKER_INFO` is handled by the
/// caller's flag parsing; then `./tracker_info.txt`, `$XDG_CONFIG_HOME/p2p/`, `/etc/p2p/`.
pub fn default_search_path() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("tracker_info.txt")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = config_home {
        paths.push(dir.join("p2p").join("tracker_info.txt"));
    }
    paths.push(PathBuf::from("/etc/p2p/tracker_info.txt"));
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrackerInfo, TrackerInfoError> {
        TrackerInfo::parse(Path::new("t.txt"), text)
    }

    #[test]
    fn both_forms_and_comments() {
        let info = parse("# trackers\n127.0.0.1:8080\n\n127.0.0.1 8081\n").unwrap();
        assert_eq!(info.entries.len(), 2);
        assert_eq!(info.tracker(2).unwrap().port(), 8081);
        assert!(info.tracker(0).is_none());
        assert!(info.tracker(3).is_none());
    }

    #[test]
    fn a_fingerprint_may_follow_either_form() {
        let fp = format!("sha256:{}", "ab".repeat(32));
        let info = parse(&format!("127.0.0.1:8080 {fp}\n127.0.0.1 8081\t{fp}\n")).unwrap();
        for entry in &info.entries {
            assert_eq!(entry.fingerprint.map(|f| f.to_string()), Some(fp.clone()));
        }
        assert_eq!(info.entry(2).unwrap().addr.port(), 8081);
        assert!(
            parse("127.0.0.1:8080 sha256:abc").is_err(),
            "short fingerprint"
        );
        assert!(parse("127.0.0.1:8080 extra").is_err());
        assert!(parse(&fp).is_err(), "no address");
    }

    #[test]
    fn malformed_lines_are_named() {
        let err = parse("127.0.0.1:8080\nnot an address at all\n").unwrap_err();
        assert!(err.to_string().contains("t.txt:2"), "{err}");
        assert!(matches!(parse(""), Err(TrackerInfoError::Empty { .. })));
        assert!(parse("127.0.0.1:0").is_err());
        assert!(parse("127.0.0.1:99999").is_err());
    }
}
