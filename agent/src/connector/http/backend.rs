//! The backend of an `http` connection: where it is, how to reach it
//! (plain, or TLS verified against `tls_ca` or the system's roots; there
//! is no unverified mode), and the headers injected from secrets.

use std::sync::{Arc, Mutex};

use http::header::{HeaderName, HeaderValue};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;

use super::body::Body;
use crate::config::http::{parse_backend_url, url_address};
use crate::config::{ConnectionConfig, HeaderInject, TlsMode};
use crate::connector::{backend_tls, tcp};

/// Why a request could not be forwarded. Says whose fault it is, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("invalid connection settings: {0}")]
    Config(String),
    #[error("cannot reach the backend: {0}")]
    Dial(#[from] tcp::DialError),
    #[error("TLS with the backend {address} failed: {source}")]
    Tls {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the backend {address} did not speak HTTP/1.1: {source}")]
    Handshake {
        address: String,
        #[source]
        source: hyper::Error,
    },
    #[error("the backend failed to answer: {0}")]
    Exchange(#[source] hyper::Error),
    #[error("cannot read the value of injected header {header}: {reason}")]
    Secret { header: String, reason: String },
}

/// Where requests go and what is added to them.
#[derive(Debug)]
pub struct Backend {
    /// `host:port` to dial.
    pub address: String,
    /// Host name for TLS (no brackets around IPv6).
    server_name: String,
    /// `Host` header value: as in the URL (port only when not the default).
    pub host: HeaderValue,
    /// Base path without a trailing `/` (empty for the root).
    base_path: String,
    tls: Option<Arc<ClientConfig>>,
    headers: Vec<(HeaderName, HeaderInject)>,
}

impl Backend {
    /// Prepares the backend of `cfg` (an `http` connection).
    pub fn new(cfg: &ConnectionConfig) -> Result<Backend, ForwardError> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| ForwardError::Config("no url".into()))
            .and_then(|u| parse_backend_url(u).map_err(ForwardError::Config))?;
        let address =
            url_address(&url).ok_or_else(|| ForwardError::Config("the url has no port".into()))?;
        let host_str = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_string(),
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| ForwardError::Config(format!("bad host {host:?}")))?;
        let tls = if url.scheme() == "https" {
            Some(tls_config(cfg)?)
        } else {
            None
        };
        // A kubernetes connection's token goes first, as a bearer token.
        let token = cfg.token.as_ref().map(|t| HeaderInject {
            name: "Authorization".into(),
            value: t.clone(),
            prefix: "Bearer ".into(),
        });
        let headers = token
            .iter()
            .chain(&cfg.headers)
            .map(|h| {
                HeaderName::from_bytes(h.name.as_bytes())
                    .map(|n| (n, h.clone()))
                    .map_err(|_| ForwardError::Config(format!("bad header name {:?}", h.name)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Backend {
            address,
            server_name: cfg.tls_server_name.clone().unwrap_or_else(|| {
                host_str
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            }),
            host,
            base_path: url.path().trim_end_matches('/').to_string(),
            tls,
            headers,
        })
    }

    /// Names of the injected headers.
    pub fn injected_names(&self) -> Vec<HeaderName> {
        self.headers.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The injected headers with their values, read now (so rotated
    /// secrets are picked up), each marked sensitive.
    pub fn injected(&self) -> Result<Vec<(HeaderName, HeaderValue)>, ForwardError> {
        self.headers
            .iter()
            .map(|(name, h)| {
                let secret = h.value.resolve().map_err(|reason| ForwardError::Secret {
                    header: h.name.clone(),
                    reason,
                })?;
                let mut v = HeaderValue::from_str(&format!("{}{}", h.prefix, secret.expose()))
                    .map_err(|_| ForwardError::Secret {
                        header: h.name.clone(),
                        reason: "the value holds a line break or another character a header cannot carry".into(),
                    })?;
                v.set_sensitive(true);
                Ok((name.clone(), v))
            })
            .collect()
    }

    /// The backend's request target for the caller's path and query.
    pub fn target(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_path)
    }

    /// Opens a new HTTP/1.1 connection to the backend. The connection
    /// task runs until the backend or the returned sender is done.
    pub async fn connect(&self) -> Result<http1::SendRequest<Body>, ForwardError> {
        let tcp = tcp::dial(&self.address).await?;
        let stream = match &self.tls {
            None => backend_tls::BackendStream::Plain(tcp),
            Some(cfg) => backend_tls::connect(cfg.clone(), &self.server_name, tcp)
                .await
                .map_err(|source| ForwardError::Tls {
                    address: self.address.clone(),
                    source,
                })?,
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ForwardError::Handshake {
                address: self.address.clone(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection ended");
            }
        });
        Ok(sender)
    }
}

/// TLS to an https backend: `tls_ca` (a kubernetes connection's `ca`)
/// alone when given (a private CA, a cluster's CA), otherwise the
/// system's roots. Host names are checked.
fn tls_config(cfg: &ConnectionConfig) -> Result<Arc<ClientConfig>, ForwardError> {
    if let Some(ca) = cfg.tls_ca.as_ref().or(cfg.ca.as_ref()) {
        let c = backend_tls::client_config(TlsMode::VerifyFull, Some(ca))
            .map_err(|e| ForwardError::Config(e.to_string()))?
            .ok_or_else(|| ForwardError::Config("no TLS configuration".into()))?;
        let mut c = Arc::unwrap_or_clone(c);
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        return Ok(Arc::new(c));
    }
    system_roots()
}

/// One client configuration on the system's roots, made on first use
/// (reading the roots takes a while).
fn system_roots() -> Result<Arc<ClientConfig>, ForwardError> {
    static CACHE: Mutex<Option<Arc<ClientConfig>>> = Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .map_err(|_| ForwardError::Config("TLS setup failed earlier".into()))?;
    if let Some(c) = cache.as_ref() {
        return Ok(c.clone());
    }
    let provider = hoop_tunnel::tls::provider();
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| ForwardError::Config(format!("cannot load the system's CA roots: {e}")))?;
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Config(e.to_string()))?
        .dangerous()
        // The platform verifier checks chains and names like the default
        // one, with the system's roots.
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // The agent speaks HTTP/1.1 to backends; say so, for servers that
    // would otherwise pick HTTP/2.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    *cache = Some(cfg.clone());
    Ok(cfg)
}
