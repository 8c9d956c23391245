//! The command line of `p2pctl`.
//!
//! Command names and the order of their arguments are a contract inherited from the original
//! interactive client (see DESIGN.md), so they are snake_case and positional. The library
//! exposes this module so that the man page and completion generator (`xtask`) can call
//! [`command`]; the bare `about` and `version` below are p2pctl's own package description and
//! version, the page's NAME line.

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

/// Sends one command to the per-user p2pd daemon and prints its answer.
///
/// p2pctl starts p2pd itself when no daemon answers on the socket (except for `status`).
#[derive(Debug, Parser)]
#[command(name = "p2pctl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts, before or after its name.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Control socket of p2pd
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "P2PD_SOCKET",
        default_value_os_t = p2p_proto::paths::default_socket_path()
    )]
    pub socket: PathBuf,

    /// Print one JSON object on stdout instead of text, for scripts
    #[arg(long, global = true)]
    pub json: bool,
}

/// One command to the daemon. Value names follow the contract's spelling (`<user_id>`).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// Create an account on the tracker (password read from the terminal or stdin if omitted)
    CreateUser {
        /// User id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "user_id")]
        user: String,
        /// Visible in `ps`; leave it out to be asked for it
        #[arg(value_name = "password")]
        password: Option<String>,
    },
    /// Log in, and share again what this user shared before logging out
    Login {
        /// User id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "user_id")]
        user: String,
        /// Visible in `ps`; leave it out to be asked for it
        #[arg(value_name = "password")]
        password: Option<String>,
    },
    /// Log out and stop sharing
    Logout,
    /// Create a group owned by you
    CreateGroup {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
    },
    /// Ask the owner of a group to let you in
    JoinGroup {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
    },
    /// Leave a group; an owner hands it to the longest-standing member
    LeaveGroup {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
    },
    /// List the groups (by name, a page at a time) and your membership in each
    ListGroups {
        #[command(flatten)]
        page: PageOpts,
    },
    /// List the pending join requests of a group you own
    ListRequests {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
        #[command(flatten)]
        page: PageOpts,
    },
    /// Let a user who asked to join into a group you own
    AcceptRequest {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
        /// User id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "user_id")]
        user: String,
    },
    /// Share a file with a group
    UploadFile {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
        /// The file to share, relative to the current directory or absolute
        #[arg(value_name = "file_path")]
        path: PathBuf,
    },
    /// List the files shared in a group (by name, a page at a time)
    ListFiles {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
        #[command(flatten)]
        page: PageOpts,
    },
    /// Download a file of a group into a directory or to a new file path
    DownloadFile {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
        /// The file's name in the group, as list_files shows it
        #[arg(value_name = "file_name")]
        file: String,
        /// An existing directory (the file keeps its name) or a new file path whose parent exists
        #[arg(value_name = "destination_path")]
        destination: PathBuf,
    },
    /// Show the progress of every download ([D] downloading, [C] complete)
    ShowDownloads {
        /// Redraw live progress bars until every download is finished or Ctrl-C
        #[arg(short, long)]
        watch: bool,
    },
    /// Stop sharing one of your files with a group
    StopShare {
        /// Group id: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(value_name = "group_id")]
        group: String,
        /// The file's name in the group, as list_files shows it
        #[arg(value_name = "file_name")]
        file: String,
    },
    /// Show the daemon's state: user, keys, tracker in use, last tracker error (never starts p2pd)
    Status,
    /// Accept a new key for a tracker whose key changed (its line in tracker_info.txt names none)
    TrustTracker {
        /// The tracker, as its line of tracker_info.txt names it (host:port)
        #[arg(value_name = "tracker")]
        tracker: String,
        /// Its new key, as `trackerd --fingerprint` prints it on the tracker's machine
        #[arg(value_name = "fingerprint")]
        fingerprint: String,
    },
}

/// Which page of a long listing to show. The tracker sends at most 1000 entries per answer;
/// when more remain, the last line says how to ask for the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct PageOpts {
    /// Start after this entry (the last one the previous page showed)
    #[arg(long, value_name = "NAME")]
    pub after: Option<String>,
    /// Show at most N entries (1 to 1000; default 1000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
}

/// The clap command, for man pages and shell completions.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("p2pctl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn subcommand_names_are_the_contract() {
        let names: Vec<String> = command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for name in [
            "create_user",
            "login",
            "logout",
            "create_group",
            "join_group",
            "leave_group",
            "list_groups",
            "list_requests",
            "accept_request",
            "upload_file",
            "list_files",
            "download_file",
            "show_downloads",
            "stop_share",
            "status",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        for sub in command().get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
        }
    }

    #[test]
    fn positional_order() {
        let cli = parse(&["download_file", "g1", "movie.mkv", "/tmp/x"]).unwrap();
        assert_eq!(
            cli.command,
            Command::DownloadFile {
                group: "g1".into(),
                file: "movie.mkv".into(),
                destination: "/tmp/x".into()
            }
        );
        let cli = parse(&["accept_request", "g1", "bob"]).unwrap();
        assert_eq!(
            cli.command,
            Command::AcceptRequest {
                group: "g1".into(),
                user: "bob".into()
            }
        );
        let cli = parse(&["login", "alice"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Login {
                user: "alice".into(),
                password: None
            }
        );
    }

    #[test]
    fn listings_take_a_page() {
        let cli = parse(&["list_files", "g1", "--after", "b.txt", "--limit", "2"]).unwrap();
        assert_eq!(
            cli.command,
            Command::ListFiles {
                group: "g1".into(),
                page: PageOpts {
                    after: Some("b.txt".into()),
                    limit: Some(2)
                }
            }
        );
        let cli = parse(&["list_groups"]).unwrap();
        assert_eq!(
            cli.command,
            Command::ListGroups {
                page: PageOpts::default()
            }
        );
        for bad in ["0", "1001", "-1", "x"] {
            let err = parse(&["list_groups", "--limit", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "--limit {bad}");
        }
    }

    #[test]
    fn global_options_before_or_after() {
        let a = parse(&["--json", "--socket", "/s", "list_groups"]).unwrap();
        let b = parse(&["list_groups", "--socket", "/s", "--json"]).unwrap();
        for cli in [a, b] {
            assert!(cli.global.json);
            assert_eq!(cli.global.socket, PathBuf::from("/s"));
        }
    }

    #[test]
    fn unknown_command_is_a_usage_error() {
        let err = parse(&["frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = parse(&["login"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
