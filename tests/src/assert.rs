//! Assertions about the output of one command.

use std::process::Output;

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout_of(out),
        stderr_of(out)
    )
}

/// The command succeeded.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "command failed\n{}", show(out));
}

/// The command exited with exactly `code`.
#[track_caller]
pub fn assert_exit_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit status\n{}",
        show(out)
    );
}

/// `text` is exactly one non-empty line (a final newline allowed); returns it.
#[track_caller]
pub fn assert_one_line(text: &str, what: &str) -> String {
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    assert!(
        !trimmed.trim().is_empty() && !trimmed.contains('\n'),
        "{what} should be exactly one non-empty line, got {} lines:\n{text}",
        text.lines().count()
    );
    trimmed.to_string()
}

/// The `p2pctl` command failed the documented way: exit status 1, and stderr is exactly one
/// line `p2pctl: <reason>` whose reason contains `phrase` (case-insensitive).
#[track_caller]
pub fn assert_fails(out: &Output, phrase: &str) {
    assert!(
        !out.status.success(),
        "command should have failed\n{}",
        show(out)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed command exits with status 1\n{}",
        show(out)
    );
    let stderr = stderr_of(out);
    let trimmed = stderr.strip_suffix('\n').unwrap_or(&stderr);
    assert!(
        !trimmed.trim().is_empty() && !trimmed.contains('\n'),
        "stderr should be exactly one non-empty line\n{}",
        show(out)
    );
    assert!(
        trimmed.starts_with("p2pctl: "),
        "the error line should start with `p2pctl: `\n{}",
        show(out)
    );
    assert!(
        trimmed.to_lowercase().contains(&phrase.to_lowercase()),
        "the error line should say {phrase:?}\n{}",
        show(out)
    );
}
