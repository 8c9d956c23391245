//! Typed errors that travel inside replies of the tracker and control protocols.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a stable machine-readable word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An argument is malformed (bad id, empty password, ...).
    InvalidArgument,
    /// The command needs a logged-in user.
    NotLoggedIn,
    /// User name or password is wrong.
    AuthFailed,
    /// The thing to create exists already.
    AlreadyExists,
    /// The thing named does not exist.
    NotFound,
    /// The caller may not do this (not the owner, not a member, ...).
    PermissionDenied,
    /// The request contradicts the current state (already a member, no such request, ...).
    Conflict,
    /// A tracker or peer could not be reached.
    Unavailable,
    /// A frame was malformed, too large or of another protocol version.
    Protocol,
    /// Something failed inside the server; the message says what.
    Internal,
    /// This tracker is the standby; `redirect` names the primary to ask instead.
    NotPrimary,
    /// Too many attempts (logins, accounts) or too much work queued; the message says when to
    /// try again.
    RateLimited,
    /// A documented limit (groups owned, files added, members of a group, ...) is reached;
    /// the message names it and what would make room.
    LimitReached,
}

/// An error reply: a kind for scripts and a one-line message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    /// With [`ErrorKind::NotPrimary`]: the address of the tracker that serves requests now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            redirect: None,
        }
    }

    /// A `not_primary` answer pointing at the primary.
    pub fn not_primary(primary: String) -> Self {
        Self {
            kind: ErrorKind::NotPrimary,
            message: format!("this tracker is the standby; the primary is {primary}"),
            redirect: Some(primary),
        }
    }

    /// A `unavailable` answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A `limit_reached` answer.
    pub fn limit_reached(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitReached, message)
    }

    pub fn not_logged_in() -> Self {
        Self::new(
            ErrorKind::NotLoggedIn,
            "not logged in; run `p2pctl login <user_id>` first",
        )
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
