//! Hashing a file for `upload_file`: the SHA-1 of every piece and of the whole file, on two
//! cores. Two threads each read the file with positional reads on the same open file: one
//! hashes the pieces, the other the whole file. They run side by side at the same pace, so
//! the disk is read once and the second reader finds the first one's pages in the cache.
//! (Passing one thread's buffers to the other costs more than the second memory copy: the
//! data then crosses between the cores' caches.) Each thread holds one piece-sized buffer.

use p2p_proto::files::{FileMeta, MAX_FILE_SIZE, PIECE_SIZE};
use sha1::{Digest, Sha1};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} changed while it was being hashed")]
    Changed { path: std::path::PathBuf },
    #[error("{path} is {size} bytes, larger than the {MAX_FILE_SIZE}-byte limit")]
    TooLarge { path: std::path::PathBuf, size: u64 },
}

/// What hashing a file found, with the size and mtime it had.
pub struct Hashed {
    pub meta: FileMeta,
    pub mtime_ns: i128,
}

/// Size and modification time (ns) of the file at `path`.
pub fn size_and_mtime(path: &Path) -> std::io::Result<(u64, i128)> {
    let m = std::fs::metadata(path)?;
    let mtime = m.modified()?;
    let ns = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    Ok((m.len(), ns))
}

/// Hashes the regular file at `path` and names it `name`.
pub fn hash_file(path: &Path, name: &str) -> Result<Hashed, HashError> {
    let read_err = |source| HashError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let (size, mtime_ns) = size_and_mtime(path).map_err(read_err)?;
    // Before anything is sized from it: the piece list of a 1 EiB (sparse) file would not fit
    // in memory.
    if size > MAX_FILE_SIZE {
        return Err(HashError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let second = file.try_clone().map_err(read_err)?;
    let whole = std::thread::spawn(move || -> std::io::Result<(String, u64)> {
        let mut hasher = Sha1::new();
        let total = for_each_piece(&second, |piece| hasher.update(piece))?;
        Ok((hex::encode(hasher.finalize()), total))
    });
    // Bounded by the check above; the file may still grow while it is read.
    let mut pieces = Vec::with_capacity(FileMeta::piece_count(size.min(MAX_FILE_SIZE)));
    let piece_total = for_each_piece(&file, |piece| pieces.push(hex::encode(Sha1::digest(piece))));
    let changed = || HashError::Changed {
        path: path.to_path_buf(),
    };
    let (sha1, whole_total) = whole.join().map_err(|_| changed())?.map_err(read_err)?;
    let piece_total = piece_total.map_err(read_err)?;
    let after = size_and_mtime(path).map_err(read_err)?;
    if piece_total != size || whole_total != size || after != (size, mtime_ns) {
        return Err(changed());
    }
    Ok(Hashed {
        meta: FileMeta {
            name: name.to_string(),
            size,
            sha1,
            pieces,
        },
        mtime_ns,
    })
}

/// Reads `file` piece by piece with positional reads, calling `each` on every piece; returns
/// the number of bytes read.
fn for_each_piece(file: &File, mut each: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let mut buf = vec![0u8; PIECE_SIZE as usize];
    let mut offset = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(offset);
        }
        each(&buf[..filled]);
        offset += filled as u64;
        if filled < buf.len() {
            return Ok(offset);
        }
    }
}

/// Whether the file at `path` is `meta`'s: its size, and every piece's SHA-1.
pub fn pieces_match(path: &Path, meta: &FileMeta) -> std::io::Result<bool> {
    let file = File::open(path)?;
    if file.metadata()?.len() != meta.size {
        return Ok(false);
    }
    let mut index = 0;
    let mut good = true;
    for_each_piece(&file, |piece| {
        good &= meta
            .pieces
            .get(index)
            .is_some_and(|expected| hex::encode(Sha1::digest(piece)) == *expected);
        index += 1;
    })?;
    Ok(good && index == meta.pieces.len())
}

/// The SHA-1 of the whole file at `path`, read sequentially.
pub fn whole_file_sha1(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha1::new();
    for_each_piece(&File::open(path)?, |piece| hasher.update(piece))?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hashes_match_a_plain_sha1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(PIECE_SIZE * 2 + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        let hashed = hash_file(&path, "f").unwrap();
        assert_eq!(hashed.meta.size, data.len() as u64);
        assert_eq!(hashed.meta.sha1, hex::encode(Sha1::digest(&data)));
        assert_eq!(hashed.meta.pieces.len(), 3);
        assert_eq!(
            hashed.meta.pieces[2],
            hex::encode(Sha1::digest(&data[(PIECE_SIZE * 2) as usize..]))
        );
        assert_eq!(whole_file_sha1(&path).unwrap(), hashed.meta.sha1);
        assert!(hashed.meta.validate().is_ok());
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge");
        let file = File::create(&path).unwrap();
        // Sparse: no disk space is used. (Some file systems cap a file's size lower.)
        if file.set_len(MAX_FILE_SIZE + 1).is_err() {
            return;
        }
        match hash_file(&path, "huge") {
            Err(HashError::TooLarge { size, .. }) => assert_eq!(size, MAX_FILE_SIZE + 1),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a file over the limit was hashed"),
        }
    }

    #[test]
    fn empty_file_has_no_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        File::create(&path).unwrap();
        let hashed = hash_file(&path, "empty").unwrap();
        assert!(hashed.meta.pieces.is_empty());
        assert_eq!(hashed.meta.sha1, hex::encode(Sha1::digest(b"")));
    }
}
