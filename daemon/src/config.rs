//! The daemon's resolved configuration: every path absolute, the tracker list loaded.

use p2p_proto::tracker_info::TrackerInfo;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    /// The control socket `p2pctl` talks to.
    pub socket: PathBuf,
    /// Where the daemon's database lives.
    pub state_dir: PathBuf,
    /// The trackers, in order of preference.
    pub trackers: TrackerInfo,
    /// Address the peer listener binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// `--public-addr`: a port forward made by hand.
    pub public_addr: Option<SocketAddr>,
    /// `--port-mapping`.
    pub port_mapping: crate::reach::PortMapping,
    /// `--connect-via`.
    pub ways: crate::reach::dial::Ways,
    /// Upload limit for the whole daemon, bytes per second (`None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Download limit for the whole daemon, bytes per second (`None`: unlimited).
    pub download_limit: Option<u64>,
}

impl Config {
    /// The pid file, beside the socket: `p2pd.sock` → `p2pd.pid`. It is also the lock that
    /// keeps a second daemon off the same socket.
    pub fn pid_file(&self) -> PathBuf {
        self.socket.with_extension("pid")
    }

    /// The database file.
    pub fn db_file(&self) -> PathBuf {
        self.state_dir.join("p2pd.redb")
    }

    /// The daemon's key: its identity on the network.
    pub fn key_file(&self) -> PathBuf {
        self.state_dir.join("identity.key")
    }

    /// Name prefix of a daemonized p2pd's daily log files (`p2pd.log.YYYY-MM-DD`).
    pub const LOG_PREFIX: &'static str = "p2pd.log";

    /// Where a daemonized p2pd's stdout and stderr go (only what bypasses the log, such as a
    /// panic report). Its name must not start with [`LOG_PREFIX`](Self::LOG_PREFIX): the
    /// rotation removes the oldest files that do.
    pub fn stderr_file(&self) -> PathBuf {
        self.state_dir.join("p2pd.stderr")
    }
}
