//! Connectors: how the agent talks to each kind of backend once a caller's
//! stream has been authorised.

pub mod backend_split;
pub mod backend_tls;
pub mod http;
pub mod kubernetes;
pub mod mysql;
pub mod postgres;
pub mod ssh;
pub mod tcp;

/// Longest statement text kept in an audit event, in bytes.
const MAX_AUDIT_TEXT: usize = 16 * 1024;

/// A statement's text as the audit log keeps it: whole up to 16 KiB, else
/// cut at a character boundary with the full length noted.
pub(crate) fn clip_statement(s: &str) -> String {
    if s.len() <= MAX_AUDIT_TEXT {
        return s.to_string();
    }
    let mut end = MAX_AUDIT_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &s[..end], s.len())
}

/// How a database session ended, for the session's audit record.
#[derive(Debug, Default)]
pub struct Outcome {
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub error: Option<String>,
    /// The client's user name and the database, when known.
    pub client_user: Option<String>,
    pub database: Option<String>,
}
