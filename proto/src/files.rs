//! File metadata: what `upload_file` records and a downloader verifies against.

use crate::ErrorReply;
use serde::{Deserialize, Serialize};

/// Size of a piece: the unit of transfer and verification.
pub const PIECE_SIZE: u64 = 512 * 1024;

/// Largest file accepted: 128 GiB is 262,144 pieces, whose hashes (about 11 MiB as JSON) fit
/// in one tracker frame with room to spare, in every message and replication record that
/// carries them.
pub const MAX_FILE_SIZE: u64 = 128 << 30;

/// Longest file name, in bytes.
pub const MAX_FILE_NAME: usize = 255;

/// Why a file name or file metadata is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("invalid file name {0:?}")]
    BadName(String),
    #[error("file name is longer than {MAX_FILE_NAME} bytes")]
    NameTooLong,
    #[error("file name {0:?} contains '/', NUL or a control character")]
    BadChar(String),
    #[error("file is larger than {MAX_FILE_SIZE} bytes")]
    TooLarge,
    #[error("file SHA-1 must be 40 hex characters")]
    BadSha1,
    #[error("a {size}-byte file has {expected} pieces, not {got}")]
    PieceCount {
        size: u64,
        expected: usize,
        got: usize,
    },
    #[error("piece hashes must be 40 hex characters")]
    BadPieceHash,
}

impl From<FileError> for ErrorReply {
    fn from(e: FileError) -> Self {
        ErrorReply::invalid(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub name: String,
    pub size: u64,
    /// SHA-1 of the whole file, hex.
    pub sha1: String,
    /// SHA-1 of every piece, hex, in order.
    pub pieces: Vec<String>,
}

impl FileMeta {
    /// Number of pieces of a file of `size` bytes.
    pub fn piece_count(size: u64) -> usize {
        size.div_ceil(PIECE_SIZE) as usize
    }

    /// Length of piece `index` of this file.
    pub fn piece_len(&self, index: usize) -> u64 {
        let start = index as u64 * PIECE_SIZE;
        self.size.saturating_sub(start).min(PIECE_SIZE)
    }

    /// Checks the shape: a valid name, a bounded size, the right number of 40-hex hashes.
    pub fn validate(&self) -> Result<(), FileError> {
        validate_file_name(&self.name)?;
        if self.size > MAX_FILE_SIZE {
            return Err(FileError::TooLarge);
        }
        if !is_sha1_hex(&self.sha1) {
            return Err(FileError::BadSha1);
        }
        let expected = Self::piece_count(self.size);
        if self.pieces.len() != expected {
            return Err(FileError::PieceCount {
                size: self.size,
                expected,
                got: self.pieces.len(),
            });
        }
        if !self.pieces.iter().all(|p| is_sha1_hex(p)) {
            return Err(FileError::BadPieceHash);
        }
        Ok(())
    }
}

pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A file name that is safe to create in a directory: not empty, not `.` or `..`, no `/`, no
/// NUL, no control characters, at most [`MAX_FILE_NAME`] bytes.
pub fn validate_file_name(name: &str) -> Result<(), FileError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(FileError::BadName(name.to_string()));
    }
    if name.len() > MAX_FILE_NAME {
        return Err(FileError::NameTooLong);
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\0' || c.is_control())
    {
        return Err(FileError::BadChar(name.chars().take(80).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_network_are_checked() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "a\nb",
            &"x".repeat(300),
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        for good in ["movie.mkv", "a..b", ".hidden", "résumé.pdf"] {
            assert!(validate_file_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn piece_lengths() {
        let meta = FileMeta {
            name: "f".into(),
            size: PIECE_SIZE * 2 + 10,
            sha1: "0".repeat(40),
            pieces: vec!["0".repeat(40); 3],
        };
        assert_eq!(FileMeta::piece_count(meta.size), 3);
        assert_eq!(meta.piece_len(0), PIECE_SIZE);
        assert_eq!(meta.piece_len(2), 10);
        assert!(meta.validate().is_ok());
        assert_eq!(FileMeta::piece_count(0), 0);
    }
}
