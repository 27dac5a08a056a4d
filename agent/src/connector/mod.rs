//! Connectors: how the agent talks to each kind of backend once a caller's
//! stream has been authorised.

pub mod tcp;
