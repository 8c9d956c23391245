//! Turning a parsed command line into the one control request sent to the daemon.
//!
//! Everything that depends on p2pctl's own process happens here, before the daemon sees the
//! request: relative paths are resolved against p2pctl's working directory (the daemon's is
//! `/`), and a missing password is asked for.

use crate::failure::{fail, io_reason};
use crate::password::{self, Purpose};
use anyhow::Result;
use p2p_proto::ErrorKind;
use p2p_proto::control::CtlCommand;
use p2pctl::cli::Command;
use std::path::{Path, PathBuf};

/// Builds the request for `command`. `ask_password` supplies a password left off the command
/// line (the terminal or stdin in production, a constant in tests).
pub fn build(
    command: Command,
    ask_password: impl FnOnce(&str, Purpose) -> Result<String>,
) -> Result<CtlCommand> {
    let password = |user: &str, given: Option<String>, purpose| -> Result<String> {
        match given {
            Some(password) => {
                password::check(&password)?;
                Ok(password)
            }
            None => ask_password(user, purpose),
        }
    };
    Ok(match command {
        Command::CreateUser { user, password: p } => CtlCommand::CreateUser {
            password: password(&user, p, Purpose::NewAccount)?,
            user,
        },
        Command::Login { user, password: p } => CtlCommand::Login {
            password: password(&user, p, Purpose::Login)?,
            user,
        },
        Command::Logout => CtlCommand::Logout,
        Command::CreateGroup { group } => CtlCommand::CreateGroup { group },
        Command::JoinGroup { group } => CtlCommand::JoinGroup { group },
        Command::LeaveGroup { group } => CtlCommand::LeaveGroup { group },
        Command::ListGroups { page } => CtlCommand::ListGroups {
            after: page.after,
            limit: page.limit,
        },
        Command::ListRequests { group, page } => CtlCommand::ListRequests {
            group,
            after: page.after,
            limit: page.limit,
        },
        Command::AcceptRequest { group, user } => CtlCommand::AcceptRequest { group, user },
        Command::UploadFile { group, path } => CtlCommand::UploadFile {
            group,
            path: absolute(&path)?,
        },
        Command::ListFiles { group, page } => CtlCommand::ListFiles {
            group,
            after: page.after,
            limit: page.limit,
        },
        Command::DownloadFile {
            group,
            file,
            destination,
        } => CtlCommand::DownloadFile {
            group,
            file,
            destination: absolute(&destination)?,
        },
        Command::ShowDownloads { .. } => CtlCommand::ShowDownloads,
        Command::StopShare { group, file } => CtlCommand::StopShare { group, file },
        Command::Status => CtlCommand::Status,
        Command::TrustTracker {
            tracker,
            fingerprint,
        } => CtlCommand::TrustTracker {
            tracker,
            fingerprint,
        },
    })
}

/// Makes `path` absolute against the current directory without touching the file system
/// beyond that: the daemon reports a missing file with its own, better message, and symlinks
/// stay as the user named them.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(fail(ErrorKind::InvalidArgument, "a path must not be empty"));
    }
    std::path::absolute(path).map_err(|err| {
        fail(
            ErrorKind::InvalidArgument,
            format!("cannot resolve {}: {}", path.display(), io_reason(&err)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::ErrorReply;

    fn no_prompt(_: &str, _: Purpose) -> Result<String> {
        panic!("no password should be asked for")
    }

    #[test]
    fn relative_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let cmd = build(
            Command::UploadFile {
                group: "g".into(),
                path: "dir/../file.bin".into(),
            },
            no_prompt,
        )
        .unwrap();
        // Not canonicalized: `..` stays, the file need not exist.
        assert_eq!(
            cmd,
            CtlCommand::UploadFile {
                group: "g".into(),
                path: cwd.join("dir/../file.bin"),
            }
        );
        let cmd = build(
            Command::DownloadFile {
                group: "g".into(),
                file: "f".into(),
                destination: "/abs/dest".into(),
            },
            no_prompt,
        )
        .unwrap();
        assert_eq!(
            cmd,
            CtlCommand::DownloadFile {
                group: "g".into(),
                file: "f".into(),
                destination: "/abs/dest".into(),
            }
        );
    }

    #[test]
    fn empty_path_is_an_error() {
        let result = build(
            Command::UploadFile {
                group: "g".into(),
                path: "".into(),
            },
            no_prompt,
        );
        let err = result.unwrap_err();
        assert_eq!(format!("{err:#}"), "a path must not be empty");
    }

    #[test]
    fn given_password_is_used() {
        let cmd = build(
            Command::Login {
                user: "alice".into(),
                password: Some("pw".into()),
            },
            no_prompt,
        )
        .unwrap();
        assert_eq!(
            cmd,
            CtlCommand::Login {
                user: "alice".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn missing_password_is_asked_for() {
        let cmd = build(
            Command::CreateUser {
                user: "bob".into(),
                password: None,
            },
            |user, purpose| {
                assert_eq!((user, purpose), ("bob", Purpose::NewAccount));
                Ok("typed".into())
            },
        )
        .unwrap();
        assert_eq!(
            cmd,
            CtlCommand::CreateUser {
                user: "bob".into(),
                password: "typed".into()
            }
        );
    }

    #[test]
    fn empty_password_argument_is_refused() {
        let err = build(
            Command::Login {
                user: "alice".into(),
                password: Some(String::new()),
            },
            no_prompt,
        )
        .unwrap_err();
        assert_eq!(
            err.downcast_ref::<ErrorReply>().map(|e| e.kind),
            Some(ErrorKind::InvalidArgument)
        );
    }
}
