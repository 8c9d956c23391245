//! Build helpers of the workspace, run with `cargo run -p xtask -- <task>`:
//!
//! - `man OUT_DIR`: `p2pctl.1`, `p2pd.1` and `trackerd.8`, generated from the programs' clap
//!   definitions (clap_mangen) plus hand-written sections (files, environment, exit status, …),
//!   and `tracker_info.txt.5`, copied from the hand-written `man/tracker_info.txt.5`.
//! - `completions OUT_DIR`: bash, zsh and fish completions of the three programs (clap_complete)
//!   in `OUT_DIR/bash/`, `OUT_DIR/zsh/` and `OUT_DIR/fish/`, named as those shells look for them
//!   (`p2pctl`, `_p2pctl`, `p2pctl.fish`).
//!
//! The pages' date is taken from `SOURCE_DATE_EPOCH` when it is set, so a package build is
//! reproducible. Nothing of the build machine (its runtime directory, its home) may leak into a
//! page: defaults computed from the environment are replaced by their documented form, and
//! `man` fails if a page still contains one.

use anyhow::{Context, Result, bail};
use clap::{Arg, Parser};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// p2pctl's command line: the binary-only crate's module, shared by path.
#[allow(dead_code)]
#[path = "../../ctl/src/cli.rs"]
mod ctl_cli;

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
        Task::Man { out_dir } => man(&out_dir),
        Task::Completions { out_dir } => completions(&out_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the socket default is documented as; the real default depends on the environment.
const SOCKET_DEFAULT: &str = "$XDG_RUNTIME_DIR/p2pd/p2pd.sock";

/// The hand-written page, relative to the workspace root.
const TRACKER_INFO_PAGE: &str = "man/tracker_info.txt.5";

/// p2pctl's manifest: compiled here, its `#[command(about)]` would take xtask's description.
const CTL_MANIFEST: &str = include_str!("../../ctl/Cargo.toml");

/// The `description = "…"` of a manifest's package.
fn manifest_description(manifest: &str) -> Option<&str> {
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("description = \""))
        .and_then(|rest| rest.strip_suffix('"'))
}

/// p2pctl's definition with its own description, and its `--socket` default (computed from
/// this machine's environment) replaced by the documented one.
fn p2pctl_command() -> clap::Command {
    let cmd = ctl_cli::command();
    let cmd = match manifest_description(CTL_MANIFEST) {
        Some(about) => cmd.about(about),
        None => cmd,
    };
    cmd.mut_arg("socket", |arg| {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let arg = arg.hide_default_value(true);
        if help.contains("[default:") {
            arg
        } else {
            arg.help(format!("{help} [default: {SOCKET_DEFAULT}]"))
        }
    })
}

fn programs() -> [clap::Command; 3] {
    [
        p2pctl_command(),
        p2pd::cli::command(),
        trackerd::cli::command(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Completions

fn completions(out_dir: &Path) -> Result<()> {
    for (shell, dir) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = out_dir.join(dir);
        create_dir(&dir)?;
        for mut cmd in programs() {
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

// ---------------------------------------------------------------------------------------------
// Man pages

fn man(out_dir: &Path) -> Result<()> {
    create_dir(out_dir)?;
    let date = man_date()?;
    let version = env!("CARGO_PKG_VERSION");
    for page in [p2pctl_page(), p2pd_page(), trackerd_page()] {
        let file = format!("{}.{}", page.cmd.get_name(), page.section);
        let text = page.render(&date)?;
        check_no_leak(&text, &file)?;
        write(&out_dir.join(file), &text)?;
    }

    // The hand-written page gets the same date and source line as the generated ones.
    let source = workspace_root().join(TRACKER_INFO_PAGE);
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let th = format!(".TH TRACKER_INFO.TXT 5 {date} \"p2p {version}\" \"File Formats Manual\"");
    let mut replaced = false;
    let text: String = text
        .lines()
        .map(|line| {
            if !replaced && line.starts_with(".TH ") {
                replaced = true;
                th.clone()
            } else {
                line.to_owned()
            }
        })
        .flat_map(|line| [line, "\n".to_owned()])
        .collect();
    if !replaced {
        bail!("{} has no .TH line", source.display());
    }
    write(&out_dir.join("tracker_info.txt.5"), &text)
}

/// One generated page: clap_mangen's title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS, with
/// hand-written paragraphs added to DESCRIPTION and hand-written sections after OPTIONS.
struct Page {
    cmd: clap::Command,
    section: &'static str,
    manual: &'static str,
    description: Roff,
    sections: Roff,
}

/// What `roff` writes at the start of every rendering; kept once per page.
const ROFF_PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

impl Page {
    fn render(&self, date: &str) -> Result<String> {
        let name = self.cmd.get_name().to_owned();
        let version = self.cmd.get_version().unwrap_or_default().to_owned();
        let man = Man::new(self.cmd.clone())
            .title(name.to_uppercase())
            .section(self.section)
            .date(date)
            .source(format!("p2p {version}"))
            .manual(self.manual);

        let mut out = format!(
            ".\\\" Generated from the clap definition of {name} by `cargo run -p xtask -- man`.\n\
             .\\\" Do not edit; edit the definition or xtask/src/main.rs.\n{ROFF_PREAMBLE}"
        );
        let piece = |render: &dyn Fn(&Man, &mut Vec<u8>) -> std::io::Result<()>| {
            let mut buf = Vec::new();
            render(&man, &mut buf)?;
            let text = String::from_utf8(buf).context("page is not UTF-8")?;
            anyhow::Ok(text.strip_prefix(ROFF_PREAMBLE).unwrap_or(&text).to_owned())
        };
        out += &piece(&|m, w| m.render_title(w))?;
        // Left-aligned, unhyphenated: paths and option names stay whole.
        out += ".ad l\n.nh\n";
        out += &piece(&|m, w| m.render_name_section(w))?;
        out += &piece(&|m, w| m.render_synopsis_section(w))?;
        out += &piece(&|m, w| m.render_description_section(w))?;
        out += &roff_body(&self.description);
        if self.cmd.get_arguments().any(|a| !a.is_hide_set()) {
            out += &piece(&|m, w| m.render_options_section(w))?;
        }
        out += &roff_body(&self.sections);
        Ok(out)
    }
}

fn roff_body(roff: &Roff) -> String {
    let text = roff.render();
    text.strip_prefix(ROFF_PREAMBLE).unwrap_or(&text).to_owned()
}

/// A little markup for the hand-written prose: `{b:text}` is bold, `{i:text}` italic, the rest
/// roman. `roff` escapes everything, so the text is written as it should read.
fn md(text: &str) -> Vec<Inline> {
    let mut inlines = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let font: Option<fn(String) -> Inline> = if tail.starts_with("{b:") {
            Some(|s: String| bold(s))
        } else if tail.starts_with("{i:") {
            Some(|s: String| italic(s))
        } else {
            None
        };
        match (font, tail.find('}')) {
            (Some(font), Some(end)) => {
                if start > 0 {
                    inlines.push(roman(&rest[..start]));
                }
                inlines.push(font(tail[3..end].to_owned()));
                rest = &tail[end + 1..];
            }
            _ => {
                inlines.push(roman(&rest[..=start]));
                rest = &rest[start + 1..];
            }
        }
    }
    if !rest.is_empty() {
        inlines.push(roman(rest));
    }
    inlines
}

/// Builder of hand-written sections.
#[derive(Default)]
struct Text {
    roff: Roff,
    /// A paragraph just started (after .SH): the next paragraph needs no .PP.
    fresh: bool,
}

impl Text {
    fn section(mut self, title: &str) -> Self {
        self.roff.control("SH", [title]);
        self.fresh = true;
        self
    }
    /// A paragraph; the first one of a section follows .SH directly.
    fn para(mut self, text: &str) -> Self {
        if !self.fresh {
            self.roff.control("PP", []);
        }
        self.roff.text(md(text));
        self.fresh = false;
        self
    }
    /// A tagged paragraph: `tag` on its own line, `text` indented below.
    fn item(mut self, tag: &str, text: &str) -> Self {
        self.roff.control("TP", []);
        self.roff.text(md(tag));
        self.roff.text(md(text));
        self.fresh = false;
        self
    }
    /// Lines shown as they are (commands, file contents), indented.
    fn example(mut self, lines: &[&str]) -> Self {
        if !self.fresh {
            self.roff.control("PP", []);
        }
        self.roff.control("RS", ["4"]);
        self.roff.control("nf", []);
        for line in lines {
            self.roff.text([roman(*line)]);
        }
        self.roff.control("fi", []);
        self.roff.control("RE", []);
        self.fresh = false;
        self
    }
    fn raw(mut self, roff: Roff) -> Self {
        self.roff.extend([roff]);
        self.fresh = false;
        self
    }
    fn done(self) -> Roff {
        self.roff
    }
}

fn p2pctl_page() -> Page {
    let cmd = p2pctl_command()
        .subcommand_value_name("command")
        .subcommand_help_heading("COMMANDS");
    let description = Text::default()
        .para(
            "{b:p2pctl} sends one command to the calling user's {b:p2pd}(1) over a Unix domain \
             socket, prints the answer and exits. When no daemon answers on the socket, p2pctl \
             starts p2pd in the background first ({b:status} excepted), so the first command of \
             a session is enough. Where systemd runs a user manager, the daemon can instead be \
             started at login with {b:systemctl --user enable --now p2pd}.",
        )
        .para(
            "Users create accounts on the tracker, form groups (the creator owns a group; others \
             ask to join and the owner accepts), share files into a group and download a group's \
             files directly from the members who hold them, in 512 KiB pieces verified with \
             SHA-1, from many peers at once. Downloads resume after a restart of the daemon.",
        )
        .para(
            "A password left out of {b:create_user} or {b:login} is read from the terminal \
             without echo, or as one line from standard input when that is not a terminal, so \
             that scripts never show a password in {b:ps}(1). Relative paths are resolved \
             against p2pctl's working directory before they reach the daemon.",
        )
        .done();
    let sections = Text::default()
        .raw(commands_section(&cmd))
        .section("OUTPUT")
        .para(
            "Text output is meant for people. {b:show_downloads} prints one line per download, \
             starting {b:[D] [}{i:group}{b:]} {i:name} while it downloads and {b:[C] [}{i:group}\
             {b:]} {i:name} once it is complete (a failed one says so), followed by its progress.",
        )
        .para(
            "With {b:--json}, every command prints exactly one JSON object on standard output, \
             whose shape is versioned by its {b:v} member; on success and on failure:",
        )
        .example(&[
            "{\"v\":1,\"ok\":true,\"reply\":{...}}",
            "{\"v\":1,\"ok\":false,\"error\":{\"kind\":...,\"message\":...}}",
        ])
        .section("EXIT STATUS")
        .item("{b:0}", "Success.")
        .item(
            "{b:1}",
            "The command failed; one line {b:p2pctl:} {i:reason} is written on standard error \
             (and, with {b:--json}, the error object on standard output).",
        )
        .item(
            "{b:2}",
            "Usage error: unknown command, missing or extra argument.",
        )
        .section("ENVIRONMENT")
        .item("{b:P2PD_SOCKET}", "The control socket, as {b:--socket}.")
        .item(
            "{b:XDG_RUNTIME_DIR}",
            "The default socket is {i:$XDG_RUNTIME_DIR/p2pd/p2pd.sock}; without it, \
             {i:/tmp/p2pd-UID/p2pd.sock}.",
        )
        .item(
            "{b:P2PD_STATE_DIR}, {b:P2P_TRACKER_INFO}, {b:XDG_STATE_HOME}, {b:XDG_CONFIG_HOME}",
            "Passed on to a p2pd that p2pctl starts; see {b:p2pd}(1).",
        )
        .section("FILES")
        .item(
            "{i:$XDG_RUNTIME_DIR/p2pd/p2pd.sock}",
            "The daemon's control socket (directory mode 0700, socket mode 0600).",
        )
        .section("EXAMPLES")
        .example(&[
            "p2pctl create_user alice",
            "p2pctl login alice",
            "p2pctl create_group friends",
            "p2pctl upload_file friends ~/holiday.mkv",
            "p2pctl list_requests friends",
            "p2pctl accept_request friends bob",
        ])
        .para("Bob, on his machine:")
        .example(&[
            "p2pctl login bob",
            "p2pctl join_group friends",
            "p2pctl list_files friends",
            "p2pctl download_file friends holiday.mkv ~/Downloads",
            "p2pctl show_downloads --watch",
        ])
        .para("A script reading the password from a file and the answer as JSON:")
        .example(&[
            "p2pctl login alice < ~/.alice-password",
            "p2pctl --json list_files friends",
        ])
        .section("SEE ALSO")
        .para("{b:p2pd}(1), {b:trackerd}(8), {b:tracker_info.txt}(5)")
        .done();
    Page {
        cmd,
        section: "1",
        manual: "User Commands",
        description,
        sections,
    }
}

/// One entry per subcommand: its synopsis, what it does, and its own arguments.
fn commands_section(cmd: &clap::Command) -> Roff {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    roff.text(md(
        "Names and argument order are those of the original interactive client. Every command \
         also accepts {b:--socket} and {b:--json}, before or after its name, and {b:--help}.",
    ));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let args: Vec<&Arg> = sub
            .get_arguments()
            .filter(|a| {
                !a.is_hide_set()
                    && !a.is_global_set()
                    && !matches!(a.get_id().as_str(), "help" | "version")
            })
            .collect();
        let mut head = vec![bold(sub.get_name())];
        for arg in &args {
            head.push(roman(" "));
            let required = arg.is_positional() && arg.is_required_set();
            if !required {
                head.push(roman("["));
            }
            head.push(arg_name(arg));
            if !required {
                head.push(roman("]"));
            }
        }
        roff.control("TP", []);
        roff.text(head);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            roff.text([roman(about.to_string())]);
        }
        if !args.is_empty() {
            roff.control("RS", []);
            for arg in args {
                roff.control("TP", []);
                let head = match (arg.get_short(), arg.get_long()) {
                    (Some(short), Some(long)) => {
                        vec![
                            bold(format!("-{short}")),
                            roman(", "),
                            bold(format!("--{long}")),
                        ]
                    }
                    _ => vec![arg_name(arg)],
                };
                roff.text(head);
                if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
                    roff.text([roman(help.to_string())]);
                }
            }
            roff.control("RE", []);
        }
    }
    roff
}

/// `user_id` in italics for a positional, `--watch` in bold for an option.
fn arg_name(arg: &Arg) -> Inline {
    if arg.is_positional() {
        italic(
            arg.get_value_names()
                .map(|names| names.join(" "))
                .unwrap_or_else(|| arg.get_id().to_string()),
        )
    } else if let Some(long) = arg.get_long() {
        bold(format!("--{long}"))
    } else {
        bold(format!("-{}", arg.get_short().unwrap_or('?')))
    }
}

fn p2pd_page() -> Page {
    let description = Text::default()
        .para(
            "{b:p2pd} runs once per user. It holds the user's login session with the trackers, \
             accepts peers on {b:--listen} and serves the pieces of the user's shared files to \
             the members of their groups, and runs the downloads {b:p2pctl}(1) asks for. Its \
             state (session, shares, every download's verified pieces) is a redb database in \
             the state directory: a daemon that was killed restarts with its session and shares \
             and resumes its downloads where they stopped.",
        )
        .para(
            "{b:p2pctl}(1) starts p2pd when none answers on the socket. Without {b:--foreground} \
             p2pd detaches, writes its log to {i:STATE_DIR/p2pd.log} and its pid beside the \
             socket. With {b:--foreground} it logs to standard error, or to the journal when \
             systemd started it. One daemon serves one socket: a second one on the same socket \
             refuses to start.",
        )
        .done();
    let sections = Text::default()
        .section("SYSTEMD")
        .para(
            "The user unit {b:p2pd.service} runs {b:p2pd --foreground} with the defaults below \
             and restarts it when it fails:",
        )
        .example(&[
            "systemctl --user enable --now p2pd",
            "journalctl --user -u p2pd",
        ])
        .para(
            "Options are set with {b:systemctl --user edit p2pd}, e.g. a {b:[Service]} section \
             with {b:Environment=P2P_TRACKER_INFO=}{i:FILE}, or an empty {b:ExecStart=} followed \
             by a new one.",
        )
        .section("SIGNALS")
        .item(
            "{b:SIGTERM}, {b:SIGINT}",
            "Stop cleanly: the database is committed, downloads resume at the next start.",
        )
        .section("EXIT STATUS")
        .item(
            "{b:0}",
            "Stopped by a signal; without {b:--foreground}, the daemon was started.",
        )
        .item("{b:1}", "Failed to start or to run; the reason is logged.")
        .item(
            "{b:2}",
            "Configuration error: no readable tracker_info.txt, or a path that cannot be made \
             absolute.",
        )
        .section("ENVIRONMENT")
        .item(
            "{b:P2PD_SOCKET}, {b:P2PD_STATE_DIR}, {b:P2P_TRACKER_INFO}",
            "As {b:--socket}, {b:--state-dir} and {b:--tracker-info}.",
        )
        .item(
            "{b:XDG_RUNTIME_DIR}",
            "Holds the default socket directory {i:p2pd/}; without it, {i:/tmp/p2pd-UID/}.",
        )
        .item(
            "{b:XDG_STATE_HOME}",
            "Holds the default state directory {i:p2pd/}; without it, {i:~/.local/state/}.",
        )
        .item(
            "{b:XDG_CONFIG_HOME}",
            "Searched for {i:p2p/tracker_info.txt}; without it, {i:~/.config/}.",
        )
        .item(
            "{b:RUST_LOG}",
            "Log filter, e.g. {b:debug} or {b:p2pd=debug}; the default is {b:info}.",
        )
        .section("FILES")
        .item(
            "{i:$XDG_RUNTIME_DIR/p2pd/p2pd.sock}",
            "The control socket (directory mode 0700, socket mode 0600; only the daemon's own \
             user may connect).",
        )
        .item(
            "{i:$XDG_RUNTIME_DIR/p2pd/p2pd.pid}",
            "The pid of the daemon serving the socket beside it, locked while it runs.",
        )
        .item(
            "{i:$XDG_STATE_HOME/p2pd/p2pd.redb}",
            "The daemon's database (default {i:~/.local/state/p2pd/p2pd.redb}).",
        )
        .item(
            "{i:$XDG_STATE_HOME/p2pd/p2pd.log}",
            "The log of a daemon that detached.",
        )
        .item(
            "{i:./tracker_info.txt}, {i:$XDG_CONFIG_HOME/p2p/tracker_info.txt}, \
             {i:/etc/p2p/tracker_info.txt}",
            "Where the list of trackers is looked for, in this order, when neither \
             {b:--tracker-info} nor {b:P2P_TRACKER_INFO} names one; see {b:tracker_info.txt}(5).",
        )
        .item(
            "{i:/usr/lib/systemd/user/p2pd.service}",
            "The systemd user unit.",
        )
        .section("SEE ALSO")
        .para("{b:p2pctl}(1), {b:trackerd}(8), {b:tracker_info.txt}(5), {b:systemctl}(1)")
        .done();
    Page {
        cmd: p2pd::cli::command(),
        section: "1",
        manual: "User Commands",
        description,
        sections,
    }
}

fn trackerd_page() -> Page {
    let description = Text::default()
        .para(
            "{b:trackerd} listens on the address on line {i:tracker_no} of {i:tracker_info} and \
             keeps the users (passwords only as argon2 hashes), sessions, groups and the \
             metadata of shared files in a redb database, {i:tracker.redb} in the data \
             directory. It also tells the members of a group which peers hold a file, and signs \
             the short-lived grants a peer checks before it serves a piece.",
        )
        .para(
            "The first tracker of the file is the primary, the second its hot standby. The \
             primary acknowledges a write only once the standby has it, while the standby is \
             reachable; a standby that was away catches up when it reconnects. When the primary \
             is gone the standby serves reads and writes, and clients switch to it within \
             seconds.",
        )
        .para(
            "Typing {b:status} on its standard input prints the tracker's role, epoch, log \
             position and replication state. Typing {b:quit}, {b:SIGTERM} or {b:SIGINT} stop it \
             cleanly; the end of standard input does not (under systemd it is {i:/dev/null}).",
        )
        .done();
    let sections = Text::default()
        .section("SYSTEMD")
        .para(
            "The template unit {b:trackerd@.service} runs tracker {i:N} of \
             {i:/etc/p2p/tracker_info.txt} as {b:trackerd@}{i:N}{b:.service}, as the system user \
             {b:p2p-tracker}, with its data in {i:/var/lib/trackerd-N} ({b:StateDirectory=}). \
             On the machine of the first tracker:",
        )
        .example(&[
            "systemctl enable --now trackerd@1",
            "journalctl -u trackerd@1",
        ])
        .para(
            "and {b:trackerd@2} on the machine of the second. Both machines must have the same \
             {i:/etc/p2p/tracker_info.txt} and the same {i:/etc/p2p/cluster.key}: the package \
             creates a random key on each machine, so copy one machine's key to the other \
             (mode 0640, owner root, group p2p-tracker) before starting the second tracker.",
        )
        .section("EXIT STATUS")
        .item("{b:0}", "Stopped by {b:quit}, SIGTERM or SIGINT.")
        .item("{b:1}", "A failure after start-up; the reason is logged.")
        .item(
            "{b:2}",
            "Configuration error: missing or malformed tracker_info.txt, a tracker number out of \
             range, an address already in use, a database that cannot be opened, or a missing, \
             unreadable or malformed cluster key.",
        )
        .section("ENVIRONMENT")
        .item(
            "{b:STATE_DIRECTORY}",
            "Set by systemd from {b:StateDirectory=}: the data directory when {b:--data-dir} is \
             not given.",
        )
        .item(
            "{b:RUST_LOG}",
            "Log filter, e.g. {b:debug}; the default is {b:info}. Logs go to standard error, or \
             to the journal when systemd started trackerd.",
        )
        .section("FILES")
        .item(
            "{i:/etc/p2p/tracker_info.txt}",
            "The list of trackers; see {b:tracker_info.txt}(5).",
        )
        .item(
            "{i:/etc/p2p/cluster.key}",
            "The secret the trackers prove to each other before replicating (at least 32 hex \
             characters; the default of {b:--cluster-key}), identical on both machines. \
             trackerd creates it (mode 0600) if it is missing and the directory is writable.",
        )
        .item(
            "{i:/var/lib/trackerd-N/tracker.redb}",
            "The database of tracker {i:N} under systemd; {i:./trackerd-N/tracker.redb} when \
             started by hand without {b:--data-dir}.",
        )
        .item(
            "{i:/usr/lib/systemd/system/trackerd@.service}",
            "The systemd template unit.",
        )
        .section("SEE ALSO")
        .para("{b:tracker_info.txt}(5), {b:p2pd}(1), {b:p2pctl}(1), {b:systemctl}(1), {b:journalctl}(1)")
        .done();
    Page {
        cmd: trackerd::cli::command(),
        section: "8",
        manual: "System Administration",
        description,
        sections,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, or of today.
fn man_date() -> Result<String> {
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds"))?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Fails if `text` contains a path that only makes sense on this machine: the defaults the
/// programs compute from the environment, or the home directory.
fn check_no_leak(text: &str, what: &str) -> Result<()> {
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

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_507), (2026, 2, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn markup() {
        assert_eq!(
            md("a {b:b} c {i:d}{ e"),
            vec![
                roman("a "),
                bold("b"),
                roman(" c "),
                italic("d"),
                roman("{"),
                roman(" e")
            ]
        );
    }

    #[test]
    fn pages_render_without_machine_paths() {
        for page in [p2pctl_page(), p2pd_page(), trackerd_page()] {
            let text = page.render("2026-01-01").unwrap();
            check_no_leak(&text, page.cmd.get_name()).unwrap();
            assert!(text.contains(".SH OPTIONS"));
        }
        let text = p2pctl_page().render("2026-01-01").unwrap();
        assert!(text.contains("$XDG_RUNTIME_DIR/p2pd/p2pd.sock"));
        assert!(text.contains("download_file"));
        assert!(
            text.contains(r"Command\-line client"),
            "p2pctl's own description"
        );
    }
}
