//! Writing whole pieces past the page cache (`O_DIRECT`), through a second descriptor of the
//! part file.
//!
//! A verified piece is not read back soon, so copying it into fresh page-cache pages (and
//! writing those back later) is work for nothing: a direct write hands the piece to the disk
//! from the buffer it arrived in. Direct writes need the buffer's address, the offset and the
//! length aligned to the disk's block; a piece in an unaligned buffer is copied into an
//! aligned one first, and a piece of an unaligned length (the file's last) goes through the
//! page cache, as does every piece on a file system that refuses direct writes.
//!
//! The second descriptor is opened through `/proc/self/fd` on the first one: it is the very
//! file the download created, whatever is done to its name (see `storage.rs`).

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};

/// Alignment of a direct write's buffer, offset and length: a page, which every disk's
/// logical block divides.
pub const ALIGN: usize = 4096;

/// Whether `data` may be written directly as it is, and where.
pub fn is_aligned(data: &[u8], offset: u64) -> bool {
    (data.as_ptr() as usize).is_multiple_of(ALIGN)
        && data.len().is_multiple_of(ALIGN)
        && offset.is_multiple_of(ALIGN as u64)
}

/// The part file opened for direct writes.
#[derive(Debug)]
pub struct DirectFile {
    file: File,
    /// Cleared when the file system turns a direct write down: the page cache from then on.
    usable: AtomicBool,
}

thread_local! {
    /// Aligned room for a piece that arrived in an unaligned buffer (one per blocking thread).
    static BOUNCE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl DirectFile {
    /// Opens `file` again with `O_DIRECT`; `None` where that is impossible (no `/proc`, a file
    /// system without direct I/O) or the descriptor is not the same file.
    pub fn open(file: &File) -> Option<Self> {
        let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(&by_fd)
            .ok()?;
        let (a, b) = (file.metadata().ok()?, direct.metadata().ok()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return None;
        }
        Some(Self {
            file: direct,
            usable: AtomicBool::new(true),
        })
    }

    /// Writes `data` at `offset` directly if it can: `Ok(false)` when it did not (the length
    /// or offset is not aligned, or the file system refuses direct writes) and the caller is
    /// to write through the page cache. Blocking.
    pub fn write(&self, data: &[u8], offset: u64) -> std::io::Result<bool> {
        if !self.usable.load(Ordering::Relaxed)
            || !data.len().is_multiple_of(ALIGN)
            || !offset.is_multiple_of(ALIGN as u64)
        {
            return Ok(false);
        }
        let written = if is_aligned(data, offset) {
            self.file.write_all_at(data, offset)
        } else {
            BOUNCE.with_borrow_mut(|room| {
                let buf = aligned(room, data.len());
                buf.copy_from_slice(data);
                self.file.write_all_at(buf, offset)
            })
        };
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                tracing::info!(error = %e, "direct writes refused; writing through the page cache");
                self.usable.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `run`, buffers that follow one another in the file from `offset`, in one direct
    /// write if every one is aligned: `Ok(false)` when it did not write them all that way (the
    /// caller writes them again one by one). Blocking.
    pub fn write_run(&self, run: &[&[u8]], offset: u64) -> std::io::Result<bool> {
        if !self.usable.load(Ordering::Relaxed)
            || !offset.is_multiple_of(ALIGN as u64)
            || !run.iter().all(|piece| is_aligned(piece, 0))
        {
            return Ok(false);
        }
        let total: usize = run.iter().map(|piece| piece.len()).sum();
        let slices: Vec<std::io::IoSlice<'_>> = run
            .iter()
            .map(|piece| std::io::IoSlice::new(piece))
            .collect();
        let offset = i64::try_from(offset).map_err(std::io::Error::other)?;
        loop {
            match nix::sys::uio::pwritev(&self.file, &slices, offset) {
                Ok(n) => return Ok(n == total),
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EINVAL) => {
                    tracing::info!("direct writes refused; writing through the page cache");
                    self.usable.store(false, Ordering::Relaxed);
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `len` bytes of `room` starting at an [`ALIGN`]ed address (grown as needed).
fn aligned(room: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if room.len() < len + ALIGN {
        *room = vec![0; len + ALIGN];
    }
    let start = room.as_ptr().align_offset(ALIGN);
    &mut room[start..start + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_written_directly_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let file = File::create_new(&path).unwrap();
        let Some(direct) = DirectFile::open(&file) else {
            // The temp dir's file system has no direct I/O: nothing to test here.
            return;
        };
        let piece: Vec<u8> = (0..3 * ALIGN).map(|i| (i * 31 % 251) as u8).collect();
        // An unaligned buffer is copied into an aligned one; an unaligned length is declined.
        let mut unaligned = vec![0u8; piece.len() + 1];
        unaligned[1..].copy_from_slice(&piece);
        assert!(direct.write(&unaligned[1..], ALIGN as u64).unwrap());
        assert!(!direct.write(&piece[..100], 0).unwrap());
        let mut room = Vec::new();
        let buf = aligned(&mut room, piece.len());
        buf.copy_from_slice(&piece);
        assert!(is_aligned(buf, 0));
        assert!(direct.write(buf, 4 * ALIGN as u64).unwrap());
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 7 * ALIGN);
        assert_eq!(&back[ALIGN..4 * ALIGN], &piece[..]);
        assert_eq!(&back[4 * ALIGN..], &piece[..]);
        assert!(back[..ALIGN].iter().all(|&b| b == 0));
        // A run of aligned buffers goes in one write; one unaligned buffer declines the run.
        let mut rooms = (Vec::new(), Vec::new());
        let a = aligned(&mut rooms.0, ALIGN);
        a.fill(0xaa);
        let b = aligned(&mut rooms.1, 2 * ALIGN);
        b.fill(0xbb);
        assert!(direct.write_run(&[a, b], 7 * ALIGN as u64).unwrap());
        assert!(!direct.write_run(&[&unaligned[1..]], 0).unwrap());
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 10 * ALIGN);
        assert!(back[7 * ALIGN..8 * ALIGN].iter().all(|&b| b == 0xaa));
        assert!(back[8 * ALIGN..].iter().all(|&b| b == 0xbb));
    }
}
