//! Rendering replies for people (plain lines) and for scripts (`--json`).
//!
//! The JSON shape is a stable contract of its own, versioned apart from the control protocol:
//! `{"v":1,"ok":true,"reply":<CtlReply>}` or `{"v":1,"ok":false,"error":{"kind","message"}}`.
//! The human text may change between releases; scripts should use `--json`. Every human
//! line passes through [`terminal::safe`]: names and reasons come from other users and peers.

use crate::terminal;
use anyhow::{Context, Result};
use p2p_proto::ErrorReply;
use p2p_proto::control::{CtlReply, DaemonStatus, DownloadInfo, DownloadState, ReachStatus};
use p2p_proto::reach::Reachability;
use p2p_proto::views::{FileInfo, GroupInfo, LeftGroup, Membership};
use serde::Serialize;
use std::io::{self, Write};

/// Version of the `--json` output shape.
pub const JSON_OUTPUT_VERSION: u32 = 1;

/// Prints `reply` on stdout, as text or as one JSON object.
pub fn print_reply(reply: &CtlReply, json: bool) -> Result<()> {
    let text = if json { json_ok(reply)? } else { human(reply) };
    emit(&text)
}

/// Writes `text` and a newline to stdout. A reader that went away (`p2pctl list_files g | head
/// -1`) is not an error worth a message; `println!` would panic there.
pub fn emit(text: &str) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(err).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

#[derive(Serialize)]
struct JsonOk<'a> {
    v: u32,
    ok: bool,
    reply: &'a CtlReply,
}

#[derive(Serialize)]
struct JsonError<'a> {
    v: u32,
    ok: bool,
    error: &'a ErrorReply,
}

/// The success object of `--json`, on one line.
pub fn json_ok(reply: &CtlReply) -> Result<String> {
    serde_json::to_string(&JsonOk {
        v: JSON_OUTPUT_VERSION,
        ok: true,
        reply,
    })
    // Only a path that is not UTF-8 can fail here.
    .context("cannot express the reply as JSON")
}

/// The failure object of `--json`, on one line.
pub fn json_error(error: &ErrorReply) -> String {
    serde_json::to_string(&JsonError {
        v: JSON_OUTPUT_VERSION,
        ok: false,
        error,
    })
    // Two strings and a unit enum always serialize; keep the contract even if they did not.
    .unwrap_or_else(|_| {
        format!(
            r#"{{"v":{JSON_OUTPUT_VERSION},"ok":false,"error":{{"kind":"internal","message":""}}}}"#
        )
    })
}

/// The reply as lines for people, without a trailing newline; a listing with more pages ends
/// with a line saying how to ask for the next one. Each line is made safe for a terminal on its
/// own, so a newline inside a name shows as `\x0a` instead of forging a line.
pub fn human(reply: &CtlReply) -> String {
    let text = human_lines(reply);
    match more_hint(reply) {
        Some(hint) => format!("{text}\n{}", terminal::safe(&hint)),
        None => text,
    }
}

/// `(more: p2pctl list_files g1 --after NAME)` when a listing stopped at its page's end: the
/// command that shows the next page, with the last name shell-quoted where it needs to be.
fn more_hint(reply: &CtlReply) -> Option<String> {
    let (command, last) = match reply {
        CtlReply::Groups { groups, more: true } => {
            ("list_groups".to_owned(), &groups.last()?.group)
        }
        CtlReply::Files {
            group,
            files,
            more: true,
        } => (format!("list_files {group}"), &files.last()?.name),
        CtlReply::Requests {
            group,
            users,
            more: true,
        } => (format!("list_requests {group}"), users.last()?),
        _ => return None,
    };
    Some(format!(
        "(more: p2pctl {command} --after {})",
        shell_word(last)
    ))
}

/// `word` as one shell word: bare when it is plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-+,:@%/=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn human_lines(reply: &CtlReply) -> String {
    match reply {
        CtlReply::Done { message } => terminal::safe(message).into_owned(),
        CtlReply::Status(status) => status_lines(status),
        CtlReply::Groups { groups, .. } => list(groups, group_line, || "no groups".to_owned()),
        CtlReply::Requests { group, users, .. } => list(users, Clone::clone, || {
            format!("no pending requests for {group}")
        }),
        CtlReply::Left(left) => terminal::safe(&left_line(left)).into_owned(),
        CtlReply::Files { group, files, .. } => {
            list(files, file_line, || format!("no files in {group}"))
        }
        CtlReply::Downloads { downloads } => downloads_text(downloads),
    }
}

/// The lines of `show_downloads`, shared with `--watch` when stdout is not a terminal.
pub fn downloads_text(downloads: &[DownloadInfo]) -> String {
    list(downloads, download_line, || "no downloads".to_owned())
}

fn list<T>(items: &[T], line: impl Fn(&T) -> String, empty: impl FnOnce() -> String) -> String {
    if items.is_empty() {
        return terminal::safe(&empty()).into_owned();
    }
    safe_lines(items.iter().map(line))
}

/// Lines made safe one by one, then joined.
fn safe_lines(lines: impl IntoIterator<Item = String>) -> String {
    lines
        .into_iter()
        .map(|line| terminal::safe(&line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn group_line(info: &GroupInfo) -> String {
    format!(
        "{}  owner: {}  members: {}  ({})",
        info.group,
        info.owner,
        info.members,
        membership(info.membership)
    )
}

fn membership(membership: Membership) -> &'static str {
    match membership {
        Membership::Owner => "owner",
        Membership::Member => "member",
        Membership::Pending => "pending",
        Membership::None => "none",
    }
}

fn left_line(left: &LeftGroup) -> String {
    let mut line = format!("left {}", left.group);
    if let Some(owner) = &left.new_owner {
        line.push_str(&format!("; {owner} is the new owner"));
    }
    if left.removed {
        line.push_str("; the group was removed (no members left)");
    }
    line
}

fn status_lines(status: &DaemonStatus) -> String {
    let mut lines = vec![
        format!(
            "daemon: running (pid {}, version {})",
            status.pid, status.version
        ),
        match &status.user {
            Some(user) => format!("user: {user}"),
            None => "user: not logged in".to_owned(),
        },
        format!("key: {}", status.fingerprint),
        match (&status.tracker, &status.tracker_fingerprint) {
            (Some(tracker), Some(key)) => format!("tracker: {tracker} (key {key})"),
            (Some(tracker), None) => format!("tracker: {tracker}"),
            (None, _) => "tracker: none reachable".to_owned(),
        },
    ];
    if let Some(error) = &status.last_tracker_error {
        lines.push(format!("last tracker error: {error}"));
    }
    lines.extend(reach_lines(&status.reach));
    lines.push(format!("socket: {}", status.socket.display()));
    lines.push(format!("state: {}", status.state_dir.display()));
    safe_lines(lines)
}

/// Where peers reach the daemon: its listener, the public address the tracker sees and
/// checked, and the port mapping.
fn reach_lines(reach: &ReachStatus) -> Vec<String> {
    let mut lines = vec![format!("peers: listening on {}", reach.listen)];
    if let Some(addr) = &reach.public_addr {
        let seen = reach
            .observed
            .as_ref()
            .map(|o| format!(" (connects from {o})"))
            .unwrap_or_default();
        lines.push(format!("public address: {addr}{seen}"));
    }
    let how = match (reach.reachable, &reach.public_addr) {
        (Some(Reachability::Direct), _) => "yes, direct".to_owned(),
        (Some(Reachability::Mapped), _) => "yes, through the port mapping".to_owned(),
        (Some(Reachability::None), _) => {
            "no; peers reach this daemon by a hole punch or the relay".to_owned()
        }
        (None, Some(_)) => "checking".to_owned(),
        (None, None) => "not known (the tracker has not seen this daemon yet)".to_owned(),
    };
    lines.push(format!("reachable: {how}"));
    if let Some(m) = &reach.mapping {
        let lease = match m.lifetime_secs {
            0 => "permanent lease".to_owned(),
            s if s % 3600 == 0 => format!("lease {}h, renewed", s / 3600),
            s => format!("lease {s}s, renewed"),
        };
        lines.push(format!(
            "port mapping: {} {} ({lease})",
            m.protocol, m.external
        ));
    }
    for addr in &reach.ipv6 {
        lines.push(format!("ipv6: {addr} reachable"));
    }
    lines
}

fn file_line(file: &FileInfo) -> String {
    format!(
        "{}  {}  {}",
        file.name,
        human_size(file.size),
        count(file.seeders, "seeder")
    )
}

/// One download: `[D]` while it can still progress, `[C]` once it is over (done or failed).
pub fn download_line(d: &DownloadInfo) -> String {
    let head = download_head(d);
    match d.state {
        DownloadState::Downloading => format!(
            "{head}  {}%  {}/s  {}",
            percent(d),
            human_size(d.rate),
            count(d.peers, "peer")
        ),
        DownloadState::Waiting => format!("{head}  {}%  {}", percent(d), waiting_detail(d)),
        DownloadState::Complete => format!("{head}  100%  {}", human_size(d.size)),
        DownloadState::Failed => format!("{head}  {}", failed_detail(d)),
    }
}

/// `[D] [group] file` or `[C] [group] file`.
pub fn download_head(d: &DownloadInfo) -> String {
    let mark = match d.state {
        DownloadState::Downloading | DownloadState::Waiting => 'D',
        DownloadState::Complete | DownloadState::Failed => 'C',
    };
    format!("[{mark}] [{}] {}", d.group, d.file)
}

pub fn waiting_detail(d: &DownloadInfo) -> String {
    format!(
        "waiting: {}",
        d.detail.as_deref().unwrap_or("no peer online")
    )
}

pub fn failed_detail(d: &DownloadInfo) -> String {
    format!(
        "failed: {}",
        d.detail.as_deref().unwrap_or("no reason given")
    )
}

/// Whole percent done, rounded down so 100% means every byte; an empty file is 100%.
pub fn percent(d: &DownloadInfo) -> u64 {
    if d.size == 0 {
        return 100;
    }
    let pct = u128::from(d.bytes_done) * 100 / u128::from(d.size);
    // Clamped: a daemon reporting more bytes than the size must not print 250%.
    u64::try_from(pct.min(100)).unwrap_or(100)
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // f64 is exact enough for one decimal at every size.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Compare the rounded value, so 1048575 bytes is "1.0 MiB", not "1024.0 KiB".
    while (value * 10.0).round() >= 10240.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p2p_proto::ErrorKind;
    use p2p_proto::control::BannedPeer;

    /// A download of `movie.mkv` in `g1`, for the tests of the displays.
    pub(crate) fn download(state: DownloadState, size: u64, done: u64) -> DownloadInfo {
        DownloadInfo {
            group: "g1".into(),
            file: "movie.mkv".into(),
            destination: "/home/a/movie.mkv".into(),
            size,
            state,
            pieces_done: 0,
            pieces_total: 0,
            bytes_done: done,
            rate: 0,
            peers: 0,
            detail: None,
            banned: vec![],
            sources: vec![],
        }
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(12_900_000), "12.3 MiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn done_prints_its_message() {
        let reply = CtlReply::Done {
            message: "logged in as alice".into(),
        };
        assert_eq!(human(&reply), "logged in as alice");
    }

    #[test]
    fn groups() {
        let reply = CtlReply::Groups {
            groups: vec![
                GroupInfo {
                    group: "g1".into(),
                    owner: "alice".into(),
                    members: 3,
                    membership: Membership::Owner,
                },
                GroupInfo {
                    group: "g2".into(),
                    owner: "bob".into(),
                    members: 1,
                    membership: Membership::None,
                },
            ],
            more: false,
        };
        assert_eq!(
            human(&reply),
            "g1  owner: alice  members: 3  (owner)\ng2  owner: bob  members: 1  (none)"
        );
        assert_eq!(
            human(&CtlReply::Groups {
                groups: vec![],
                more: false
            }),
            "no groups"
        );
    }

    #[test]
    fn membership_words_match_the_wire() {
        for m in [
            Membership::Owner,
            Membership::Member,
            Membership::Pending,
            Membership::None,
        ] {
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::Value::from(membership(m))
            );
        }
    }

    #[test]
    fn requests() {
        let reply = CtlReply::Requests {
            group: "g1".into(),
            users: vec!["bob".into(), "carol".into()],
            more: false,
        };
        assert_eq!(human(&reply), "bob\ncarol");
        let reply = CtlReply::Requests {
            group: "g1".into(),
            users: vec![],
            more: false,
        };
        assert_eq!(human(&reply), "no pending requests for g1");
    }

    #[test]
    fn left() {
        let left = |new_owner: Option<&str>, removed| {
            human(&CtlReply::Left(LeftGroup {
                group: "g1".into(),
                new_owner: new_owner.map(Into::into),
                removed,
            }))
        };
        assert_eq!(left(None, false), "left g1");
        assert_eq!(left(Some("bob"), false), "left g1; bob is the new owner");
        assert_eq!(
            left(None, true),
            "left g1; the group was removed (no members left)"
        );
    }

    #[test]
    fn status() {
        let mut status = DaemonStatus {
            version: "0.1.0".into(),
            pid: 42,
            user: Some("alice".into()),
            fingerprint: format!("sha256:{}", "ab".repeat(32)),
            tracker: Some("127.0.0.1:7000".into()),
            tracker_fingerprint: Some(format!("sha256:{}", "cd".repeat(32))),
            last_tracker_error: Some("127.0.0.1:7001: connection refused".into()),
            socket: "/run/user/1000/p2pd/p2pd.sock".into(),
            state_dir: "/home/a/.local/state/p2pd".into(),
            reach: ReachStatus {
                listen: "[::]:4000".into(),
                observed: Some("11.0.0.20".into()),
                public_addr: Some("11.0.0.20:4000".into()),
                reachable: Some(Reachability::Mapped),
                mapping: Some(p2p_proto::control::MappingStatus {
                    protocol: "upnp".into(),
                    external: "11.0.0.20:4000".into(),
                    lifetime_secs: 3600,
                }),
                ipv6: vec!["[2001:db8:1::2]:4000".into()],
            },
        };
        assert_eq!(
            human(&CtlReply::Status(Box::new(status.clone()))),
            format!(
                "daemon: running (pid 42, version 0.1.0)\n\
             user: alice\n\
             key: sha256:{}\n\
             tracker: 127.0.0.1:7000 (key sha256:{})\n\
             last tracker error: 127.0.0.1:7001: connection refused\n\
             peers: listening on [::]:4000\n\
             public address: 11.0.0.20:4000 (connects from 11.0.0.20)\n\
             reachable: yes, through the port mapping\n\
             port mapping: upnp 11.0.0.20:4000 (lease 1h, renewed)\n\
             ipv6: [2001:db8:1::2]:4000 reachable\n\
             socket: /run/user/1000/p2pd/p2pd.sock\n\
             state: /home/a/.local/state/p2pd",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
        status.user = None;
        status.tracker = None;
        status.last_tracker_error = None;
        status.reach = ReachStatus {
            listen: "[::]:4000".into(),
            ..ReachStatus::default()
        };
        assert_eq!(
            human(&CtlReply::Status(Box::new(status))),
            format!(
                "daemon: running (pid 42, version 0.1.0)\n\
             user: not logged in\n\
             key: sha256:{}\n\
             tracker: none reachable\n\
             peers: listening on [::]:4000\n\
             reachable: not known (the tracker has not seen this daemon yet)\n\
             socket: /run/user/1000/p2pd/p2pd.sock\n\
             state: /home/a/.local/state/p2pd",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn files() {
        let reply = CtlReply::Files {
            group: "g1".into(),
            files: vec![
                FileInfo {
                    name: "movie.mkv".into(),
                    size: 12_900_000,
                    seeders: 2,
                },
                FileInfo {
                    name: "notes.txt".into(),
                    size: 300,
                    seeders: 1,
                },
            ],
            more: false,
        };
        assert_eq!(
            human(&reply),
            "movie.mkv  12.3 MiB  2 seeders\nnotes.txt  300 B  1 seeder"
        );
        let reply = CtlReply::Files {
            group: "g1".into(),
            files: vec![],
            more: false,
        };
        assert_eq!(human(&reply), "no files in g1");
    }

    #[test]
    fn a_page_with_more_ends_with_the_next_command() {
        let group = |name: &str| GroupInfo {
            group: name.into(),
            owner: "alice".into(),
            members: 1,
            membership: Membership::Owner,
        };
        let reply = CtlReply::Groups {
            groups: vec![group("a"), group("b")],
            more: true,
        };
        assert_eq!(
            human(&reply),
            "a  owner: alice  members: 1  (owner)\nb  owner: alice  members: 1  (owner)\n\
             (more: p2pctl list_groups --after b)"
        );
        let reply = CtlReply::Files {
            group: "g1".into(),
            files: vec![FileInfo {
                name: "it's here.txt".into(),
                size: 1,
                seeders: 0,
            }],
            more: true,
        };
        assert_eq!(
            human(&reply).lines().last(),
            Some(r"(more: p2pctl list_files g1 --after 'it'\''s here.txt')")
        );
        let reply = CtlReply::Requests {
            group: "g1".into(),
            users: vec!["bob".into()],
            more: true,
        };
        assert_eq!(
            human(&reply),
            "bob\n(more: p2pctl list_requests g1 --after bob)"
        );
        let value: serde_json::Value = serde_json::from_str(&json_ok(&reply).unwrap()).unwrap();
        assert_eq!(value["reply"]["more"], true);
    }

    #[test]
    fn download_lines() {
        let mut d = download(DownloadState::Downloading, 1000, 425);
        d.rate = 1536;
        d.peers = 3;
        assert_eq!(
            download_line(&d),
            "[D] [g1] movie.mkv  42%  1.5 KiB/s  3 peers"
        );
        d.peers = 1;
        assert!(download_line(&d).ends_with("  1 peer"));

        let mut d = download(DownloadState::Waiting, 1000, 500);
        assert_eq!(
            download_line(&d),
            "[D] [g1] movie.mkv  50%  waiting: no peer online"
        );
        d.detail = Some("tracker unreachable".into());
        assert_eq!(
            download_line(&d),
            "[D] [g1] movie.mkv  50%  waiting: tracker unreachable"
        );

        let d = download(DownloadState::Complete, 12_900_000, 12_900_000);
        assert_eq!(download_line(&d), "[C] [g1] movie.mkv  100%  12.3 MiB");

        let mut d = download(DownloadState::Failed, 1000, 10);
        d.detail = Some("file hash mismatch".into());
        d.banned = vec![BannedPeer {
            peer: "10.0.0.1:7100".into(),
            reason: "bad piece 3".into(),
        }];
        assert_eq!(
            download_line(&d),
            "[C] [g1] movie.mkv  failed: file hash mismatch"
        );

        assert_eq!(
            human(&CtlReply::Downloads { downloads: vec![] }),
            "no downloads"
        );
    }

    #[test]
    fn remote_text_is_shown_escaped() {
        let reply = CtlReply::Groups {
            groups: vec![GroupInfo {
                group: "g\u{1b}]0;pwned\u{7}".into(),
                owner: "mallory\n[C] [g1] forged.bin  100%".into(),
                members: 1,
                membership: Membership::Member,
            }],
            more: true,
        };
        assert_eq!(
            human(&reply),
            "g\\x1b]0;pwned\\x07  owner: mallory\\x0a[C] [g1] forged.bin  100%  members: 1  (member)\n\
             (more: p2pctl list_groups --after 'g\\x1b]0;pwned\\x07')"
        );
        let reply = CtlReply::Done {
            message: "\u{1b}[2Jcleared".into(),
        };
        assert_eq!(human(&reply), "\\x1b[2Jcleared");
        let mut d = download(DownloadState::Failed, 1, 0);
        d.detail = Some("peer said: \u{9b}31m".into());
        assert_eq!(
            human(&CtlReply::Downloads { downloads: vec![d] }),
            "[C] [g1] movie.mkv  failed: peer said: \\u{9b}31m"
        );
        let reply = CtlReply::Files {
            group: "g\u{1b}[1m".into(),
            files: vec![],
            more: false,
        };
        assert_eq!(human(&reply), "no files in g\\x1b[1m");
    }

    #[test]
    fn percent_edges() {
        assert_eq!(percent(&download(DownloadState::Complete, 0, 0)), 100);
        assert_eq!(
            percent(&download(DownloadState::Downloading, 1000, 999)),
            99
        );
        assert_eq!(percent(&download(DownloadState::Downloading, 10, 25)), 100);
        assert_eq!(
            percent(&download(
                DownloadState::Downloading,
                u64::MAX,
                u64::MAX / 2
            )),
            49
        );
    }

    #[test]
    fn json_shapes() {
        let reply = CtlReply::Done {
            message: "ok".into(),
        };
        let value: serde_json::Value = serde_json::from_str(&json_ok(&reply).unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"v": 1, "ok": true, "reply": {"reply": "done", "message": "ok"}})
        );
        let text = json_error(&ErrorReply::new(ErrorKind::NotFound, "no such group g9"));
        assert!(!text.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "v": 1,
                "ok": false,
                "error": {"kind": "not_found", "message": "no such group g9"}
            })
        );
    }

    #[test]
    fn json_keeps_bans_visible() {
        let mut d = download(DownloadState::Downloading, 10, 5);
        d.banned = vec![BannedPeer {
            peer: "10.0.0.1:7100".into(),
            reason: "bad piece 3".into(),
        }];
        let text = json_ok(&CtlReply::Downloads { downloads: vec![d] }).unwrap();
        assert!(text.contains(r#""banned":[{"peer":"10.0.0.1:7100","reason":"bad piece 3"}]"#));
    }

    #[test]
    fn non_utf8_path_is_an_error_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let mut d = download(DownloadState::Complete, 1, 1);
        d.destination = std::ffi::OsStr::from_bytes(b"/tmp/\xff").into();
        assert!(json_ok(&CtlReply::Downloads { downloads: vec![d] }).is_err());
    }
}
