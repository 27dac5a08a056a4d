//! Connectors: how the agent talks to each kind of backend once a caller's
//! stream has been authorised.

pub mod backend_tls;
pub mod http;
pub mod mysql;
pub mod postgres;
pub mod tcp;

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
