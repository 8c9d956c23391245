//! Rules for user and group identifiers.

use crate::ErrorReply;

/// Longest user or group id, in characters.
pub const MAX_ID_LEN: usize = 64;

/// Checks that `id` is 1 to 64 characters of `[A-Za-z0-9._-]`. `what` names the id in the
/// error ("user id", "group id").
pub fn validate_id(what: &str, id: &str) -> Result<(), ErrorReply> {
    if id.is_empty() {
        return Err(ErrorReply::invalid(format!("{what} must not be empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(ErrorReply::invalid(format!(
            "{what} is {} bytes long; at most {MAX_ID_LEN} characters are allowed",
            id.len()
        )));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ErrorReply::invalid(format!(
            "{what} {:?} contains {bad:?}; only letters, digits, '.', '_' and '-' are allowed",
            id
        )));
    }
    if id == "." || id == ".." {
        return Err(ErrorReply::invalid(format!("{what} must not be {id:?}")));
    }
    Ok(())
}

/// Checks a password: non-empty and at most [`crate::limits::MAX_PASSWORD_LEN`] bytes.
pub fn validate_password(password: &str) -> Result<(), ErrorReply> {
    if password.is_empty() {
        return Err(ErrorReply::invalid("password must not be empty"));
    }
    if password.len() > crate::limits::MAX_PASSWORD_LEN {
        return Err(ErrorReply::invalid(format!(
            "password is longer than {} bytes",
            crate::limits::MAX_PASSWORD_LEN
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in ["alice", "a", "Group_1", "x.y-z", &"a".repeat(64)] {
            assert!(validate_id("user id", id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_bad_ids() {
        let long = "a".repeat(65);
        let huge = "b".repeat(100_000);
        for id in ["", "a b", "a/b", "é", "..", ".", "a\0", &long, &huge] {
            let err = validate_id("user id", id).unwrap_err();
            assert!(
                err.message.len() < 200,
                "error message stays one short line"
            );
        }
    }
}
