//! Build helpers of the workspace, run with `cargo run -p xtask -- <task>`:
//!
//! - `man OUT_DIR`: `p2pctl.1`, `p2pd.1` and `trackerd.8`, generated from the programs' clap
//!   definitions (clap_mangen) plus hand-written sections (files, environment, exit status, …)
//!   from `man/sections/*.md`, and `tracker_info.txt.5`, copied from the hand-written
//!   `man/tracker_info.txt.5`. `man/README.md` describes those files.
//! - `completions OUT_DIR`: bash, zsh and fish completions of the three programs (clap_complete)
//!   in `OUT_DIR/bash/`, `OUT_DIR/zsh/` and `OUT_DIR/fish/`, named as those shells look for them
//!   (`p2pctl`, `_p2pctl`, `p2pctl.fish`).
//!
//! The pages' date is taken from `SOURCE_DATE_EPOCH` when it is set, so a package build is
//! reproducible. Nothing of the build machine (its runtime directory, its home) may leak into a
//! page or a completion: defaults computed from the environment are replaced by their
//! documented form, and both tasks fail if a file still contains one.
//!
//! Modules: [`programs`] (the three clap definitions as documented), [`completions`], [`man`]
//! (page assembly, the prose markup, the date) and [`output`] (writing files, the leak check).

mod completions;
mod man;
mod output;
mod programs;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Build helpers of the p2p workspace")]
enum Task {
    /// Write p2pctl.1, p2pd.1, trackerd.8 and tracker_info.txt.5 into OUT_DIR
    Man {
        #[arg(value_name = "OUT_DIR")]
        out_dir: PathBuf,
    },
    /// Write bash, zsh and fish completions of the three programs into OUT_DIR/{bash,zsh,fish}/
    Completions {
        #[arg(value_name = "OUT_DIR")]
        out_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Task::parse() {
        Task::Man { out_dir } => man::man(&out_dir),
        Task::Completions { out_dir } => completions::completions(&out_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
