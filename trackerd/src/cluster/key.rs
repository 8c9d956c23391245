//! The cluster key: a shared secret both trackers must prove before replicating.
//!
//! By default it lives beside tracker_info.txt as `cluster.key` (64 hex characters). The first
//! tracker that finds none creates it (0600); the operator copies it to the other machine.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read cluster key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create cluster key {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster key {path} must hold at least 32 hex characters")]
    Malformed { path: PathBuf },
}

/// The default key file for a tracker_info.txt.
pub fn default_path(tracker_info: &Path) -> PathBuf {
    tracker_info
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("cluster.key")
}

/// Reads the key at `path`, creating a random one (mode 0600) if there is none.
pub fn load_or_create(path: &Path) -> Result<Vec<u8>, KeyError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let key = hex::encode(rand::random::<[u8; 32]>());
            file.write_all(format!("{key}\n").as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|source| KeyError::Create {
                    path: path.to_path_buf(),
                    source,
                })?;
            tracing::info!(path = %path.display(), "created cluster key; copy it to the other tracker");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(KeyError::Create {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = hex::decode(text.trim()).map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
    })?;
    if key.len() < 16 {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
        });
    }
    Ok(key)
}
