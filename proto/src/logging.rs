//! Logging setup shared by the daemons: the journal when systemd started us (it sets
//! `JOURNAL_STREAM`), stderr otherwise, or daily files for a daemon that detached.
//! `RUST_LOG` overrides the default level.

use std::path::Path;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Daily log files a detached daemon keeps (today's and the six before).
pub const KEEP_LOG_FILES: usize = 7;

fn filter(default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level))
}

pub fn init(default_level: &str) {
    let registry = tracing_subscriber::registry().with(filter(default_level));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        registry.with(journald).init();
        return;
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
}

/// Logs to `dir/<name>.YYYY-MM-DD`, a new file each day (UTC), removing all but the newest
/// [`KEEP_LOG_FILES`]; the journal instead when systemd started us. Falls back to stderr
/// (with a line saying why) when the files cannot be made.
pub fn init_daily_files(default_level: &str, dir: &Path, name: &str) {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        init(default_level);
        return;
    }
    let appender = Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(name)
        .max_log_files(KEEP_LOG_FILES)
        .build(dir);
    match appender {
        Ok(appender) => tracing_subscriber::registry()
            .with(filter(default_level))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(appender)
                    .with_ansi(false),
            )
            .init(),
        Err(e) => {
            init(default_level);
            tracing::warn!(error = %e, dir = %dir.display(), "cannot log to daily files; logging to stderr");
        }
    }
}
