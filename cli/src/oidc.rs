//! The OAuth 2.0 / OpenID Connect client side of `hoop login`: discovery,
//! authorization code with PKCE (S256) over a loopback redirect (RFC 8252),
//! the device authorization grant (RFC 8628), client credentials, refresh
//! and revocation (RFC 7009).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// Why talking to the identity provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the identity provider at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the identity provider answered {url} with HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the identity provider sent an unreadable answer from {url}: {reason}")]
    Document { url: String, reason: String },
    /// An OAuth error response (`error`, `error_description`).
    #[error("the identity provider refused: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        code: String,
        description: Option<String>,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Insecure(String),
}

/// The parts of the issuer's discovery document hoop uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

/// A token endpoint answer.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse(***)")
    }
}

impl TokenResponse {
    /// Expiry in Unix seconds: `expires_in`, or the access token's `exp`.
    pub fn expires_at(&self) -> u64 {
        if let Some(secs) = self.expires_in {
            return now_unix() + secs;
        }
        jwt_claims(&self.access_token)
            .and_then(|c| c.get("exp").and_then(serde_json::Value::as_u64))
            .unwrap_or_else(|| now_unix() + 300)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Device authorization answer (RFC 8628 §3.2).
#[derive(Debug, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HTTP client for the identity provider: no redirects followed (the
/// browser does those), short timeouts, the process-wide aws-lc-rs TLS.
pub fn http_client() -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("hoop/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OidcError::Unsupported(format!("cannot set up HTTPS: {e}")))
}

/// HTTPS, or plain HTTP only on a loopback address.
pub fn check_url(url: &str) -> Result<(), OidcError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| OidcError::Insecure(format!("{url:?} is not a URL: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(OidcError::Insecure(format!(
            "refusing {url}: identity provider endpoints must use https"
        ))),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Fetches and checks the issuer's discovery document.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Provider, OidcError> {
    check_url(issuer)?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| OidcError::Unreachable {
            url: url.clone(),
            reason: chain(&e),
        })?;
    if !resp.status().is_success() {
        return Err(OidcError::Status {
            url,
            status: resp.status().as_u16(),
        });
    }
    let p: Provider = resp.json().await.map_err(|e| OidcError::Document {
        url: url.clone(),
        reason: chain(&e),
    })?;
    if p.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(OidcError::Document {
            url,
            reason: format!("it names issuer {:?}, expected {issuer:?}", p.issuer),
        });
    }
    for u in [
        Some(&p.token_endpoint),
        p.authorization_endpoint.as_ref(),
        p.device_authorization_endpoint.as_ref(),
        p.revocation_endpoint.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        check_url(u)?;
    }
    Ok(p)
}

/// POSTs a form to the token (or device) endpoint and decodes the answer,
/// turning OAuth error bodies into [`OidcError::Refused`].
pub async fn post_form<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    basic_auth: Option<(&str, &str)>,
) -> Result<T, OidcError> {
    let mut req = http
        .post(url)
        .form(form)
        .header("accept", "application/json");
    if let Some((id, secret)) = basic_auth {
        // RFC 6749 §2.3.1: form-urlencode both parts before Basic encoding.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(id), Some(enc(secret)));
    }
    let resp = req.send().await.map_err(|e| OidcError::Unreachable {
        url: url.to_string(),
        reason: chain(&e),
    })?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| OidcError::Unreachable {
        url: url.to_string(),
        reason: chain(&e),
    })?;
    if !status.is_success() {
        if let Ok(err) = serde_json::from_slice::<ErrorBody>(&body) {
            return Err(OidcError::Refused {
                code: err.error,
                description: err.error_description,
            });
        }
        return Err(OidcError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| OidcError::Document {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// Random URL-safe string with `bytes` of entropy.
pub fn random_string(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // A failing system RNG must not yield predictable PKCE or state values.
    aws_lc_rs::rand::fill(&mut b).expect("system random number generator failed");
    URL_SAFE_NO_PAD.encode(b)
}

/// PKCE verifier and its S256 challenge (RFC 7636).
pub fn pkce_pair() -> (String, String) {
    let verifier = random_string(32);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// The payload of a JWT, unverified (the token came straight from the
/// token endpoint over TLS; the agent verifies access tokens itself).
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Refreshes with a refresh token.
pub async fn refresh(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
) -> Result<TokenResponse, OidcError> {
    post_form(
        http,
        token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
        None,
    )
    .await
}

/// Client credentials grant (client_secret_basic).
pub async fn client_credentials(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
) -> Result<TokenResponse, OidcError> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    post_form(
        http,
        token_endpoint,
        &form,
        Some((client_id, client_secret)),
    )
    .await
}

/// Revokes a refresh token (RFC 7009). Errors are reported, not fatal.
pub async fn revoke(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    token: &str,
) -> Result<(), OidcError> {
    let resp = http
        .post(endpoint)
        .form(&[
            ("token", token),
            ("token_type_hint", "refresh_token"),
            ("client_id", client_id),
        ])
        .send()
        .await
        .map_err(|e| OidcError::Unreachable {
            url: endpoint.to_string(),
            reason: chain(&e),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(OidcError::Status {
            url: endpoint.to_string(),
            status: resp.status().as_u16(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_shape() {
        let (v, c) = pkce_pair();
        assert_eq!(v.len(), 43);
        assert_eq!(c.len(), 43);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.encode(digest.as_ref()), c);
        assert_ne!(pkce_pair().0, v);
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(digest.as_ref()),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn urls_must_be_https_unless_loopback() {
        assert!(check_url("https://idp.example.com").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://localhost:8080").is_ok());
        assert!(check_url("http://idp.example.com").is_err());
        assert!(check_url("javascript:alert(1)").is_err());
    }
}
