//! Terminate (`X`), frontend → backend: the client is closing the
//! connection. Empty body.

use bytes::BufMut;

use crate::pg::wire::put_empty;

/// Encodes a Terminate message.
pub fn encode_terminate(out: &mut impl BufMut) {
    put_empty(out, b'X');
}
