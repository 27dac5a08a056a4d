//! Extended query protocol, backend → frontend: ParseComplete (`1`),
//! BindComplete (`2`), CloseComplete (`3`), NoData (`n`), PortalSuspended
//! (`s`), EmptyQueryResponse (`I`), all empty, and ParameterDescription
//! (`t`).

use bytes::BufMut;

use crate::pg::wire::{Reader, count16, put_empty, put_header};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// Encodes ParseComplete.
pub fn encode_parse_complete(out: &mut impl BufMut) {
    put_empty(out, b'1');
}

/// Encodes BindComplete.
pub fn encode_bind_complete(out: &mut impl BufMut) {
    put_empty(out, b'2');
}

/// Encodes CloseComplete.
pub fn encode_close_complete(out: &mut impl BufMut) {
    put_empty(out, b'3');
}

/// Encodes NoData.
pub fn encode_no_data(out: &mut impl BufMut) {
    put_empty(out, b'n');
}

/// Encodes PortalSuspended.
pub fn encode_portal_suspended(out: &mut impl BufMut) {
    put_empty(out, b's');
}

/// Encodes EmptyQueryResponse, the answer to an empty query string.
pub fn encode_empty_query_response(out: &mut impl BufMut) {
    put_empty(out, b'I');
}

/// The parameter types of a prepared statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParameterDescription {
    pub types: Vec<u32>,
}

impl ParameterDescription {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b't')?;
        let n = r.count16(4)?;
        let types = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(ParameterDescription { types })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let count = count16(self.types.len(), "parameter types")?;
        put_header(out, b't', 2 + 4 * self.types.len())?;
        out.put_u16(count);
        for t in &self.types {
            out.put_u32(*t);
        }
        Ok(())
    }
}
