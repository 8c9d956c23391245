//! The three programs' clap definitions, as the man pages and completions document them.

/// What the socket default is documented as; the real default depends on the environment.
pub const SOCKET_DEFAULT: &str = "$XDG_RUNTIME_DIR/p2pd/p2pd.sock";

/// p2pctl's definition (from its library, so with its own name, version and description), its
/// `--socket` default (computed from this machine's environment) replaced by the documented one.
pub fn p2pctl_command() -> clap::Command {
    p2pctl::cli::command().mut_arg("socket", |arg| {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let arg = arg.hide_default_value(true);
        if help.contains("[default:") {
            arg
        } else {
            arg.help(format!("{help} [default: {SOCKET_DEFAULT}]"))
        }
    })
}

pub fn p2pd_command() -> clap::Command {
    p2pd::cli::command()
}

pub fn trackerd_command() -> clap::Command {
    trackerd::cli::command()
}

/// All three, in the order the completions are written.
pub fn all() -> [clap::Command; 3] {
    [p2pctl_command(), p2pd_command(), trackerd_command()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2pctl_has_its_own_identity() {
        let cmd = p2pctl_command();
        assert_eq!(cmd.get_name(), "p2pctl");
        assert_eq!(
            cmd.get_about().map(|a| a.to_string()).as_deref(),
            Some("Command-line client of the p2p file sharing system")
        );
        assert_eq!(cmd.get_version(), Some(env!("CARGO_PKG_VERSION")));
    }
}
