//! The command line of `p2pd`, apart from `main` so man pages can be generated from it.

use clap::{CommandFactory, Parser};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Per-user daemon of the p2p file sharing system: session, shares and downloads.
#[derive(Debug, Parser)]
#[command(name = "p2pd", version, about)]
pub struct Args {
    /// Control socket p2pctl talks to [default: $XDG_RUNTIME_DIR/p2pd/p2pd.sock].
    #[arg(long, env = "P2PD_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Directory of the daemon's database [default: $XDG_STATE_HOME/p2pd].
    #[arg(long, env = "P2PD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The trackers' list [default: ./tracker_info.txt, $XDG_CONFIG_HOME/p2p/, /etc/p2p/].
    #[arg(long, env = "P2P_TRACKER_INFO", value_name = "FILE")]
    pub tracker_info: Option<PathBuf>,
    /// Address to accept peers on; the default `[::]:0` (a free port) accepts IPv4 and IPv6.
    #[arg(long, value_name = "ADDR", default_value = "[::]:0")]
    pub listen: SocketAddr,
    /// The public address peers can reach this daemon at, for a port forward made by hand on
    /// the router (`ip:port`); the tracker checks it before it tells peers.
    #[arg(long, value_name = "ADDR")]
    pub public_addr: Option<SocketAddr>,
    /// Which protocols may ask the gateway for a port mapping (a one-hour lease, renewed
    /// while the daemon runs, removed at exit); none is asked for a loopback listener.
    #[arg(
        long,
        env = "P2PD_PORT_MAPPING",
        value_name = "HOW",
        value_enum,
        default_value = "auto"
    )]
    pub port_mapping: crate::reach::PortMapping,
    /// The ways a download may connect to a peer, comma-separated: `direct` (its address or
    /// port mapping, IPv6 first), `punch` (a hole punch the tracker coordinates) and `relay`
    /// (through the tracker, end-to-end encrypted), tried in that order.
    #[arg(
        long,
        value_name = "WAYS",
        value_enum,
        value_delimiter = ',',
        default_value = "direct,punch,relay"
    )]
    pub connect_via: Vec<crate::reach::dial::Via>,
    /// Stay in the foreground (for systemd and tests) instead of daemonizing.
    #[arg(long)]
    pub foreground: bool,
    /// Upload limit for the whole daemon, bytes per second: K, M, G are powers of 1024 (4M =
    /// 4 MiB/s); 0 means unlimited.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate)]
    pub upload_limit: Rate,
    /// Download limit for the whole daemon, same units as --upload-limit.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = parse_rate)]
    pub download_limit: Rate,
}

/// A parsed `--*-limit`: bytes per second, `None` for unlimited.
#[derive(Debug, Clone, Copy)]
pub struct Rate(pub Option<u64>);

fn parse_rate(text: &str) -> Result<Rate, p2p_proto::rate::RateError> {
    p2p_proto::rate::parse_rate(text).map(Rate)
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Args::command()
}
