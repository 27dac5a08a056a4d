//! Tests for the PostgreSQL codecs: round trips, byte-exact fixtures as
//! PostgreSQL and libpq send them, and hostile input.

mod auth;
mod backend;
mod framing;
mod frontend;
mod props;
mod scram;
mod startup;

use super::*;

/// Frames the bytes one encoder call wrote as a single message.
fn framed(bytes: &[u8]) -> RawMessage {
    RawMessage::from_bytes(bytes, MAX_MESSAGE_LEN)
        .expect("valid frame")
        .expect("complete frame")
}

/// A message with `tag` and `body`, its length word computed.
fn raw(tag: u8, body: &[u8]) -> RawMessage {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    framed(&v)
}

/// Asserts that decoding failed as malformed.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, DecodeError>) {
    match result {
        Err(DecodeError::Invalid { .. }) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
}
