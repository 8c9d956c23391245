//! The records the tracker stores, one JSON value per redb key.

use p2p_proto::files::FileMeta;
use p2p_proto::identity::Fingerprint;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A user account. Only the argon2 PHC string of the password is kept.
///
/// The counters are kept by `store::apply` as groups and files come and go, so a limit is
/// checked without scanning (see `commands::limits`); a database from before them is recounted
/// once at start-up (`store::migrate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user: String,
    pub password_hash: String,
    /// Groups this user owns now: created, or inherited when an owner left.
    #[serde(default)]
    pub groups_owned: u64,
    /// Files this user registered that are still registered (a removed group takes its files
    /// with it).
    #[serde(default)]
    pub files_added: u64,
}

/// A session, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: String,
    /// The key of the daemon that logged in: the only one that may use the session. `None`
    /// for a session from before keys existed (0.1.0), bound to the first key that uses it.
    #[serde(default)]
    pub key: Option<Fingerprint>,
    /// Unix time of the login.
    #[serde(default)]
    pub opened: u64,
    /// Unix time the session was last seen in use (updated at most hourly); it expires after
    /// the tracker's idle time without use.
    #[serde(default)]
    pub seen: u64,
}

/// A group: its internal id, its owner, its members in the order they joined (the owner first
/// when it created the group) and the users waiting for the owner to accept them, in the order
/// they asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Random, made at creation: a group removed and created again under the same name is
    /// another group, with another id. Grants and shares name it.
    #[serde(default)]
    pub id: String,
    pub group: String,
    pub owner: String,
    pub members: Vec<String>,
    pub requests: Vec<String>,
    /// How many files are registered in the group (kept by `store::apply`).
    #[serde(default)]
    pub files: u64,
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

/// The id of a group that was created before groups had ids (0.1.0): derived from its name, so
/// both trackers (and a standby replaying old records) give it the same one.
pub fn legacy_group_id(group: &str) -> String {
    let digest = Sha256::digest(format!("p2p-legacy-group\n{group}").as_bytes());
    hex::encode(&digest[..16])
}

/// A fresh random group id (128 bits, hex).
pub fn new_group_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
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
