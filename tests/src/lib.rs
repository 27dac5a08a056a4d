//! Helpers for hoop's end-to-end tests: real servers on free ports, driven in-process.

pub mod issuer;
