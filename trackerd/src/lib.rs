//! `trackerd`: keeps users, sessions, groups and file metadata in redb, tracks in memory which
//! daemons hold which file, and answers `p2pd` over TCP.
//!
//! `main` parses flags and calls [`Tracker::bind`] then [`Tracker::serve`], so tests and other
//! programs can run a tracker in-process.

pub mod cli;
pub mod commands;
pub mod log;
pub mod password;
pub mod records;
pub mod server;
mod stdin;
pub mod store;
pub mod swarm;

use commands::Ctx;
use p2p_proto::tracker_info::{TrackerInfo, TrackerInfoError};
use std::path::PathBuf;
use store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything a tracker needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub tracker_info: PathBuf,
    /// 1-based line of tracker_info.txt this tracker listens on.
    pub tracker_no: usize,
    pub data_dir: PathBuf,
    /// Read `quit` from stdin.
    pub read_stdin: bool,
}

/// Why a tracker could not start. Every variant is a configuration problem (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    TrackerInfo(#[from] TrackerInfoError),
    #[error("tracker number {no} is out of range: {path} lists {count} tracker(s)")]
    NoSuchTracker {
        no: usize,
        path: PathBuf,
        count: usize,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot load the tracker's signing key: {0}")]
    SigningKey(p2p_proto::ErrorReply),
}

/// A tracker that is listening and has its database open.
pub struct Tracker {
    listener: TcpListener,
    ctx: Ctx,
    read_stdin: bool,
}

impl Tracker {
    /// Reads the configuration, opens the database and binds the listening socket.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let info = TrackerInfo::load(&config.tracker_info)?;
        let addr = info
            .tracker(config.tracker_no)
            .ok_or_else(|| StartError::NoSuchTracker {
                no: config.tracker_no,
                path: config.tracker_info.clone(),
                count: info.trackers.len(),
            })?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let store = Store::open(&config.data_dir)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let ctx = Ctx::new(store, config.tracker_no, workers).map_err(StartError::SigningKey)?;
        Ok(Self {
            listener,
            ctx,
            read_stdin: config.read_stdin,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled (or `quit` is read on stdin), then waits for every
    /// connection to close and closes the database.
    pub async fn serve(self, shutdown: CancellationToken) {
        let addr = self.local_addr().ok();
        let last_seq = self.ctx.store.last_seq().unwrap_or(0);
        tracing::info!(
            ?addr,
            tracker_no = self.ctx.tracker_no,
            last_seq,
            "tracker listening"
        );
        if self.read_stdin {
            tokio::spawn(stdin::read_commands(shutdown.clone()));
        }
        tokio::spawn(expire_swarm(self.ctx.clone(), shutdown.clone()));
        server::serve(self.listener, self.ctx, shutdown).await;
        tracing::info!("tracker stopped");
    }
}

/// Drops swarm entries whose daemon stopped announcing, every [`swarm::EXPIRE_INTERVAL`].
/// (Stale entries are never offered anyway; this bounds the memory they hold.)
async fn expire_swarm(ctx: Ctx, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(swarm::EXPIRE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let dropped = ctx.swarm(|s| s.expire(std::time::Instant::now()));
        if dropped > 0 {
            tracing::debug!(dropped, "expired swarm entries");
        }
    }
}
