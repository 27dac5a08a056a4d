//! FunctionCallResponse (`V`), backend → frontend: the result of a
//! fast-path FunctionCall.

use bytes::{BufMut, Bytes};

use crate::pg::wire::{Reader, nullable_len, put_header, put_nullable};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// A fast-path result, sharing the message's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCallResponse {
    /// `None` is SQL NULL.
    pub result: Option<Bytes>,
}

impl FunctionCallResponse {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'V')?;
        let result = r.nullable_range()?.map(|range| msg.bytes.slice(range));
        r.finish()?;
        Ok(FunctionCallResponse { result })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let value = self.result.as_deref();
        put_header(out, b'V', nullable_len(value)?)?;
        put_nullable(out, value);
        Ok(())
    }
}
