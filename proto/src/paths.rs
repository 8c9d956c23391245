//! Default locations of the control socket and the daemon's state, following XDG.

use std::path::PathBuf;

/// File name of the control socket inside its directory.
pub const SOCKET_FILE: &str = "p2pd.sock";

/// `$XDG_RUNTIME_DIR/p2pd/p2pd.sock`, or `/tmp/p2pd-<uid>/p2pd.sock` without a runtime dir.
/// `P2PD_SOCKET` is handled by the programs' flag parsing, before this.
pub fn default_socket_path() -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .map(|runtime| runtime.join("p2pd"))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/p2pd-{}", current_uid())));
    dir.join(SOCKET_FILE)
}

/// `$XDG_STATE_HOME/p2pd`, or `~/.local/state/p2pd`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("p2pd")
}

fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}
