//! Result rows, server → client, decoded without copying: text rows (after
//! COM_QUERY) and binary rows (after COM_STMT_EXECUTE and COM_STMT_FETCH).
//! A row with nothing to mask is forwarded as its packet; a masked row is
//! rebuilt with [`encode_text_row`] or [`encode_binary_row`] and framed
//! again with the original sequence id.
//!
//! Values are ranges into the row's payload. For binary rows they cover
//! the value alone: the bytes of a fixed-size number, the string without
//! its length prefix, the date/time bytes without their length byte. So a
//! masker reads and replaces only content, and the encoder writes the
//! framing each type needs.

use std::ops::Range;

use bytes::{BufMut, Bytes};

use super::column::{BinaryLayout, binary_layout};
use super::wire::{
    LENENC_NULL, Reader, check_payload_len, expect_header, lenenc_str_len, put_lenenc_str, sum,
};
use super::{DecodeError, EncodeError};

/// First byte of a binary row.
pub const BINARY_ROW_HEADER: u8 = 0x00;

/// Bits before the first column's in a binary row's NULL bitmap.
const BINARY_NULL_OFFSET: usize = 2;

/// A row whose values are ranges into its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRow {
    /// The row's payload; cloning a `Bytes` shares the memory.
    pub storage: Bytes,
    /// Per column: where its value lies in `storage`, `None` for NULL.
    pub values: Vec<Option<Range<usize>>>,
}

/// A binary-protocol row; see the module docs for what ranges cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRow {
    /// The row's payload; cloning a `Bytes` shares the memory.
    pub storage: Bytes,
    /// Per column: where its value lies in `storage`, `None` for NULL.
    pub values: Vec<Option<Range<usize>>>,
}

impl TextRow {
    const WHAT: &'static str = "text row";

    /// Decodes a text row of `columns` values: each a length-encoded
    /// string or 0xFB for NULL, filling the payload exactly.
    pub fn decode(payload: &Bytes, columns: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload, Self::WHAT);
        // Every value takes at least one byte.
        r.check_count(columns, 1)?;
        let mut values = Vec::with_capacity(columns);
        for _ in 0..columns {
            values.push(r.lenenc_range_nullable()?);
        }
        r.finish()?;
        Ok(TextRow {
            storage: payload.clone(),
            values,
        })
    }

    /// Encodes the row's current values as a new payload.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let values: Vec<Option<&[u8]>> = self.iter().collect();
        encode_text_row(&values, out)
    }
}

/// Decodes the value ranges of text row `payload` into `out` (cleared
/// first), with the same checks as [`TextRow::decode`] but no allocation
/// once `out` has grown: for a relay that reads many rows.
pub fn text_row_ranges(
    payload: &[u8],
    columns: usize,
    out: &mut Vec<Option<Range<usize>>>,
) -> Result<(), DecodeError> {
    out.clear();
    let mut r = Reader::new(payload, TextRow::WHAT);
    r.check_count(columns, 1)?;
    for _ in 0..columns {
        out.push(r.lenenc_range_nullable()?);
    }
    r.finish()
}

/// Appends one text-row value: a length-encoded string, or NULL.
pub fn put_text_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => put_lenenc_str(out, v),
        None => out.put_u8(LENENC_NULL),
    }
}

impl BinaryRow {
    const WHAT: &'static str = "binary row";

    /// Decodes a binary row whose columns have these `MYSQL_TYPE_*` types
    /// (from the result's column definitions). A type without a known
    /// encoding is [`DecodeError::Invalid`]: its length cannot be known,
    /// so neither can the values after it.
    pub fn decode(payload: &Bytes, column_types: &[u8]) -> Result<Self, DecodeError> {
        expect_header(payload, BINARY_ROW_HEADER, Self::WHAT)?;
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let bitmap = r.take(null_bitmap_len(column_types.len()))?;
        let mut values = Vec::with_capacity(column_types.len());
        for (i, &t) in column_types.iter().enumerate() {
            let bit = i + BINARY_NULL_OFFSET;
            if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
                values.push(None);
            } else {
                values.push(Some(binary_value_range(&mut r, t)?));
            }
        }
        r.finish()?;
        Ok(BinaryRow {
            storage: payload.clone(),
            values,
        })
    }

    /// Encodes the row's current values as a new payload.
    pub fn encode(&self, column_types: &[u8], out: &mut impl BufMut) -> Result<(), EncodeError> {
        let values: Vec<Option<&[u8]>> = self.iter().collect();
        encode_binary_row(column_types, &values, out)
    }
}

/// Accessors shared by both row kinds.
macro_rules! row_accessors {
    ($row:ty) => {
        impl $row {
            /// Number of columns.
            pub fn len(&self) -> usize {
                self.values.len()
            }

            pub fn is_empty(&self) -> bool {
                self.values.is_empty()
            }

            /// Column `index`: `None` past the last column, `Some(None)`
            /// for NULL.
            pub fn get(&self, index: usize) -> Option<Option<&[u8]>> {
                let value = self.values.get(index)?;
                Some(value.as_ref().and_then(|r| self.storage.get(r.clone())))
            }

            /// Column `index` as a `Bytes` sharing the row's memory.
            pub fn get_bytes(&self, index: usize) -> Option<Option<Bytes>> {
                let value = self.values.get(index)?;
                Some(value.as_ref().and_then(|r| {
                    (r.start <= r.end && r.end <= self.storage.len())
                        .then(|| self.storage.slice(r.clone()))
                }))
            }

            /// The values in column order; `None` is NULL.
            pub fn iter(&self) -> impl Iterator<Item = Option<&[u8]>> + '_ {
                self.values
                    .iter()
                    .map(|v| v.as_ref().and_then(|r| self.storage.get(r.clone())))
            }
        }
    };
}

row_accessors!(TextRow);
row_accessors!(BinaryRow);

/// Bytes of a binary row's NULL bitmap for `columns` columns.
fn null_bitmap_len(columns: usize) -> usize {
    (columns + BINARY_NULL_OFFSET).div_ceil(8)
}

/// Reads one binary-protocol value of `column_type` and returns where its
/// content lies (see the module docs). Shared with statement parameters
/// and query attributes, which use the same encoding.
pub(crate) fn binary_value_range(
    r: &mut Reader<'_>,
    column_type: u8,
) -> Result<Range<usize>, DecodeError> {
    match binary_layout(column_type) {
        Some(BinaryLayout::Fixed(n)) => r.take_range(n),
        Some(BinaryLayout::LengthByte) => {
            let len = r.u8()?;
            r.take_range(usize::from(len))
        }
        Some(BinaryLayout::Lenenc) => r.lenenc_range(),
        None => Err(r.invalid("column type without a known binary encoding")),
    }
}

/// Encodes a text row payload from values (`None` is NULL): any byte
/// containers, e.g. `&[u8]` for untouched columns and `Vec<u8>` for masked
/// ones via `Cow<[u8]>`.
pub fn encode_text_row<T: AsRef<[u8]>>(
    values: &[Option<T>],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let len = sum(values.iter().map(|v| match v {
        Some(v) => lenenc_str_len(v.as_ref()),
        None => 1,
    }));
    check_payload_len(len)?;
    for v in values {
        match v {
            Some(v) => put_lenenc_str(out, v.as_ref()),
            None => out.put_u8(LENENC_NULL),
        }
    }
    Ok(())
}

/// Encodes a binary row payload from `MYSQL_TYPE_*` types and values
/// (`None` is NULL), each value being content as [`BinaryRow`] ranges
/// cover it. A fixed-size value of the wrong size, a date/time value over
/// 255 bytes or a value of an unknown type is refused.
pub fn encode_binary_row<T: AsRef<[u8]>>(
    column_types: &[u8],
    values: &[Option<T>],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    if column_types.len() != values.len() {
        return Err(EncodeError::Invalid {
            field: "binary row",
            reason: "not one type per value",
        });
    }
    let bitmap_len = null_bitmap_len(values.len());
    let mut len = 1 + bitmap_len;
    for (&t, v) in column_types.iter().zip(values) {
        // A NULL needs no layout, as in decoding.
        let Some(v) = v else { continue };
        let v = v.as_ref();
        let layout = binary_layout(t).ok_or(EncodeError::Invalid {
            field: "column type",
            reason: "no known binary encoding",
        })?;
        len = len.saturating_add(match layout {
            BinaryLayout::Fixed(n) if v.len() == n => n,
            BinaryLayout::Fixed(_) => {
                return Err(EncodeError::Invalid {
                    field: "binary value",
                    reason: "fixed-size value of the wrong length",
                });
            }
            BinaryLayout::LengthByte if v.len() <= usize::from(u8::MAX) => 1 + v.len(),
            BinaryLayout::LengthByte => {
                return Err(EncodeError::TooLong {
                    field: "date/time value",
                    len: v.len(),
                    max: usize::from(u8::MAX),
                });
            }
            BinaryLayout::Lenenc => lenenc_str_len(v),
        });
    }
    check_payload_len(len)?;
    out.put_u8(BINARY_ROW_HEADER);
    let mut bitmap = vec![0u8; bitmap_len];
    for (i, v) in values.iter().enumerate() {
        if v.is_none() {
            let bit = i + BINARY_NULL_OFFSET;
            bitmap[bit / 8] |= 1 << (bit % 8);
        }
    }
    out.put_slice(&bitmap);
    for (&t, v) in column_types.iter().zip(values) {
        let Some(v) = v else { continue };
        let v = v.as_ref();
        match binary_layout(t) {
            Some(BinaryLayout::LengthByte) => {
                out.put_u8(v.len() as u8);
                out.put_slice(v);
            }
            Some(BinaryLayout::Lenenc) => put_lenenc_str(out, v),
            _ => out.put_slice(v),
        }
    }
    Ok(())
}
