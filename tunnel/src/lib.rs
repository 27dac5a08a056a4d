//! The QUIC transport shared by `hoop` and `hoop-agent`: TLS 1.3 settings
//! on the aws-lc-rs provider, CA pinning, UDP socket tuning, framed headers
//! on streams and the byte relay between a TCP socket and a QUIC stream.

#![forbid(unsafe_code)]

pub mod frame;
pub mod pin;
pub mod relay;
pub mod tls;
pub mod transport;
mod udp;

pub use pin::{Fingerprint, Pin};
