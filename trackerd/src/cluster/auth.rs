//! Proofs of the cluster key, bound to one TLS session: `HMAC-SHA256(key, label ‖ exporter)`,
//! where the exporter value is one both ends of that TLS session share and nobody else can
//! compute. A proof therefore cannot be replayed on another connection, relayed through a
//! second TLS session by a man in the middle, or reflected back to its sender (the label names
//! the side).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Who computes the proof: the side that opened the connection or the side that accepted it.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Connector,
    Acceptor,
}

fn mac(key: &[u8], side: Side, exporter: &[u8; 32]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    let label: &[u8] = match side {
        Side::Connector => b"p2p-cluster-v2 connector",
        Side::Acceptor => b"p2p-cluster-v2 acceptor",
    };
    mac.update(label);
    mac.update(exporter);
    Some(mac)
}

/// The proof `side` sends, hex.
pub fn prove(key: &[u8], side: Side, exporter: &[u8; 32]) -> String {
    mac(key, side, exporter)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Checks a proof in constant time.
pub fn verify(key: &[u8], side: Side, exporter: &[u8; 32], proof: &str) -> bool {
    let Ok(raw) = hex::decode(proof) else {
        return false;
    };
    mac(key, side, exporter).is_some_and(|m| m.verify_slice(&raw).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_key_side_and_session() {
        let key = b"0123456789abcdef0123456789abcdef";
        let session = [7u8; 32];
        let p = prove(key, Side::Acceptor, &session);
        assert!(verify(key, Side::Acceptor, &session, &p));
        assert!(
            !verify(key, Side::Connector, &session, &p),
            "not reflectable"
        );
        assert!(
            !verify(key, Side::Acceptor, &[8u8; 32], &p),
            "bound to the TLS session"
        );
        assert!(!verify(
            b"another key of enough length!!!",
            Side::Acceptor,
            &session,
            &p
        ));
        assert!(!verify(key, Side::Acceptor, &session, "zz"));
        assert!(!verify(key, Side::Acceptor, &session, ""));
    }
}
