//! Settings of database connections: the backend credential (by
//! reference, never inline in a log), TLS to the backend, and guardrails.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Where a secret comes from. `Debug` never shows a value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, untagged)]
pub enum SecretRef {
    /// `{ env = "NAME" }`: an environment variable of the agent.
    Env { env: String },
    /// `{ file = "/path" }`: a file's contents (trailing newline removed),
    /// read at each backend login so rotations need no restart.
    File { file: PathBuf },
    /// `{ value = "..." }`: inline. Only `hoop-agent dev` should use it.
    Value { value: String },
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "env:{env}"),
            SecretRef::File { file } => write!(f, "file:{}", file.display()),
            SecretRef::Value { .. } => f.write_str("value:***"),
        }
    }
}

/// A resolved secret. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl SecretRef {
    /// Reads the secret now. The error names the source, never the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretRef::Env { env } => std::env::var(env)
                .map(Secret)
                .map_err(|_| format!("environment variable {env} is not set for the agent")),
            SecretRef::File { file } => std::fs::read_to_string(file)
                .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| format!("cannot read {}: {e}", file.display())),
            SecretRef::Value { value } => Ok(Secret(value.clone())),
        }
    }
}

/// TLS from the agent to the backend, as PostgreSQL's `sslmode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never.
    Disable,
    /// TLS when the server offers it; plain otherwise. The certificate is
    /// checked against `tls_ca` when one is given.
    #[default]
    Prefer,
    /// TLS or fail. The certificate is checked against `tls_ca` when given.
    Require,
    /// TLS, certificate chained to `tls_ca`, any host name.
    VerifyCa,
    /// TLS, certificate chained to `tls_ca`, and the host name must match.
    VerifyFull,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// A guardrail: statements matching `pattern` are refused with `message`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyRule {
    /// Regular expression (Rust `regex` syntax) matched against the
    /// statement text; `(?i)` makes it case-insensitive.
    pub pattern: String,
    /// What the user is told.
    pub message: String,
}
