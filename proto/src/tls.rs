//! TLS 1.3 for every TCP link of the system, with raw public keys (RFC 7250).
//!
//! Each side presents its Ed25519 public key (see [`crate::identity`]) instead of a certificate
//! and proves it holds the private key by signing the handshake; that signature is always
//! verified, also where the key is pinned. A server requires a key from every client (the key
//! names the daemon: sessions and grants are bound to it) and accepts any key; a client accepts
//! exactly the key it expects ([`Expect::Key`]) or records whatever key it met
//! ([`Expect::AnyKey`], for trust on first use, decided by the caller before it sends anything).
//!
//! Provider: aws-lc-rs; suites AES-128-GCM, AES-256-GCM, then ChaCha20-Poly1305 (for CPUs
//! without AES instructions). Session resumption is off: every connection authenticates with a
//! fresh signature.

use crate::identity::{Fingerprint, Identity};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use tokio_rustls::TlsAcceptor;

/// A TLS connection, whichever side opened it.
pub type TlsStream<S> = tokio_rustls::TlsStream<S>;

/// The first byte of every TLS record that opens a connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Label of the exporter value that binds application proofs to one TLS session.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-p2p-session-binding-v1";

pub use crate::crypto::provider;

fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

/// What a client accepts of the server it connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Only this key.
    Key(Fingerprint),
    /// Any key; the caller looks at [`Handshake::peer`] before it sends anything.
    AnyKey,
}

/// What a completed handshake established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The key the other side proved it holds.
    pub peer: Fingerprint,
    /// A value both sides of this TLS session (and nobody else) share, to bind proofs to it.
    pub exporter: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("it presented key {presented}, not the expected {expected}")]
    KeyMismatch {
        expected: Fingerprint,
        presented: Fingerprint,
    },
    #[error("no TLS handshake within {}s", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("it does not speak TLS (an older version of this program?)")]
    NotTls,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("it presented no usable key")]
    NoKey,
}

/// Checks the server's key against what the client expects, and verifies its signature.
#[derive(Debug)]
struct ServerKey {
    expect: Expect,
    /// The key the server presented, for the caller (TOFU, and the mismatch message).
    seen: Arc<OnceLock<Fingerprint>>,
}

impl ServerCertVerifier for ServerKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(CertificateError::BadEncoding.into());
        }
        let presented = Fingerprint::of_spki(end_entity.as_ref());
        let _ = self.seen.set(presented);
        match self.expect {
            Expect::Key(expected) if expected != presented => {
                Err(CertificateError::ApplicationVerificationFailure.into())
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Accepts any client key, as long as the client proves it holds it.
#[derive(Debug)]
struct AnyClientKey;

impl ClientCertVerifier for AnyClientKey {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(CertificateError::BadEncoding.into());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let spki = SubjectPublicKeyInfoDer::from(cert.as_ref());
    rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &algorithms())
}

/// The server side of every link: presents `identity`, requires a key from the client.
pub fn acceptor(identity: &Identity) -> Result<TlsAcceptor, rustls::Error> {
    Ok(TlsAcceptor::from(server_config(identity)?))
}

/// The configuration behind [`acceptor`].
pub fn server_config(identity: &Identity) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyClientKey))
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(identity.certified_key()),
        ));
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client side of every link: presents `identity`, accepts what `expect` says. The second
/// value holds, after a handshake, the key the server presented (also when it was refused).
pub fn client_config(
    identity: &Identity,
    expect: Expect,
) -> Result<(Arc<ClientConfig>, Arc<OnceLock<Fingerprint>>), rustls::Error> {
    let seen = Arc::new(OnceLock::new());
    let verifier = ServerKey {
        expect,
        seen: Arc::clone(&seen),
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(identity.certified_key()),
        ));
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = false;
    Ok((Arc::new(config), seen))
}

/// Opens TLS on `io` as the client, presenting `identity`, within `limit`.
pub async fn connect<S>(
    io: S,
    identity: &Identity,
    expect: Expect,
    limit: Duration,
) -> Result<(TlsStream<S>, Handshake), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (config, seen) = client_config(identity, expect)
        .map_err(|e| TlsError::Handshake(std::io::Error::other(e)))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    // The name is not sent (SNI is off) and not checked (the key is): any valid one will do.
    let name =
        ServerName::try_from("p2p").map_err(|e| TlsError::Handshake(std::io::Error::other(e)))?;
    let connected = tokio::time::timeout(limit, connector.connect(name, io))
        .await
        .map_err(|_| TlsError::Timeout(limit))?;
    let stream = match connected {
        Ok(stream) => stream,
        Err(e) => {
            return Err(match (expect, seen.get()) {
                (Expect::Key(expected), Some(&presented)) if presented != expected => {
                    TlsError::KeyMismatch {
                        expected,
                        presented,
                    }
                }
                _ => classify(e),
            });
        }
    };
    let (_, conn) = stream.get_ref();
    let peer = peer_key(conn).ok_or(TlsError::NoKey)?;
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, None)
        .map_err(|e| TlsError::Handshake(std::io::Error::other(e)))?;
    Ok((TlsStream::Client(stream), Handshake { peer, exporter }))
}

/// Completes TLS on `io` as the server, within `limit`.
pub async fn accept<S>(
    io: S,
    acceptor: &TlsAcceptor,
    limit: Duration,
) -> Result<(TlsStream<S>, Handshake), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = tokio::time::timeout(limit, acceptor.accept(io))
        .await
        .map_err(|_| TlsError::Timeout(limit))?
        .map_err(classify)?;
    let (_, conn) = stream.get_ref();
    let peer = peer_key(conn).ok_or(TlsError::NoKey)?;
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, None)
        .map_err(|e| TlsError::Handshake(std::io::Error::other(e)))?;
    Ok((TlsStream::Server(stream), Handshake { peer, exporter }))
}

/// Whether the connection opens with a TLS handshake record, waiting at most `limit` for its
/// first byte. Lets a server answer a plaintext client of an older version in plaintext.
pub async fn opens_with_tls(stream: &TcpStream, limit: Duration) -> Result<bool, TlsError> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(limit, stream.peek(&mut first))
        .await
        .map_err(|_| TlsError::Timeout(limit))?
        .map_err(TlsError::Handshake)?;
    Ok(peeked == 1 && first[0] == TLS_HANDSHAKE_RECORD)
}

/// The key a completed handshake's peer presented.
pub fn peer_key(conn: &rustls::CommonState) -> Option<Fingerprint> {
    let presented = conn.peer_certificates()?;
    match presented {
        [key] => Some(Fingerprint::of_spki(key.as_ref())),
        _ => None,
    }
}

fn classify(e: std::io::Error) -> TlsError {
    let not_tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
            )
        });
    if not_tls {
        TlsError::NotTls
    } else {
        TlsError::Handshake(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(
        server: &Identity,
        client: &Identity,
        expect: Expect,
    ) -> (
        Result<(TlsStream<tokio::io::DuplexStream>, Handshake), TlsError>,
        Result<(TlsStream<tokio::io::DuplexStream>, Handshake), TlsError>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = acceptor(server).unwrap();
        let limit = Duration::from_secs(5);
        let server = tokio::spawn(async move { accept(b, &acceptor, limit).await });
        let client = connect(a, client, expect, limit).await;
        (client, server.await.unwrap())
    }

    #[tokio::test]
    async fn both_sides_learn_the_others_key_and_share_the_exporter() {
        let (s, c) = (
            Identity::ephemeral().unwrap(),
            Identity::ephemeral().unwrap(),
        );
        let (client, server) = pair(&s, &c, Expect::Key(s.fingerprint())).await;
        let (mut client, ch) = client.unwrap();
        let (mut server, sh) = server.unwrap();
        assert_eq!(ch.peer, s.fingerprint());
        assert_eq!(sh.peer, c.fingerprint());
        assert_eq!(ch.exporter, sh.exporter);
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    #[tokio::test]
    async fn another_key_than_the_expected_one_is_named_and_refused() {
        let (s, c) = (
            Identity::ephemeral().unwrap(),
            Identity::ephemeral().unwrap(),
        );
        let expected = Identity::ephemeral().unwrap().fingerprint();
        let (client, _server) = pair(&s, &c, Expect::Key(expected)).await;
        match client {
            Err(TlsError::KeyMismatch {
                expected: e,
                presented,
            }) => {
                assert_eq!(e, expected);
                assert_eq!(presented, s.fingerprint());
            }
            other => panic!("expected a key mismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn any_key_is_accepted_and_reported_when_asked() {
        let (s, c) = (
            Identity::ephemeral().unwrap(),
            Identity::ephemeral().unwrap(),
        );
        let (client, _server) = pair(&s, &c, Expect::AnyKey).await;
        assert_eq!(client.unwrap().1.peer, s.fingerprint());
    }

    #[tokio::test]
    async fn plaintext_is_not_tls() {
        let s = Identity::ephemeral().unwrap();
        let (mut a, b) = tokio::io::duplex(1024);
        let acceptor = acceptor(&s).unwrap();
        let server =
            tokio::spawn(async move { accept(b, &acceptor, Duration::from_secs(5)).await });
        a.write_all(b"\x00\x00\x00\x10{\"v\":1,\"id\":\"x\"}")
            .await
            .unwrap();
        let result = server.await.unwrap();
        assert!(matches!(result, Err(TlsError::NotTls)), "{result:?}");
    }
}
