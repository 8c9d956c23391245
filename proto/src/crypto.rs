//! The one crypto provider of the whole system: rustls's aws-lc-rs provider limited to the
//! TLS 1.3 AEAD suites, AES-GCM first (docs/SECURITY.md says why). Both the TLS links and the
//! loading of key files use it.

use rustls::crypto::CryptoProvider;
use std::sync::{Arc, OnceLock};

/// The crypto provider of every connection (built once).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        use rustls::crypto::aws_lc_rs::cipher_suite as cs;
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites = vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ];
        Arc::new(provider)
    }))
}
