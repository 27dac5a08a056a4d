//! An in-process OpenID Connect issuer for tests: discovery, JWKS and token minting over real TCP.
//!
//! [`TestIssuer::start`] binds `127.0.0.1:0` and answers, over plain HTTP/1.1 with keep-alive:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document,
//! - `GET /jwks`: the public keys, read under a lock on every request, so [`TestIssuer::add_key`]
//!   and [`TestIssuer::remove_key`] take effect on the next fetch,
//! - anything else: 404 (405 for methods other than `GET`, 400 for malformed requests).
//!
//! Besides well-formed tokens it mints the hostile ones a verifier must refuse: `alg: none`, HS256
//! keyed with the RSA public key, a good kid with a stranger's signature, an unknown kid, and a
//! truncated signature.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request head (request line and headers) the server reads before answering 400.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body the server reads and discards; a bigger one is answered 400.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a keep-alive connection may sit idle before the server closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A signing algorithm the issuer can make keys for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit key.
    RS256,
    /// RSASSA-PSS with SHA-256, 2048-bit key.
    PS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    /// Every algorithm, in the order the discovery document lists them.
    pub const ALL: [Alg; 4] = [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA];

    /// The matching `jsonwebtoken` algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Alg::RS256 => Algorithm::RS256,
            Alg::PS256 => Algorithm::PS256,
            Alg::ES256 => Algorithm::ES256,
            Alg::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The JOSE name, as in a JWT header's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }
}

/// How an RSA public key is turned into an HMAC secret for the key-confusion attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKeyForm {
    /// The `-----BEGIN PUBLIC KEY-----` PEM text (SubjectPublicKeyInfo), with a final newline.
    SpkiPem,
    /// The DER bytes of the SubjectPublicKeyInfo.
    SpkiDer,
}

/// One key pair: what signs, and what is published.
struct SigningKey {
    kid: String,
    alg: Alg,
    encoding: EncodingKey,
    /// DER SubjectPublicKeyInfo of the public key.
    spki_der: Vec<u8>,
    /// The public JWK, with `kid`, `alg` and `use`.
    jwk: Value,
}

impl SigningKey {
    /// Generates a fresh key pair. RSA keys are 2048 bits.
    fn generate(alg: Alg, kid: String) -> anyhow::Result<Self> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (encoding, spki_der, mut jwk) = match alg {
            Alg::RS256 | Alg::PS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).context("generate RSA key")?;
                // jsonwebtoken's aws-lc backend wants PKCS#1 `RSAPrivateKey`, and aws-lc-rs only
                // writes PKCS#8, which wraps exactly that structure in an OCTET STRING.
                let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair).context("encode RSA key")?;
                let pkcs1 = pkcs8_inner_key(pkcs8.as_ref()).context("unwrap PKCS#8 RSA key")?;
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
                    .context("encode RSA public key")?;
                (
                    EncodingKey::from_rsa_der(pkcs1),
                    spki.as_ref().to_vec(),
                    json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)}),
                )
            }
            Alg::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .context("generate P-256 key")?;
                let pkcs8 = pair.to_pkcs8v1().context("encode P-256 key")?;
                // An uncompressed SEC1 point: 0x04, then x and y, 32 bytes each.
                let point = pair.public_key().as_ref();
                let (x, y) = match point {
                    [4, xy @ ..] if xy.len() == 64 => xy.split_at(32),
                    _ => return Err(anyhow!("unexpected P-256 public key encoding")),
                };
                let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
                    .context("encode P-256 public key")?;
                (
                    EncodingKey::from_ec_der(pkcs8.as_ref()),
                    spki.as_ref().to_vec(),
                    json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}),
                )
            }
            Alg::EdDSA => {
                let pair = Ed25519KeyPair::generate().context("generate Ed25519 key")?;
                let pkcs8 = pair.to_pkcs8v1().context("encode Ed25519 key")?;
                let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
                    .context("encode Ed25519 public key")?;
                (
                    EncodingKey::from_ed_der(pkcs8.as_ref()),
                    spki.as_ref().to_vec(),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
                )
            }
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.name());
        jwk["use"] = json!("sig");
        Ok(SigningKey {
            kid,
            alg,
            encoding,
            spki_der,
            jwk,
        })
    }

    fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut header = Header::new(self.alg.algorithm());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("sign token")
    }
}

/// Returns the `privateKey` OCTET STRING contents of a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_inner_key(pkcs8: &[u8]) -> Option<&[u8]> {
    let (info, _) = der_tlv(0x30, pkcs8)?;
    let (_version, rest) = der_tlv(0x02, info)?;
    let (_algorithm, rest) = der_tlv(0x30, rest)?;
    Some(der_tlv(0x04, rest)?.0)
}

/// Splits a DER tag-length-value with tag `want` off the front of `input`: `(contents, rest)`.
fn der_tlv(want: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, rest) = input.split_first().filter(|&(&tag, _)| tag == want)?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// A fresh, unguessable key id such as `rs256-3f9a0c1d2b4e5f60`.
fn new_kid(alg: Alg) -> String {
    let mut bytes = [0u8; 8];
    // Only uniqueness matters here; fall back to the clock if the RNG is unavailable.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = jsonwebtoken::get_current_timestamp().to_be_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", alg.name().to_ascii_lowercase())
}

fn b64_json(value: &impl Serialize) -> anyhow::Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).context("serialize JWT part")?))
}

/// State shared between the test and the server task.
struct Shared {
    url: String,
    keys: Mutex<Vec<SigningKey>>,
    jwks_requests: AtomicUsize,
    discovery_requests: AtomicUsize,
}

impl Shared {
    /// Locks the key list; a panic elsewhere while holding the lock must not take the server down.
    fn keys(&self) -> MutexGuard<'_, Vec<SigningKey>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on key `kid` under the lock.
    fn with_key<T>(&self, kid: &str, f: impl FnOnce(&SigningKey) -> T) -> anyhow::Result<T> {
        let keys = self.keys();
        Ok(f(keys
            .iter()
            .find(|k| k.kid == kid)
            .with_context(|| format!("no key {kid}"))?))
    }

    fn discovery(&self) -> Value {
        let url = &self.url;
        json!({
            "issuer": url,
            "jwks_uri": format!("{url}/jwks"),
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": Alg::ALL.map(Alg::name),
        })
    }

    fn jwks(&self) -> Value {
        json!({"keys": self.keys().iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }
}

/// A running OpenID Connect issuer on `127.0.0.1` with a random port.
///
/// It starts with one RS256 key; [`TestIssuer::kids`] lists it first. Dropping the issuer stops
/// the server in the background; [`TestIssuer::stop`] stops it before returning.
pub struct TestIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl TestIssuer {
    /// Binds `127.0.0.1:0`, generates one RS256 key and starts serving.
    pub async fn start() -> anyhow::Result<TestIssuer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind issuer")?;
        let addr = listener.local_addr().context("issuer address")?;
        let shared = Arc::new(Shared {
            url: format!("http://{addr}"),
            keys: Mutex::new(Vec::new()),
            jwks_requests: AtomicUsize::new(0),
            discovery_requests: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        let issuer = TestIssuer {
            shared,
            addr,
            server: Some(server),
        };
        issuer.add_key(Alg::RS256)?;
        Ok(issuer)
    }

    /// The issuer URL, `http://127.0.0.1:PORT`, without a trailing slash; also the `iss` claim.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many `GET /jwks` requests have been answered.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// How many `GET /.well-known/openid-configuration` requests have been answered.
    pub fn discovery_requests(&self) -> usize {
        self.shared.discovery_requests.load(Ordering::SeqCst)
    }

    /// Stops the server: once this returns, new connections are refused and open ones are closed.
    /// Keys and minting keep working. Calling it twice is harmless.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Resolves once the task is dropped, and with it the listener and the connection set.
            let _ = server.await;
        }
    }

    /// Generates a key for `alg`, publishes it in the JWKS and returns its kid.
    pub fn add_key(&self, alg: Alg) -> anyhow::Result<String> {
        let key = SigningKey::generate(alg, new_kid(alg))?;
        let kid = key.kid.clone();
        self.shared.keys().push(key);
        Ok(kid)
    }

    /// Unpublishes a key; tokens it signed stop verifying once a verifier refetches the JWKS.
    /// Returns whether the kid was present.
    pub fn remove_key(&self, kid: &str) -> bool {
        let mut keys = self.shared.keys();
        let before = keys.len();
        keys.retain(|k| k.kid != kid);
        keys.len() != before
    }

    /// The kids currently published, oldest first.
    pub fn kids(&self) -> Vec<String> {
        self.shared.keys().iter().map(|k| k.kid.clone()).collect()
    }

    /// The JWKS document as served right now.
    pub fn jwks(&self) -> Value {
        self.shared.jwks()
    }

    /// Signs `claims` with key `kid`, using that key's algorithm and putting `kid` in the header.
    pub fn mint(&self, kid: &str, claims: &impl Serialize) -> anyhow::Result<String> {
        self.shared.with_key(kid, |key| key.sign(claims))?
    }

    /// Valid claims for a user: `iss` is this issuer, `sub` and `email` are `user_email`,
    /// `iat` and `nbf` are now, `exp` is now plus `ttl_secs`. Edit the value to make a bad token.
    pub fn claims_for(
        &self,
        user_email: &str,
        groups: &[&str],
        audience: &str,
        ttl_secs: u64,
    ) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.url(),
            "sub": user_email,
            "aud": audience,
            "exp": now.saturating_add(ttl_secs),
            "nbf": now,
            "iat": now,
            "email": user_email,
            "groups": groups,
        })
    }

    /// A valid token for a user (see [`TestIssuer::claims_for`]), signed with the oldest key.
    pub fn token_for(
        &self,
        user_email: &str,
        groups: &[&str],
        audience: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<String> {
        let claims = self.claims_for(user_email, groups, audience, ttl_secs);
        let keys = self.shared.keys();
        keys.first()
            .context("the issuer has no keys")?
            .sign(&claims)
    }

    /// The public key of `kid` as a PEM or DER SubjectPublicKeyInfo.
    pub fn public_key_bytes(&self, kid: &str, form: PublicKeyForm) -> anyhow::Result<Vec<u8>> {
        self.shared.with_key(kid, |key| match form {
            PublicKeyForm::SpkiDer => key.spki_der.clone(),
            PublicKeyForm::SpkiPem => spki_pem(&key.spki_der).into_bytes(),
        })
    }

    /// Key confusion: `alg: HS256` with the kid of an RSA key, HMAC'd with that key's public PEM.
    pub fn token_hs256_with_public_key(
        &self,
        kid: &str,
        claims: &impl Serialize,
    ) -> anyhow::Result<String> {
        self.token_hs256_with_public_key_form(kid, PublicKeyForm::SpkiPem, claims)
    }

    /// Key confusion with the public key in the given form as the HMAC secret.
    pub fn token_hs256_with_public_key_form(
        &self,
        kid: &str,
        form: PublicKeyForm,
        claims: &impl Serialize,
    ) -> anyhow::Result<String> {
        let secret = self.public_key_bytes(kid, form)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&secret))
            .context("sign HS256 token")
    }

    /// A token labelled with the published `kid` and its algorithm, but signed by a fresh key of
    /// the same type that is not published: the signature must not verify.
    pub fn token_signed_by_stranger(
        &self,
        kid: &str,
        claims: &impl Serialize,
    ) -> anyhow::Result<String> {
        let alg = self.shared.with_key(kid, |key| key.alg)?;
        SigningKey::generate(alg, kid.to_owned())?.sign(claims)
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// PEM text for a DER SubjectPublicKeyInfo, 64 columns, ending in a newline (as `openssl` writes).
fn spki_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// An unsigned token: header `{"alg":"none","typ":"JWT"}` and an empty signature.
pub fn token_alg_none(claims: &impl Serialize) -> anyhow::Result<String> {
    let header = b64_json(&json!({"alg": "none", "typ": "JWT"}))?;
    Ok(format!("{header}.{}.", b64_json(claims)?))
}

/// An RS256 token signed by a fresh key, with a fresh kid that no issuer publishes.
pub fn token_unknown_kid(claims: &impl Serialize) -> anyhow::Result<String> {
    SigningKey::generate(Alg::RS256, new_kid(Alg::RS256))?.sign(claims)
}

/// Cuts the signature (the part after the last `.`) in half.
pub fn truncate(token: &str) -> String {
    match token.rsplit_once('.') {
        Some((signed, signature)) => {
            let half: String = signature
                .chars()
                .take(signature.chars().count() / 2)
                .collect();
            format!("{signed}.{half}")
        }
        None => token.chars().take(token.chars().count() / 2).collect(),
    }
}

/// Accepts connections until the task is aborted; dropping it drops every connection task too.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // Accept errors (such as running out of descriptors) are transient; keep going.
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers requests on one connection until the client closes, asks to close, or misbehaves.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    // Bytes read past the current request belong to the next one (pipelining).
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head_len = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break Some(pos + 4);
            }
            if buf.len() > MAX_HEAD_BYTES {
                break None;
            }
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        };
        let request = head_len.and_then(|len| Some((len, parse_head(&buf[..len])?)));
        let Some((head_len, (method, path, keep_alive, body_len))) = request else {
            let _ = respond(
                &mut stream,
                "400 Bad Request",
                r#"{"error":"bad request"}"#,
                false,
            )
            .await;
            return;
        };
        while buf.len() < head_len + body_len {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        buf.drain(..head_len + body_len);
        let (status, body) = route(&shared, &method, &path);
        if respond(&mut stream, status, &body, keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// Reads more bytes into `buf`; false when the peer closed, failed or sat idle too long.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

/// Parses a request head ending in the blank line into `(method, path, keep_alive, body_len)`;
/// `None` means 400. The query string is dropped from the path.
fn parse_head(head: &[u8]) -> Option<(String, String, bool, usize)> {
    let mut lines = std::str::from_utf8(head).ok()?.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || !target.starts_with('/') {
        return None;
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let mut body_len = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim().to_ascii_lowercase();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => body_len = value.parse().ok().filter(|&n| n <= MAX_BODY_BYTES)?,
            // Chunked bodies are not supported, and nothing served here takes a body.
            "transfer-encoding" => return None,
            "connection" if value.split(',').any(|v| v.trim() == "close") => keep_alive = false,
            "connection" if value.split(',').any(|v| v.trim() == "keep-alive") => keep_alive = true,
            _ => {}
        }
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Some((method.to_owned(), path.to_owned(), keep_alive, body_len))
}

/// Picks the status line and body for a request, counting discovery and JWKS fetches.
fn route(shared: &Shared, method: &str, path: &str) -> (&'static str, String) {
    match (method, path) {
        ("GET", "/.well-known/openid-configuration") => {
            shared.discovery_requests.fetch_add(1, Ordering::SeqCst);
            ("200 OK", shared.discovery().to_string())
        }
        ("GET", "/jwks") => {
            shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
            ("200 OK", shared.jwks().to_string())
        }
        ("GET", _) => ("404 Not Found", json!({"error": "not found"}).to_string()),
        _ => (
            "405 Method Not Allowed",
            json!({"error": "method not allowed"}).to_string(),
        ),
    }
}

/// Writes one response with a JSON body.
async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: {connection}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    /// Sends raw request bytes on a fresh connection and reads until the server closes it.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok(String::from_utf8(response)?)
    }

    /// `GET path` with `Connection: close`; returns the status code and the parsed JSON body.
    async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Value)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let response = exchange(addr, request.as_bytes()).await?;
        let (head, body) = response.split_once("\r\n\r\n").context("no head")?;
        let status = head.get(9..12).context("no status")?.parse()?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .context("no content-length")?
            .parse()?;
        assert_eq!(length, body.len(), "content-length matches the body");
        Ok((status, serde_json::from_str(body)?))
    }

    /// Verifies like a careful relying party: key by kid, algorithm from the JWK, not the header.
    fn verify(jwks: &JwkSet, token: &str, issuer: &str) -> jsonwebtoken::errors::Result<Value> {
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header
            .kid
            .ok_or(ErrorKind::MissingRequiredClaim("kid".into()))?;
        let jwk = jwks.find(&kid).ok_or(ErrorKind::InvalidKeyFormat)?;
        let alg = jwk
            .common
            .key_algorithm
            .ok_or(ErrorKind::InvalidAlgorithm)?;
        let mut validation = Validation::new(alg.to_string().parse()?);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&["hoop"]);
        let key = DecodingKey::from_jwk(jwk)?;
        Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
    }

    async fn fetch_jwks(issuer: &TestIssuer) -> anyhow::Result<JwkSet> {
        let (status, body) = get(issuer.addr(), "/jwks").await?;
        assert_eq!(status, 200);
        Ok(serde_json::from_value(body)?)
    }

    #[tokio::test]
    async fn serves_discovery_over_tcp() -> anyhow::Result<()> {
        let issuer = TestIssuer::start().await?;
        assert!(issuer.url().starts_with("http://127.0.0.1:"));
        assert!(!issuer.url().ends_with('/'));
        let (status, doc) = get(issuer.addr(), "/.well-known/openid-configuration").await?;
        assert_eq!(status, 200);
        assert_eq!(doc["issuer"], issuer.url());
        assert_eq!(doc["jwks_uri"], format!("{}/jwks", issuer.url()));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256", "PS256", "ES256", "EdDSA"])
        );
        assert!(
            doc["token_endpoint"]
                .as_str()
                .is_some_and(|u| u.starts_with(issuer.url()))
        );
        assert_eq!(
            (issuer.discovery_requests(), issuer.jwks_requests()),
            (1, 0)
        );
        Ok(())
    }

    #[tokio::test]
    async fn serves_public_jwks_for_every_alg() -> anyhow::Result<()> {
        let issuer = TestIssuer::start().await?;
        let initial = issuer.kids();
        assert_eq!(initial.len(), 1, "starts with exactly one key");
        let kids: Vec<String> = Alg::ALL
            .iter()
            .map(|&alg| issuer.add_key(alg))
            .collect::<anyhow::Result<_>>()?;
        let (status, jwks) = get(issuer.addr(), "/jwks").await?;
        assert_eq!(status, 200);
        let keys = jwks["keys"].as_array().context("keys array")?;
        assert_eq!(keys.len(), 5);
        assert_eq!(keys[0]["kid"], initial[0].as_str());
        assert_eq!(keys[0]["alg"], "RS256");
        let b64len = |v: &Value| {
            v.as_str()
                .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
                .map(|b| b.len())
        };
        for (key, (alg, kid)) in keys[1..].iter().zip(Alg::ALL.iter().zip(&kids)) {
            assert_eq!(key["kid"], kid.as_str());
            assert_eq!(key["alg"], alg.name());
            assert_eq!(key["use"], "sig");
            assert!(key.get("d").is_none(), "no private material in {key}");
            match alg {
                Alg::RS256 | Alg::PS256 => {
                    assert_eq!(key["kty"], "RSA");
                    assert_eq!(b64len(&key["n"]), Some(256), "2048-bit modulus");
                    assert_eq!(key["e"], "AQAB");
                }
                Alg::ES256 => {
                    assert_eq!((&key["kty"], &key["crv"]), (&json!("EC"), &json!("P-256")));
                    assert_eq!((b64len(&key["x"]), b64len(&key["y"])), (Some(32), Some(32)));
                }
                Alg::EdDSA => {
                    assert_eq!(
                        (&key["kty"], &key["crv"]),
                        (&json!("OKP"), &json!("Ed25519"))
                    );
                    assert_eq!(b64len(&key["x"]), Some(32));
                }
            }
        }
        assert_eq!(
            (issuer.discovery_requests(), issuer.jwks_requests()),
            (0, 1)
        );
        Ok(())
    }

    #[tokio::test]
    async fn keep_alive_pipelining_and_errors() -> anyhow::Result<()> {
        let issuer = TestIssuer::start().await?;
        let pipelined = "GET /jwks HTTP/1.1\r\nHost: x\r\n\r\n\
                         GET /.well-known/openid-configuration?x=1 HTTP/1.1\r\nHost: x\r\n\r\n\
                         GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n";
        let response = exchange(issuer.addr(), pipelined.as_bytes()).await?;
        assert_eq!(response.matches("HTTP/1.1 ").count(), 3, "{response}");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("HTTP/1.1 404 Not Found\r\n"));
        assert_eq!(
            (issuer.jwks_requests(), issuer.discovery_requests()),
            (1, 1)
        );

        let post = "POST /jwks HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
        assert!(
            exchange(issuer.addr(), post.as_bytes())
                .await?
                .starts_with("HTTP/1.1 405 ")
        );
        for bad in [
            "garbage\r\n\r\n",
            "GET /jwks HTTP/9\r\n\r\n",
            "GET /jwks HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            let response = exchange(issuer.addr(), bad.as_bytes()).await?;
            assert!(
                response.starts_with("HTTP/1.1 400 "),
                "{bad:?} got {response}"
            );
        }
        let huge = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES + 1));
        assert!(
            exchange(issuer.addr(), huge.as_bytes())
                .await?
                .starts_with("HTTP/1.1 400 ")
        );
        assert_eq!(
            issuer.jwks_requests(),
            1,
            "refused requests are not counted"
        );
        Ok(())
    }

    #[tokio::test]
    async fn minted_tokens_verify_with_served_jwks() -> anyhow::Result<()> {
        let issuer = TestIssuer::start().await?;
        let kids: Vec<String> = Alg::ALL
            .iter()
            .map(|&alg| issuer.add_key(alg))
            .collect::<anyhow::Result<_>>()?;
        let jwks = fetch_jwks(&issuer).await?;
        let claims = issuer.claims_for("ada@example.com", &["eng", "ops"], "hoop", 600);
        for (alg, kid) in Alg::ALL.iter().zip(&kids) {
            let token = issuer.mint(kid, &claims)?;
            let header = jsonwebtoken::decode_header(&token)?;
            assert_eq!(
                (header.alg, header.kid.as_deref()),
                (alg.algorithm(), Some(kid.as_str()))
            );
            assert_eq!(verify(&jwks, &token, issuer.url())?, claims, "{alg:?}");
        }

        let token = issuer.token_for("bob@example.com", &["eng"], "hoop", 60)?;
        let verified = verify(&jwks, &token, issuer.url())?;
        assert_eq!(verified["email"], "bob@example.com");
        assert_eq!(verified["groups"], json!(["eng"]));
        assert_eq!(
            jsonwebtoken::decode_header(&token)?.kid,
            Some(issuer.kids()[0].clone())
        );
        let wrong_audience = issuer.token_for("bob@example.com", &[], "other", 60)?;
        assert!(verify(&jwks, &wrong_audience, issuer.url()).is_err());
        assert!(issuer.mint("no-such-kid", &claims).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn hostile_tokens_do_not_verify() -> anyhow::Result<()> {
        let issuer = TestIssuer::start().await?;
        let rsa = issuer.kids()[0].clone();
        let ec = issuer.add_key(Alg::ES256)?;
        let jwks = fetch_jwks(&issuer).await?;
        let claims = issuer.claims_for("eve@example.com", &["admin"], "hoop", 600);
        let kind = |token: &str| verify(&jwks, token, issuer.url()).map_err(|e| e.into_kind());

        let none = token_alg_none(&claims)?;
        let parts: Vec<&str> = none.split('.').collect();
        let part = |i: usize| -> anyhow::Result<Value> {
            Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i])?)?)
        };
        assert_eq!((parts.len(), parts[2]), (3, ""));
        assert_eq!(part(0)?, json!({"alg": "none", "typ": "JWT"}));
        assert_eq!(part(1)?, claims);
        assert!(kind(&none).is_err());

        for form in [PublicKeyForm::SpkiPem, PublicKeyForm::SpkiDer] {
            let token = issuer.token_hs256_with_public_key_form(&rsa, form, &claims)?;
            assert_eq!(kind(&token), Err(ErrorKind::InvalidAlgorithm));
            // The attack is real: a verifier keyed by the public key bytes as HMAC secret accepts it.
            let secret = issuer.public_key_bytes(&rsa, form)?;
            let mut naive = Validation::new(Algorithm::HS256);
            naive.set_audience(&["hoop"]);
            jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(&secret), &naive)?;
        }
        let pem = String::from_utf8(issuer.public_key_bytes(&rsa, PublicKeyForm::SpkiPem)?)?;
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\nMII")
                && pem.ends_with("-----END PUBLIC KEY-----\n")
        );
        assert_eq!(
            issuer.token_hs256_with_public_key(&rsa, &claims)?,
            issuer.token_hs256_with_public_key_form(&rsa, PublicKeyForm::SpkiPem, &claims)?
        );

        for kid in [&rsa, &ec] {
            let stranger = issuer.token_signed_by_stranger(kid, &claims)?;
            assert_eq!(
                jsonwebtoken::decode_header(&stranger)?.kid.as_ref(),
                Some(kid)
            );
            assert_eq!(kind(&stranger), Err(ErrorKind::InvalidSignature), "{kid}");
        }

        let unknown = token_unknown_kid(&claims)?;
        let unknown_kid = jsonwebtoken::decode_header(&unknown)?.kid.context("kid")?;
        assert!(jwks.find(&unknown_kid).is_none());
        assert!(kind(&unknown).is_err());

        let good = issuer.mint(&rsa, &claims)?;
        verify(&jwks, &good, issuer.url())?;
        let cut = truncate(&good);
        assert_eq!(
            cut.len(),
            good.len() - (good.len() - good.rfind('.').context("dot")? - 1).div_ceil(2)
        );
        assert!(kind(&cut).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn rotation_is_visible_immediately() -> anyhow::Result<()> {
        let issuer = TestIssuer::start().await?;
        let old = issuer.kids()[0].clone();
        let new = issuer.add_key(Alg::PS256)?;
        assert!(issuer.remove_key(&old));
        assert!(!issuer.remove_key(&old));
        let jwks = fetch_jwks(&issuer).await?;
        assert!(jwks.find(&old).is_none() && jwks.find(&new).is_some());
        let token = issuer.token_for("ada@example.com", &[], "hoop", 60)?;
        assert_eq!(jsonwebtoken::decode_header(&token)?.kid, Some(new));
        verify(&jwks, &token, issuer.url())?;
        Ok(())
    }

    #[tokio::test]
    async fn stop_refuses_new_connections() -> anyhow::Result<()> {
        let mut issuer = TestIssuer::start().await?;
        let mut idle = TcpStream::connect(issuer.addr()).await?;
        issuer.stop().await;
        assert!(TcpStream::connect(issuer.addr()).await.is_err());
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(0) | Err(_))),
            "open connections are closed"
        );
        issuer.stop().await;
        assert!(issuer.token_for("ada@example.com", &[], "hoop", 60).is_ok());
        Ok(())
    }
}
