//! The command line of `trackerd`, apart from `main` so man pages can be generated from it.

use clap::{CommandFactory, Parser};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// The tracker of the p2p file sharing system: users, groups and file metadata.
#[derive(Debug, Parser)]
#[command(name = "trackerd", version, about)]
pub struct Args {
    /// File listing the trackers, one `host:port` per line, each optionally followed by the
    /// tracker's key fingerprint.
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
    /// Print this tracker's key fingerprint (making the key if there is none) and exit.
    #[arg(long)]
    pub fingerprint: bool,
    /// How long a download grant is valid (e.g. 90s, 2m); downloaders renew theirs as they go.
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = parse_duration)]
    pub grant_lifetime: Duration,
    /// How long a session may go unused before it expires (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_duration)]
    pub session_idle: Duration,
    /// Most login attempts per minute from one address (an IPv6 /64 counts as one).
    #[arg(long, value_name = "N", default_value = "60")]
    pub logins_per_minute: NonZeroU32,
    /// Most accounts created per hour from one address.
    #[arg(long, value_name = "N", default_value = "20")]
    pub accounts_per_hour: NonZeroU32,
    /// How many of the newest log records to keep (older ones are removed as new ones come;
    /// a standby further behind gets a snapshot). The log is also kept under 256 MiB.
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_keep: u64,
    /// Most bytes per second one relayed connection may move, both directions together
    /// (K, M, G are powers of 1024; 0 = unlimited).
    #[arg(long, value_name = "RATE", default_value = "8M", value_parser = parse_rate)]
    pub relay_rate: Rate,
    /// Most bytes per second all relayed connections together may move (0 = unlimited).
    #[arg(long, value_name = "RATE", default_value = "64M", value_parser = parse_rate)]
    pub relay_total: Rate,
    /// Most relayed connections at once, those waiting for their seeder included (0 turns the
    /// relay off).
    #[arg(long, value_name = "N", default_value_t = crate::relay::DEFAULT_MAX)]
    pub relay_max: usize,
    /// Most relayed connections one user may have opened at once.
    #[arg(long, value_name = "N", default_value_t = crate::relay::DEFAULT_PER_USER)]
    pub relay_per_user: usize,
    /// A relayed connection where no byte moved for this long is closed (e.g. 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub relay_idle: Duration,
}

/// A rate from the command line: bytes per second, `None` for unlimited (`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub Option<u64>);

fn parse_rate(text: &str) -> Result<Rate, p2p_proto::rate::RateError> {
    p2p_proto::rate::parse_rate(text).map(Rate)
}

fn parse_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}
