//! The command line of `trackerd`, apart from `main` so man pages can be generated from it.

use clap::{CommandFactory, Parser};
use std::path::PathBuf;

/// The tracker of the p2p file sharing system: users, groups and file metadata.
#[derive(Debug, Parser)]
#[command(name = "trackerd", version, about)]
pub struct Args {
    /// File listing the trackers, one `host:port` per line.
    pub tracker_info: PathBuf,
    /// Which line of the file is this tracker (1-based).
    pub tracker_no: usize,
    /// Where the database lives [default: $STATE_DIRECTORY under systemd, else ./trackerd-<no>/].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Shared secret of the two trackers [default: cluster.key beside tracker_info.txt,
    /// created if missing; copy it to the other tracker's machine].
    #[arg(long, value_name = "FILE")]
    pub cluster_key: Option<PathBuf>,
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}
