//! hoop-agent: the daemon inside the private network. It verifies who the
//! caller is, checks policy, connects to the backend with credentials the
//! caller never sees, and writes a tamper-evident audit trail.
//!
//! Data flows one way: tunnel stream → authenticated tunnel → policy →
//! connector → backend, every step reporting to the audit log.

#![forbid(unsafe_code)]

pub mod audit;
pub mod cmd;
pub mod config;
pub mod connector;
pub mod dev;
pub mod guard;
pub mod identity;
pub mod mask;
pub mod policy;
pub mod server;
pub mod token;
