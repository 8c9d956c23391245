//! Who a process is on the network: an Ed25519 key pair, made on first start and kept in a
//! private file, and its name, the [`Fingerprint`] of the public key.
//!
//! The key file is PKCS#8 PEM, created with mode 0600 (never replaced once it exists); a key
//! file that others can read is refused, the way ssh refuses such a private key.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// The name of a public key: the SHA-256 of its DER SubjectPublicKeyInfo, written
/// `sha256:<64 lowercase hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER SubjectPublicKeyInfo (what a raw-public-key TLS peer presents).
    pub fn of_spki(spki: &[u8]) -> Self {
        Self(Sha256::digest(spki).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not `sha256:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a key fingerprint (expected sha256: and 64 hex digits)")]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.chars().take(80).collect());
        let digits = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let raw = hex::decode(digits.to_ascii_lowercase()).map_err(|_| bad())?;
        raw.try_into().map(Self).map_err(|_| bad())
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} can be read by other users (mode {mode:04o}); run `chmod 600 {path}`")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("key file {path} does not hold a usable Ed25519 key: {reason}")]
    Unusable { path: PathBuf, reason: String },
}

/// A key pair, ready for TLS.
#[derive(Clone)]
pub struct Identity {
    certified: Arc<CertifiedKey>,
    fingerprint: Fingerprint,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.fingerprint)
    }
}

impl Identity {
    /// Loads the key at `path`, making one (0600) first if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::create(path)?;
                Self::load(path)
            }
            Err(source) => Err(IdentityError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// A fresh key that lives only in memory (tests, and tools that need a throwaway client).
    pub fn ephemeral() -> Result<Self, IdentityError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| {
            IdentityError::Unusable {
                path: PathBuf::new(),
                reason: e.to_string(),
            }
        })?;
        Self::from_pkcs8(pair.serialize_der(), Path::new("(memory)"))
    }

    fn create(path: &Path) -> Result<(), IdentityError> {
        let create_err = |source| IdentityError::Create {
            path: path.to_path_buf(),
            source,
        };
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| {
            IdentityError::Unusable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        // create_new: never replace a key that appeared meanwhile; 0600 whatever the umask.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(create_err)?;
        file.write_all(pair.serialize_pem().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(create_err)?;
        Ok(())
    }

    fn load(path: &Path) -> Result<Self, IdentityError> {
        let read_err = |source| IdentityError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        if meta.len() > 64 * 1024 {
            return Err(IdentityError::Unusable {
                path: path.to_path_buf(),
                reason: "the file is far larger than a key".into(),
            });
        }
        let pem = std::fs::read(path).map_err(read_err)?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| IdentityError::Unusable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        match der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                Self::from_pkcs8(pkcs8.secret_pkcs8_der().to_vec(), path)
            }
            _ => Err(IdentityError::Unusable {
                path: path.to_path_buf(),
                reason: "not a PKCS#8 key".into(),
            }),
        }
    }

    fn from_pkcs8(der: Vec<u8>, path: &Path) -> Result<Self, IdentityError> {
        let unusable = |reason: String| IdentityError::Unusable {
            path: path.to_path_buf(),
            reason,
        };
        let provider: &CryptoProvider = &crate::crypto::provider();
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(der.into()))
            .map_err(|e| unusable(e.to_string()))?;
        if key.algorithm() != rustls::SignatureAlgorithm::ED25519 {
            return Err(unusable(format!("a {:?} key", key.algorithm())));
        }
        let spki = key
            .public_key()
            .ok_or_else(|| unusable("no public key".into()))?;
        let fingerprint = Fingerprint::of_spki(spki.as_ref());
        let presented = CertificateDer::from(spki.as_ref().to_vec());
        Ok(Self {
            certified: Arc::new(CertifiedKey::new(vec![presented], key)),
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The key as TLS presents it (the "certificate" is the raw SubjectPublicKeyInfo).
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_private_and_named_the_same_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let made = Identity::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(made.fingerprint(), again.fingerprint());
        let text = made.fingerprint().to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text.parse::<Fingerprint>().unwrap(), made.fingerprint());
        assert_ne!(
            Identity::ephemeral().unwrap().fingerprint(),
            made.fingerprint()
        );
    }

    #[test]
    fn an_exposed_or_garbage_key_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        Identity::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Identity::load_or_create(&path),
            Err(IdentityError::Unusable { .. })
        ));
    }

    #[test]
    fn fingerprints_parse_strictly() {
        let ok = format!("sha256:{}", "ab".repeat(32));
        assert!(ok.parse::<Fingerprint>().is_ok());
        for bad in [
            "",
            "sha256:",
            "sha1:abcd",
            &format!("sha256:{}", "ab".repeat(31)),
            &format!("sha256:{}", "zz".repeat(32)),
            &format!("SHA256:{}", "ab".repeat(32)),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }
}
