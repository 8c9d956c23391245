//! `trackerd`: keeps users, sessions, groups and file metadata in redb, tracks in memory which
//! daemons hold which file, and answers `p2pd` over TCP.
//!
//! `main` parses flags and calls [`Tracker::bind`] then [`Tracker::serve`], so tests and other
//! programs can run a tracker in-process.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod log;
pub mod password;
pub mod reach;
pub mod records;
pub mod relay;
pub mod server;
mod stdin;
pub mod store;
pub mod swarm;
pub mod throttle;

use commands::{Ctx, Policy};
use p2p_proto::identity::{Fingerprint, Identity, IdentityError};
use p2p_proto::tracker_info::{TrackerEntry, TrackerInfo, TrackerInfoError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{LogKeep, Resync, Store, StoreError};
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
    /// The shared secret of the two trackers [default: `cluster.key` beside tracker_info.txt].
    pub cluster_key: Option<PathBuf>,
    /// How long grants and idle sessions live.
    pub policy: Policy,
    /// How much of the log to keep.
    pub log_keep: LogKeep,
    /// The relay's rates and caps.
    pub relay: relay::RelaySettings,
}

/// File name of the tracker's key inside its data directory.
pub const KEY_FILE: &str = "tracker.key";

/// Exit status of a start-up failure the unit must not restart on: a corrupt database (of a
/// tracker without a partner to re-sync from).
pub const EXIT_CORRUPT: u8 = 3;
/// Exit status of a configuration problem.
pub const EXIT_CONFIG: u8 = 2;

/// Why a tracker could not start: a configuration problem (exit status 2) or a corrupt
/// database (exit status 3); see [`StartError::exit_status`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "database {path} was replaced because it was corrupt, and this tracker must re-sync          from the other tracker, but {info} lists no other tracker; list it again, or put the          kept copy (tracker.redb.corrupt-*) back in place"
    )]
    ResyncWithoutPeer { path: PathBuf, info: PathBuf },
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
    #[error(transparent)]
    ClusterKey(#[from] cluster::key::KeyError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "{path} names key {listed} for tracker {no}, but this tracker's key ({key_file}) is \
         {actual}; fix the line or use the data directory that holds that key"
    )]
    NotListedKey {
        path: PathBuf,
        no: usize,
        listed: Fingerprint,
        actual: Fingerprint,
        key_file: PathBuf,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StartError {
    /// The exit status for this failure: [`EXIT_CORRUPT`] for a corrupt database (restarting
    /// would only fail again), else [`EXIT_CONFIG`].
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Store(StoreError::CorruptFile { .. }) | Self::ResyncWithoutPeer { .. } => {
                EXIT_CORRUPT
            }
            _ => EXIT_CONFIG,
        }
    }
}

/// Loads (or makes) the key of the tracker whose data directory is `data_dir`, making the
/// directory (0700) if needed. What `trackerd … --fingerprint` prints is its fingerprint.
pub fn identity(data_dir: &Path) -> Result<Identity, StartError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| StartError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
    Ok(Identity::load_or_create(&data_dir.join(KEY_FILE))?)
}

/// A tracker that is listening and has its database open.
pub struct Tracker {
    listener: TcpListener,
    ctx: Ctx,
    read_stdin: bool,
    trackers: Vec<TrackerEntry>,
    cluster_key: Vec<u8>,
    identity: Identity,
    acceptor: p2p_proto::tls::TlsAcceptor,
    relay: Arc<relay::Relay>,
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
                count: info.entries.len(),
            })?;
        let identity = identity(&config.data_dir)?;
        if let Some(listed) = info.entry(config.tracker_no).and_then(|e| e.fingerprint)
            && listed != identity.fingerprint()
        {
            return Err(StartError::NotListedKey {
                path: config.tracker_info.clone(),
                no: config.tracker_no,
                listed,
                actual: identity.fingerprint(),
                key_file: config.data_dir.join(KEY_FILE),
            });
        }
        let acceptor = p2p_proto::tls::acceptor(&identity)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let cluster_key = if info.entries.len() > 1 {
            let path = config
                .cluster_key
                .clone()
                .unwrap_or_else(|| cluster::key::default_path(&config.tracker_info));
            cluster::key::load_or_create(&path)?
        } else {
            Vec::new()
        };
        let store = open_store(&config, info.entries.len() > 1)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut ctx = Ctx::new(Arc::new(store), config.tracker_no, workers, config.policy);
        ctx.prober = Some(reach::probe::Prober::new(identity.clone()));
        Ok(Self {
            listener,
            ctx,
            read_stdin: config.read_stdin,
            trackers: info.entries,
            cluster_key,
            identity,
            acceptor,
            relay: Arc::new(relay::Relay::new(config.relay)),
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
            key = %self.identity.fingerprint(),
            "tracker listening"
        );
        let cluster = Arc::new(cluster::Cluster::new(
            self.ctx.tracker_no,
            &self.trackers,
            self.cluster_key,
            self.identity,
            Arc::clone(&self.ctx.store),
            shutdown.clone(),
        ));
        if self.read_stdin {
            let status = Arc::clone(&cluster);
            tokio::spawn(stdin::read_commands(shutdown.clone(), move || {
                status.status_line()
            }));
        }
        tokio::spawn(expire_swarm(self.ctx.clone(), shutdown.clone()));
        let supervisor = tokio::spawn(Arc::clone(&cluster).run());
        server::serve(
            self.listener,
            self.ctx,
            cluster,
            self.acceptor,
            self.relay,
            shutdown,
        )
        .await;
        let _ = supervisor.await;
        tracing::info!("tracker stopped");
    }
}

/// Opens the database. A tracker with a partner moves a corrupt one aside and starts empty,
/// to re-sync from the other tracker; a lone tracker refuses to start on one.
fn open_store(config: &Config, paired: bool) -> Result<Store, StartError> {
    if !paired {
        let store = Store::open_with(&config.data_dir, config.log_keep)?;
        match store.resync()? {
            Some(Resync::Corrupt) => {
                return Err(StartError::ResyncWithoutPeer {
                    path: store.path().to_path_buf(),
                    info: config.tracker_info.clone(),
                });
            }
            // After a storage fault: a lone tracker's data is its own.
            Some(Resync::Fault) => store.clear_resync()?,
            None => {}
        }
        return Ok(store);
    }
    let (store, moved) = Store::open_replacing_corrupt(&config.data_dir, config.log_keep)?;
    if let Some(aside) = moved {
        tracing::warn!(
            kept = %aside.display(),
            "started with an empty database after a corrupt one; re-syncing from the other tracker"
        );
    }
    Ok(store)
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
        ctx.throttle.tidy();
        let now = std::time::Instant::now();
        let dropped = ctx.swarm(|s| s.expire(now));
        ctx.reach(|r| {
            r.places.expire(now);
            r.invites.expire(now);
        });
        if dropped > 0 {
            tracing::debug!(dropped, "expired swarm entries");
        }
    }
}
