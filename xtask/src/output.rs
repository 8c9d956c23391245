//! Writing the generated files, and the check that none of them describes the build machine.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Fails if `text` contains a path that only makes sense on this machine: the defaults the
/// programs compute from the environment, or the home directory.
pub fn check_no_leak(text: &str, what: &str) -> Result<()> {
    let mut machine_paths = vec![
        p2p_proto::paths::default_socket_path(),
        p2p_proto::paths::default_state_dir(),
    ];
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        && home.components().count() > 1
    {
        machine_paths.push(home);
    }
    for path in machine_paths {
        let path = path.to_string_lossy();
        let escaped = path.replace('-', "\\-");
        if text.contains(path.as_ref()) || text.contains(&escaped) {
            bail!("{what} contains {path}, a path of this machine");
        }
    }
    Ok(())
}

pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

pub fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
