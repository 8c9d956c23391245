//! Clean shutdown on SIGTERM and SIGINT, shared by the daemons.

/// Waits for SIGTERM or SIGINT, logs which, and returns. Returns at once (with a warning) if
/// the handlers cannot be installed, so callers should treat that as "never".
pub async fn terminated() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return false;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    true
}
