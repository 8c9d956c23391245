//! `trackerd <tracker_info.txt> <tracker_no>`: the tracker daemon.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use trackerd::{Config, Tracker};

/// The tracker of the p2p file sharing system: users, groups and file metadata.
#[derive(Debug, Parser)]
#[command(name = "trackerd", version, about)]
struct Args {
    /// File listing the trackers, one `host:port` per line.
    tracker_info: PathBuf,
    /// Which line of the file is this tracker (1-based).
    tracker_no: usize,
    /// Where the database lives [default: $STATE_DIRECTORY under systemd, else ./trackerd-<no>/].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_proto::logging::init("info");
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::var_os("STATE_DIRECTORY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("trackerd-{}", args.tracker_no)))
    });
    let config = Config {
        tracker_info: args.tracker_info,
        tracker_no: args.tracker_no,
        data_dir,
        read_stdin: true,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trackerd: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let tracker = match Tracker::bind(config).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("trackerd: {e}");
                return ExitCode::from(2);
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        tracker.serve(shutdown).await;
        ExitCode::SUCCESS
    })
}

async fn stop_on_signal(shutdown: CancellationToken) {
    if p2p_proto::signals::terminated().await {
        shutdown.cancel();
    }
}
