//! `p2pd`: the per-user daemon. Holds the login session, answers `p2pctl` on a Unix socket and
//! talks to the trackers.
//!
//! Start-up is split in two so that everything that can fail because of the user's setup
//! (paths, locks, ports) fails in [`prepare`], before the daemon forks into the background and
//! while the user still sees stderr; [`run`] then serves until shutdown.

pub mod announcer;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control_socket;
pub mod daemon;
pub mod download;
pub mod grant_key;
pub mod hashing;
pub mod holdings;
pub mod peer_server;
pub mod plane;
pub mod rate_limit;
pub mod reach;
pub mod session;
pub mod shares;
pub mod state;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod tracker_client;
pub mod tracker_pins;
pub mod upload_spread;
pub mod user_tracker;

use config::Config;
use daemon::Daemon;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Socket(#[from] control_socket::SocketError),
    #[error("another p2pd is already running with socket {0} (pid file is locked)")]
    Locked(std::path::PathBuf),
    #[error("cannot open pid file {path}: {source}")]
    PidFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("refusing pid file {path}: {why}; remove it")]
    PidFileRefused {
        path: std::path::PathBuf,
        why: String,
    },
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("cannot listen for peers on {addr}: {source}")]
    PeerListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] p2p_proto::identity::IdentityError),
}

/// What [`prepare`] acquired: the lock, the database and the bound sockets.
pub struct Prepared {
    pub config: Config,
    pid_lock: Flock<File>,
    state: state::StateDb,
    identity: p2p_proto::identity::Identity,
    control: std::os::unix::net::UnixListener,
    peers: std::net::TcpListener,
}

/// Takes the pid-file lock, opens the database and binds both sockets.
pub fn prepare(config: Config) -> Result<Prepared, StartError> {
    control_socket::ensure_socket_dir(&config.socket)?;
    let pid_path = config.pid_file();
    let pid_file = open_pid_file(&pid_path)?;
    let pid_lock = Flock::lock(pid_file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| StartError::Locked(config.socket.clone()))?;
    let state = state::StateDb::open(&config.db_file())?;
    let identity = p2p_proto::identity::Identity::load_or_create(&config.key_file())?;
    let control = control_socket::bind_control_socket(&config.socket)?;
    let peers =
        reach::sockets::bind_listener(config.listen).map_err(|source| StartError::PeerListen {
            addr: config.listen,
            source,
        })?;
    Ok(Prepared {
        config,
        pid_lock,
        state,
        identity,
        control,
        peers,
    })
}

/// Opens (creating, 0600) the pid file without following a symlink and without truncating
/// anything before it is known to be our own regular file: a name planted there must never make
/// the daemon write into another file.
fn open_pid_file(path: &std::path::Path) -> Result<File, StartError> {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: String| StartError::PidFileRefused {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted there must not hang the start.
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(code) if code == nix::libc::ELOOP => refuse("it is a symlink".into()),
            _ => StartError::PidFile {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let meta = file.metadata().map_err(|source| StartError::PidFile {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    let uid = p2p_proto::paths::current_uid();
    if meta.uid() != uid {
        return Err(refuse(format!(
            "owned by uid {}, not by uid {uid}",
            meta.uid()
        )));
    }
    if meta.nlink() != 1 {
        return Err(refuse(format!("it has {} hard links", meta.nlink())));
    }
    Ok(file)
}

impl Prepared {
    /// Records the current pid in the (locked) pid file. Called after daemonizing.
    pub fn write_pid(&mut self) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        let file: &mut File = &mut self.pid_lock;
        file.set_len(0)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()
    }
}

/// Serves `p2pctl` until `shutdown` is cancelled, then removes the socket and pid file.
pub async fn run(prepared: Prepared, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Prepared {
        config,
        pid_lock,
        state,
        identity,
        control,
        peers,
    } = prepared;
    let control = tokio::net::UnixListener::from_std(control)?;
    let peers = tokio::net::TcpListener::from_std(peers)?;
    tracing::info!(
        socket = %config.socket.display(),
        peers = %peers.local_addr()?,
        state = %config.state_dir.display(),
        key = %identity.fingerprint(),
        "p2pd ready"
    );
    let peer_port = peers.local_addr()?.port();
    let reach = Arc::new(reach::Reach::new(
        peers.local_addr()?,
        config.public_addr,
        config.ways,
    ));
    tracing::info!(ipv6 = ?reach.ipv6(), "global IPv6 addresses");
    let state = state::State::new(state);
    let pins = tracker_pins::TrackerPins::load(state.clone(), &config.trackers.entries).await?;
    let pins = Arc::new(pins);
    let tracker =
        tracker_client::TrackerClient::new(config.trackers.addrs(), identity, Arc::clone(&pins));
    let daemon = Daemon::new(
        config.clone(),
        state,
        tracker,
        pins,
        Arc::clone(&reach),
        shutdown.clone(),
    )
    .await?;
    let daemon = Arc::new(daemon);
    let plane = Arc::clone(&daemon.plane);
    let peer_server = tokio::spawn(peer_server::serve(peers, Arc::clone(&plane)));
    let mapper = tokio::spawn(reach::portmap::run(
        peer_port,
        config.port_mapping.for_listener(reach.listen),
        reach.mapping.clone(),
        shutdown.clone(),
    ));
    let announcer = tokio::spawn(announcer::run(
        Arc::clone(&plane),
        Arc::clone(&daemon.tracker),
        peer_port,
    ));
    if let Some(session) = daemon.session.get() {
        tracing::info!(user = %session.user, "resuming session");
        shares::restore(&plane, &daemon.downloads, &session.user).await;
    }
    p2p_proto::service::notify_ready();
    control_socket::serve(control, Arc::clone(&daemon), shutdown).await;
    p2p_proto::service::notify_stopping();
    daemon.downloads.stop_all();
    let _ = peer_server.await;
    let _ = announcer.await;
    let _ = mapper.await;
    let _ = std::fs::remove_file(&config.socket);
    let _ = std::fs::remove_file(config.pid_file());
    drop(pid_lock);
    tracing::info!("p2pd stopped");
    Ok(())
}
