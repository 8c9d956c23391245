//! Proofs of the cluster key: HMAC-SHA256 over a role label and both sides' nonces, so a
//! proof cannot be replayed on another connection or reflected back to its sender.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Who computes the proof: the side that opened the connection or the side that accepted it.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Connector,
    Acceptor,
}

fn mac(key: &[u8], side: Side, nonce_c: &str, nonce_s: &str) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    let label: &[u8] = match side {
        Side::Connector => b"p2p-cluster-v1 connector",
        Side::Acceptor => b"p2p-cluster-v1 acceptor",
    };
    mac.update(label);
    mac.update(b"|");
    mac.update(nonce_c.as_bytes());
    mac.update(b"|");
    mac.update(nonce_s.as_bytes());
    Some(mac)
}

/// The proof `side` sends, hex.
pub fn prove(key: &[u8], side: Side, nonce_c: &str, nonce_s: &str) -> String {
    mac(key, side, nonce_c, nonce_s)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Checks a proof in constant time.
pub fn verify(key: &[u8], side: Side, nonce_c: &str, nonce_s: &str, proof: &str) -> bool {
    let Ok(raw) = hex::decode(proof) else {
        return false;
    };
    mac(key, side, nonce_c, nonce_s).is_some_and(|m| m.verify_slice(&raw).is_ok())
}

/// A fresh nonce, hex.
pub fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_key_side_and_nonces() {
        let key = b"0123456789abcdef0123456789abcdef";
        let p = prove(key, Side::Acceptor, "a", "b");
        assert!(verify(key, Side::Acceptor, "a", "b", &p));
        assert!(
            !verify(key, Side::Connector, "a", "b", &p),
            "not reflectable"
        );
        assert!(
            !verify(key, Side::Acceptor, "a", "c", &p),
            "bound to nonces"
        );
        assert!(!verify(
            b"another key of enough length!!!",
            Side::Acceptor,
            "a",
            "b",
            &p
        ));
        assert!(!verify(key, Side::Acceptor, "a", "b", "zz"));
        assert!(!verify(key, Side::Acceptor, "a", "b", ""));
    }
}
