//! Checked reads and length-first writes shared by every message codec.
//!
//! [`Reader`] never indexes unchecked: each read returns
//! [`DecodeError::Invalid`] when the message ends early. Writers compute a
//! message's length before writing its header, so encoders work on any
//! `BufMut` without patching the length afterwards.

use std::ops::Range;

use bytes::BufMut;

use super::{DecodeError, EncodeError, MAX_MESSAGE_LEN, RawMessage};

/// Bytes before a tagged message's body: the tag and the length word.
pub(crate) const HEADER_LEN: usize = 5;

/// A cursor over one message. Positions are offsets into the slice given
/// to [`Reader::new`], so ranges it returns can index the same storage.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    tag: u8,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from `start` on; errors name `tag`.
    pub(crate) fn new(buf: &'a [u8], start: usize, tag: u8) -> Self {
        Reader {
            buf,
            pos: start.min(buf.len()),
            tag,
        }
    }

    /// A reader over the body of `msg`, after checking its tag.
    pub(crate) fn body(msg: &'a RawMessage, expected: u8) -> Result<Self, DecodeError> {
        if msg.tag != expected {
            return Err(DecodeError::UnexpectedTag(msg.tag));
        }
        Ok(Reader::new(&msg.bytes, HEADER_LEN, msg.tag))
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            tag: self.tag,
            reason,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take_range(n).map(|r| &self.buf[r])
    }

    /// Consumes `n` bytes and returns where they are.
    pub(crate) fn take_range(&mut self, n: usize) -> Result<Range<usize>, DecodeError> {
        if n > self.remaining() {
            return Err(self.invalid("message ends inside a field"));
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    /// An Int16 count, checked against the bytes left given that each item
    /// takes at least `min_item` bytes, so a caller may allocate `count`
    /// items. Read unsigned, as PostgreSQL reads and writes these counts
    /// (`pq_getmsgint(msg, 2)`): a statement may have up to 65535
    /// parameters.
    pub(crate) fn count16(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.array().map(u16::from_be_bytes)?;
        self.check_count(usize::from(n), min_item)
    }

    /// Like [`Reader::count16`] for an Int32 count.
    pub(crate) fn count32(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| self.invalid("negative count"))?;
        self.check_count(n, min_item)
    }

    fn check_count(&self, n: usize, min_item: usize) -> Result<usize, DecodeError> {
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(self.invalid("count larger than the message"));
        }
        Ok(n)
    }

    /// An Int32 length followed by that many bytes; -1 is NULL.
    pub(crate) fn nullable_range(&mut self) -> Result<Option<Range<usize>>, DecodeError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(self.invalid("negative value length other than -1")),
            n => self.take_range(n as usize).map(Some),
        }
    }

    pub(crate) fn nullable(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        Ok(self.nullable_range()?.map(|r| &self.buf[r]))
    }

    /// A NUL-terminated string's bytes, without the NUL.
    pub(crate) fn cstr_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.pos..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(self.invalid("string without a NUL terminator"));
        };
        self.pos += nul + 1;
        Ok(&rest[..nul])
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.cstr_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| self.invalid("string is not valid UTF-8"))
    }

    /// Everything up to the end of the message.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    pub(crate) fn rest_range(&mut self) -> Range<usize> {
        let range = self.pos..self.buf.len();
        self.pos = self.buf.len();
        range
    }

    /// Errors unless the whole message was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.invalid("trailing bytes after the last field"));
        }
        Ok(())
    }
}

/// Checks an empty-bodied message (Sync, ParseComplete, ...).
pub(crate) fn decode_empty(msg: &RawMessage, tag: u8) -> Result<(), DecodeError> {
    Reader::body(msg, tag)?.finish()
}

/// Writes a tag and the length word for a body of `body_len` bytes.
pub(crate) fn put_header(
    out: &mut impl BufMut,
    tag: u8,
    body_len: usize,
) -> Result<(), EncodeError> {
    let len = body_len.saturating_add(4);
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    out.put_u8(tag);
    // Cannot truncate: MAX_MESSAGE_LEN fits in i32.
    out.put_i32(len as i32);
    Ok(())
}

/// Writes an empty-bodied message.
pub(crate) fn put_empty(out: &mut impl BufMut, tag: u8) {
    out.put_u8(tag);
    out.put_i32(4);
}

/// Encoded size of a C string (with its NUL), refusing interior NULs.
pub(crate) fn cstr_len(s: &[u8], field: &'static str) -> Result<usize, EncodeError> {
    if s.contains(&0) {
        return Err(EncodeError::Nul { field });
    }
    Ok(s.len() + 1)
}

/// Writes a C string already checked by [`cstr_len`].
pub(crate) fn put_cstr(out: &mut impl BufMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

/// A list length as an (unsigned) Int16 count.
pub(crate) fn count16(n: usize, what: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(n).map_err(|_| EncodeError::TooMany {
        what,
        count: n,
        max: u16::MAX as usize,
    })
}

/// Encoded size of a nullable Int32-length value, refusing values whose
/// length does not fit.
pub(crate) fn nullable_len(value: Option<&[u8]>) -> Result<usize, EncodeError> {
    match value {
        None => Ok(4),
        Some(v) if v.len() > MAX_MESSAGE_LEN => Err(EncodeError::TooLong {
            len: v.len(),
            max: MAX_MESSAGE_LEN,
        }),
        Some(v) => Ok(4 + v.len()),
    }
}

/// Writes a value sized by [`nullable_len`].
pub(crate) fn put_nullable(out: &mut impl BufMut, value: Option<&[u8]>) {
    match value {
        None => out.put_i32(-1),
        Some(v) => {
            // Cannot truncate: nullable_len capped it at MAX_MESSAGE_LEN.
            out.put_i32(v.len() as i32);
            out.put_slice(v);
        }
    }
}

/// Sums encoded sizes without overflowing; an overflow is reported by
/// [`put_header`] as too long.
pub(crate) fn sum(parts: impl IntoIterator<Item = usize>) -> usize {
    parts.into_iter().fold(0, usize::saturating_add)
}
