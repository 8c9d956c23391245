//! The records the tracker stores, one JSON value per redb key.

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
