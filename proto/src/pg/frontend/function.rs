//! FunctionCall (`F`), frontend → backend: the fast-path interface that
//! libpq and JDBC use for large objects (`lo_open`, `loread`, ...).

use bytes::BufMut;

use crate::pg::wire::{Reader, count16, nullable_len, put_header, put_nullable, sum};
use crate::pg::{DecodeError, EncodeError, Format, RawMessage};

/// A fast-path call of function `function_oid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall<'a> {
    pub function_oid: u32,
    /// Format codes of the arguments; see [`Format::for_index`].
    pub arg_formats: Vec<i16>,
    /// Argument values; `None` is SQL NULL.
    pub args: Vec<Option<&'a [u8]>>,
    /// Format code of the result.
    pub result_format: i16,
}

impl<'a> FunctionCall<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'F')?;
        let function_oid = r.u32()?;
        let n = r.count16(2)?;
        let arg_formats = (0..n).map(|_| r.i16()).collect::<Result<_, _>>()?;
        let n = r.count16(4)?;
        let args = (0..n).map(|_| r.nullable()).collect::<Result<_, _>>()?;
        let result_format = r.i16()?;
        r.finish()?;
        Ok(FunctionCall {
            function_oid,
            arg_formats,
            args,
            result_format,
        })
    }

    /// The format of argument `index`.
    pub fn arg_format(&self, index: usize) -> Option<Format> {
        Format::for_index(&self.arg_formats, index)
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_function_call(
            self.function_oid,
            &self.arg_formats,
            &self.args,
            self.result_format,
            out,
        )
    }
}

/// Encodes a FunctionCall message.
pub fn encode_function_call<T: AsRef<[u8]>>(
    function_oid: u32,
    arg_formats: &[i16],
    args: &[Option<T>],
    result_format: i16,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let n_formats = count16(arg_formats.len(), "argument formats")?;
    let n_args = count16(args.len(), "arguments")?;
    let mut values = 0usize;
    for a in args {
        values = values.saturating_add(nullable_len(a.as_ref().map(AsRef::as_ref))?);
    }
    put_header(out, b'F', sum([4, 2, 2 * arg_formats.len(), 2, values, 2]))?;
    out.put_u32(function_oid);
    out.put_u16(n_formats);
    for f in arg_formats {
        out.put_i16(*f);
    }
    out.put_u16(n_args);
    for a in args {
        put_nullable(out, a.as_ref().map(AsRef::as_ref));
    }
    out.put_i16(result_format);
    Ok(())
}
