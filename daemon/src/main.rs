//! `p2pd`: parses flags, prepares, daemonizes unless `--foreground`, and runs.

use clap::Parser;
use p2p_proto::tracker_info::TrackerInfo;
use p2pd::cli::Args;
use p2pd::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match resolve(args.socket, args.state_dir, args.tracker_info, args.listen) {
        Ok(mut c) => {
            c.upload_limit = args.upload_limit.0;
            c.download_limit = args.download_limit.0;
            c.public_addr = args.public_addr;
            c.port_mapping = args.port_mapping;
            c.ways = p2pd::reach::dial::Ways::from_list(&args.connect_via);
            c
        }
        Err(e) => {
            eprintln!("p2pd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.foreground {
        p2p_proto::logging::init("info");
    }
    let mut prepared = match p2pd::prepare(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("p2pd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.foreground {
        if let Err(e) = daemonize(&prepared.config) {
            eprintln!("p2pd: cannot daemonize: {e}");
            return ExitCode::FAILURE;
        }
        // The log goes to daily files (p2pd.log.YYYY-MM-DD, the last 7 kept); p2pd.stderr
        // keeps only what bypasses it (a panic report).
        p2p_proto::logging::init_daily_files(
            "info",
            &prepared.config.state_dir,
            Config::LOG_PREFIX,
        );
    }
    if let Err(e) = prepared.write_pid() {
        tracing::warn!(error = %e, "cannot write pid file");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        p2p_proto::signals::cancel_on_signal(shutdown.clone());
        match p2pd::run(prepared, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "p2pd failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// Makes every path absolute and finds tracker_info.txt, before any chdir.
fn resolve(
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    tracker_info: Option<PathBuf>,
    listen: SocketAddr,
) -> anyhow::Result<Config> {
    let socket = std::path::absolute(socket.unwrap_or_else(p2p_proto::paths::default_socket_path))?;
    let state_dir =
        std::path::absolute(state_dir.unwrap_or_else(p2p_proto::paths::default_state_dir))?;
    let info_path = match tracker_info {
        Some(path) => path,
        None => p2p_proto::tracker_info::default_search_path()
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no tracker_info.txt found (looked in ./, $XDG_CONFIG_HOME/p2p/, /etc/p2p/); \
                     pass --tracker-info FILE"
                )
            })?,
    };
    let trackers = TrackerInfo::load(&std::path::absolute(&info_path)?)?;
    Ok(Config {
        socket,
        state_dir,
        trackers,
        listen,
        public_addr: None,
        port_mapping: p2pd::reach::PortMapping::Auto,
        ways: p2pd::reach::dial::Ways::ALL,
        upload_limit: None,
        download_limit: None,
    })
}

/// Forks into the background; the parent exits 0 once the child runs. The child's stdout and
/// stderr go to p2pd.stderr in the state directory (its log to daily files beside it).
fn daemonize(config: &Config) -> anyhow::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.stderr_file())
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", config.stderr_file().display()))?;
    let log_err = log.try_clone()?;
    daemonize::Daemonize::new()
        .working_directory("/")
        .umask(0o077)
        .stdout(log)
        .stderr(log_err)
        .start()?;
    Ok(())
}
