//! Hashing a file for `upload_file`: the SHA-1 of every piece and of the whole file in one
//! read, on two cores. The calling thread reads each piece and hashes it; a second thread
//! folds the same buffers into the whole-file hash. A bounded channel keeps at most a few
//! pieces in memory.

use p2p_proto::files::{FileMeta, PIECE_SIZE};
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::sync_channel;

/// Pieces queued for the whole-file hasher at most.
const QUEUE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} changed while it was being hashed")]
    Changed { path: std::path::PathBuf },
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
    let mut file = File::open(path).map_err(read_err)?;
    let (size, mtime_ns) = size_and_mtime(path).map_err(read_err)?;
    // Buffers circulate: the reader fills one, hashes it as a piece and hands it to the
    // whole-file hasher, which gives it back. No piece-sized allocation per piece.
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(QUEUE);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(QUEUE + 2);
    for _ in 0..QUEUE + 2 {
        let _ = free_tx.send(vec![0u8; PIECE_SIZE as usize]);
    }
    let whole = std::thread::spawn(move || {
        let mut hasher = Sha1::new();
        for (buf, len) in full_rx {
            hasher.update(&buf[..len]);
            let _ = free_tx.send(buf);
        }
        hex::encode(hasher.finalize())
    });
    let mut pieces = Vec::with_capacity(FileMeta::piece_count(size));
    let mut total = 0u64;
    let mut failure = None;
    while let Ok(mut buf) = free_rx.recv() {
        let len = match read_piece(&mut file, &mut buf) {
            Ok(len) => len,
            Err(e) => {
                failure = Some(read_err(e));
                break;
            }
        };
        if len == 0 {
            break;
        }
        total += len as u64;
        pieces.push(hex::encode(Sha1::digest(&buf[..len])));
        if full_tx.send((buf, len)).is_err() || (len as u64) < PIECE_SIZE {
            break;
        }
    }
    drop(full_tx);
    let sha1 = whole.join().map_err(|_| HashError::Changed {
        path: path.to_path_buf(),
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let after = size_and_mtime(path).map_err(read_err)?;
    if total != size || after != (size, mtime_ns) {
        return Err(HashError::Changed {
            path: path.to_path_buf(),
        });
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

/// Fills `buf` (one piece long) from `file`; returns how much was read (less at the end).
fn read_piece(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The SHA-1 of the whole file at `path`, read sequentially.
pub fn whole_file_sha1(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
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
    fn empty_file_has_no_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        File::create(&path).unwrap();
        let hashed = hash_file(&path, "empty").unwrap();
        assert!(hashed.meta.pieces.is_empty());
        assert_eq!(hashed.meta.sha1, hex::encode(Sha1::digest(b"")));
    }
}
