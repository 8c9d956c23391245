//! Harness of the end-to-end tests: runs the real `trackerd`, `p2pd` and `p2pctl` binaries on
//! loopback, each test in its own temporary directory with its own ports.
//!
//! - [`Cluster`] owns a temp dir, a `tracker_info.txt` naming two free loopback ports, and the
//!   two [`Tracker`] processes; [`TrackerStatus`] is a tracker's `status` line, parsed, with
//!   the counters of what its cluster machinery did.
//! - [`Daemon`] is one user's `p2pd` (started with `--foreground`) and the `p2pctl` commands
//!   that talk to it.
//! - [`assert_ok`] / [`assert_fails`] check the command line contract of `p2pctl`: exit status
//!   and a single `p2pctl: <reason>` line on stderr; [`Daemon::expect_error`] checks the kind
//!   and reason of `p2pctl --json`.
//! - [`make_group`], [`write_test_file`] and the file commands of [`Daemon`] (`files`,
//!   `downloads`, `wait_download`, `peer_addr`) drive the data plane.
//! - [`wire`] speaks raw frames, to poke at the trackers, the control socket and the peer port
//!   with garbage.
//! - [`failover`] holds what the tracker failover tests share (a settled pair, a writer loop).
//!
//! Nothing here sleeps to wait: every wait polls a condition with a short interval and gives up
//! at a deadline with a message that says what it waited for. No check rests on the wording of
//! a program's log: tests look at replies, `--json` output and the trackers' `status` counters,
//! and logs are shown in failure messages. (The harness reads a log for two things only: the
//! peer address `p2pd` prints when it is ready, and the runtime's report of a panic.) Every
//! process a test starts is killed when the object that owns it is dropped, including a `p2pd`
//! that `p2pctl` started by itself (found through its pid file).

pub mod adversary;
mod assert;
mod bins;
pub mod capture;
mod cluster;
mod daemon;
pub mod failover;
pub mod faults;
mod files;
pub mod flood;
pub mod local;
pub mod netns;
mod process;
pub mod source;
mod status;
pub mod tls;
mod tracker;
pub mod upgrade;
pub mod wire;

pub use assert::{
    assert_exit_code, assert_fails, assert_ok, assert_one_line, stderr_of, stdout_of,
};
pub use bins::{bin, bin_dir};
pub use cluster::Cluster;
pub use daemon::{Daemon, password_of};
pub use files::{
    DOWNLOAD_TIMEOUT, PIECE_SIZE, assert_file_content, corrupt_every_piece_keep_mtime, make_group,
    piece_count, sha1_hex, write_test_file,
};
pub use process::{
    POLL_INTERVAL, READY_TIMEOUT, deadline_wait, run_bounded, wait_for, wait_for_every,
    wait_for_exit,
};
pub use status::{ROLE_AND_LOG_COUNTERS, TrackerStatus};
pub use tracker::Tracker;
