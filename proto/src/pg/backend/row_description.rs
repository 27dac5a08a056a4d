//! RowDescription (`T`), backend → frontend: the columns of the rows that
//! follow. The masking engine reads column names, types and formats here.

use bytes::BufMut;

use crate::pg::wire::{Reader, count16, cstr_len, put_cstr, put_header, sum};
use crate::pg::{DecodeError, EncodeError, Format, RawMessage};

/// Smallest encoded field: an empty name's NUL plus 18 fixed bytes.
const MIN_FIELD_LEN: usize = 19;

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    pub name: String,
    /// OID of the table the column comes from, or 0.
    pub table_oid: u32,
    /// Attribute number of the column in that table, or 0.
    pub column_id: i16,
    pub type_oid: u32,
    /// `pg_type.typlen`: negative for variable-length types.
    pub type_len: i16,
    /// `pg_attribute.atttypmod`, type-specific.
    pub type_modifier: i32,
    pub format: Format,
}

/// The columns of a result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowDescription {
    pub fields: Vec<FieldDescription>,
}

impl RowDescription {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'T')?;
        let n = r.count16(MIN_FIELD_LEN)?;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.cstr()?.to_owned();
            let table_oid = r.u32()?;
            let column_id = r.i16()?;
            let type_oid = r.u32()?;
            let type_len = r.i16()?;
            let type_modifier = r.i32()?;
            let format =
                Format::from_code(r.i16()?).ok_or_else(|| r.invalid("unknown format code"))?;
            fields.push(FieldDescription {
                name,
                table_oid,
                column_id,
                type_oid,
                type_len,
                type_modifier,
                format,
            });
        }
        r.finish()?;
        Ok(RowDescription { fields })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_row_description(&self.fields, out)
    }
}

/// Encodes a RowDescription message.
pub fn encode_row_description(
    fields: &[FieldDescription],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let count = count16(fields.len(), "columns")?;
    let mut lens = Vec::with_capacity(fields.len());
    for f in fields {
        lens.push(cstr_len(f.name.as_bytes(), "column name")? + MIN_FIELD_LEN - 1);
    }
    put_header(out, b'T', sum(lens).saturating_add(2))?;
    out.put_u16(count);
    for f in fields {
        put_cstr(out, f.name.as_bytes());
        out.put_u32(f.table_oid);
        out.put_i16(f.column_id);
        out.put_u32(f.type_oid);
        out.put_i16(f.type_len);
        out.put_i32(f.type_modifier);
        out.put_i16(f.format.code());
    }
    Ok(())
}
