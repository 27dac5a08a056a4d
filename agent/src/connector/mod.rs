//! Connectors: how the agent talks to each kind of backend once a caller's
//! stream has been authorised.

pub mod backend_tls;
pub mod postgres;
pub mod tcp;
