//! `p2pd`: parses flags, prepares, daemonizes unless `--foreground`, and runs.

use clap::Parser;
use p2p_proto::tracker_info::TrackerInfo;
use p2pd::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Per-user daemon of the p2p file sharing system: session, shares and downloads.
#[derive(Debug, Parser)]
#[command(name = "p2pd", version, about)]
struct Args {
    /// Control socket p2pctl talks to [default: $XDG_RUNTIME_DIR/p2pd/p2pd.sock].
    #[arg(long, env = "P2PD_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Directory of the daemon's database [default: $XDG_STATE_HOME/p2pd].
    #[arg(long, env = "P2PD_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The trackers' list [default: ./tracker_info.txt, $XDG_CONFIG_HOME/p2p/, /etc/p2p/].
    #[arg(long, env = "P2P_TRACKER_INFO", value_name = "FILE")]
    tracker_info: Option<PathBuf>,
    /// Address to accept peers on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// Stay in the foreground (for systemd and tests) instead of daemonizing.
    #[arg(long)]
    foreground: bool,
    /// Upload limit for the whole daemon, bytes per second: K, M, G are powers of 1024 (4M =
    /// 4 MiB/s); 0 means unlimited.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate)]
    upload_limit: Rate,
    /// Download limit for the whole daemon, same units as --upload-limit.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate)]
    download_limit: Rate,
}

/// A parsed `--*-limit`: bytes per second, `None` for unlimited.
#[derive(Debug, Clone, Copy)]
struct Rate(Option<u64>);

fn parse_rate(text: &str) -> Result<Rate, String> {
    p2p_proto::rate::parse_rate(text).map(Rate)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match resolve(args.socket, args.state_dir, args.tracker_info, args.listen) {
        Ok(mut c) => {
            c.upload_limit = args.upload_limit.0;
            c.download_limit = args.download_limit.0;
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
        p2p_proto::logging::init("info");
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
        tokio::spawn(stop_on_signal(shutdown.clone()));
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
        upload_limit: None,
        download_limit: None,
    })
}

/// Forks into the background; the parent exits 0 once the child runs. The child's output
/// goes to a log file in the state directory.
fn daemonize(config: &Config) -> anyhow::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.log_file())
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", config.log_file().display()))?;
    let log_err = log.try_clone()?;
    daemonize::Daemonize::new()
        .working_directory("/")
        .umask(0o077)
        .stdout(log)
        .stderr(log_err)
        .start()?;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    if p2p_proto::signals::terminated().await {
        shutdown.cancel();
    }
}
