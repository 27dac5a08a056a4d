//! How the CLI decides to trust an agent: the SHA-256 fingerprint of the
//! agent's CA certificate, or the CA certificate itself from a file.
//! There is deliberately no way to skip verification.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// SHA-256 of a certificate's DER encoding, shown as `SHA256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A fingerprint string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("fingerprint must look like SHA256:<64 hex digits> (as printed by `hoop-agent init`)")]
pub struct BadFingerprint;

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let hexpart = s
            .strip_prefix("SHA256:")
            .or_else(|| s.strip_prefix("sha256:"))
            .unwrap_or(s);
        // Accept the colon-separated form openssl prints as well.
        let cleaned: String = hexpart.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(cleaned).map_err(|_| BadFingerprint)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| BadFingerprint)?;
        Ok(Fingerprint(arr))
    }
}

/// What the CLI trusts.
#[derive(Clone, Debug)]
pub enum Pin {
    /// The agent's CA, identified by fingerprint; the agent sends its CA
    /// certificate in the chain and the leaf must chain to it.
    Fingerprint(Fingerprint),
    /// The agent's CA certificate(s), e.g. from `ca.pem`.
    Ca(Vec<CertificateDer<'static>>),
}

/// Filled in by the verifier when the agent presents a CA that does not
/// match the pin, so the CLI can say so plainly instead of quoting a TLS
/// alert.
#[derive(Clone, Default, Debug)]
pub struct PinFailure(Arc<Mutex<Option<String>>>);

impl PinFailure {
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }

    fn set(&self, msg: String) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(msg);
        }
    }
}

/// Verifies the agent's chain against a pinned CA fingerprint.
#[derive(Debug)]
pub(crate) struct FingerprintVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    failure: PinFailure,
}

impl FingerprintVerifier {
    pub(crate) fn new(
        pin: Fingerprint,
        provider: Arc<CryptoProvider>,
        failure: PinFailure,
    ) -> Self {
        FingerprintVerifier {
            pin,
            provider,
            failure,
        }
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| Fingerprint::of(c.as_ref()) == self.pin)
        else {
            let seen: Vec<String> = intermediates
                .iter()
                .chain(std::iter::once(end_entity))
                .map(|c| Fingerprint::of(c.as_ref()).to_string())
                .collect();
            let msg = format!(
                "the agent's certificate does not chain to the pinned CA {}; it presented {}. \
                 If the agent was re-initialised, get its new fingerprint from `hoop-agent fingerprint` \
                 and update the pin; otherwise something is impersonating the agent",
                self.pin,
                seen.join(", ")
            );
            self.failure.set(msg.clone());
            return Err(rustls::Error::General(msg));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("pinned CA is unusable: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned CA is unusable: {e}")))?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| c.as_ref() != ca.as_ref())
            .cloned()
            .collect();
        inner
            .verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
            .inspect_err(|e| {
                self.failure.set(format!(
                    "the agent's certificate failed verification against the pinned CA: {e}"
                ));
            })
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The client config only enables TLS 1.3.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trip() {
        let f = Fingerprint::of(b"hello");
        let s = f.to_string();
        assert!(s.starts_with("SHA256:"));
        assert_eq!(s.len(), 7 + 64);
        assert_eq!(s.parse::<Fingerprint>().unwrap(), f);
        let colons: String = hex::encode(f.0)
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(
            format!("sha256:{colons}").parse::<Fingerprint>().unwrap(),
            f
        );
    }

    #[test]
    fn bad_fingerprints() {
        for s in ["", "SHA256:", "SHA256:zz", "SHA256:abcd", &"a".repeat(66)] {
            assert!(s.parse::<Fingerprint>().is_err(), "{s}");
        }
    }
}
