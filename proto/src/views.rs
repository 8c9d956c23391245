//! What both JSON protocols show of the tracker's state: a group with the caller's relation to
//! it, a file of a group, the outcome of leaving a group. The tracker sends them to `p2pd`,
//! which hands them on to `p2pctl` unchanged; neither protocol module owns them.

use crate::ErrorReply;
use serde::{Deserialize, Serialize};

/// The most items one page of a growing listing (`list_groups`, `list_files`,
/// `list_requests`) carries, and the page size when none is asked for. A page of 1,000 groups
/// or files is a few hundred KiB of JSON, well inside every frame limit.
pub const MAX_PAGE: u32 = 1000;

/// The page size a request asks for: `None` is [`MAX_PAGE`]; 0 or more than [`MAX_PAGE`] is
/// refused.
pub fn page_limit(limit: Option<u32>) -> Result<usize, ErrorReply> {
    match limit.unwrap_or(MAX_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n as usize),
        n => Err(ErrorReply::invalid(format!(
            "limit must be 1 to {MAX_PAGE}, not {n}"
        ))),
    }
}

/// One group as `list_groups` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    pub owner: String,
    pub members: usize,
    /// The asking user's relation to the group.
    pub membership: Membership,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    Owner,
    Member,
    Pending,
    None,
}

/// The outcome of `leave_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftGroup {
    pub group: String,
    /// The member who became owner, when the owner left.
    pub new_owner: Option<String>,
    /// True when the group had no members left and was removed.
    pub removed: bool,
}

/// One file of a group as `list_files` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    /// Peers online that hold the whole file or part of it.
    pub seeders: usize,
}
