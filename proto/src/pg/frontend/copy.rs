//! COPY FROM STDIN, frontend → backend: CopyData (`d`), CopyDone (`c`),
//! CopyFail (`f`). CopyData is decoded by [`super::FrontendMessage`] as a
//! slice of the message.

use bytes::BufMut;

use crate::pg::wire::{Reader, cstr_len, put_cstr, put_empty, put_header};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// CopyFail: the client aborts a COPY FROM STDIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFail<'a> {
    pub message: &'a str,
}

impl<'a> CopyFail<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'f')?;
        let message = r.cstr()?;
        r.finish()?;
        Ok(CopyFail { message })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_copy_fail(self.message, out)
    }
}

/// Encodes a CopyData message (same layout in both directions).
pub fn encode_copy_data(data: &[u8], out: &mut impl BufMut) -> Result<(), EncodeError> {
    put_header(out, b'd', data.len())?;
    out.put_slice(data);
    Ok(())
}

/// Encodes a CopyDone message (same layout in both directions).
pub fn encode_copy_done(out: &mut impl BufMut) {
    put_empty(out, b'c');
}

/// Encodes a CopyFail message.
pub fn encode_copy_fail(message: &str, out: &mut impl BufMut) -> Result<(), EncodeError> {
    put_header(out, b'f', cstr_len(message.as_bytes(), "CopyFail message")?)?;
    put_cstr(out, message.as_bytes());
    Ok(())
}
