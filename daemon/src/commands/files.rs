//! `upload_file`, `list_files`, `download_file`, `show_downloads`, `stop_share`.

use super::{done, unexpected};
use crate::daemon::Daemon;
use crate::hashing::hash_file;
use crate::state::{DownloadRecord, ShareRecord, StoredState, file_key};
use p2p_proto::control::CtlReply;
use p2p_proto::files::validate_file_name;
use p2p_proto::ids::validate_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply};
use p2p_proto::{ErrorKind, ErrorReply};
use std::path::PathBuf;
use std::sync::Arc;

pub async fn upload(
    daemon: &Arc<Daemon>,
    group: String,
    path: PathBuf,
) -> Result<CtlReply, ErrorReply> {
    let session = daemon.user().require_session()?;
    validate_id("group id", &group)?;
    let meta = std::fs::metadata(&path).map_err(|e| {
        ErrorReply::invalid(format!("cannot read {}: {}", path.display(), io_reason(&e)))
    })?;
    if !meta.is_file() {
        return Err(ErrorReply::invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ErrorReply::invalid(format!("{} has no usable file name", path.display())))?
        .to_string();
    validate_file_name(&name)?;
    let (hash_path, hash_name) = (path.clone(), name.clone());
    let hashed = tokio::task::spawn_blocking(move || hash_file(&hash_path, &hash_name))
        .await
        .map_err(|e| ErrorReply::internal(e.to_string()))?
        .map_err(|e| ErrorReply::invalid(e.to_string()))?;
    let size = hashed.meta.size;
    let pieces = hashed.meta.pieces.len();
    let share = ShareRecord {
        user: session.user.clone(),
        group: group.clone(),
        name: name.clone(),
        path,
        size,
        mtime_ns: hashed.mtime_ns,
        sha1: hashed.meta.sha1.clone(),
        pieces,
        group_id: None,
    };
    let reply = daemon
        .user()
        .call(TrackerCall::UploadFile {
            group: group.clone(),
            file: hashed.meta,
            port: daemon.peer_port,
        })
        .await?;
    let TrackerReply::Shared { group_id } = reply else {
        return Err(unexpected(reply));
    };
    let share = ShareRecord {
        group_id: Some(group_id),
        ..share
    };
    let holding = crate::shares::holding_for(&share);
    let plane = &daemon.plane;
    plane.state.run(move |s| s.put_share(&share)).await?;
    plane.holdings.insert(Arc::new(holding));
    plane.announce.now();
    Ok(done(format!(
        "shared {name} in {group} ({size} bytes, {pieces} pieces)"
    )))
}

/// One page of a group's files (see `groups::list`).
pub async fn list(
    daemon: &Daemon,
    group: String,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CtlReply, ErrorReply> {
    validate_id("group id", &group)?;
    p2p_proto::views::page_limit(limit)?;
    match daemon
        .user()
        .call(TrackerCall::ListFiles {
            group,
            after,
            limit,
        })
        .await?
    {
        TrackerReply::Files { group, files, more } => Ok(CtlReply::Files { group, files, more }),
        other => Err(unexpected(other)),
    }
}

pub async fn download(
    daemon: &Arc<Daemon>,
    group: String,
    file: String,
    destination: PathBuf,
) -> Result<CtlReply, ErrorReply> {
    let session = daemon.user().require_session()?;
    validate_id("group id", &group)?;
    validate_file_name(&file)?;
    let dest = if destination.is_dir() {
        destination.join(&file)
    } else {
        let parent = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| ErrorReply::invalid("destination has no parent directory"))?;
        if !parent.is_dir() {
            return Err(ErrorReply::invalid(format!(
                "destination directory {} does not exist",
                parent.display()
            )));
        }
        destination.clone()
    };
    if dest.symlink_metadata().is_ok() {
        return Err(ErrorReply::new(
            ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        ));
    }
    // Before anything is asked or stored: a name the part file cannot have is refused now.
    let part_path = crate::download::storage::part_path_for(&dest).map_err(ErrorReply::invalid)?;
    let key = file_key(&session.user, &group, &file);
    if daemon.downloads.get(&key).is_some() {
        return Err(ErrorReply::new(
            ErrorKind::Conflict,
            format!("{file} from {group} is already being downloaded"),
        ));
    }
    let (meta, peers, group_id) = match daemon
        .user()
        .call(TrackerCall::FetchFile {
            group: group.clone(),
            name: file.clone(),
        })
        .await?
    {
        TrackerReply::FileDetails {
            meta,
            peers,
            group_id,
            ..
        } => (meta, peers, group_id),
        other => return Err(unexpected(other)),
    };
    meta.validate().map_err(|e| {
        ErrorReply::new(
            ErrorKind::Protocol,
            format!("tracker sent bad metadata: {e}"),
        )
    })?;
    if meta.name != file {
        return Err(ErrorReply::new(
            ErrorKind::Protocol,
            "tracker sent metadata of another file",
        ));
    }
    if peers.is_empty() {
        return Err(ErrorReply::new(
            ErrorKind::Unavailable,
            format!("no peer with {file} is online in {group}"),
        ));
    }
    let record = DownloadRecord {
        user: session.user.clone(),
        group: group.clone(),
        meta,
        destination: dest.clone(),
        part_path,
        state: StoredState::Active,
        error: None,
        banned: Vec::new(),
        sources: Vec::new(),
        group_id: Some(group_id),
    };
    let stored = record.clone();
    let bitmap_key = key.clone();
    let pieces = record.meta.pieces.len();
    daemon
        .plane
        .state
        .run(move |s| {
            s.put_download(&stored)?;
            let empty = p2p_proto::bitfield::Bitfield::new(pieces);
            s.put_bitmap(
                &bitmap_key,
                &crate::state::StoredBitmap::new(&empty, (0, 0)),
            )
        })
        .await?;
    crate::download::start(&daemon.plane, &daemon.downloads, record, true).await?;
    Ok(done(format!(
        "downloading {file} from {} peer(s) into {}",
        peers.len(),
        dest.display()
    )))
}

pub async fn show(daemon: &Arc<Daemon>) -> Result<CtlReply, ErrorReply> {
    let session = daemon.user().require_session()?;
    let live = Arc::clone(&daemon.downloads);
    let downloads = daemon
        .plane
        .state
        .run(move |db| crate::download::list(db, &live, &session.user))
        .await?;
    Ok(CtlReply::Downloads { downloads })
}

pub async fn stop_share(
    daemon: &Daemon,
    group: String,
    file: String,
) -> Result<CtlReply, ErrorReply> {
    let session = daemon.user().require_session()?;
    validate_id("group id", &group)?;
    validate_file_name(&file)?;
    let key = file_key(&session.user, &group, &file);
    let lookup = key.clone();
    let share = daemon.plane.state.run(move |s| s.share(&lookup)).await?;
    let held = daemon.plane.holdings.remove_named(&group, &file);
    if share.is_none() && held.is_none() {
        return Err(ErrorReply::new(
            ErrorKind::NotFound,
            format!("you are not sharing {file} in {group}"),
        ));
    }
    daemon
        .plane
        .state
        .run(move |s| s.remove_share(&key))
        .await?;
    daemon
        .user()
        .call(TrackerCall::StopShare {
            group: group.clone(),
            name: file.clone(),
        })
        .await?;
    Ok(done(format!("stopped sharing {file} in {group}")))
}

/// An I/O error's reason without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
