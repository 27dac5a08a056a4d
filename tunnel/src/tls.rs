//! TLS 1.3 configurations for both ends of the tunnel, always on the
//! aws-lc-rs provider (never the process default, which may be unset).

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::pin::{FingerprintVerifier, Pin, PinFailure};
use crate::transport;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("no usable CA certificate was given")]
    NoCa,
    #[error("QUIC cannot use this TLS configuration: {0}")]
    Quic(String),
}

/// The one crypto provider every hoop binary uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The agent's QUIC server configuration. `chain` is the agent certificate
/// followed by its CA, so a client pinning the CA fingerprint can find it.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![hoop_proto::tunnel::ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(Arc::new(transport::transport_config()));
    Ok(cfg)
}

/// The CLI's QUIC client configuration for a pinned agent. The returned
/// [`PinFailure`] holds a readable explanation if the pin does not match.
pub fn client_config(pin: &Pin) -> Result<(quinn::ClientConfig, PinFailure), TlsError> {
    let provider = provider();
    let failure = PinFailure::default();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut tls = match pin {
        Pin::Fingerprint(fp) => builder
            .dangerous()
            // Not a skip: FingerprintVerifier does full WebPKI path and name
            // validation, anchored at the CA whose fingerprint is pinned.
            .with_custom_certificate_verifier(Arc::new(FingerprintVerifier::new(
                *fp,
                provider,
                failure.clone(),
            )))
            .with_no_client_auth(),
        Pin::Ca(certs) => {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots.add(c.clone())?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCa);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![hoop_proto::tunnel::ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(Arc::new(transport::transport_config()));
    Ok((cfg, failure))
}
