//! `show_downloads --watch`: live progress until every download is over or Ctrl-C.
//!
//! The control protocol is one request per connection, so each refresh is a fresh
//! `ShowDownloads` request. Rate and ETA come from the daemon's own rate (measured over its
//! last seconds) rather than indicatif's estimate, so the bars agree with `show_downloads`.
//! When stdout is not a terminal the plain lines are printed every second instead, one block
//! per refresh separated by an empty line.

use crate::client;
use crate::connect::{self, Autostart};
use crate::failure::fail;
use crate::output;
use anyhow::Result;
use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use p2p_proto::ErrorKind;
use p2p_proto::control::{CtlCommand, CtlReply, DownloadInfo, DownloadState};
use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

const BAR_REFRESH: Duration = Duration::from_millis(500);
const PLAIN_REFRESH: Duration = Duration::from_secs(1);
/// `{msg}` is `[D] [group] file`; `{prefix}` carries our own rate/ETA text (see module doc),
/// since indicatif has no per-bar custom field besides these two.
const TEMPLATE: &str = "{msg}  [{bar:25}] {prefix}";

/// Runs the watch until it is over; Ctrl-C ends it successfully (the downloads go on).
pub async fn run(socket: &Path) -> Result<()> {
    let mut interrupted = pin!(ctrl_c());
    let mut view: Box<dyn View> = if std::io::stdout().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Plain { printed: false })
    };
    let mut autostart = Autostart::Yes;
    loop {
        let downloads = match until(&mut interrupted, poll(socket, autostart)).await {
            Some(result) => result?,
            None => return view.interrupted(),
        };
        // Starting a daemon makes sense once; a daemon that vanishes mid-watch is reported.
        autostart = Autostart::No;
        if downloads.is_empty() {
            return output::emit(&output::downloads_text(&downloads));
        }
        view.show(&downloads)?;
        if downloads.iter().all(is_over) {
            return Ok(());
        }
        if until(&mut interrupted, tokio::time::sleep(view.refresh()))
            .await
            .is_none()
        {
            return view.interrupted();
        }
    }
}

/// Resolves on Ctrl-C; never, if the handler cannot be installed (then the default SIGINT
/// action still ends the process).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `work`'s output, or `None` if Ctrl-C came first.
async fn until<T>(
    interrupted: &mut (impl Future<Output = ()> + Unpin),
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        () = interrupted => None,
        value = work => Some(value),
    }
}

async fn poll(socket: &Path, autostart: Autostart) -> Result<Vec<DownloadInfo>> {
    let stream = connect::connect(socket, autostart).await?;
    match client::call(stream, socket, CtlCommand::ShowDownloads).await? {
        CtlReply::Downloads { downloads } => Ok(downloads),
        other => Err(fail(
            ErrorKind::Protocol,
            format!("p2pd answered show_downloads with an unexpected reply: {other:?}"),
        )),
    }
}

fn is_over(d: &DownloadInfo) -> bool {
    matches!(d.state, DownloadState::Complete | DownloadState::Failed)
}

/// A way of showing successive snapshots.
trait View {
    fn show(&mut self, downloads: &[DownloadInfo]) -> Result<()>;
    fn refresh(&self) -> Duration;
    fn interrupted(&mut self) -> Result<()>;
}

/// Plain lines for logs and pipes.
struct Plain {
    printed: bool,
}

impl View for Plain {
    fn show(&mut self, downloads: &[DownloadInfo]) -> Result<()> {
        let text = output::downloads_text(downloads);
        let text = if self.printed {
            format!("\n{text}")
        } else {
            text
        };
        self.printed = true;
        output::emit(&text)
    }

    fn refresh(&self) -> Duration {
        PLAIN_REFRESH
    }

    fn interrupted(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One progress bar per download, identified by group, file and destination (the same file
/// may be downloaded to two places), plus an occurrence number against exact duplicates.
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    bars: HashMap<Key, Tracked>,
}

type Key = (String, String, PathBuf, usize);

struct Tracked {
    bar: ProgressBar,
    over: bool,
}

impl Bars {
    fn new() -> Self {
        let style = ProgressStyle::with_template(TEMPLATE)
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            style,
            bars: HashMap::new(),
        }
    }
}

impl View for Bars {
    fn show(&mut self, downloads: &[DownloadInfo]) -> Result<()> {
        let mut listed: Vec<Key> = Vec::with_capacity(downloads.len());
        for d in downloads {
            let mut key = (d.group.clone(), d.file.clone(), d.destination.clone(), 0);
            // Two identical entries must not fight over one bar.
            while listed.contains(&key) {
                key.3 += 1;
            }
            let tracked = self.bars.entry(key.clone()).or_insert_with(|| Tracked {
                bar: self
                    .multi
                    .add(ProgressBar::new(d.size).with_style(self.style.clone())),
                over: false,
            });
            listed.push(key);
            if tracked.over {
                continue;
            }
            let view = BarView::of(d);
            // Length and position first: the text setters after them re-render the bar's line
            // with whatever these set (set_position alone may skip that to save work).
            tracked.bar.set_length(view.length);
            tracked.bar.set_position(view.position);
            tracked.bar.set_prefix(view.status);
            tracked.bar.set_message(view.message);
            match view.end {
                None => {}
                Some(End::Complete) => tracked.bar.finish(),
                Some(End::Failed) => tracked.bar.abandon(),
            }
            tracked.over = view.end.is_some();
        }
        // A download the daemon no longer lists (removed, or the daemon lost it) would
        // otherwise keep a live bar forever.
        for (key, tracked) in &mut self.bars {
            if !tracked.over && !listed.contains(key) {
                tracked.bar.set_prefix("no longer listed by p2pd");
                tracked.bar.abandon();
                tracked.over = true;
            }
        }
        // The many setter calls above may have hit indicatif's redraw rate limit, leaving the
        // screen one refresh behind. Every bar's line is up to date inside the MultiProgress, so
        // one forced draw of any bar puts all of them on screen.
        if let Some(tracked) = self.bars.values().next() {
            tracked.bar.force_draw();
        }
        Ok(())
    }

    fn refresh(&self) -> Duration {
        BAR_REFRESH
    }

    fn interrupted(&mut self) -> Result<()> {
        // Leave the last state drawn instead of clearing it.
        for tracked in self.bars.values().filter(|t| !t.over) {
            tracked.bar.abandon();
        }
        // The abandons may have been rate limited too; the last frame must reach the screen.
        if let Some(tracked) = self.bars.values().next() {
            tracked.bar.force_draw();
        }
        Ok(())
    }
}

/// How a bar ends once its download is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Complete,
    Failed,
}

/// What one bar shows for one download: the pure part of the drawing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BarView {
    length: u64,
    position: u64,
    message: String,
    status: String,
    end: Option<End>,
}

impl BarView {
    fn of(d: &DownloadInfo) -> Self {
        let position = d.bytes_done.min(d.size);
        let done = format!(
            "{}/{}",
            output::human_size(position),
            output::human_size(d.size)
        );
        let (status, end) = match d.state {
            DownloadState::Downloading => (
                format!(
                    "{done}  {}/s  ETA {}  {} peer{}",
                    output::human_size(d.rate),
                    eta(d.size - position, d.rate),
                    d.peers,
                    if d.peers == 1 { "" } else { "s" }
                ),
                None,
            ),
            DownloadState::Waiting => (format!("{done}  {}", output::waiting_detail(d)), None),
            DownloadState::Complete => (output::human_size(d.size), Some(End::Complete)),
            DownloadState::Failed => (output::failed_detail(d), Some(End::Failed)),
        };
        Self {
            length: d.size,
            // A complete bar is full whatever the last counters said.
            position: if end == Some(End::Complete) {
                d.size
            } else {
                position
            },
            message: crate::terminal::safe(&output::download_head(d)).into_owned(),
            status: crate::terminal::safe(&status).into_owned(),
            end,
        }
    }
}

/// Time left at the current rate, in indicatif's compact form (`3m`, `45s`); `?` at rate 0.
fn eta(remaining: u64, rate: u64) -> String {
    if rate == 0 {
        return "?".to_owned();
    }
    format!(
        "{:#}",
        HumanDuration(Duration::from_secs(remaining.div_ceil(rate)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn download(state: DownloadState, size: u64, done: u64, rate: u64) -> DownloadInfo {
        DownloadInfo {
            rate,
            peers: 2,
            ..crate::output::tests::download(state, size, done)
        }
    }

    #[test]
    fn downloading_bar() {
        let view = BarView::of(&download(
            DownloadState::Downloading,
            10 * 1024 * 1024,
            5 * 1024 * 1024,
            1024 * 1024,
        ));
        assert_eq!(view.message, "[D] [g1] movie.mkv");
        assert_eq!(view.status, "5.0 MiB/10.0 MiB  1.0 MiB/s  ETA 5s  2 peers");
        assert_eq!(
            (view.position, view.length, view.end),
            (5 << 20, 10 << 20, None)
        );
    }

    #[test]
    fn waiting_bar() {
        let view = BarView::of(&download(DownloadState::Waiting, 2048, 1024, 0));
        assert_eq!(view.status, "1.0 KiB/2.0 KiB  waiting: no peer online");
        assert_eq!(view.end, None);
    }

    #[test]
    fn finished_bars() {
        let view = BarView::of(&download(DownloadState::Complete, 2048, 0, 0));
        assert_eq!(view.message, "[C] [g1] movie.mkv");
        assert_eq!((view.position, view.end), (2048, Some(End::Complete)));
        let mut d = download(DownloadState::Failed, 2048, 100, 0);
        d.detail = Some("file hash mismatch".into());
        let view = BarView::of(&d);
        assert_eq!(view.status, "failed: file hash mismatch");
        assert_eq!((view.position, view.end), (100, Some(End::Failed)));
    }

    #[test]
    fn overshooting_counters_stay_in_the_bar() {
        let view = BarView::of(&download(DownloadState::Downloading, 100, 150, 10));
        assert_eq!(view.position, 100);
        assert!(view.status.contains("ETA 0s"), "{}", view.status);
    }

    #[test]
    fn eta_text() {
        assert_eq!(eta(100, 0), "?");
        assert_eq!(eta(0, 10), "0s");
        assert_eq!(eta(3 * 60 * 1024, 1024), "3m");
    }

    #[test]
    fn over_means_complete_or_failed() {
        assert!(is_over(&download(DownloadState::Complete, 1, 1, 0)));
        assert!(is_over(&download(DownloadState::Failed, 1, 0, 0)));
        assert!(!is_over(&download(DownloadState::Waiting, 1, 0, 0)));
        assert!(!is_over(&download(DownloadState::Downloading, 1, 0, 0)));
    }
}
