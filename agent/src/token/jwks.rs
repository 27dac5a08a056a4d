//! Discovery and JWKS fetching with a cache per issuer. Keys are refetched
//! when the cache is old, or when a token names a key the cache lacks
//! (rotation), but such forced refetches are rate-limited so a stream of
//! made-up `kid`s cannot turn the agent against its identity provider.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::config::{check_issuer_url, normalize_issuer};

/// Keys older than this are refetched before use.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Stale keys remain usable this long while the issuer cannot be reached.
const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// At most one refetch for an unknown `kid` per this interval.
const MIN_FORCED_INTERVAL: Duration = Duration::from_secs(10);
/// Largest discovery or JWKS document accepted.
const MAX_DOC: usize = 1024 * 1024;

/// Why keys could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP client setup failed: {0}")]
    Client(String),
    #[error("GET {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("GET {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: document larger than {MAX_DOC} bytes")]
    TooLarge { url: String },
    #[error("{url}: not a valid document: {reason}")]
    Document { url: String, reason: String },
    #[error("discovery says issuer {found:?}, but the agent is configured for {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("{url}: no usable signing key (RSA, EC P-256 or Ed25519)")]
    NoKeys { url: String },
}

/// Looking up a key failed.
#[derive(Debug)]
pub enum LookupError {
    Unknown(String),
    Fetch(FetchError),
}

/// HTTP client for discovery and JWKS: no redirects, short timeouts.
pub fn http_client() -> Result<reqwest::Client, FetchError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .user_agent(concat!("hoop-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))
}

struct Entry {
    kid: Option<String>,
    alg: Option<KeyAlgorithm>,
    params: KeyFamily,
    key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    P256,
    Ed25519,
}

#[derive(Default)]
struct State {
    keys: Vec<Entry>,
    fetched_at: Option<Instant>,
    last_forced: Option<Instant>,
}

/// Cached signing keys of one issuer.
pub struct JwksCache {
    issuer: String,
    http: reqwest::Client,
    state: RwLock<State>,
    /// Serialises fetches so concurrent misses make one request.
    fetching: Mutex<()>,
}

impl JwksCache {
    pub fn new(issuer: String, http: reqwest::Client) -> Self {
        JwksCache {
            issuer,
            http,
            state: RwLock::new(State::default()),
            fetching: Mutex::new(()),
        }
    }

    /// Fetches the keys now; returns how many usable keys were found.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        let _guard = self.fetching.lock().await;
        let keys = fetch(&self.http, &self.issuer).await?;
        let n = keys.len();
        let mut st = self.state.write().await;
        st.keys = keys;
        st.fetched_at = Some(Instant::now());
        Ok(n)
    }

    /// The key for a token's `kid` and `alg`.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, LookupError> {
        let (age, found) = {
            let st = self.state.read().await;
            (st.fetched_at.map(|t| t.elapsed()), find(&st.keys, kid, alg))
        };
        match age {
            None => {
                self.refresh().await.map_err(LookupError::Fetch)?;
            }
            Some(age) if age > MAX_AGE => {
                if let Err(e) = self.refresh().await {
                    if age > MAX_STALE {
                        return Err(LookupError::Fetch(e));
                    }
                    tracing::warn!(issuer = %self.issuer, error = %e, "cannot refresh signing keys; using cached ones");
                }
            }
            Some(_) => {
                if let Some(k) = found {
                    return Ok(k);
                }
            }
        }
        if let Some(k) = find(&self.state.read().await.keys, kid, alg) {
            return Ok(k);
        }
        // Unknown key: maybe the issuer rotated. Refetch, rate-limited.
        let may_force = {
            let mut st = self.state.write().await;
            let ok = st
                .last_forced
                .is_none_or(|t| t.elapsed() >= MIN_FORCED_INTERVAL);
            if ok {
                st.last_forced = Some(Instant::now());
            }
            ok
        };
        if may_force {
            self.refresh().await.map_err(LookupError::Fetch)?;
            if let Some(k) = find(&self.state.read().await.keys, kid, alg) {
                return Ok(k);
            }
        }
        Err(LookupError::Unknown(kid.unwrap_or("(none)").to_string()))
    }
}

fn family_of(alg: Algorithm) -> Option<KeyFamily> {
    match alg {
        Algorithm::RS256 | Algorithm::PS256 => Some(KeyFamily::Rsa),
        Algorithm::ES256 => Some(KeyFamily::P256),
        Algorithm::EdDSA => Some(KeyFamily::Ed25519),
        _ => None,
    }
}

fn key_alg_matches(k: KeyAlgorithm, alg: Algorithm) -> bool {
    matches!(
        (k, alg),
        (KeyAlgorithm::RS256, Algorithm::RS256)
            | (KeyAlgorithm::PS256, Algorithm::PS256)
            | (KeyAlgorithm::ES256, Algorithm::ES256)
            | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
    )
}

fn find(keys: &[Entry], kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let family = family_of(alg)?;
    let compatible =
        |e: &&Entry| e.params == family && e.alg.is_none_or(|k| key_alg_matches(k, alg));
    match kid {
        Some(kid) => keys
            .iter()
            .filter(compatible)
            .find(|e| e.kid.as_deref() == Some(kid))
            .map(|e| e.key.clone()),
        None => {
            // Without a kid, accept only an unambiguous key.
            let mut it = keys.iter().filter(compatible);
            match (it.next(), it.next()) {
                (Some(e), None) => Some(e.key.clone()),
                _ => None,
            }
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

async fn get_doc(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let http_err = |e: reqwest::Error| FetchError::Http {
        url: url.to_string(),
        reason: error_chain(&e),
    };
    let mut resp = http.get(url).send().await.map_err(http_err)?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    if resp.content_length().is_some_and(|n| n > MAX_DOC as u64) {
        return Err(FetchError::TooLarge {
            url: url.to_string(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
        if body.len() + chunk.len() > MAX_DOC {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

async fn fetch(http: &reqwest::Client, issuer: &str) -> Result<Vec<Entry>, FetchError> {
    let disc_url = format!(
        "{}/.well-known/openid-configuration",
        normalize_issuer(issuer)
    );
    let body = get_doc(http, &disc_url).await?;
    let disc: Discovery = serde_json::from_slice(&body).map_err(|e| FetchError::Document {
        url: disc_url.clone(),
        reason: e.to_string(),
    })?;
    if normalize_issuer(&disc.issuer) != normalize_issuer(issuer) {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_string(),
            found: disc.issuer,
        });
    }
    check_issuer_url(&disc.jwks_uri).map_err(|reason| FetchError::Document {
        url: disc_url.clone(),
        reason: format!("jwks_uri: {reason}"),
    })?;
    let body = get_doc(http, &disc.jwks_uri).await?;
    let keys = parse_jwks(&body).map_err(|reason| FetchError::Document {
        url: disc.jwks_uri.clone(),
        reason,
    })?;
    if keys.is_empty() {
        return Err(FetchError::NoKeys { url: disc.jwks_uri });
    }
    Ok(keys)
}

/// Parses a JWKS, keeping only asymmetric signing keys of supported types.
/// Keys of other types are skipped rather than failing the whole set.
fn parse_jwks(body: &[u8]) -> Result<Vec<Entry>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for raw in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let params = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                KeyFamily::P256
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyFamily::Ed25519
            }
            // HMAC secrets and other curves are never signing keys here.
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        out.push(Entry {
            kid: jwk.common.key_id.clone(),
            alg: jwk.common.key_algorithm,
            params,
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_foreign_keys_are_skipped() {
        let body = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"},
            {"kty":"EC","crv":"P-384","x":"AA","y":"AA","kid":"p384"},
            {"kty":"weird","kid":"w"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed","use":"sig"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"enc","use":"enc"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("ed"));
        assert!(find(&keys, Some("ed"), Algorithm::EdDSA).is_some());
        assert!(find(&keys, Some("ed"), Algorithm::RS256).is_none());
        assert!(find(&keys, Some("h"), Algorithm::HS256).is_none());
        assert!(find(&keys, None, Algorithm::EdDSA).is_some());
    }

    #[test]
    fn garbage_jwks() {
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(br#"{"keys":[]}"#).unwrap().is_empty());
    }
}
