//! Download grants: the tracker's proof, checked by a seeder without asking anyone, that the
//! daemon connecting to it may have a file.
//!
//! A grant names the user, the group (by name and by its internal id, which a re-created group
//! does not share), the file's SHA-1, the downloader's key fingerprint and an expiry, and is
//! signed with the trackers' Ed25519 signing key. A seeder serves a request only if the grant
//! verifies, has not expired (checked on every request), names the key the TLS peer proved it
//! holds, and names a file the seeder itself shares in a group with that id. Grants live a
//! minute or two; downloaders renew them while they download.

use crate::identity::Fingerprint;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a grant stays valid after the tracker issues it, by default, in seconds: short,
/// so that a member who left (and keeps old grants) is cut off within two minutes.
pub const GRANT_LIFETIME_SECS: u64 = 90;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Which signing key signed it (see [`key_id`]).
    pub key_id: String,
    pub user: String,
    pub group: String,
    /// The group's internal id.
    pub group_id: String,
    /// SHA-1 of the whole file, hex.
    pub file_sha1: String,
    /// The only key that may use this grant.
    pub downloader: Fingerprint,
    /// Unix time (seconds) after which the grant is void.
    pub expires: u64,
    /// Ed25519 signature of [`Grant::signed_bytes`], hex.
    pub signature: String,
}

/// What a grant says, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTerms<'a> {
    pub user: &'a str,
    pub group: &'a str,
    pub group_id: &'a str,
    pub file_sha1: &'a str,
    pub downloader: Fingerprint,
    pub expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant signature does not verify")]
    BadSignature,
    #[error("grant expired")]
    Expired,
    #[error("grant is for another file")]
    WrongFile,
    #[error("grant was issued to another key")]
    WrongKey,
    #[error("grant is signed by another tracker key ({0})")]
    OtherSigner(String),
    #[error("tracker key is malformed")]
    BadKey,
}

/// A short name of a signing key: the first 16 hex digits of the SHA-256 of its public half.
pub fn key_id(public_key_hex: &str) -> String {
    let raw = hex::decode(public_key_hex).unwrap_or_default();
    hex::encode(&Sha256::digest(raw)[..8])
}

impl Grant {
    /// Every field, each behind its length, so no two different grants sign the same bytes.
    fn signed_bytes(key_id: &str, terms: &GrantTerms<'_>) -> Vec<u8> {
        let mut out = b"p2p-grant-v2".to_vec();
        let expires = terms.expires.to_string();
        let downloader = terms.downloader.to_string();
        for field in [
            key_id,
            terms.user,
            terms.group,
            terms.group_id,
            terms.file_sha1,
            &downloader,
            &expires,
        ] {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }

    fn terms(&self) -> GrantTerms<'_> {
        GrantTerms {
            user: &self.user,
            group: &self.group,
            group_id: &self.group_id,
            file_sha1: &self.file_sha1,
            downloader: self.downloader,
            expires: self.expires,
        }
    }

    /// Issues a grant signed with `key`.
    pub fn issue(key: &SigningKey, terms: GrantTerms<'_>) -> Self {
        let key_id = key_id(&public_key_hex(key));
        let signature = key.sign(&Self::signed_bytes(&key_id, &terms));
        Self {
            user: terms.user.to_string(),
            group: terms.group.to_string(),
            group_id: terms.group_id.to_string(),
            file_sha1: terms.file_sha1.to_string(),
            downloader: terms.downloader,
            expires: terms.expires,
            signature: hex::encode(signature.to_bytes()),
            key_id,
        }
    }

    /// Checks the signature against the trackers' public key (hex) only.
    pub fn verify_signature(&self, public_key_hex: &str) -> Result<(), GrantError> {
        let expected_id = key_id(public_key_hex);
        if self.key_id != expected_id {
            return Err(GrantError::OtherSigner(
                self.key_id.chars().take(16).collect(),
            ));
        }
        let key = parse_public_key(public_key_hex)?;
        let raw = hex::decode(&self.signature).map_err(|_| GrantError::BadSignature)?;
        let signature =
            Signature::try_from(raw.as_slice()).map_err(|_| GrantError::BadSignature)?;
        let message = Self::signed_bytes(&self.key_id, &self.terms());
        key.verify_strict(&message, &signature)
            .map_err(|_| GrantError::BadSignature)
    }

    /// Checks everything a seeder checks at the handshake: the signature, the file asked for,
    /// the key of the connecting peer, and `now` (Unix seconds).
    pub fn verify(
        &self,
        public_key_hex: &str,
        file_sha1: &str,
        peer: Fingerprint,
        now: u64,
    ) -> Result<(), GrantError> {
        self.verify_signature(public_key_hex)?;
        if self.file_sha1 != file_sha1 {
            return Err(GrantError::WrongFile);
        }
        if self.downloader != peer {
            return Err(GrantError::WrongKey);
        }
        self.check_expiry(now)
    }

    /// The check a seeder repeats on every request.
    pub fn check_expiry(&self, now: u64) -> Result<(), GrantError> {
        if now > self.expires {
            Err(GrantError::Expired)
        } else {
            Ok(())
        }
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

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint::of_spki(&[byte])
    }

    fn terms(expires: u64) -> GrantTerms<'static> {
        GrantTerms {
            user: "bob",
            group: "g1",
            group_id: "00ff",
            file_sha1: "ab",
            downloader: fp(1),
            expires,
        }
    }

    #[test]
    fn an_issued_grant_verifies_for_its_key_file_and_time_only() {
        let key = new_signing_key();
        let public = public_key_hex(&key);
        let grant = Grant::issue(&key, terms(1000));
        assert_eq!(grant.verify(&public, "ab", fp(1), 999), Ok(()));
        assert_eq!(
            grant.verify(&public, "ab", fp(1), 1001),
            Err(GrantError::Expired)
        );
        assert_eq!(
            grant.verify(&public, "cd", fp(1), 999),
            Err(GrantError::WrongFile)
        );
        assert_eq!(
            grant.verify(&public, "ab", fp(2), 999),
            Err(GrantError::WrongKey),
            "a captured grant is useless to another key"
        );
    }

    #[test]
    fn tampering_and_other_signers_are_refused() {
        let key = new_signing_key();
        let public = public_key_hex(&key);
        let grant = Grant::issue(&key, terms(1000));
        let mut changes: Vec<Grant> = Vec::new();
        for change in 0..5 {
            let mut forged = grant.clone();
            match change {
                0 => forged.user = "mallory".into(),
                1 => forged.expires = 5000,
                2 => forged.downloader = fp(2),
                3 => forged.group_id = "0000".into(),
                _ => forged.group = "g2".into(),
            }
            changes.push(forged);
        }
        for forged in changes {
            assert_eq!(
                forged.verify(&public, "ab", forged.downloader, 999),
                Err(GrantError::BadSignature),
                "{forged:?}"
            );
        }
        let other = public_key_hex(&new_signing_key());
        assert!(matches!(
            grant.verify(&other, "ab", fp(1), 999),
            Err(GrantError::OtherSigner(_))
        ));
        let mut relabelled = grant.clone();
        relabelled.key_id = key_id(&other);
        assert_eq!(
            relabelled.verify(&other, "ab", fp(1), 999),
            Err(GrantError::BadSignature)
        );
    }
}
