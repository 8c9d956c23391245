//! The documented limits on what accounts make (docs/ARCHITECTURE.md, "Limits"; trackerd(8),
//! LIMITS): groups owned and files added per user, files, members and pending join requests per
//! group.
//!
//! The primary checks them when it decides a write, against counters the records keep
//! (`UserRecord::groups_owned`, `UserRecord::files_added`, `GroupRecord::files`, and the
//! lengths of a group's member and request lists), so a check reads one or two records and
//! never scans. A standby applies what the primary decided and checks nothing. What exists
//! already is never taken away: a user who inherits groups past the limit keeps them, and can
//! create another once below it.

use crate::records::{GroupRecord, UserRecord};
use p2p_proto::ErrorReply;

/// How much one account, and one group, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Groups one user may own (create; inherited ones count too).
    pub groups_per_user: u64,
    /// Files one user may have added (still registered).
    pub files_per_user: u64,
    /// Files one group may hold.
    pub files_per_group: u64,
    /// Members one group may have.
    pub members_per_group: usize,
    /// Join requests one group may have waiting for its owner.
    pub requests_per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            groups_per_user: 100,
            files_per_user: 10_000,
            files_per_group: 10_000,
            members_per_group: 1_000,
            requests_per_group: 1_000,
        }
    }
}

impl Limits {
    /// May `user` (its record, if it has one) create one more group?
    pub fn create_group(&self, user: &str, record: Option<&UserRecord>) -> Result<(), ErrorReply> {
        let owned = record.map_or(0, |r| r.groups_owned);
        if owned >= self.groups_per_user {
            return Err(ErrorReply::limit_reached(format!(
                "{user} owns {owned} groups, the most one user may own; leave one first"
            )));
        }
        Ok(())
    }

    /// May `user` add one more file to `group`?
    pub fn add_file(
        &self,
        user: &str,
        record: Option<&UserRecord>,
        group: &GroupRecord,
    ) -> Result<(), ErrorReply> {
        if group.files >= self.files_per_group {
            return Err(ErrorReply::limit_reached(format!(
                "{} holds {} files, the most one group may hold",
                group.group, group.files
            )));
        }
        let added = record.map_or(0, |r| r.files_added);
        if added >= self.files_per_user {
            return Err(ErrorReply::limit_reached(format!(
                "{user} has added {added} files, the most one user may add; files count until \
                 their group is removed"
            )));
        }
        Ok(())
    }

    /// May `group` take one more member?
    pub fn accept_member(&self, group: &GroupRecord) -> Result<(), ErrorReply> {
        let members = group.members.len();
        if members >= self.members_per_group {
            return Err(ErrorReply::limit_reached(format!(
                "{} has {members} members, the most one group may have",
                group.group
            )));
        }
        Ok(())
    }

    /// May one more user ask to join `group`?
    pub fn request_join(&self, group: &GroupRecord) -> Result<(), ErrorReply> {
        let waiting = group.requests.len();
        if waiting >= self.requests_per_group {
            return Err(ErrorReply::limit_reached(format!(
                "{} has {waiting} join requests waiting, the most one group may have; ask \
                 again once its owner has answered some",
                group.group
            )));
        }
        Ok(())
    }
}
