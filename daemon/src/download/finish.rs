//! The end of a download: the move into place, the new share, and the records that say so; or
//! the failure, with its reason.
//!
//! A file whose every piece was verified against the piece hashes the (authenticated) tracker
//! gave is the uploader's file: the whole file is not hashed again, so every byte is hashed
//! once.
//!
//! The steps, each safe to repeat after a crash at any point (the next start finds the state
//! and carries on, see "Files on disk" in docs/ARCHITECTURE.md):
//! 1. the part file gets its final mode and is fsynced; its full bitmap is committed;
//! 2. the destination name is linked to the open file itself (never replacing a file; a name
//!    already there that is this very file was linked before a crash);
//! 3. the part file's name is removed (if it is still this file) and the directory fsynced;
//! 4. the download is recorded complete and the share stored, and only then shown complete
//!    and offered to peers.

use super::Download;
use super::error::DownloadError;
use super::storage::{Storage, annotate, mtime_ns};
use crate::hashing::pieces_match;
use crate::plane::Plane;
use crate::state::{DownloadRecord, PartFileId, ShareRecord, StoredBitmap, StoredState, file_key};
use nix::errno::Errno;
use p2p_proto::control::DownloadState;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Gives the file, every piece of it verified, its final name and makes it a share. An error
/// leaves a state that this function, called again, completes (the task calls it again after
/// a full disk; a restart does after a crash).
pub async fn finish(plane: &Plane, dl: &Arc<Download>) -> Result<(), DownloadError> {
    let storage = dl.storage.clone();
    let stat = run_blocking(move || seal(&storage)).await?;
    let key = dl.key.clone();
    let bitmap = StoredBitmap::new(&dl.holding.bitfield(), stat);
    plane
        .state
        .run(move |s| s.put_bitmap(&key, &bitmap))
        .await?;
    let (storage, dest) = (dl.storage.clone(), dl.record.destination.clone());
    let holding = Arc::clone(&dl.holding);
    run_blocking(move || {
        link_destination(&storage, &dest)?;
        // Peers connecting from now on read from the final name (both names are this file).
        holding.set_path(dest.clone());
        remove_part_name(&storage)?;
        sync_parent(&dest)
    })
    .await?;
    let mut record = dl.record.clone();
    record.state = StoredState::Complete;
    (record.banned, record.sources) = dl.progress.with(|p| (p.banned.clone(), p.sources.clone()));
    for source in &mut record.sources {
        source.connected = false;
    }
    let mut share = share_of(&record, stat.0, stat.1);
    share.group_id = dl.holding.group_id();
    let stored = share.clone();
    plane
        .state
        .run(move |s| {
            s.put_download(&record)?;
            s.put_share(&stored)
        })
        .await?;
    // Durable: now shown complete and offered as a share.
    plane
        .holdings
        .insert(Arc::new(crate::shares::holding_for(&share)));
    dl.progress.with(|p| {
        p.state = DownloadState::Complete;
        p.detail = None;
        p.peers = 0;
    });
    plane.announce.now();
    tracing::info!(download = %dl.key, dest = %dl.record.destination.display(), "download complete");
    Ok(())
}

async fn run_blocking<R: Send + 'static>(
    op: impl FnOnce() -> Result<R, DownloadError> + Send + 'static,
) -> Result<R, DownloadError> {
    tokio::task::spawn_blocking(op).await?
}

/// Gives the part file its final mode (what the umask leaves of 0666; it was 0600 while
/// incomplete), makes data and metadata durable, and returns its size and mtime.
fn seal(storage: &Storage) -> Result<(u64, i128), DownloadError> {
    let file = storage.file();
    let disk = |e, op| DownloadError::Disk(annotate(e, op, &storage.path));
    file.set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))
        .map_err(|e| disk(e, "chmod"))?;
    file.sync_all().map_err(|e| disk(e, "sync"))?;
    storage.size_and_mtime().map_err(DownloadError::Disk)
}

/// Links `dest` to the open part file itself, through `/proc/self/fd` (so that whatever now
/// has the part file's name, the destination gets the verified bytes), never replacing an
/// existing file. Without `/proc`, links by name and checks the result is this file.
fn link_destination(storage: &Storage, dest: &Path) -> Result<(), DownloadError> {
    use std::os::fd::AsRawFd;
    let file = storage.file();
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    let linked = nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        by_fd.as_str(),
        nix::fcntl::AT_FDCWD,
        dest,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    );
    match linked {
        Ok(()) => return Ok(()),
        Err(Errno::EEXIST) => return already_there(storage, dest),
        Err(Errno::ENOENT) if storage.stat().is_ok_and(|m| m.nlink() == 0) => {
            // Its every name was removed: nothing can name these bytes any more.
            return Err(DownloadError::PartReplaced(storage.path.clone()));
        }
        Err(e) if e != Errno::ENOENT && e != Errno::EXDEV && e != Errno::EPERM => {
            return Err(DownloadError::Disk(annotate(e.into(), "create", dest)));
        }
        Err(_) => {}
    }
    match std::fs::hard_link(&storage.path, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return already_there(storage, dest);
        }
        Err(e) => return Err(DownloadError::Disk(annotate(e, "create", dest))),
    }
    if id_at(dest)? != Some(storage.id) {
        // The part file's name was given to another file: take back the name just made.
        let _ = std::fs::remove_file(dest);
        return Err(DownloadError::PartReplaced(storage.path.clone()));
    }
    Ok(())
}

use std::os::unix::fs::MetadataExt;

/// `dest` exists: fine if it is this very file (linked before a crash), refused otherwise.
fn already_there(storage: &Storage, dest: &Path) -> Result<(), DownloadError> {
    if id_at(dest)? == Some(storage.id) {
        Ok(())
    } else {
        Err(DownloadError::NotTheFile(dest.to_path_buf()))
    }
}

/// Device and inode of the name `path` itself (a symlink is not followed), if it exists.
fn id_at(path: &Path) -> Result<Option<PartFileId>, DownloadError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(PartFileId::of(&meta))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DownloadError::Disk(annotate(e, "stat", path))),
    }
}

/// Removes the part file's name if it still names this file (a file put there by someone
/// else is left alone).
fn remove_part_name(storage: &Storage) -> Result<(), DownloadError> {
    if id_at(&storage.path)? != Some(storage.id) {
        return Ok(());
    }
    match std::fs::remove_file(&storage.path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DownloadError::Disk(annotate(e, "remove", &storage.path))),
    }
}

/// Makes the new and removed names in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), DownloadError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let disk = |e| DownloadError::Disk(annotate(e, "sync directory", dir));
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY)
        .open(dir)
        .map_err(disk)?
        .sync_all()
        .map_err(disk)
}

/// The process's umask, read without changing it (`umask(2)` can only set it); 022 where
/// `/proc` does not say.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix("Umask:")?;
                u32::from_str_radix(value.trim(), 8).ok()
            })
        })
        .unwrap_or(0o022)
        & 0o777
}

fn share_of(record: &DownloadRecord, size: u64, mtime_ns: i128) -> ShareRecord {
    ShareRecord {
        user: record.user.clone(),
        group: record.group.clone(),
        name: record.meta.name.clone(),
        path: record.destination.clone(),
        size,
        mtime_ns,
        sha1: record.meta.sha1.clone(),
        pieces: record.meta.pieces.len(),
        group_id: record.group_id.clone(),
    }
}

/// A download whose part file is gone while its destination exists: the daemon died after
/// giving the file its final name and before recording it complete. If the destination is
/// the part file created for it (same device and inode) and the committed bitmap still
/// describes it, it is recorded complete (and shared) as it is; one not recorded (a download
/// of an earlier release) or changed since is re-hashed first. Any other file is left alone
/// and the download recorded failed.
pub async fn recover_moved(plane: &Plane, mut record: DownloadRecord) {
    let key = file_key(&record.user, &record.group, &record.meta.name);
    let dest = record.destination.clone();
    let meta = record.meta.clone();
    let checked = plane
        .state
        .run(move |db| {
            let recorded = db.part_file(&key)?;
            let bitmap = db.bitmap(&key)?;
            let disk = |e, op| DownloadError::Disk(annotate(e, op, &dest));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&dest)
                .map_err(|e| disk(e, "open"))?;
            let found = file.metadata().map_err(|e| disk(e, "stat"))?;
            let stat = (found.len(), mtime_ns(&found));
            let complete_bitmap = bitmap.is_some_and(|b| {
                (b.part_size, b.part_mtime_ns) == stat
                    && b.bitfield(meta.pieces.len())
                        .is_some_and(|f| f.is_complete())
            });
            let ours = match recorded {
                Some(id) if id != PartFileId::of(&found) || !found.file_type().is_file() => false,
                Some(_) if complete_bitmap => true,
                _ => pieces_match(&dest, &meta).map_err(|e| disk(e, "read"))?,
            };
            if !ours {
                return Err(DownloadError::NotTheFile(dest));
            }
            sync_parent(&dest)?;
            Ok(stat)
        })
        .await;
    let share = match checked {
        Ok((size, mtime_ns)) => {
            record.state = StoredState::Complete;
            Some(share_of(&record, size, mtime_ns))
        }
        Err(reason) => {
            record.state = StoredState::Failed;
            record.error = Some(reason.to_string());
            None
        }
    };
    let holding = share.as_ref().map(crate::shares::holding_for);
    let saved = plane
        .state
        .run(move |s| {
            s.put_download(&record)?;
            match &share {
                Some(share) => s.put_share(share),
                None => Ok(()),
            }
        })
        .await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "cannot record a recovered download");
    }
    if let Some(holding) = holding {
        plane.holdings.insert(Arc::new(holding));
        plane.announce.now();
    }
}

/// Ends the download as failed, with `reason` recorded and shown.
pub async fn fail(plane: &Plane, dl: &Download, reason: String) {
    tracing::error!(download = %dl.key, reason, "download failed");
    let mut record = dl.record.clone();
    record.state = StoredState::Failed;
    record.error = Some(reason.clone());
    (record.banned, record.sources) = dl.progress.with(|p| (p.banned.clone(), p.sources.clone()));
    for source in &mut record.sources {
        source.connected = false;
    }
    let saved = plane.state.run(move |s| s.put_download(&record)).await;
    if let Err(e) = saved {
        tracing::error!(download = %dl.key, error = %e, "cannot record the failure");
    }
    plane
        .holdings
        .remove(&dl.record.group, &dl.record.meta.sha1);
    dl.progress.with(|p| {
        p.state = DownloadState::Failed;
        p.detail = Some(reason);
        p.peers = 0;
    });
}
