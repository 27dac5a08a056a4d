//! `tcp` connections: a raw byte relay to the backend address, half-close
//! respected, audited by size and time.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// How long the agent waits for a backend to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the backend could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("{address} did not accept a connection within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout { address: String },
    #[error("{address}: {source}")]
    Io {
        address: String,
        #[source]
        source: io::Error,
    },
}

/// Connects to the backend.
pub async fn dial(address: &str) -> Result<TcpStream, DialError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(source)) => Err(DialError::Io {
            address: address.to_string(),
            source,
        }),
        Err(_) => Err(DialError::Timeout {
            address: address.to_string(),
        }),
    }
}
