//! The targets, one module each.

use crate::Target;

mod bitfield;
mod cluster;
mod control;
mod frame;
mod grant;
mod keyfile;
mod peer;
mod strings;
mod tracker;
mod tracker_info;

/// Every target, in the order a run takes them.
pub fn all() -> &'static [Target] {
    static ALL: [Target; 10] = [
        frame::TARGET,
        tracker::TARGET,
        control::TARGET,
        cluster::TARGET,
        peer::TARGET,
        grant::TARGET,
        tracker_info::TARGET,
        strings::TARGET,
        bitfield::TARGET,
        keyfile::TARGET,
    ];
    &ALL
}

/// Asserts that a message meant for people is one line without control characters (so that
/// hostile text cannot move a terminal's cursor or fake another line of output).
pub fn assert_one_clean_line(what: &str, message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "{what}: message with a control character: {message:?}"
    );
}
