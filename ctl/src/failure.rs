//! What p2pctl reports when a command fails.
//!
//! Errors travel as `anyhow::Error`. Those that carry a machine-readable kind (the daemon's
//! [`ErrorReply`], or one p2pctl made itself with [`fail`]) keep it for `--json`; any other
//! error is a local failure reported as `internal`.

use p2p_proto::{ErrorKind, ErrorReply};

/// An error with a kind scripts can match on.
pub fn fail(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(ErrorReply::new(kind, message))
}

/// The kind and the one-line reason of `err`, as printed on stderr and in `--json`.
pub fn describe(err: &anyhow::Error) -> ErrorReply {
    let kind = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ErrorReply>())
        .map_or(ErrorKind::Internal, |reply| reply.kind);
    ErrorReply::new(kind, one_line(&format!("{err:#}")))
}

/// An OS error as a short phrase ("no such file or directory"), without Rust's
/// " (os error 2)" suffix, to follow "cannot <operation> <path>: ".
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The contract is one line on stderr; a multi-line message (from a daemon or an OS error)
/// is folded rather than cut, so no part of the reason is lost.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kind_survives_context() {
        let err = Err::<(), _>(fail(ErrorKind::NotFound, "no such group g1"))
            .context("cannot list files")
            .unwrap_err();
        let reply = describe(&err);
        assert_eq!(reply.kind, ErrorKind::NotFound);
        assert_eq!(reply.message, "cannot list files: no such group g1");
    }

    #[test]
    fn other_errors_are_internal() {
        let err = anyhow::Error::new(std::io::Error::other("boom")).context("cannot do x");
        let reply = describe(&err);
        assert_eq!(reply.kind, ErrorKind::Internal);
        assert_eq!(reply.message, "cannot do x: boom");
    }

    #[test]
    fn os_errors_read_as_phrases() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&err), "no such file or directory");
        let err = std::io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&err), "permission denied");
        assert_eq!(io_reason(&std::io::Error::other("Boom")), "boom");
    }

    #[test]
    fn message_is_one_line() {
        let err = fail(ErrorKind::Internal, "first\n  second\r\n\nthird\n");
        assert_eq!(describe(&err).message, "first second third");
    }
}
