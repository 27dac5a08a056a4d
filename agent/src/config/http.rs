//! Settings of `http` connections: the backend URL and the headers the
//! agent injects from secrets, and their validation.

use std::collections::HashSet;

use serde::Deserialize;

use super::{ConnectionConfig, SecretRef, TlsMode};

/// A header the agent adds to every request it forwards
/// (`[[connection.header]]`). A caller's header of the same name is
/// removed first, so a caller can neither see nor override it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeaderInject {
    /// Header name, e.g. `Authorization`.
    pub name: String,
    /// The secret: `{ env = "NAME" }` or `{ file = "/path" }`, read at
    /// each request so a rotated token needs no restart.
    pub value: SecretRef,
    /// Text put before the secret, e.g. `"Bearer "`. Default: none.
    #[serde(default)]
    pub prefix: String,
}

/// Headers the agent manages itself, which a connection may not inject.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
];

/// What the agent forwards to: an `http://` or `https://` URL with an
/// optional base path, no credentials, query or fragment.
pub fn parse_backend_url(url: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?} has scheme {:?}; use http:// or https://",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{url:?} carries credentials; give them as an injected header ([[connection.header]]) \
             with the value from a secret"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "{url:?} has a query or fragment; only scheme, host, port and a base path are allowed"
        ));
    }
    Ok(u)
}

/// `host:port` of a backend URL (the scheme's port when none is given),
/// IPv6 in brackets: what `address` becomes for an `http` connection.
pub fn url_address(u: &url::Url) -> Option<String> {
    let port = u.port_or_known_default()?;
    match u.host()? {
        url::Host::Ipv6(ip) => Some(format!("[{ip}]:{port}")),
        host => Some(format!("{host}:{port}")),
    }
}

/// Checks an `http` connection's settings.
pub(super) fn validate(c: &ConnectionConfig, key: &str, problems: &mut Vec<String>) {
    let kind = c.kind.as_str();
    let what = if kind == "http" {
        "an http connection"
    } else {
        "a kubernetes connection"
    };
    let url = match c.url.as_deref() {
        None => {
            problems.push(format!(
                "{key}.url: {what} needs the backend URL, e.g. url = \"https://api.internal:8443\""
            ));
            None
        }
        Some(u) => match parse_backend_url(u) {
            Ok(u) => Some(u),
            Err(e) => {
                problems.push(format!("{key}.url: {e}"));
                None
            }
        },
    };
    if let Some(u) = &url {
        // `address` is filled in from `url` when the file leaves it out.
        if !c.address.is_empty() && url_address(u).as_deref() != Some(c.address.as_str()) {
            problems.push(format!(
                "{key}.address: {what} takes its backend from url; remove address"
            ));
        }
        if c.tls_ca.is_some() && u.scheme() != "https" {
            problems.push(format!(
                "{key}.tls_ca: only an https:// url uses a CA; this one is {}",
                u.scheme()
            ));
        }
    }
    if c.tls != TlsMode::default() {
        problems.push(format!(
            "{key}.tls: {what} takes TLS from its url: https:// is always verified \
             (against its CA when given, else the system's roots); remove tls"
        ));
    }
    let db_only = [
        ("database", c.database.is_some()),
        ("databases", !c.databases.is_empty()),
        ("user", c.user.is_some()),
        ("password", c.password.is_some()),
        ("allow_cleartext_password", c.allow_cleartext_password),
        ("audit_parameters", c.audit_parameters),
        ("allow_local_infile", c.allow_local_infile),
    ];
    for (name, set) in db_only {
        if set {
            problems.push(format!(
                "{key}.{name}: only database connections take this; this one is type {kind}"
            ));
        }
    }
    let mut names = HashSet::new();
    for (j, h) in c.headers.iter().enumerate() {
        let hkey = format!("{key}.header[{j}]");
        let lower = h.name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            problems.push(format!("{hkey}.name: {:?} is not a header name", h.name));
        } else if RESERVED.contains(&lower.as_str()) {
            problems.push(format!(
                "{hkey}.name: {} is managed by the agent and cannot be injected",
                h.name
            ));
        } else if !names.insert(lower) {
            problems.push(format!("{hkey}.name: {} is injected twice", h.name));
        }
        if http::HeaderValue::from_str(&h.prefix).is_err() {
            problems.push(format!(
                "{hkey}.prefix: must be printable text without line breaks"
            ));
        }
        if matches!(&h.value, SecretRef::Env { env } if env.trim().is_empty()) {
            problems.push(format!("{hkey}.value.env: must name a variable"));
        }
    }
    for (j, rule) in c.deny.iter().enumerate() {
        if let Err(e) = regex::Regex::new(&rule.pattern) {
            problems.push(format!("{key}.deny[{j}].pattern: {e}"));
        }
        if rule.message.trim().is_empty() {
            problems.push(format!(
                "{key}.deny[{j}].message: must say why the request is refused"
            ));
        }
    }
    problems.extend(c.mask.validate(&format!("{key}.mask")));
}
