//! Default locations of the control socket and the daemon's state, following XDG, and the
//! checks that keep the socket's directory private.
//!
//! The control socket carries passwords, so whoever can create or replace names in its
//! directory could stand in for the daemon. Both programs therefore refuse a socket directory
//! that is a symlink, is not owned by the user, or is writable by group or others; `p2pd`
//! creates a missing one with mode 0700. Under `$XDG_RUNTIME_DIR` the runtime dir itself is held
//! to the same rule. (`p2pctl` also checks the daemon's uid on the socket itself, SO_PEERCRED.)

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// File name of the control socket inside its directory.
pub const SOCKET_FILE: &str = "p2pd.sock";

/// `$XDG_RUNTIME_DIR/p2pd/p2pd.sock`, or `$TMPDIR/p2pd-<uid>/p2pd.sock` (`/tmp` when `TMPDIR`
/// is unset) without a runtime dir. `P2PD_SOCKET` is handled by the programs' flag parsing,
/// before this.
pub fn default_socket_path() -> PathBuf {
    let dir = runtime_dir()
        .map(|runtime| runtime.join("p2pd"))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("p2pd-{}", current_uid())));
    dir.join(SOCKET_FILE)
}

/// `$XDG_RUNTIME_DIR` when it is set to an absolute path.
pub fn runtime_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
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

/// The uid this process runs as.
pub fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Why a directory may not hold the control socket. Each refusal names the directory, its
/// owner and its mode, so the user can see what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot inspect {}: {source}", path.display())]
    Inspect { path: PathBuf, source: io::Error },
    #[error(
        "refusing socket directory {}: it is a symlink (owner uid {owner}, mode {mode:04o}); \
         remove it",
        path.display()
    )]
    Symlink {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error(
        "refusing socket directory {}: it is not a directory (owner uid {owner}, mode {mode:04o})",
        path.display()
    )]
    NotDir {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error(
        "refusing socket directory {}: owned by uid {owner} (mode {mode:04o}), not by uid {uid}; \
         remove it or set XDG_RUNTIME_DIR",
        path.display()
    )]
    Owner {
        path: PathBuf,
        owner: u32,
        mode: u32,
        uid: u32,
    },
    #[error(
        "refusing socket directory {}: mode {mode:04o} lets other users write in it (owner uid \
         {owner}); chmod 700 it",
        path.display()
    )]
    Writable {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
}

impl DirError {
    /// The directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DirError::Create { path, .. }
            | DirError::Inspect { path, .. }
            | DirError::Symlink { path, .. }
            | DirError::NotDir { path, .. }
            | DirError::Owner { path, .. }
            | DirError::Writable { path, .. } => path,
        }
    }
}

/// Checks that `dir` (not followed if a symlink) is a directory owned by us that neither group
/// nor others can write to. `Ok(false)` when it does not exist.
pub fn check_private_dir(dir: &Path) -> Result<bool, DirError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(DirError::Inspect {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let (path, owner, mode) = (dir.to_path_buf(), meta.uid(), meta.mode() & 0o7777);
    if meta.file_type().is_symlink() {
        return Err(DirError::Symlink { path, owner, mode });
    }
    if !meta.is_dir() {
        return Err(DirError::NotDir { path, owner, mode });
    }
    let uid = current_uid();
    if owner != uid {
        return Err(DirError::Owner {
            path,
            owner,
            mode,
            uid,
        });
    }
    if mode & 0o022 != 0 {
        return Err(DirError::Writable { path, owner, mode });
    }
    Ok(true)
}

/// Makes `dir` with mode 0700 when it is missing (missing parents too), then checks it is
/// private: one that someone else made first, even a moment before, is refused.
pub fn ensure_private_dir(dir: &Path) -> Result<(), DirError> {
    if check_private_dir(dir)? {
        return Ok(());
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(DirError::Create {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    if check_private_dir(dir)? {
        Ok(())
    } else {
        Err(DirError::Create {
            path: dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }
}

/// Checks where a control socket lives: its directory must be private (see
/// [`check_private_dir`]), and when that directory sits directly in `$XDG_RUNTIME_DIR`, so must
/// the runtime dir. `Ok(false)` when the socket's directory does not exist (yet).
pub fn check_socket_location(socket: &Path) -> Result<bool, DirError> {
    let Some(dir) = socket_dir(socket) else {
        return Ok(true);
    };
    if let Some(runtime) = runtime_dir()
        && dir.parent() == Some(runtime.as_path())
        && !check_private_dir(&runtime)?
    {
        return Ok(false);
    }
    check_private_dir(dir)
}

/// The directory holding `socket`, if it names one.
pub fn socket_dir(socket: &Path) -> Option<&Path> {
    socket.parent().filter(|d| !d.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_missing_dir_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/p2pd");
        assert!(!check_private_dir(&dir).unwrap());
        ensure_private_dir(&dir).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert!(check_private_dir(&dir).unwrap());
    }

    #[test]
    fn a_dir_others_can_write_is_refused_with_owner_and_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p2pd");
        std::fs::create_dir(&dir).unwrap();
        for mode in [0o777, 0o770, 0o702, 0o1777] {
            chmod(&dir, mode);
            let err = ensure_private_dir(&dir).unwrap_err();
            assert!(matches!(err, DirError::Writable { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            assert!(text.contains(&dir.display().to_string()), "{text}");
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(
                text.contains(&format!("owner uid {}", current_uid())),
                "{text}"
            );
        }
        chmod(&dir, 0o750);
        assert!(check_private_dir(&dir).unwrap(), "read access is fine");
    }

    #[test]
    fn a_symlink_is_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        chmod(&real, 0o700);
        let link = tmp.path().join("p2pd");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        assert_eq!(err.path(), link);
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("p2pd");
        std::fs::write(&file, b"").unwrap();
        let err = check_private_dir(&file).unwrap_err();
        assert!(matches!(err, DirError::NotDir { .. }), "{err}");
    }

    #[test]
    fn socket_dir_of_a_bare_name_is_none() {
        assert_eq!(socket_dir(Path::new("p2pd.sock")), None);
        assert_eq!(
            socket_dir(Path::new("/run/p2pd/p2pd.sock")),
            Some(Path::new("/run/p2pd"))
        );
    }
}
