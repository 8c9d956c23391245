//! `p2pctl`: one command to the per-user `p2pd` daemon, one answer, one exit status.
//!
//! Exit status: 0 on success; 1 on any failure, with exactly one line `p2pctl: <reason>` on
//! stderr (and, with `--json`, the error object on stdout); 2 for usage errors (clap's own).

mod client;
mod connect;
mod failure;
mod output;
mod password;
mod request;
mod terminal;
mod watch;

use anyhow::{Context, Result};
use clap::Parser;
use connect::Autostart;
use p2pctl::cli::{self, Cli, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    if json && matches!(cli.command, Command::ShowDownloads { watch: true }) {
        // `--json` promises exactly one object; a live view cannot keep that promise.
        cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--watch draws progress for people; scripts can poll `show_downloads --json`",
            )
            .exit();
    }
    // One thread is plenty for one connection, and it keeps start-up cheap.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err, json);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // A daemon we start works from `/`, so it must get the socket path in absolute form.
    let socket = std::path::absolute(&cli.global.socket).map_err(|err| {
        failure::fail(
            p2p_proto::ErrorKind::InvalidArgument,
            format!(
                "cannot resolve --socket {}: {}",
                cli.global.socket.display(),
                failure::io_reason(&err)
            ),
        )
    })?;
    match cli.command {
        Command::ShowDownloads { watch: true } => watch::run(&socket).await,
        command => {
            // `status` reports on a daemon; starting one just to describe it would mislead.
            let autostart = if command == Command::Status {
                Autostart::No
            } else {
                Autostart::Yes
            };
            // Ask for a password before starting anything, so a refused one costs nothing.
            let request = request::build(command, password::ask)?;
            let stream = connect::connect(&socket, autostart).await?;
            let reply = client::call(stream, &socket, request).await?;
            output::print_reply(&reply, cli.global.json)
        }
    }
}

fn report(err: &anyhow::Error, json: bool) {
    let error = failure::describe(err);
    if json {
        // Nothing better to do if stdout is gone; stderr still gets the reason.
        let _ = output::emit(&output::json_error(&error));
    }
    let _ = writeln!(
        std::io::stderr(),
        "p2pctl: {}",
        terminal::safe(&error.message)
    );
}
