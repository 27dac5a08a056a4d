//! Access-token verification against the configured OIDC issuers.
//!
//! A token is accepted only when it names a trusted issuer, is signed with
//! an allowed algorithm (RS256, PS256, ES256, EdDSA; never `none` or HMAC)
//! by a key from that issuer's JWKS, and its `iss`, `aud`, `exp` and `nbf`
//! hold within the issuer's leeway (at most 60 s).

mod jwks;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hoop_proto::tunnel::{ErrorCode, Identity, WireError};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::config::{IssuerConfig, normalize_issuer};
pub use jwks::{FetchError, JwksCache};

/// Signature algorithms the agent accepts.
pub const ALLOWED_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Why a token was refused. `Display` is for the agent's log; [`TokenError::to_wire`]
/// is what the caller is told.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed JWT ({0})")]
    Malformed(String),
    #[error("token algorithm {0} is not allowed (allowed: RS256, PS256, ES256, EdDSA)")]
    Algorithm(String),
    #[error("token issuer {0:?} is not trusted by this agent")]
    UntrustedIssuer(String),
    #[error("token signing key {kid:?} is not in the JWKS of {issuer}")]
    UnknownKey { kid: String, issuer: String },
    #[error("cannot fetch signing keys of {issuer}: {source}")]
    Keys {
        issuer: String,
        #[source]
        source: FetchError,
    },
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired at {0}")]
    Expired(u64),
    #[error("token is not valid before {0}")]
    NotYetValid(u64),
    #[error("token audience does not include {0:?}")]
    WrongAudience(String),
    #[error("token rejected: {0}")]
    Invalid(String),
}

impl TokenError {
    /// The safe form for the caller: enough to act on, no key material or
    /// internal detail.
    pub fn to_wire(&self) -> WireError {
        let (code, msg) = match self {
            TokenError::Expired(at) => (
                ErrorCode::TokenExpired,
                format!(
                    "your token expired at {}; sign in again (or give a fresh HOOP_TOKEN)",
                    fmt_unix(*at)
                ),
            ),
            TokenError::NotYetValid(at) => (
                ErrorCode::TokenNotYetValid,
                format!(
                    "your token is not valid until {}; check this machine's clock",
                    fmt_unix(*at)
                ),
            ),
            TokenError::UntrustedIssuer(iss) => (
                ErrorCode::UntrustedIssuer,
                format!(
                    "this agent does not trust tokens from issuer {iss:?}; sign in with the issuer it trusts (`hoop login`)"
                ),
            ),
            TokenError::Keys { issuer, .. } => (
                ErrorCode::Internal,
                format!(
                    "the agent cannot fetch the signing keys of {issuer} to check your token; try again, and tell the agent's operator if it persists"
                ),
            ),
            TokenError::WrongAudience(aud) => (
                ErrorCode::TokenInvalid,
                format!("your token is not meant for this agent (audience must include {aud:?})"),
            ),
            other => (
                ErrorCode::TokenInvalid,
                format!("your token was refused: {other}"),
            ),
        };
        WireError::new(code, msg)
    }
}

fn fmt_unix(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// Checks tokens against every trusted issuer.
#[derive(Clone)]
pub struct Verifier {
    issuers: Arc<Vec<TrustedIssuer>>,
}

struct TrustedIssuer {
    cfg: IssuerConfig,
    keys: JwksCache,
}

impl Verifier {
    pub fn new(issuers: &[IssuerConfig]) -> Result<Self, FetchError> {
        let http = jwks::http_client()?;
        let issuers = issuers
            .iter()
            .map(|cfg| TrustedIssuer {
                keys: JwksCache::new(cfg.url.clone(), http.clone()),
                cfg: cfg.clone(),
            })
            .collect();
        Ok(Verifier {
            issuers: Arc::new(issuers),
        })
    }

    /// Fetches every issuer's keys now, so the first caller does not wait
    /// and the log shows early whether the identity provider answers.
    pub async fn warm_up(&self) -> Vec<(String, Result<usize, FetchError>)> {
        let mut out = Vec::new();
        for iss in self.issuers.iter() {
            out.push((iss.cfg.url.clone(), iss.keys.refresh().await));
        }
        out
    }

    /// Verifies a token and returns the identity it carries.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let iss = unverified_issuer(token)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| normalize_issuer(&i.cfg.url) == normalize_issuer(&iss))
            .ok_or_else(|| TokenError::UntrustedIssuer(iss.clone()))?;

        let key = issuer
            .keys
            .key_for(header.kid.as_deref(), header.alg)
            .await
            .map_err(|e| match e {
                jwks::LookupError::Unknown(kid) => TokenError::UnknownKey {
                    kid,
                    issuer: issuer.cfg.url.clone(),
                },
                jwks::LookupError::Fetch(source) => TokenError::Keys {
                    issuer: issuer.cfg.url.clone(),
                    source,
                },
            })?;

        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = issuer.cfg.leeway_secs.min(60);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_audience(&[issuer.cfg.audience.as_str()]);
        // The configured spelling and the token's must match up to a trailing slash.
        v.set_issuer(&[iss.as_str()]);
        v.required_spec_claims = ["exp", "iss", "aud"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();

        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| {
            let claims = unverified_claims(token).unwrap_or(Value::Null);
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired(claim_u64(&claims, "exp")),
                ErrorKind::ImmatureSignature => TokenError::NotYetValid(claim_u64(&claims, "nbf")),
                ErrorKind::InvalidAudience => {
                    TokenError::WrongAudience(issuer.cfg.audience.clone())
                }
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenError::Algorithm(format!("{:?}", header.alg))
                }
                other => TokenError::Invalid(format!("{other:?}")),
            }
        })?;
        identity_from_claims(&issuer.cfg, &data.claims)
    }
}

/// Builds the identity from verified claims.
pub fn identity_from_claims(cfg: &IssuerConfig, claims: &Value) -> Result<Identity, TokenError> {
    let user = claims
        .get(&cfg.user_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            claims
                .get("sub")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| {
            TokenError::Invalid(format!(
                "token has neither a {:?} nor a \"sub\" claim",
                cfg.user_claim
            ))
        })?
        .to_string();
    let groups = match claims.get(&cfg.groups_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    };
    Ok(Identity {
        user,
        groups,
        issuer: cfg.url.clone(),
        expires_at: claim_u64(claims, "exp"),
    })
}

fn claim_u64(claims: &Value, name: &str) -> u64 {
    claims
        .get(name)
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(0)
}

/// Reads the payload without verifying it, only to pick the issuer whose
/// keys will then verify it.
fn unverified_claims(token: &str) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("payload is not JSON".into()))
}

fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    unverified_claims(token)?
        .get("iss")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| TokenError::Malformed("no \"iss\" claim".into()))
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> IssuerConfig {
        crate::config::AgentConfig::parse(
            "data_dir='/x'\n[[issuer]]\nurl='https://idp'\naudience='hoop'\n",
        )
        .unwrap()
        .issuers
        .remove(0)
    }

    #[test]
    fn user_claim_falls_back_to_sub() {
        let c = cfg();
        let id = identity_from_claims(&c, &serde_json::json!({"sub": "u1", "exp": 5})).unwrap();
        assert_eq!(id.user, "u1");
        assert_eq!(id.expires_at, 5);
        let id = identity_from_claims(
            &c,
            &serde_json::json!({"sub": "u1", "email": "a@b", "groups": ["x", 3, "y"]}),
        )
        .unwrap();
        assert_eq!(id.user, "a@b");
        assert_eq!(id.groups, vec!["x", "y"]);
        let id =
            identity_from_claims(&c, &serde_json::json!({"sub": "u", "groups": "a b"})).unwrap();
        assert_eq!(id.groups, vec!["a", "b"]);
        assert!(identity_from_claims(&c, &serde_json::json!({"email": ""})).is_err());
    }

    #[test]
    fn malformed_tokens() {
        for t in ["", "a", "a.b", "a.b.c.d", "a.!!!.c", "a.bm90IGpzb24.c"] {
            assert!(
                matches!(unverified_issuer(t), Err(TokenError::Malformed(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn wire_errors_say_what_to_do() {
        let w = TokenError::Expired(0).to_wire();
        assert_eq!(w.code, ErrorCode::TokenExpired);
        assert!(w.message.contains("sign in again"));
        let w = TokenError::UntrustedIssuer("https://evil".into()).to_wire();
        assert_eq!(w.code, ErrorCode::UntrustedIssuer);
    }
}
