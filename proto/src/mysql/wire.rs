//! Checked little-endian reads and writes shared by every payload codec:
//! fixed-size integers, length-encoded integers and strings, and
//! NUL-terminated strings.
//!
//! [`Reader`] never indexes unchecked: each read returns
//! [`DecodeError::Invalid`] when the payload ends early, and a length read
//! from the wire is only ever used after checking it against the bytes
//! actually present.

use std::ops::Range;

use bytes::{BufMut, Bytes};

use super::{DecodeError, EncodeError, MAX_PACKET_LEN};

/// First byte of a length-encoded value that is NULL (text rows only).
pub const LENENC_NULL: u8 = 0xFB;

/// A cursor over one payload. Positions are offsets into the slice given
/// to [`Reader::new`], so ranges it returns can index the same storage.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start; errors name `what`.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            what: self.what,
            reason,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next byte without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes `n` bytes and returns where they are.
    pub(crate) fn take_range(&mut self, n: usize) -> Result<Range<usize>, DecodeError> {
        if n > self.remaining() {
            return Err(self.invalid("payload ends inside a field"));
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take_range(n).map(|r| &self.buf[r])
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

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A length-encoded integer; NULL (0xFB) and 0xFF are invalid here.
    pub(crate) fn lenenc(&mut self) -> Result<u64, DecodeError> {
        self.lenenc_nullable()?
            .ok_or_else(|| self.invalid("NULL where a length-encoded integer belongs"))
    }

    /// A length-encoded integer, `None` for 0xFB (NULL in a text row).
    /// Non-minimal encodings are accepted, as servers accept them.
    pub(crate) fn lenenc_nullable(&mut self) -> Result<Option<u64>, DecodeError> {
        let first = self.u8()?;
        let value = match first {
            0..=0xFA => u64::from(first),
            LENENC_NULL => return Ok(None),
            0xFC => u64::from(self.u16()?),
            0xFD => {
                let [a, b, c] = self.array()?;
                u64::from(u32::from_le_bytes([a, b, c, 0]))
            }
            0xFE => self.array().map(u64::from_le_bytes)?,
            0xFF => return Err(self.invalid("0xff is not a length-encoded integer")),
        };
        Ok(Some(value))
    }

    /// Checks a count the caller got elsewhere (e.g. the column count of a
    /// result set) against the bytes left, `min_item` bytes per item.
    pub(crate) fn check_count(&self, n: usize, min_item: usize) -> Result<(), DecodeError> {
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(self.invalid("more items than the payload can hold"));
        }
        Ok(())
    }

    /// A length-encoded string's position.
    pub(crate) fn lenenc_range(&mut self) -> Result<Range<usize>, DecodeError> {
        self.lenenc_range_nullable()?
            .ok_or_else(|| self.invalid("NULL where a string belongs"))
    }

    /// A length-encoded string's position, `None` for NULL (0xFB).
    pub(crate) fn lenenc_range_nullable(&mut self) -> Result<Option<Range<usize>>, DecodeError> {
        let Some(len) = self.lenenc_nullable()? else {
            return Ok(None);
        };
        // Checked before use: a length beyond the payload is an error, not
        // an allocation.
        let len =
            usize::try_from(len).map_err(|_| self.invalid("string longer than the payload"))?;
        if len > self.remaining() {
            return Err(self.invalid("string longer than the payload"));
        }
        self.take_range(len).map(Some)
    }

    pub(crate) fn lenenc_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        self.lenenc_range().map(|r| &self.buf[r])
    }

    /// A NUL-terminated string's position, without the NUL.
    pub(crate) fn cstr_range(&mut self) -> Result<Range<usize>, DecodeError> {
        let rest = &self.buf[self.pos..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(self.invalid("string without a NUL terminator"));
        };
        let range = self.pos..self.pos + nul;
        self.pos += nul + 1;
        Ok(range)
    }

    /// A NUL-terminated string, or everything left if no NUL follows
    /// (some servers end the last field of a packet without one).
    pub(crate) fn cstr_or_rest_range(&mut self) -> Range<usize> {
        match self.buf[self.pos..].iter().position(|&b| b == 0) {
            Some(nul) => {
                let range = self.pos..self.pos + nul;
                self.pos += nul + 1;
                range
            }
            None => self.rest_range(),
        }
    }

    /// A NUL-terminated string that must be ASCII-compatible UTF-8.
    pub(crate) fn cstr_utf8(&mut self) -> Result<String, DecodeError> {
        let r = self.cstr_range()?;
        self.utf8(r)
    }

    pub(crate) fn utf8(&self, r: Range<usize>) -> Result<String, DecodeError> {
        std::str::from_utf8(&self.buf[r])
            .map(str::to_owned)
            .map_err(|_| self.invalid("string is not valid UTF-8"))
    }

    /// Everything up to the end of the payload.
    pub(crate) fn rest_range(&mut self) -> Range<usize> {
        let range = self.pos..self.buf.len();
        self.pos = self.buf.len();
        range
    }

    /// Errors unless the whole payload was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if !self.is_empty() {
            return Err(self.invalid("trailing bytes after the last field"));
        }
        Ok(())
    }
}

/// Checks the first byte of a payload.
pub(crate) fn expect_header(
    payload: &[u8],
    header: u8,
    what: &'static str,
) -> Result<(), DecodeError> {
    match payload.first() {
        Some(&b) if b == header => Ok(()),
        Some(&b) => Err(DecodeError::Unexpected { what, header: b }),
        None => Err(DecodeError::Invalid {
            what,
            reason: "empty payload",
        }),
    }
}

/// A slice of `payload` as shared `Bytes`; the range came from a
/// [`Reader`] over the same payload, so it is in bounds.
pub(crate) fn share(payload: &Bytes, r: Range<usize>) -> Bytes {
    payload.slice(r)
}

/// Encoded size of a length-encoded integer.
pub(crate) fn lenenc_int_len(n: u64) -> usize {
    match n {
        0..0xFB => 1,
        0xFB..0x1_0000 => 3,
        0x1_0000..0x100_0000 => 4,
        _ => 9,
    }
}

/// Writes a length-encoded integer in its shortest form.
pub(crate) fn put_lenenc_int(out: &mut impl BufMut, n: u64) {
    match n {
        0..0xFB => out.put_u8(n as u8),
        0xFB..0x1_0000 => {
            out.put_u8(0xFC);
            out.put_u16_le(n as u16);
        }
        0x1_0000..0x100_0000 => {
            out.put_u8(0xFD);
            out.put_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(n);
        }
    }
}

/// Encoded size of a length-encoded string.
pub(crate) fn lenenc_str_len(s: &[u8]) -> usize {
    lenenc_int_len(s.len() as u64).saturating_add(s.len())
}

pub(crate) fn put_lenenc_str(out: &mut impl BufMut, s: &[u8]) {
    put_lenenc_int(out, s.len() as u64);
    out.put_slice(s);
}

/// Encoded size of a NUL-terminated string, refusing interior NULs.
pub(crate) fn cstr_len(s: &[u8], field: &'static str) -> Result<usize, EncodeError> {
    if s.contains(&0) {
        return Err(EncodeError::Nul { field });
    }
    Ok(s.len() + 1)
}

/// Writes a NUL-terminated string already checked by [`cstr_len`].
pub(crate) fn put_cstr(out: &mut impl BufMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

/// Refuses a payload longer than [`MAX_PACKET_LEN`].
pub(crate) fn check_payload_len(len: usize) -> Result<(), EncodeError> {
    if len > MAX_PACKET_LEN {
        return Err(EncodeError::TooLong {
            field: "packet",
            len,
            max: MAX_PACKET_LEN,
        });
    }
    Ok(())
}

/// Sums encoded sizes without overflowing; an overflow is then refused by
/// [`check_payload_len`].
pub(crate) fn sum(parts: impl IntoIterator<Item = usize>) -> usize {
    parts.into_iter().fold(0, usize::saturating_add)
}

/// Decodes the length-encoded integer at the front of `buf`: its value
/// (`None` for the 0xFB NULL marker) and how many bytes it took. Truncated
/// input and the 0xFF byte are [`DecodeError::Invalid`].
pub fn decode_lenenc_int(buf: &[u8]) -> Result<(Option<u64>, usize), DecodeError> {
    let mut r = Reader::new(buf, "length-encoded integer");
    let value = r.lenenc_nullable()?;
    Ok((value, r.pos()))
}

/// Decodes the length-encoded string at the front of `buf`: its bytes
/// (`None` for NULL) and how many bytes it took, length prefix included.
/// The announced length is checked against `buf` before it is used.
pub fn decode_lenenc_str(buf: &[u8]) -> Result<(Option<&[u8]>, usize), DecodeError> {
    let mut r = Reader::new(buf, "length-encoded string");
    let value = r.lenenc_range_nullable()?.map(|range| &buf[range]);
    Ok((value, r.pos()))
}

/// Writes `n` as a length-encoded integer in its shortest form.
pub fn encode_lenenc_int(n: u64, out: &mut impl BufMut) {
    put_lenenc_int(out, n);
}

/// Writes `s` as a length-encoded string, or the NULL marker for `None`.
pub fn encode_lenenc_str(s: Option<&[u8]>, out: &mut impl BufMut) {
    match s {
        Some(s) => put_lenenc_str(out, s),
        None => out.put_u8(LENENC_NULL),
    }
}
