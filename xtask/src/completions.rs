//! `completions OUT_DIR`: bash, zsh and fish completions of the three programs.

use crate::output::{check_no_leak, create_dir, write};
use crate::programs;
use anyhow::{Context, Result};
use clap_complete::Shell;
use std::path::Path;

pub fn completions(out_dir: &Path) -> Result<()> {
    for (shell, dir) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = out_dir.join(dir);
        create_dir(&dir)?;
        for mut cmd in programs::all() {
            let name = cmd.get_name().to_owned();
            let file = match shell {
                Shell::Bash => name.clone(),
                Shell::Zsh => format!("_{name}"),
                _ => format!("{name}.fish"),
            };
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut script);
            let text = String::from_utf8(script).context("completion script is not UTF-8")?;
            check_no_leak(&text, &format!("{shell} completion of {name}"))?;
            write(&dir.join(file), &text)?;
        }
    }
    Ok(())
}
