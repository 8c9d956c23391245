//! What a local attacker (another user of the same machine) can set up: a planted control
//! socket, served by any uid, in a directory of any owner and mode; and the programs run
//! without `$XDG_RUNTIME_DIR`, so they fall back to `$TMPDIR/p2pd-<uid>/`.
//!
//! Some cases need root (to own a directory as another user, or to serve a socket as one);
//! [`root_or_skip`] says whether to go on.

use crate::bins::bin;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid of nobody, the attacker of these tests.
pub const NOBODY: u32 = 65534;

/// True when the test runs as root. Otherwise prints one line saying `test` is skipped and
/// returns false, unless `P2P_REQUIRE_ROOT=1`, which makes it a failure (CI runs as root).
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::getuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("P2P_REQUIRE_ROOT").is_none_or(|v| v != "1"),
        "{test} needs root and P2P_REQUIRE_ROOT=1 is set"
    );
    eprintln!("skipping {test}: it needs root");
    false
}

/// Our own uid.
pub fn my_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// `chown uid:uid path`, not following a symlink.
pub fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// The fallback socket path the programs use under `tmpdir` without `$XDG_RUNTIME_DIR`.
pub fn fallback_socket(tmpdir: &Path) -> PathBuf {
    tmpdir.join(format!("p2pd-{}", my_uid())).join("p2pd.sock")
}

/// A command for `program` (`p2pd` or `p2pctl`) with a clean environment: no
/// `$XDG_RUNTIME_DIR`, `$TMPDIR` at `tmpdir`, home and state under `root`, no port mapping.
pub fn without_runtime_dir(program: &str, root: &Path, tmpdir: &Path) -> Command {
    let mut cmd = Command::new(bin(program));
    cmd.current_dir(root)
        .env_clear()
        .env("PATH", crate::bins::bin_dir())
        .env("HOME", root.join("home"))
        .env("XDG_STATE_HOME", root.join("xdg-state"))
        .env("XDG_CONFIG_HOME", root.join("xdg-config"))
        // As in every test: no port mapping on this machine's gateway.
        .env("P2PD_PORT_MAPPING", "off")
        .env("TMPDIR", tmpdir);
    cmd
}

/// A listening Unix socket planted at a path, recording whoever connects.
pub struct FakeSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl FakeSocket {
    /// Listens at `path`; the connecting side sees the listener's uid as `uid` (SO_PEERCRED
    /// reports the credentials of whoever called `listen`). Another uid than ours needs root.
    pub fn listen(path: &Path, uid: u32) -> Self {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        let addr = UnixAddr::new(path).expect("socket address");
        bind(fd.as_raw_fd(), &addr)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", path.display()));
        chmod(path, 0o777);
        let fd = if uid == my_uid() {
            listen(&fd, Backlog::new(16).expect("backlog")).expect("listen");
            fd
        } else {
            // A thread of its own gives up root for good, with the raw system call: the libc
            // wrapper would change every thread of the test process.
            std::thread::spawn(move || {
                let raw = nix::libc::c_long::from(uid);
                // SAFETY: setresuid takes three integers and touches no memory of ours; raw,
                // it changes the credentials of this thread only, which ends right after.
                let done = unsafe { nix::libc::syscall(nix::libc::SYS_setresuid, raw, raw, raw) };
                assert_eq!(done, 0, "setresuid({uid}) failed");
                listen(&fd, Backlog::new(16).expect("backlog")).expect("listen");
                fd
            })
            .join()
            .expect("the listening thread panicked")
        };
        let listener = UnixListener::from(fd);
        listener.set_nonblocking(true).expect("nonblocking");
        Self {
            listener,
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes every connection made so far and reads each until its end (call it once the
    /// client exited); returns how many came and every byte they sent.
    pub fn drain(&self) -> (usize, Vec<u8>) {
        let mut count = 0;
        let mut bytes = Vec::new();
        while let Ok((mut stream, _)) = self.listener.accept() {
            count += 1;
            stream.set_nonblocking(false).expect("blocking");
            stream
                .set_read_timeout(Some(crate::READY_TIMEOUT))
                .expect("read timeout");
            let _ = stream.read_to_end(&mut bytes);
        }
        (count, bytes)
    }
}
