//! Commands typed on the tracker's standard input. `quit` stops the tracker; the end of input
//! (stdin is /dev/null under systemd) is not a reason to stop.

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Longest stdin line read; longer ones are cut.
const MAX_LINE: usize = 4096;

pub async fn read_commands(shutdown: CancellationToken) {
    let mut lines = BufReader::new(tokio::io::stdin()).take_lines();
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            line = lines.next() => line,
        };
        match line {
            None => return,
            Some(line) => match line.trim() {
                "quit" | "exit" => {
                    tracing::info!("quit read on stdin; shutting down");
                    shutdown.cancel();
                    return;
                }
                "" => {}
                other => eprintln!("unknown command {other:?}; commands: quit"),
            },
        }
    }
}

/// Line reader with a length bound, ending at the first read error.
struct BoundedLines<R> {
    reader: R,
    buf: Vec<u8>,
}

trait TakeLines: Sized {
    fn take_lines(self) -> BoundedLines<Self>;
}

impl<R: AsyncBufReadExt + Unpin> TakeLines for R {
    fn take_lines(self) -> BoundedLines<Self> {
        BoundedLines {
            reader: self,
            buf: Vec::new(),
        }
    }
}

impl<R: AsyncBufReadExt + Unpin> BoundedLines<R> {
    async fn next(&mut self) -> Option<String> {
        self.buf.clear();
        loop {
            let chunk = self.reader.fill_buf().await.ok()?;
            if chunk.is_empty() {
                return (!self.buf.is_empty()).then(|| String::from_utf8_lossy(&self.buf).into());
            }
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            self.reader.consume(take);
            if done {
                return Some(String::from_utf8_lossy(&self.buf).into());
            }
        }
    }
}
