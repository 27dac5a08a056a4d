//! A development OpenID Connect provider, embedded in `hoop-agent dev`.
//!
//! It signs every request in as one fixed dev user without asking for a
//! password, so it must only ever listen where nobody else can reach it.
//! Otherwise it behaves like a strict real provider, so that `hoop login`
//! is tested against the same rules it meets in production:
//!
//! - `GET /.well-known/openid-configuration`, `GET /jwks` (one ES256 key);
//! - `GET /authorize`: authorization code with PKCE S256 only, loopback
//!   redirect URIs only (RFC 8252), approved at once;
//! - `POST /token`: `authorization_code` (single-use codes, 60 s),
//!   `refresh_token` (rotated: a used one is refused), the device code
//!   grant (RFC 8628, with `slow_down`) and `client_credentials` for the
//!   confidential client `hoop-ci`;
//! - `POST /device/code`, `GET`/`POST /device` (approve or deny a user
//!   code), `POST /revoke` (RFC 7009).
//!
//! State lives in memory, in bounded maps ([`store`]).

mod authorize;
mod device;
mod http;
mod keys;
mod store;
mod token;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use http::{OAuthError, Reply};
pub use keys::KeyError;
use keys::SigningKey;
use store::{Store, Subject};

/// The public client `hoop login` uses.
pub const CLI_CLIENT_ID: &str = "hoop-cli";
/// The confidential client for the client credentials grant.
pub const CI_CLIENT_ID: &str = "hoop-ci";
/// The audience of access tokens.
pub const AUDIENCE: &str = "hoop";
/// Scopes the provider knows.
pub const SCOPES: [&str; 5] = ["openid", "email", "profile", "offline_access", "groups"];
/// Scope granted when a request names none.
pub const DEFAULT_SCOPE: &str = "openid email profile offline_access";

/// Lifetime of an authorization code.
const CODE_TTL: Duration = Duration::from_secs(60);
/// Lifetime of a refresh token.
const REFRESH_TTL: Duration = Duration::from_secs(12 * 3600);
/// Lifetime of a device code.
const DEVICE_TTL: Duration = Duration::from_secs(600);
/// How long the request line and headers may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most HTTP connections served at once.
const MAX_CONNECTIONS: usize = 256;

/// What the provider hands out.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The dev user's email; also its `sub`.
    pub user: String,
    /// Groups of the dev user and of the `hoop-ci` service identity.
    pub groups: Vec<String>,
    /// Lifetime of access and ID tokens, in seconds.
    pub token_ttl: u64,
    /// Least seconds between two device-code polls.
    pub device_interval: u64,
}

/// The shared state of a running provider.
pub struct Idp {
    issuer: String,
    settings: Settings,
    /// Secret of the `hoop-ci` client.
    ci_secret: String,
    key: SigningKey,
    store: Mutex<Store>,
}

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on TCP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the random generator failed")]
    Random,
}

/// A running provider; stops when dropped.
pub struct DevIdp {
    idp: Arc<Idp>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DevIdp {
    /// The issuer URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.idp.issuer
    }

    /// The TCP address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `hoop-ci` client's secret.
    pub fn ci_secret(&self) -> &str {
        &self.idp.ci_secret
    }
}

impl Drop for DevIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The host to put in the issuer URL for a bound address: the address
/// itself, or loopback when it is a wildcard (the agent fetches keys from
/// the same machine, and accepts plain HTTP only on loopback).
pub fn issuer_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Binds `listen` and serves the provider in the background.
pub async fn start(listen: SocketAddr, settings: Settings) -> Result<DevIdp, StartError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let ci_secret = http::random_token(24).map_err(|_| StartError::Random)?;
    let idp = Arc::new(Idp {
        issuer: issuer_url(addr),
        settings,
        ci_secret,
        key: SigningKey::generate()?,
        store: Mutex::new(Store::new(store::MAX_ENTRIES)),
    });
    let task = tokio::spawn(accept_loop(listener, idp.clone()));
    Ok(DevIdp { idp, addr, task })
}

async fn accept_loop(listener: TcpListener, idp: Arc<Idp>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "dev idp: accept failed");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let idp = idp.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let idp = idp.clone();
                async move { Ok::<_, Infallible>(idp.handle(req).await) }
            });
            let result = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "dev idp: connection ended");
            }
            drop(permit);
        });
    }
}

impl Idp {
    fn store(&self) -> MutexGuard<'_, Store> {
        // The store holds no invariant a panic mid-update could break
        // beyond one grant; keep serving.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The fixed dev user.
    fn dev_user(&self) -> Subject {
        Subject {
            sub: self.settings.user.clone(),
            email: Some(self.settings.user.clone()),
            groups: self.settings.groups.clone(),
        }
    }

    /// The service identity of the `hoop-ci` client.
    fn ci_identity(&self) -> Subject {
        Subject {
            sub: CI_CLIENT_ID.to_string(),
            email: None,
            groups: self.settings.groups.clone(),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let reply = match (&method, path.as_str()) {
            (&Method::GET, "/.well-known/openid-configuration") => self.discovery(),
            (&Method::GET, "/jwks") => http::json_reply(StatusCode::OK, &self.key.jwks()),
            (&Method::GET, "/authorize") => self.authorize(&req),
            (&Method::POST, "/token") => self.token(req).await.unwrap_or_else(|e| e.reply()),
            (&Method::POST, "/device/code") => self
                .device_authorization(req)
                .await
                .unwrap_or_else(|e| e.reply()),
            (&Method::GET, "/device") => self.device_page(&req),
            (&Method::POST, "/device") => self.device_decide(req).await,
            (&Method::POST, "/revoke") => self.revoke(req).await.unwrap_or_else(|e| e.reply()),
            (&Method::GET, "/") => self.index(),
            (_, p) if allowed_methods(p).is_some() => {
                let mut r = OAuthError::invalid_request(format!("{method} is not allowed on {p}"))
                    .with_status(StatusCode::METHOD_NOT_ALLOWED)
                    .reply();
                if let Some(allow) = allowed_methods(p) {
                    r.headers_mut().insert(
                        hyper::header::ALLOW,
                        hyper::header::HeaderValue::from_static(allow),
                    );
                }
                r
            }
            _ => http::json_reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "error_description": format!("no endpoint at {path}")}),
            ),
        };
        tracing::debug!(%method, %path, status = reply.status().as_u16(), "dev idp request");
        reply
    }

    fn discovery(&self) -> Reply {
        http::json_reply(
            StatusCode::OK,
            &json!({
                "issuer": self.issuer,
                "authorization_endpoint": self.url("/authorize"),
                "token_endpoint": self.url("/token"),
                "jwks_uri": self.url("/jwks"),
                "device_authorization_endpoint": self.url("/device/code"),
                "revocation_endpoint": self.url("/revoke"),
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    token::DEVICE_GRANT,
                    "client_credentials",
                ],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": SCOPES,
                "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "groups", "nonce"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "authorization_response_iss_parameter_supported": true,
            }),
        )
    }

    fn index(&self) -> Reply {
        let body = format!(
            "<p>Issuer <code>{iss}</code>. Every sign-in is approved as <b>{user}</b>.</p>\
             <ul><li><a href=\"/.well-known/openid-configuration\">discovery</a></li>\
             <li><a href=\"/jwks\">signing keys</a></li>\
             <li><a href=\"/device\">approve a device code</a></li></ul>",
            iss = http::escape_html(&self.issuer),
            user = http::escape_html(&self.settings.user),
        );
        http::html_reply(StatusCode::OK, "hoop dev identity provider", &body)
    }
}

/// The `Allow` header for a known path.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/.well-known/openid-configuration" | "/jwks" | "/authorize" | "/" => Some("GET"),
        "/token" | "/device/code" | "/revoke" => Some("POST"),
        "/device" => Some("GET, POST"),
        _ => None,
    }
}

/// Checks a space-separated scope against [`SCOPES`]; an absent scope is
/// `default`. Returns the normalised scope (duplicates dropped).
fn check_scope(requested: Option<&str>, default: &str) -> Result<String, OAuthError> {
    let requested = requested.unwrap_or(default);
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&s) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!(
                    "unknown scope {s:?}; this provider knows: {}",
                    SCOPES.join(" ")
                ),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}
