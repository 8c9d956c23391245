//! Clean shutdown on SIGTERM and SIGINT, shared by the daemons.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Installs the SIGTERM and SIGINT handlers now, and cancels `shutdown` (with a log line) when
/// either arrives. Call it first thing inside the runtime, before binding a socket: a signal
/// sent as soon as the port is open must not find the default action (death) still in place.
/// Without handlers (they cannot be installed) it warns and never cancels.
pub fn cancel_on_signal(shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
        shutdown.cancel();
    });
}
