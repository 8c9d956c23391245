//! Commands typed on the tracker's standard input: `status` prints the role, epoch, log
//! position and replication state; `quit` stops the tracker. The end of input
//! (stdin is /dev/null under systemd) is not a reason to stop.
//!
//! Stdin is read on a plain thread of its own: a blocking read cannot be cancelled, and the
//! tracker must be able to exit (on SIGTERM) while a terminal or pipe is still open.

use std::io::{BufRead, Read};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest stdin line read; longer ones are cut.
const MAX_LINE: u64 = 4096;

/// Reads commands until `quit` or the end of input. `status` prints `status()`.
pub async fn read_commands(shutdown: CancellationToken, status: impl Fn() -> String) {
    let (tx, mut rx) = mpsc::channel::<String>(4);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut line = Vec::new();
                match (&mut lock).take(MAX_LINE).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        // Skip the rest of an over-long line.
                        if !line.ends_with(b"\n") && line.len() as u64 == MAX_LINE {
                            let mut rest = Vec::new();
                            let _ = lock.read_until(b'\n', &mut rest);
                        }
                        let text = String::from_utf8_lossy(&line).trim().to_string();
                        if tx.blocking_send(text).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    if spawned.is_err() {
        tracing::warn!("cannot read commands from stdin");
        return;
    }
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            line = rx.recv() => line,
        };
        match line.as_deref() {
            None => return,
            Some("quit" | "exit") => {
                tracing::info!("quit read on stdin; shutting down");
                shutdown.cancel();
                return;
            }
            Some("") => {}
            Some("status") => println!("{}", status()),
            Some(other) => eprintln!("unknown command {other:?}; commands: status, quit"),
        }
    }
}
