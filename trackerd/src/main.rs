//! `trackerd <tracker_info.txt> <tracker_no>`: the tracker daemon.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use trackerd::cli::Args;
use trackerd::commands::Policy;
use trackerd::throttle::Rates;
use trackerd::{Config, Tracker};

fn main() -> ExitCode {
    let args = Args::parse();
    p2p_proto::logging::init("info");
    ignore_background_reads();
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::var_os("STATE_DIRECTORY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("trackerd-{}", args.tracker_no)))
    });
    if args.fingerprint {
        return match trackerd::identity(&data_dir) {
            Ok(identity) => {
                println!("{}", identity.fingerprint());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("trackerd: {e}");
                ExitCode::from(2)
            }
        };
    }
    let config = Config {
        tracker_info: args.tracker_info,
        tracker_no: args.tracker_no,
        data_dir,
        read_stdin: true,
        cluster_key: args.cluster_key,
        policy: Policy {
            grant_lifetime: args.grant_lifetime.as_secs().max(1),
            session_idle: args.session_idle.as_secs().max(1),
            rates: Rates {
                logins_per_minute: args.logins_per_minute,
                accounts_per_hour: args.accounts_per_hour,
            },
        },
        log_keep: trackerd::store::LogKeep {
            records: args.log_keep,
            ..Default::default()
        },
        relay: trackerd::relay::RelaySettings {
            rate: args.relay_rate.0,
            total: args.relay_total.0,
            max: args.relay_max,
            per_user: args.relay_per_user,
            idle: args.relay_idle,
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trackerd: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        p2p_proto::signals::cancel_on_signal(shutdown.clone());
        let tracker = match Tracker::bind(config).await {
            Ok(t) => t,
            Err(e) => {
                // One line: what is wrong and what to do (a corrupt database exits 3, which
                // the unit does not restart on).
                eprintln!("trackerd: {e}");
                return ExitCode::from(e.exit_status());
            }
        };
        p2p_proto::service::notify_ready();
        tracker.serve(shutdown).await;
        p2p_proto::service::notify_stopping();
        ExitCode::SUCCESS
    })
}

/// A tracker started in the background of an interactive shell (`trackerd … &`) must keep
/// running: reading the terminal would stop it with SIGTTIN. With the signal ignored the read
/// fails instead, and only the stdin commands are lost.
fn ignore_background_reads() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_IGN runs no code in signal context; it is done before any thread
    // that could read stdin starts.
    if let Err(e) = unsafe { signal(Signal::SIGTTIN, SigHandler::SigIgn) } {
        tracing::warn!(error = %e, "cannot ignore SIGTTIN");
    }
}
