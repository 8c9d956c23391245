//! The three generated pages: which program, which manual section, which prose.

use super::{Page, Prose};
use crate::programs;
use anyhow::Result;
use clap::Arg;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

/// `Prose` of `man/sections/$name`, compiled in so that xtask runs from anywhere.
macro_rules! prose {
    ($name:literal) => {
        Prose {
            file: concat!("man/sections/", $name),
            text: include_str!(concat!("../../../man/sections/", $name)),
        }
    };
}

/// The pages in the order they are written.
pub(super) fn all() -> Result<[Page; 3]> {
    Ok([p2pctl()?, p2pd()?, trackerd()?])
}

pub(super) fn p2pctl() -> Result<Page> {
    let cmd = programs::p2pctl_command()
        .subcommand_value_name("command")
        .subcommand_help_heading("COMMANDS");
    let commands = commands(&cmd);
    Page::new(
        cmd,
        "1",
        "User Commands",
        prose!("p2pctl.1.md"),
        vec![("commands", commands)],
    )
}

fn p2pd() -> Result<Page> {
    Page::new(
        programs::p2pd_command(),
        "1",
        "User Commands",
        prose!("p2pd.1.md"),
        Vec::new(),
    )
}

fn trackerd() -> Result<Page> {
    Page::new(
        programs::trackerd_command(),
        "8",
        "System Administration",
        prose!("trackerd.8.md"),
        Vec::new(),
    )
}

/// The body of p2pctl's COMMANDS (the prose's `{commands}`): one entry per subcommand, its
/// synopsis, what it does, and its own arguments.
fn commands(cmd: &clap::Command) -> Roff {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut roff = Roff::new();
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
