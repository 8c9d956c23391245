//! Parsing of `tracker_info.txt`: one tracker address per line, `host:port` or `host port`.
//! Blank lines and lines starting with `#` are ignored. The first tracker is the preferred
//! primary, the second its standby.

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
    #[error("{path}:{line}: expected `host:port` or `host port`, got {text:?}")]
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

/// The trackers of a tracker_info.txt, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerInfo {
    pub path: PathBuf,
    pub trackers: Vec<SocketAddr>,
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
            let joined = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [one] => (*one).to_string(),
                [host, port] => format!("{host}:{port}"),
                _ => return Err(bad()),
            };
            let addr: SocketAddr = joined.parse().map_err(|_| bad())?;
            if addr.port() == 0 {
                return Err(bad());
            }
            trackers.push(addr);
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
            trackers,
        })
    }

    /// The address of tracker number `no` (1-based), if the file lists it.
    pub fn tracker(&self, no: usize) -> Option<SocketAddr> {
        no.checked_sub(1)
            .and_then(|i| self.trackers.get(i))
            .copied()
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
        assert_eq!(info.trackers.len(), 2);
        assert_eq!(info.tracker(2).unwrap().port(), 8081);
        assert!(info.tracker(0).is_none());
        assert!(info.tracker(3).is_none());
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
