//! The records the tracker stores, one JSON value per redb key.

use p2p_proto::files::FileMeta;
use serde::{Deserialize, Serialize};

/// A user account. Only the argon2 PHC string of the password is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user: String,
    pub password_hash: String,
}

/// A session, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: String,
}

/// A group: its owner, its members in the order they joined (the owner first when it created
/// the group) and the users waiting for the owner to accept them, in the order they asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group: String,
    pub owner: String,
    pub members: Vec<String>,
    pub requests: Vec<String>,
}

impl GroupRecord {
    pub fn is_member(&self, user: &str) -> bool {
        self.members.iter().any(|m| m == user)
    }

    pub fn has_requested(&self, user: &str) -> bool {
        self.requests.iter().any(|r| r == user)
    }
}

/// A file shared into a group, stored under [`file_key`]. Who holds it now is not stored: that
/// is the in-memory [`crate::swarm::Swarm`], rebuilt from announcements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub group: String,
    pub meta: FileMeta,
    /// The user who first uploaded it.
    pub added_by: String,
}

/// The key of a file in the `files` table: `{group}/{name}`. Neither a group id nor a file
/// name can contain `/`, so the key is unambiguous and a group's files are one key range.
pub fn file_key(group: &str, name: &str) -> String {
    format!("{group}/{name}")
}

/// The key range `[start, end)` holding every file of `group`: `'0'` is the byte after `'/'`.
pub fn group_files_range(group: &str) -> (String, String) {
    (format!("{group}/"), format!("{group}0"))
}
