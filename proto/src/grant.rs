//! Download grants: the tracker's proof, checked by a seeder without asking anyone, that a
//! user is a member of a file's group.
//!
//! A grant names (user, group, file SHA-1, expiry) and is signed with the trackers' ed25519
//! key. A seeder that knows the trackers' public key serves a connection only if its grant
//! verifies, has not expired and names the file asked for.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// How long a grant stays valid after the tracker issues it, in seconds.
pub const GRANT_LIFETIME_SECS: u64 = 15 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub user: String,
    pub group: String,
    /// SHA-1 of the whole file, hex.
    pub file_sha1: String,
    /// Unix time (seconds) after which the grant is void.
    pub expires: u64,
    /// ed25519 signature of [`Grant::signed_bytes`], hex.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant signature does not verify")]
    BadSignature,
    #[error("grant expired")]
    Expired,
    #[error("grant is for another file")]
    WrongFile,
    #[error("tracker key is malformed")]
    BadKey,
}

impl Grant {
    fn signed_bytes(user: &str, group: &str, file_sha1: &str, expires: u64) -> Vec<u8> {
        format!("p2p-grant-v1\n{user}\n{group}\n{file_sha1}\n{expires}").into_bytes()
    }

    /// Issues a grant signed with `key`.
    pub fn issue(key: &SigningKey, user: &str, group: &str, file_sha1: &str, expires: u64) -> Self {
        let signature = key.sign(&Self::signed_bytes(user, group, file_sha1, expires));
        Self {
            user: user.to_string(),
            group: group.to_string(),
            file_sha1: file_sha1.to_string(),
            expires,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks the grant against the trackers' public key (hex), the file asked for and `now`
    /// (Unix seconds).
    pub fn verify(
        &self,
        public_key_hex: &str,
        file_sha1: &str,
        now: u64,
    ) -> Result<(), GrantError> {
        let key = parse_public_key(public_key_hex)?;
        let raw = hex::decode(&self.signature).map_err(|_| GrantError::BadSignature)?;
        let signature =
            Signature::try_from(raw.as_slice()).map_err(|_| GrantError::BadSignature)?;
        let message = Self::signed_bytes(&self.user, &self.group, &self.file_sha1, self.expires);
        key.verify_strict(&message, &signature)
            .map_err(|_| GrantError::BadSignature)?;
        if self.file_sha1 != file_sha1 {
            return Err(GrantError::WrongFile);
        }
        if now > self.expires {
            return Err(GrantError::Expired);
        }
        Ok(())
    }
}

/// A new random signing key.
pub fn new_signing_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The public half of `key`, hex.
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, GrantError> {
    let raw: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(GrantError::BadKey)?;
    VerifyingKey::from_bytes(&raw).map_err(|_| GrantError::BadKey)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_grant_verifies_and_tampering_fails() {
        let key = new_signing_key();
        let public = public_key_hex(&key);
        let grant = Grant::issue(&key, "bob", "g1", "ab", 1000);
        assert_eq!(grant.verify(&public, "ab", 999), Ok(()));
        assert_eq!(grant.verify(&public, "ab", 1001), Err(GrantError::Expired));
        assert_eq!(grant.verify(&public, "cd", 999), Err(GrantError::WrongFile));
        let mut forged = grant.clone();
        forged.user = "mallory".into();
        assert_eq!(
            forged.verify(&public, "ab", 999),
            Err(GrantError::BadSignature)
        );
        let mut later = grant.clone();
        later.expires = 5000;
        assert_eq!(
            later.verify(&public, "ab", 999),
            Err(GrantError::BadSignature)
        );
        let other = public_key_hex(&new_signing_key());
        assert_eq!(
            grant.verify(&other, "ab", 999),
            Err(GrantError::BadSignature)
        );
        assert_eq!(grant.verify("zz", "ab", 999), Err(GrantError::BadKey));
    }
}
