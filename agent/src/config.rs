//! Agent configuration: TOML, parsed strictly (unknown keys are errors that
//! name the key and line), then validated (errors name the key path).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod backend;
pub mod http;
pub mod kubernetes;
pub mod mask;
pub mod ssh;
pub use backend::{DenyRule, Secret, SecretRef, TlsMode};
pub use http::HeaderInject;

/// Default UDP address of the agent.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

/// The whole agent configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// UDP address the QUIC listener binds. Default `0.0.0.0:8443`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory holding the TLS identity made by `hoop-agent init` and the
    /// audit log.
    pub data_dir: PathBuf,
    /// Trusted OpenID Connect issuers; a token from any other is refused.
    #[serde(default, rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
    /// Backends callers may reach.
    #[serde(default, rename = "connection")]
    pub connections: Vec<ConnectionConfig>,
    /// How long an open tunnel outlives its token's expiry when the client
    /// does not refresh it, in seconds. Default 120. `hoop` refreshes a
    /// minute before expiry, so only a client that cannot refresh (a lost
    /// sign-in, a fixed `HOOP_TOKEN`) is cut off.
    #[serde(default = "default_grace")]
    pub token_grace_secs: u64,
    /// Members of this group (by the issuer's groups claim) may list and
    /// replay everyone's recorded `ssh` sessions; others see their own.
    /// Default: none.
    #[serde(default)]
    pub auditor_group: Option<String>,
}

fn default_grace() -> u64 {
    120
}

fn default_listen() -> SocketAddr {
    // Cannot fail: a literal.
    DEFAULT_LISTEN
        .parse()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8443)))
}

/// One trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Issuer URL; must equal the tokens' `iss`. Discovery is fetched from
    /// `<url>/.well-known/openid-configuration`. HTTPS, or HTTP on a
    /// loopback address for local testing.
    pub url: String,
    /// Required `aud` of access tokens.
    pub audience: String,
    /// Public client `hoop login` uses with this issuer. Default `hoop-cli`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Claim holding the caller's groups (array of strings or one string).
    /// Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claim naming the caller. Default `email`, falling back to `sub`.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Scopes `hoop login` asks for. Default `openid email profile
    /// offline_access`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Clock leeway for `exp` and `nbf`, in seconds (0..=60). Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_client_id() -> String {
    "hoop-cli".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_user_claim() -> String {
    "email".into()
}
fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "offline_access"]
        .map(String::from)
        .to_vec()
}
fn default_leeway() -> u64 {
    30
}

/// Kinds of backend served by this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// A raw byte relay.
    Tcp,
    /// PostgreSQL: the agent logs in to the backend itself.
    Postgres,
    /// MySQL or MariaDB: the agent logs in to the backend itself.
    Mysql,
    /// HTTP/1.1 to a URL, with headers injected from secrets.
    Http,
    /// SSH: the agent ends the caller's SSH and opens its own session to
    /// the host with the stored key, recording the terminal.
    Ssh,
    /// A Kubernetes API server: `http` with the service-account token
    /// injected, requests audited by verb and resource, `exec` recorded.
    Kubernetes,
}

impl ConnectionKind {
    /// The local port `hoop connect` uses by default for this kind.
    pub fn default_port(self) -> u16 {
        match self {
            ConnectionKind::Tcp => 8999,
            ConnectionKind::Postgres => 5433,
            ConnectionKind::Mysql => 3307,
            // 8080 is often a local development server already.
            ConnectionKind::Http => 8081,
            ConnectionKind::Ssh => 2222,
            // `kubectl proxy` takes 8001.
            ConnectionKind::Kubernetes => 8002,
        }
    }

    /// Kinds served by the `http` connector: a backend URL, injected
    /// headers, per-request audit.
    pub fn is_http(self) -> bool {
        matches!(self, ConnectionKind::Http | ConnectionKind::Kubernetes)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Tcp => "tcp",
            ConnectionKind::Postgres => "postgres",
            ConnectionKind::Mysql => "mysql",
            ConnectionKind::Http => "http",
            ConnectionKind::Ssh => "ssh",
            ConnectionKind::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backend callers may reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Name callers use: `hoop connect NAME`.
    pub name: String,
    /// Backend kind.
    #[serde(rename = "type")]
    pub kind: ConnectionKind,
    /// Backend `host:port`, as seen from the agent. `http` connections
    /// give `url` instead; their `address` is filled in from it.
    #[serde(default)]
    pub address: String,
    /// Users (by the issuer's user claim) allowed to use this connection.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Groups (by the issuer's groups claim) allowed to use it. With both
    /// lists empty, nobody may.
    #[serde(default)]
    pub allow_groups: Vec<String>,

    // Database connections (postgres, mysql) only:
    /// Backend database the agent connects to, and the one a client gets
    /// when it names none (or names this one).
    #[serde(default)]
    pub database: Option<String>,
    /// Further databases a client may ask for. Default: none.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Backend user the agent logs in as.
    #[serde(default)]
    pub user: Option<String>,
    /// Backend password: `{ env = "NAME" }` or `{ file = "/path" }`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// TLS to the backend: disable, prefer (default), require, verify-ca,
    /// verify-full.
    #[serde(default)]
    pub tls: TlsMode,
    /// CA certificate (PEM) the backend's certificate must chain to.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Send the password in clear when the backend asks for it without
    /// TLS. Default false: cleartext only over TLS.
    #[serde(default)]
    pub allow_cleartext_password: bool,
    /// Start backend sessions read-only and refuse writes before they
    /// reach the backend. Default false.
    #[serde(default)]
    pub read_only: bool,
    /// Record bound parameter values in the audit log (postgres). Default
    /// false.
    #[serde(default)]
    pub audit_parameters: bool,
    /// Let clients send files with `LOAD DATA LOCAL INFILE` (mysql).
    /// Default false: the backend refuses such statements.
    #[serde(default)]
    pub allow_local_infile: bool,
    /// Statements refused before they reach the backend.
    #[serde(default)]
    pub deny: Vec<DenyRule>,
    /// Masking of result values (`[connection.mask]`). Default: off.
    #[serde(default)]
    pub mask: mask::MaskConfig,

    // HTTP connections only (`read_only`, `deny`, `tls_ca` and `mask`
    // above apply to them too):
    /// Backend base URL: `http://host:port/base` or `https://...`; a
    /// request for `/x` goes to `/base/x`. https is always verified,
    /// against `tls_ca` when given, else the system's roots.
    #[serde(default)]
    pub url: Option<String>,
    /// Headers added to every request, values from secrets
    /// (`[[connection.header]]`). Default: none.
    #[serde(default, rename = "header")]
    pub headers: Vec<HeaderInject>,

    // SSH connections only (`user`, `password` and `deny` above apply to
    // them too; `deny` patterns match exec command lines):
    /// The agent's private key for the host (OpenSSH format):
    /// `{ file = "/path" }` or `{ env = "NAME" }`.
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    /// The host's public key, as in `known_hosts` or `*.pub`:
    /// `"ssh-ed25519 AAAA..."`. The session is refused when the host
    /// shows another.
    #[serde(default)]
    pub host_key: Option<String>,
    /// A known_hosts file holding the host's key (instead of `host_key`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Accept the host's key the first time and remember it (in
    /// `known_hosts`, else `<data_dir>/ssh_known_hosts`). Default false.
    #[serde(default)]
    pub trust_first_use: bool,
    /// Let callers forward local ports through the host (`ssh -L`).
    /// Default false.
    #[serde(default)]
    pub allow_port_forwarding: bool,
    /// Record what the caller types as well as the terminal's output.
    /// Default true.
    #[serde(default = "default_true")]
    pub record_input: bool,

    // Kubernetes connections only (everything http connections take
    // applies to them too, and `record_input` to `exec` recordings):
    /// The service-account token, sent as `Authorization: Bearer`:
    /// `{ file = "/var/run/secrets/kubernetes.io/serviceaccount/token" }`
    /// or `{ env = "NAME" }`, read at each request so rotations apply.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// The API server's CA certificate (PEM). Default: the system's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The name the API server's certificate must carry, when it is not
    /// the url's host (an IP address or a tunnel). Default: the url's host.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// The namespace `hoop connect` makes kubectl's default. Default: none
    /// (kubectl's `default`).
    #[serde(default)]
    pub namespace: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl AgentConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        cfg.validate().map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
        Ok(cfg)
    }

    /// Parses TOML text; the error names the key and line. An `http`
    /// connection without `address` gets the one its `url` names.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut cfg: AgentConfig =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        for c in &mut cfg.connections {
            if c.kind.is_http() && c.address.is_empty() {
                let url = c
                    .url
                    .as_deref()
                    .and_then(|u| self::http::parse_backend_url(u).ok());
                if let Some(a) = url.as_ref().and_then(self::http::url_address) {
                    c.address = a;
                }
            }
        }
        Ok(cfg)
    }

    /// Checks what types alone cannot. Each problem names its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir: must not be empty".to_string());
        }
        if self.issuers.is_empty() {
            problems.push(
                "issuer: at least one [[issuer]] is needed; without one every caller is refused"
                    .to_string(),
            );
        }
        let mut urls = HashSet::new();
        for (i, iss) in self.issuers.iter().enumerate() {
            let key = format!("issuer[{i}]");
            if let Err(e) = check_issuer_url(&iss.url) {
                problems.push(format!("{key}.url: {e}"));
            }
            if !urls.insert(normalize_issuer(&iss.url)) {
                problems.push(format!("{key}.url: issuer {} is listed twice", iss.url));
            }
            if iss.audience.trim().is_empty() {
                problems.push(format!("{key}.audience: must not be empty"));
            }
            if iss.client_id.trim().is_empty() {
                problems.push(format!("{key}.client_id: must not be empty"));
            }
            if iss.user_claim.trim().is_empty() {
                problems.push(format!("{key}.user_claim: must not be empty"));
            }
            if iss.groups_claim.trim().is_empty() {
                problems.push(format!("{key}.groups_claim: must not be empty"));
            }
            if iss.leeway_secs > 60 {
                problems.push(format!(
                    "{key}.leeway_secs: {} is more than the 60 s allowed",
                    iss.leeway_secs
                ));
            }
        }
        let mut names = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let key = format!("connection[{i}]");
            if !valid_name(&c.name) {
                problems.push(format!(
                    "{key}.name: {:?} must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
                    c.name
                ));
            } else if !names.insert(c.name.as_str()) {
                problems.push(format!(
                    "{key}.name: connection {:?} is defined twice",
                    c.name
                ));
            }
            if c.kind.is_http() {
                // Checked with `url`.
            } else if c.address.is_empty() {
                problems.push(format!(
                    "{key}.address: a {} connection needs the backend host:port",
                    c.kind
                ));
            } else if let Err(e) = split_host_port(&c.address) {
                problems.push(format!("{key}.address: {e}"));
            }
            for (j, u) in c.allow_users.iter().enumerate() {
                if u.trim().is_empty() {
                    problems.push(format!("{key}.allow_users[{j}]: must not be empty"));
                }
            }
            for (j, g) in c.allow_groups.iter().enumerate() {
                if g.trim().is_empty() {
                    problems.push(format!("{key}.allow_groups[{j}]: must not be empty"));
                }
            }
            validate_backend(c, &key, &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Warnings that do not stop the agent.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.connections {
            if c.allow_users.is_empty() && c.allow_groups.is_empty() {
                out.push(format!(
                    "connection {:?} has neither allow_users nor allow_groups: nobody can use it",
                    c.name
                ));
            }
            if matches!(c.kind, ConnectionKind::Postgres | ConnectionKind::Mysql)
                && matches!(c.tls, TlsMode::Prefer | TlsMode::Require)
                && c.tls_ca.is_none()
            {
                out.push(format!(
                    "connection {:?}: tls = \"{}\" without tls_ca does not verify the backend's certificate; set tls_ca and tls = \"verify-full\"",
                    c.name,
                    c.tls.as_str()
                ));
            }
            if let Some(SecretRef::Value { .. }) = c.password {
                out.push(format!(
                    "connection {:?}: the password is inline in the configuration; use {{ env = ... }} or {{ file = ... }}",
                    c.name
                ));
            }
            if let Some(SecretRef::Value { .. }) = c.token {
                out.push(format!(
                    "connection {:?}: the token is inline in the configuration; use {{ env = ... }} or {{ file = ... }}",
                    c.name
                ));
            }
            for h in &c.headers {
                if let SecretRef::Value { .. } = h.value {
                    out.push(format!(
                        "connection {:?}: the value of header {} is inline in the configuration; use {{ env = ... }} or {{ file = ... }}",
                        c.name, h.name
                    ));
                }
            }
        }
        out
    }

    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }
}

/// Checks the database settings against the connection's type.
fn validate_backend(c: &ConnectionConfig, key: &str, problems: &mut Vec<String>) {
    let kind = c.kind.as_str();
    match c.kind {
        ConnectionKind::Ssh => {}
        // `record_input` applies to exec recordings.
        ConnectionKind::Kubernetes => ssh::reject_ssh_keys(
            &ConnectionConfig {
                record_input: true,
                ..c.clone()
            },
            key,
            problems,
        ),
        _ => ssh::reject_ssh_keys(c, key, problems),
    }
    if c.kind != ConnectionKind::Kubernetes {
        kubernetes::reject_kube_keys(c, key, problems);
    }
    if !c.kind.is_http() {
        if c.url.is_some() {
            problems.push(format!(
                "{key}.url: only http connections take this; this one is type {kind}; give address = \"host:port\""
            ));
        }
        if !c.headers.is_empty() {
            problems.push(format!(
                "{key}.header: only http connections take this; this one is type {kind}"
            ));
        }
    }
    match c.kind {
        ConnectionKind::Http => self::http::validate(c, key, problems),
        ConnectionKind::Kubernetes => kubernetes::validate(c, key, problems),
        ConnectionKind::Ssh => ssh::validate(c, key, problems),
        ConnectionKind::Postgres | ConnectionKind::Mysql => {
            if c.user.as_deref().is_none_or(|u| u.trim().is_empty()) {
                problems.push(format!(
                    "{key}.user: a {kind} connection needs the backend user"
                ));
            }
            if c.database.as_deref().is_none_or(|d| d.trim().is_empty()) {
                problems.push(format!(
                    "{key}.database: a {kind} connection needs the backend database"
                ));
            }
            match &c.password {
                None => problems.push(format!(
                    "{key}.password: a {kind} connection needs the backend password, e.g. password = {{ env = \"DB_PASSWORD_APP\" }}"
                )),
                Some(SecretRef::Env { env }) if env.trim().is_empty() => {
                    problems.push(format!("{key}.password.env: must name a variable"))
                }
                _ => {}
            }
            if matches!(c.tls, TlsMode::VerifyCa | TlsMode::VerifyFull) && c.tls_ca.is_none() {
                problems.push(format!(
                    "{key}.tls_ca: tls = \"{}\" needs the CA certificate the backend's certificate chains to",
                    c.tls.as_str()
                ));
            }
            problems.extend(c.mask.validate(&format!("{key}.mask")));
            if c.kind == ConnectionKind::Mysql && c.audit_parameters {
                problems.push(format!(
                    "{key}.audit_parameters: not supported for mysql connections yet"
                ));
            }
            if c.kind == ConnectionKind::Postgres && c.allow_local_infile {
                problems.push(format!(
                    "{key}.allow_local_infile: only mysql connections take this"
                ));
            }
            for (j, rule) in c.deny.iter().enumerate() {
                if let Err(e) = regex::Regex::new(&rule.pattern) {
                    problems.push(format!("{key}.deny[{j}].pattern: {e}"));
                }
                if rule.message.trim().is_empty() {
                    problems.push(format!(
                        "{key}.deny[{j}].message: must say why the statement is refused"
                    ));
                }
            }
        }
        ConnectionKind::Tcp => {
            let db_only = [
                ("database", c.database.is_some()),
                ("databases", !c.databases.is_empty()),
                ("user", c.user.is_some()),
                ("password", c.password.is_some()),
                ("tls", c.tls != TlsMode::default()),
                ("tls_ca", c.tls_ca.is_some()),
                ("allow_cleartext_password", c.allow_cleartext_password),
                ("read_only", c.read_only),
                ("audit_parameters", c.audit_parameters),
                ("deny", !c.deny.is_empty()),
                ("mask", c.mask != mask::MaskConfig::default()),
                ("allow_local_infile", c.allow_local_infile),
            ];
            for (name, set) in db_only {
                if set {
                    let which = if matches!(name, "read_only" | "deny" | "mask" | "tls_ca") {
                        "database and http"
                    } else {
                        "database"
                    };
                    problems.push(format!(
                        "{key}.{name}: only {which} connections take this; this one is type tcp"
                    ));
                }
            }
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Issuer URLs compare without a trailing slash.
pub fn normalize_issuer(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// HTTPS, or plain HTTP only to a loopback address.
pub fn check_issuer_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(format!(
                    "{url:?} uses plain http; issuers must use https (http is allowed only on loopback, for testing)"
                ))
            }
        }
        other => Err(format!("{url:?} has scheme {other:?}; use https")),
    }
}

/// Splits `host:port` (IPv6 in brackets).
pub fn split_host_port(addr: &str) -> Result<(&str, u16), String> {
    let bad = || format!("{addr:?} is not host:port");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && !addr.starts_with('[') {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!("{addr:?} has port 0"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests;
