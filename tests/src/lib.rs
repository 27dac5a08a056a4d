//! Helpers for hoop's end-to-end tests: real servers on free ports, the
//! real binaries, readiness read from their output.

pub mod harness;
pub mod issuer;
pub mod kube_api;
pub mod mysql;
pub mod mysql8;
pub mod oidc;
pub mod pg;
pub mod servers;
pub mod sshd;
