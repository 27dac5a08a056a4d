//! hoop wire formats, free of I/O: the caller owns the sockets and drives
//! the state machines. Decoders are bounds-checked, never panic, and cap
//! every announced length before allocating.

#![forbid(unsafe_code)]

pub mod mysql;
pub mod pg;
pub mod tunnel;
