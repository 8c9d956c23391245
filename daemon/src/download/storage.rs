//! The part file a download writes its pieces into.
//!
//! The part file is named by path only twice: when it is created (`O_CREAT|O_EXCL|O_NOFOLLOW`,
//! so a name planted there, symlink or not, is never followed or truncated) and when a restart
//! opens it again (`O_NOFOLLOW`, and only if it is the very file created, by device and inode as
//! recorded in the database). Every write, check, sync and the final link then go through the
//! one descriptor opened there (or a second one opened from it, never from the name, for
//! direct writes): whatever is done to the name in between, the destination gets exactly the
//! bytes that were verified. See "Files on disk" in docs/ARCHITECTURE.md.

use super::direct::DirectFile;
use crate::state::PartFileId;
use nix::errno::Errno;
use p2p_proto::files::PIECE_SIZE;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Mode of a part file until it is complete: the user's only.
const PART_MODE: u32 = 0o600;
/// What the part file's name adds to the destination's.
pub const PART_SUFFIX: &str = ".p2p-part";
/// A file name's limit in bytes where the file system does not say (Linux's `NAME_MAX`).
const NAME_MAX: usize = 255;

/// The part file of a download into `dest`, or why there can be none: its name (the
/// destination's plus [`PART_SUFFIX`]) must fit the file system's limit on names, which is
/// checked before anything is stored.
pub fn part_path_for(dest: &Path) -> Result<PathBuf, String> {
    let name = dest.file_name().unwrap_or_default();
    let limit = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .and_then(|dir| nix::unistd::pathconf(dir, nix::unistd::PathconfVar::NAME_MAX).ok())
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(NAME_MAX);
    let len = name.len() + PART_SUFFIX.len();
    if len > limit {
        return Err(format!(
            "file name {} is too long: with {PART_SUFFIX} added for the part file it is {len} \
             bytes, more than the {limit} the file system allows; give a shorter destination \
             name",
            name.to_string_lossy()
        ));
    }
    let mut part = dest.as_os_str().to_os_string();
    part.push(PART_SUFFIX);
    Ok(PathBuf::from(part))
}

#[derive(Clone)]
pub struct Storage {
    file: Arc<File>,
    /// The same file opened for writes past the page cache, where the file system allows.
    direct: Option<Arc<DirectFile>>,
    pub path: PathBuf,
    /// Device and inode of the part file, as recorded in the database.
    pub id: PartFileId,
    size: u64,
}

/// What [`Storage::reopen`] found at the part file's path.
pub enum Reopened {
    /// The part file created for this download.
    Ours(Storage),
    /// Nothing: a new part file is to be created.
    Missing,
    /// A file nobody recorded (a download of an earlier release, or a crash between creating
    /// the part file and recording it) that is not safe to adopt: it is to be replaced.
    Unrecorded,
}

/// Why a part file was refused: it is not the one this download created. Nothing is written
/// into it.
#[derive(Debug, thiserror::Error)]
#[error("part file {path} {why}; not writing into it (remove it and download again)")]
pub struct Refused {
    pub path: PathBuf,
    pub why: &'static str,
}

/// Why opening a part file failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Storage {
    /// Creates the part file for a new download, mode 0600. A name already at `path` (a stale
    /// part file, or anything planted there) is removed, never followed or truncated: only
    /// `O_EXCL` creation gives the file this download writes into. Not preallocated: see
    /// [`allocate`](Self::allocate).
    pub fn create(path: &Path, size: u64) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a stale part file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(annotate(e, "remove", path)),
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(PART_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| annotate(e, "create", path))?;
        let meta = file.metadata().map_err(|e| annotate(e, "stat", path))?;
        Ok(Self::new(file, path, &meta, size))
    }

    /// Opens the part file of a download that is resumed. `recorded` is the device and inode
    /// stored when it was created (`None` for a download of an earlier release). A symbolic
    /// link, a file that is not regular, or another file than the recorded one is refused.
    pub fn reopen(
        path: &Path,
        size: u64,
        recorded: Option<PartFileId>,
    ) -> Result<Reopened, OpenError> {
        // O_NONBLOCK: a FIFO planted at the path must not block the open; it is refused below.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Reopened::Missing),
            Err(e) if e.raw_os_error() == Some(Errno::ELOOP as i32) => {
                return Err(Refused {
                    path: path.to_path_buf(),
                    why: "is a symbolic link",
                }
                .into());
            }
            Err(e) => return Err(annotate(e, "open", path).into()),
        };
        let meta = file.metadata().map_err(|e| annotate(e, "stat", path))?;
        let refuse = |why| Refused {
            path: path.to_path_buf(),
            why,
        };
        if !meta.file_type().is_file() {
            return Err(refuse("is not a regular file").into());
        }
        let found = PartFileId::of(&meta);
        match recorded {
            Some(id) if id != found => return Err(refuse("was replaced by another file").into()),
            Some(_) => {}
            // Unrecorded: adopted only if nothing else can reach it (one link, ours).
            None if meta.nlink() != 1 || meta.uid() != nix::unistd::geteuid().as_raw() => {
                return Ok(Reopened::Unrecorded);
            }
            None => {}
        }
        // Private until complete, whatever happened to it meanwhile.
        file.set_permissions(std::fs::Permissions::from_mode(PART_MODE))
            .map_err(|e| annotate(e, "chmod", path))?;
        Ok(Reopened::Ours(Self::new(file, path, &meta, size)))
    }

    fn new(file: File, path: &Path, meta: &std::fs::Metadata, size: u64) -> Self {
        Self {
            direct: DirectFile::open(&file).map(Arc::new),
            file: Arc::new(file),
            path: path.to_path_buf(),
            id: PartFileId::of(meta),
            size,
        }
    }

    /// Reserves the file's space so that a full disk shows here, not at 99%. Only a file
    /// system that cannot preallocate (`EOPNOTSUPP`) gets a sparse file instead; any other
    /// failure (`ENOSPC` above all) is an error. Blocking.
    pub fn allocate(&self) -> std::io::Result<()> {
        if self.size == 0 {
            return Ok(());
        }
        let len = i64::try_from(self.size).map_err(std::io::Error::other)?;
        let flags = nix::fcntl::FallocateFlags::empty();
        match nix::fcntl::fallocate(&*self.file, flags, 0, len) {
            Ok(()) => Ok(()),
            Err(Errno::EOPNOTSUPP) => self
                .file
                .set_len(self.size.max(self.file_len()?))
                .map_err(|e| annotate(e, "size", &self.path)),
            Err(e) => Err(annotate(e.into(), "allocate space for", &self.path)),
        }
    }

    fn file_len(&self) -> std::io::Result<u64> {
        Ok(self.stat()?.len())
    }

    /// `fstat` of the part file (never by path).
    pub fn stat(&self) -> std::io::Result<std::fs::Metadata> {
        self.file
            .metadata()
            .map_err(|e| annotate(e, "stat", &self.path))
    }

    /// Size and mtime (ns) of the part file, which a stored bitmap is recorded with.
    pub fn size_and_mtime(&self) -> std::io::Result<(u64, i128)> {
        let meta = self.stat()?;
        Ok((meta.len(), mtime_ns(&meta)))
    }

    /// The open part file, for reading pieces back.
    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Writes one verified piece (a blocking call: the caller is on the blocking pool): past
    /// the page cache where it can (see `direct.rs`), else through it.
    pub fn write_piece_blocking(&self, index: usize, data: &[u8]) -> std::io::Result<()> {
        let offset = index as u64 * PIECE_SIZE;
        let annotated = |e| annotate(e, "write", &self.path);
        if let Some(direct) = &self.direct
            && direct.write(data, offset).map_err(annotated)?
        {
            return Ok(());
        }
        self.file.write_all_at(data, offset).map_err(annotated)
    }

    /// Writes whole pieces `first`, `first + 1`, … in one write if it can (past the page
    /// cache, see `direct.rs`): `Ok(false)` when it did not, and the caller writes them one by
    /// one. Blocking.
    pub fn write_run_blocking(&self, first: usize, run: &[&[u8]]) -> std::io::Result<bool> {
        let full = run.iter().all(|piece| piece.len() as u64 == PIECE_SIZE);
        match &self.direct {
            Some(direct) if full => direct
                .write_run(run, first as u64 * PIECE_SIZE)
                .map_err(|e| annotate(e, "write", &self.path)),
            _ => Ok(false),
        }
    }

    /// Flushes written pieces to the disk and returns the part file's size and mtime after the
    /// flush, which a stored bitmap is recorded with (on the blocking pool).
    pub async fn sync_and_stat(&self) -> std::io::Result<(u64, i128)> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.file
                .sync_data()
                .map_err(|e| annotate(e, "sync", &this.path))?;
            this.size_and_mtime()
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Modification time in ns since the epoch, as `hashing::size_and_mtime` gives it for a share.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// True for the errors after which a download waits and tries again rather than fails: the
/// disk is full (or over quota), read-only for now, or failing; freeing space, remounting or
/// replugging fixes them without the download.
pub fn is_disk_wait(e: &std::io::Error) -> bool {
    matches!(
        os_code(e).map(Errno::from_raw),
        Some(Errno::ENOSPC | Errno::EDQUOT | Errno::EROFS | Errno::EIO)
    )
}

/// Reads piece `piece` of a file of `size` bytes into the front of `buf` (at least a piece
/// long) and returns it.
pub fn read_piece<'a>(
    file: &File,
    size: u64,
    piece: usize,
    buf: &'a mut [u8],
) -> std::io::Result<&'a [u8]> {
    let offset = piece as u64 * PIECE_SIZE;
    let len = size.saturating_sub(offset).min(PIECE_SIZE) as usize;
    file.read_exact_at(&mut buf[..len], offset)?;
    Ok(&buf[..len])
}

/// Names the path and the operation in an I/O error, keeping its OS error code (so that
/// [`is_disk_wait`] still sees it). The text leaves out Rust's "(os error N)".
pub fn annotate(e: std::io::Error, op: &str, path: &Path) -> std::io::Error {
    let reason = match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    };
    let text = format!("cannot {op} {}: {reason}", path.display());
    match e.raw_os_error() {
        Some(code) => AnnotatedOs::wrap(code, text),
        None => std::io::Error::new(e.kind(), text),
    }
}

/// An OS error with a message: `std::io::Error::new` drops the OS code, so the code is kept
/// in the payload and read back by [`os_code`].
#[derive(Debug)]
struct AnnotatedOs {
    code: i32,
    text: String,
}

impl AnnotatedOs {
    fn wrap(code: i32, text: String) -> std::io::Error {
        let kind = std::io::Error::from_raw_os_error(code).kind();
        std::io::Error::new(kind, Self { code, text })
    }
}

impl std::fmt::Display for AnnotatedOs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for AnnotatedOs {}

/// The OS error code of `e`, also through [`annotate`].
pub fn os_code(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<AnnotatedOs>())
            .map(|a| a.code)
    })
}
