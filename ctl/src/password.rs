//! Getting a password that was left off the command line.
//!
//! A password on the command line is visible in `ps`, so people leave it out: at a terminal it
//! is typed without echo; in a script it comes as one line on stdin.

use anyhow::{Context, Result};
use p2p_proto::ErrorReply;
use std::io::{BufRead, IsTerminal};

/// Whether the password is new (typed twice, so a typo does not lock the user out) or an
/// existing one (typed once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    NewAccount,
    Login,
}

/// Reads the password of `user` from the terminal, or from stdin when stdin is not one.
pub fn ask(user: &str, purpose: Purpose) -> Result<String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        from_terminal(user, purpose)?
    } else {
        read_line(&mut stdin.lock()).context("cannot read the password from stdin")?
    };
    check(&password)?;
    Ok(password)
}

/// Refuses what the daemon would refuse anyway (empty, too long) before any daemon is started.
pub fn check(password: &str) -> Result<()> {
    p2p_proto::ids::validate_password(password).map_err(anyhow::Error::new)
}

fn from_terminal(user: &str, purpose: Purpose) -> Result<String> {
    let prompt = |text: String| {
        rpassword::prompt_password(text).context("cannot read the password from the terminal")
    };
    let first = prompt(format!("Password for {user}: "))?;
    if purpose == Purpose::NewAccount {
        // An empty first answer is refused by `check`; asking again for it would only annoy.
        if !first.is_empty() {
            let second = prompt(format!("Repeat password for {user}: "))?;
            if first != second {
                return Err(ErrorReply::invalid("the passwords do not match").into());
            }
        }
    }
    Ok(first)
}

/// Reads exactly one line and strips its line ending (`\n` or `\r\n`), nothing else: spaces
/// may be part of a password.
pub fn read_line(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(strip_line_ending(line))
}

fn strip_line_ending(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(input: &str) -> String {
        read_line(&mut input.as_bytes()).unwrap()
    }

    #[test]
    fn strips_only_the_line_ending() {
        assert_eq!(line("secret\n"), "secret");
        assert_eq!(line("secret\r\n"), "secret");
        assert_eq!(line("secret"), "secret");
        assert_eq!(line(" spaced out \n"), " spaced out ");
        assert_eq!(line("a\rb\n"), "a\rb");
    }

    #[test]
    fn reads_only_the_first_line() {
        let mut input = "first\nsecond\n".as_bytes();
        assert_eq!(read_line(&mut input).unwrap(), "first");
        assert_eq!(input, b"second\n");
    }

    #[test]
    fn empty_input_is_an_empty_password() {
        assert_eq!(line(""), "");
        assert_eq!(line("\n"), "");
        assert_eq!(line("\r\n"), "");
    }

    #[test]
    fn empty_password_is_refused() {
        let err = check("").unwrap_err();
        let reply = err.downcast_ref::<ErrorReply>().unwrap();
        assert_eq!(reply.kind, p2p_proto::ErrorKind::InvalidArgument);
        assert!(check("x").is_ok());
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        assert!(read_line(&mut &b"\xff\xfe\n"[..]).is_err());
    }
}
