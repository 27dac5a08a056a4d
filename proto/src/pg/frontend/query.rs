//! Query (`Q`), frontend → backend: the simple query protocol. The text
//! may hold several statements separated by semicolons.

use bytes::BufMut;

use crate::pg::wire::{Reader, cstr_len, put_cstr, put_header};
use crate::pg::{DecodeError, EncodeError, RawMessage};

const TAG: u8 = b'Q';

/// A simple query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The SQL text, borrowed from the message.
    pub query: &'a str,
}

impl<'a> Query<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, TAG)?;
        let query = r.cstr()?;
        r.finish()?;
        Ok(Query { query })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_query(self.query, out)
    }
}

/// Encodes a Query message carrying `sql`.
pub fn encode_query(sql: &str, out: &mut impl BufMut) -> Result<(), EncodeError> {
    put_header(out, TAG, cstr_len(sql.as_bytes(), "query")?)?;
    put_cstr(out, sql.as_bytes());
    Ok(())
}
