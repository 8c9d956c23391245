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
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}
