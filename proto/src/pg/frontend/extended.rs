//! Extended query protocol, frontend → backend: Parse (`P`), Bind (`B`),
//! Execute (`E`), Describe (`D`), Close (`C`), Sync (`S`), Flush (`H`).

use bytes::BufMut;

use crate::pg::wire::{
    Reader, count16, cstr_len, nullable_len, put_cstr, put_empty, put_header, put_nullable, sum,
};
use crate::pg::{DecodeError, EncodeError, Format, RawMessage};

/// Parse: prepare `query` as statement `name` (empty: the unnamed one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    pub name: &'a str,
    pub query: &'a str,
    /// Parameter type OIDs the client fixes; 0 leaves one to the server.
    pub param_types: Vec<u32>,
}

impl<'a> Parse<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'P')?;
        let name = r.cstr()?;
        let query = r.cstr()?;
        let n = r.count16(4)?;
        let param_types = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(Parse {
            name,
            query,
            param_types,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_parse(self.name, self.query, &self.param_types, out)
    }
}

/// Encodes a Parse message.
pub fn encode_parse(
    name: &str,
    query: &str,
    param_types: &[u32],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let count = count16(param_types.len(), "parameter types")?;
    let len = sum([
        cstr_len(name.as_bytes(), "statement name")?,
        cstr_len(query.as_bytes(), "query")?,
        2,
        4 * param_types.len(),
    ]);
    put_header(out, b'P', len)?;
    put_cstr(out, name.as_bytes());
    put_cstr(out, query.as_bytes());
    out.put_u16(count);
    for t in param_types {
        out.put_u32(*t);
    }
    Ok(())
}

/// Bind: make portal `portal` from statement `statement` with these
/// parameter values. Values borrow from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    /// Format codes of the parameters; see [`Format::for_index`].
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is SQL NULL.
    pub params: Vec<Option<&'a [u8]>>,
    /// Format codes of the result columns; see [`Format::for_index`].
    pub result_formats: Vec<i16>,
}

impl<'a> Bind<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'B')?;
        let portal = r.cstr()?;
        let statement = r.cstr()?;
        let n = r.count16(2)?;
        let param_formats = (0..n).map(|_| r.i16()).collect::<Result<_, _>>()?;
        let n = r.count16(4)?;
        let params = (0..n).map(|_| r.nullable()).collect::<Result<_, _>>()?;
        let n = r.count16(2)?;
        let result_formats = (0..n).map(|_| r.i16()).collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(Bind {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        })
    }

    /// The format of parameter `index`.
    pub fn param_format(&self, index: usize) -> Option<Format> {
        Format::for_index(&self.param_formats, index)
    }

    /// The format requested for result column `index`.
    pub fn result_format(&self, index: usize) -> Option<Format> {
        Format::for_index(&self.result_formats, index)
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_bind(
            self.portal,
            self.statement,
            &self.param_formats,
            &self.params,
            &self.result_formats,
            out,
        )
    }
}

/// Encodes a Bind message. `params` may be any byte containers
/// (`&[u8]`, `Vec<u8>`, `Bytes`); `None` is SQL NULL.
pub fn encode_bind<T: AsRef<[u8]>>(
    portal: &str,
    statement: &str,
    param_formats: &[i16],
    params: &[Option<T>],
    result_formats: &[i16],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let counts = [
        count16(param_formats.len(), "parameter formats")?,
        count16(params.len(), "parameters")?,
        count16(result_formats.len(), "result formats")?,
    ];
    let mut values = 0usize;
    for p in params {
        values = values.saturating_add(nullable_len(p.as_ref().map(AsRef::as_ref))?);
    }
    let len = sum([
        cstr_len(portal.as_bytes(), "portal name")?,
        cstr_len(statement.as_bytes(), "statement name")?,
        6,
        2 * param_formats.len(),
        values,
        2 * result_formats.len(),
    ]);
    put_header(out, b'B', len)?;
    put_cstr(out, portal.as_bytes());
    put_cstr(out, statement.as_bytes());
    out.put_u16(counts[0]);
    for f in param_formats {
        out.put_i16(*f);
    }
    out.put_u16(counts[1]);
    for p in params {
        put_nullable(out, p.as_ref().map(AsRef::as_ref));
    }
    out.put_u16(counts[2]);
    for f in result_formats {
        out.put_i16(*f);
    }
    Ok(())
}

/// Execute: run `portal`, returning at most `max_rows` rows (0: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    pub portal: &'a str,
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'E')?;
        let portal = r.cstr()?;
        let max_rows = r.i32()?;
        r.finish()?;
        Ok(Execute { portal, max_rows })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_execute(self.portal, self.max_rows, out)
    }
}

/// Encodes an Execute message.
pub fn encode_execute(
    portal: &str,
    max_rows: i32,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    put_header(out, b'E', cstr_len(portal.as_bytes(), "portal name")? + 4)?;
    put_cstr(out, portal.as_bytes());
    out.put_i32(max_rows);
    Ok(())
}

/// What Describe and Close name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

impl Target {
    fn decode(r: &mut Reader<'_>) -> Result<Target, DecodeError> {
        match r.u8()? {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            _ => Err(r.invalid("target is neither 'S' nor 'P'")),
        }
    }

    fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
}

/// Describe a statement or portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe<'a> {
    pub target: Target,
    pub name: &'a str,
}

impl<'a> Describe<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let (target, name) = decode_target(msg, b'D')?;
        Ok(Describe { target, name })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_describe(self.target, self.name, out)
    }
}

/// Close a statement or portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    pub target: Target,
    pub name: &'a str,
}

impl<'a> Close<'a> {
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let (target, name) = decode_target(msg, b'C')?;
        Ok(Close { target, name })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_close(self.target, self.name, out)
    }
}

fn decode_target(msg: &RawMessage, tag: u8) -> Result<(Target, &str), DecodeError> {
    let mut r = Reader::body(msg, tag)?;
    let target = Target::decode(&mut r)?;
    let name = r.cstr()?;
    r.finish()?;
    Ok((target, name))
}

fn encode_target(
    tag: u8,
    target: Target,
    name: &str,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    put_header(
        out,
        tag,
        1 + cstr_len(name.as_bytes(), "statement or portal name")?,
    )?;
    out.put_u8(target.byte());
    put_cstr(out, name.as_bytes());
    Ok(())
}

/// Encodes a Describe message.
pub fn encode_describe(
    target: Target,
    name: &str,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    encode_target(b'D', target, name, out)
}

/// Encodes a Close message.
pub fn encode_close(target: Target, name: &str, out: &mut impl BufMut) -> Result<(), EncodeError> {
    encode_target(b'C', target, name, out)
}

/// Encodes a Sync message.
pub fn encode_sync(out: &mut impl BufMut) {
    put_empty(out, b'S');
}

/// Encodes a Flush message.
pub fn encode_flush(out: &mut impl BufMut) {
    put_empty(out, b'H');
}
