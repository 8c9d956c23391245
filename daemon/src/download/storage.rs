//! The part file a download writes its pieces into.

use p2p_proto::files::PIECE_SIZE;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub struct Storage {
    file: Arc<File>,
    pub path: PathBuf,
}

impl Storage {
    /// Opens the part file, creating and preallocating it when `fresh` (or when missing).
    /// Returns the storage and whether the existing content may be trusted (it existed with
    /// the right size).
    pub fn open(path: &Path, size: u64, fresh: bool) -> std::io::Result<(Self, bool)> {
        use std::os::unix::fs::OpenOptionsExt;
        let existed = !fresh && std::fs::metadata(path).is_ok_and(|m| m.len() == size);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!existed)
            .mode(0o644)
            .open(path)
            .map_err(|e| annotate(e, "create", path))?;
        if !existed && size > 0 {
            // Reserve the space now so a full disk fails here, not at 99%.
            if nix::fcntl::posix_fallocate(&file, 0, size as i64).is_err() {
                file.set_len(size).map_err(|e| annotate(e, "size", path))?;
            }
        }
        Ok((
            Self {
                file: Arc::new(file),
                path: path.to_path_buf(),
            },
            existed,
        ))
    }

    /// The open part file, for reading pieces back.
    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Writes one verified piece (on the blocking pool).
    pub async fn write_piece(&self, index: usize, data: bytes::Bytes) -> std::io::Result<()> {
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            file.write_all_at(&data, index as u64 * PIECE_SIZE)
                .map_err(|e| annotate(e, "write", &path))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Flushes written pieces to the disk (on the blocking pool).
    pub async fn sync(&self) -> std::io::Result<()> {
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            file.sync_data().map_err(|e| annotate(e, "sync", &path))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Like [`sync`](Self::sync), and returns the part file's size and mtime after the flush,
    /// which a stored bitmap is recorded with.
    pub async fn sync_and_stat(&self) -> std::io::Result<(u64, i128)> {
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            file.sync_data().map_err(|e| annotate(e, "sync", &path))?;
            crate::hashing::size_and_mtime(&path).map_err(|e| annotate(e, "stat", &path))
        })
        .await
        .map_err(std::io::Error::other)?
    }
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

/// Names the path and the operation in an I/O error.
pub fn annotate(e: std::io::Error, op: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot {op} {}: {e}", path.display()))
}
