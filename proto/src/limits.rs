//! Hard limits and timeouts shared by every program.

use std::time::Duration;

/// Largest tracker frame. File metadata carries one 20-byte hash per 512 KiB piece (40 hex
/// characters), so 16 MiB leaves room for files of a few hundred GiB.
pub const MAX_TRACKER_FRAME: usize = 16 * 1024 * 1024;

/// Largest tracker frame before the client proved a session (or the cluster key): enough for
/// any login, account or cluster handshake, far less than a file's metadata.
pub const MAX_TRACKER_FRAME_UNAUTHENTICATED: usize = 64 * 1024;

/// Largest control frame between `p2pctl` and `p2pd`.
pub const MAX_CONTROL_FRAME: usize = 4 * 1024 * 1024;

/// Longest accepted password, in bytes. Argon2 takes any length; this bounds the work.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// How long a connection may stay silent before its first frame.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle tracker connection is kept open by the tracker (clients reuse a pooled
/// connection for less than this, and open a new one when they need it).
pub const TRACKER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client waits for a TCP connection to a tracker.
pub const TRACKER_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long a client waits for the answer to one tracker request.
pub const TRACKER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `p2pctl` waits for the daemon to answer one command. `upload_file` hashes the
/// whole file before it answers: a 128 GiB file from a disk at 200 MB/s takes over ten minutes.
pub const CONTROL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30 * 60);
