//! ColumnDefinition41, server → client: one column of a result set (or
//! one parameter of a prepared statement), and the column type codes that
//! say how binary rows encode values. The masking engine reads names,
//! types and character sets here.

use std::borrow::Cow;

use bytes::{BufMut, Bytes};

use super::flags::{BINARY, MARIADB_CLIENT_EXTENDED_TYPE_INFO, UNSIGNED_FLAG};
use super::wire::{Reader, put_lenenc_str, share};
use super::{DecodeError, EncodeError};

// Column types (`MYSQL_TYPE_*`).

pub const MYSQL_TYPE_DECIMAL: u8 = 0x00;
pub const MYSQL_TYPE_TINY: u8 = 0x01;
pub const MYSQL_TYPE_SHORT: u8 = 0x02;
pub const MYSQL_TYPE_LONG: u8 = 0x03;
pub const MYSQL_TYPE_FLOAT: u8 = 0x04;
pub const MYSQL_TYPE_DOUBLE: u8 = 0x05;
pub const MYSQL_TYPE_NULL: u8 = 0x06;
pub const MYSQL_TYPE_TIMESTAMP: u8 = 0x07;
pub const MYSQL_TYPE_LONGLONG: u8 = 0x08;
pub const MYSQL_TYPE_INT24: u8 = 0x09;
pub const MYSQL_TYPE_DATE: u8 = 0x0A;
pub const MYSQL_TYPE_TIME: u8 = 0x0B;
pub const MYSQL_TYPE_DATETIME: u8 = 0x0C;
pub const MYSQL_TYPE_YEAR: u8 = 0x0D;
pub const MYSQL_TYPE_NEWDATE: u8 = 0x0E;
pub const MYSQL_TYPE_VARCHAR: u8 = 0x0F;
pub const MYSQL_TYPE_BIT: u8 = 0x10;
pub const MYSQL_TYPE_TIMESTAMP2: u8 = 0x11;
pub const MYSQL_TYPE_DATETIME2: u8 = 0x12;
pub const MYSQL_TYPE_TIME2: u8 = 0x13;
/// MySQL 9.
pub const MYSQL_TYPE_VECTOR: u8 = 0xF2;
pub const MYSQL_TYPE_JSON: u8 = 0xF5;
pub const MYSQL_TYPE_NEWDECIMAL: u8 = 0xF6;
pub const MYSQL_TYPE_ENUM: u8 = 0xF7;
pub const MYSQL_TYPE_SET: u8 = 0xF8;
pub const MYSQL_TYPE_TINY_BLOB: u8 = 0xF9;
pub const MYSQL_TYPE_MEDIUM_BLOB: u8 = 0xFA;
pub const MYSQL_TYPE_LONG_BLOB: u8 = 0xFB;
pub const MYSQL_TYPE_BLOB: u8 = 0xFC;
pub const MYSQL_TYPE_VAR_STRING: u8 = 0xFD;
pub const MYSQL_TYPE_STRING: u8 = 0xFE;
pub const MYSQL_TYPE_GEOMETRY: u8 = 0xFF;

/// How the binary protocol (binary rows, statement parameters) encodes a
/// value of a column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryLayout {
    /// Exactly this many bytes (little-endian numbers; 0 for NULL type).
    Fixed(usize),
    /// A length byte, then that many bytes (dates, times, datetimes).
    LengthByte,
    /// A length-encoded string (strings, blobs, decimals, JSON, BIT, ...).
    Lenenc,
}

/// The binary layout of a column type, `None` for codes that never appear
/// on the wire (a row with one cannot be decoded, so it is refused).
pub fn binary_layout(column_type: u8) -> Option<BinaryLayout> {
    use BinaryLayout::*;
    Some(match column_type {
        MYSQL_TYPE_NULL => Fixed(0),
        MYSQL_TYPE_TINY => Fixed(1),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => Fixed(2),
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 | MYSQL_TYPE_FLOAT => Fixed(4),
        MYSQL_TYPE_LONGLONG | MYSQL_TYPE_DOUBLE => Fixed(8),
        MYSQL_TYPE_DATE
        | MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_NEWDATE
        | MYSQL_TYPE_TIME
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIME2 => LengthByte,
        MYSQL_TYPE_DECIMAL
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BIT
        | MYSQL_TYPE_VECTOR
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_GEOMETRY => Lenenc,
        _ => return None,
    })
}

/// Whether values of this type are strings a content masker should look
/// at: CHAR, VARCHAR, the TEXT/BLOB family, JSON, ENUM and SET. (Whether a
/// BLOB holds text is in the column's character set: [`BINARY`] is bytes.)
pub fn is_text_like(column_type: u8) -> bool {
    matches!(
        column_type,
        MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_JSON
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET
    )
}

/// The SQL-ish name of a column type, for audit records and errors.
pub fn type_name(column_type: u8) -> &'static str {
    match column_type {
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => "DECIMAL",
        MYSQL_TYPE_TINY => "TINYINT",
        MYSQL_TYPE_SHORT => "SMALLINT",
        MYSQL_TYPE_LONG => "INT",
        MYSQL_TYPE_FLOAT => "FLOAT",
        MYSQL_TYPE_DOUBLE => "DOUBLE",
        MYSQL_TYPE_NULL => "NULL",
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => "TIMESTAMP",
        MYSQL_TYPE_LONGLONG => "BIGINT",
        MYSQL_TYPE_INT24 => "MEDIUMINT",
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "DATE",
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => "TIME",
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => "DATETIME",
        MYSQL_TYPE_YEAR => "YEAR",
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => "VARCHAR",
        MYSQL_TYPE_BIT => "BIT",
        MYSQL_TYPE_VECTOR => "VECTOR",
        MYSQL_TYPE_JSON => "JSON",
        MYSQL_TYPE_ENUM => "ENUM",
        MYSQL_TYPE_SET => "SET",
        MYSQL_TYPE_TINY_BLOB => "TINYBLOB",
        MYSQL_TYPE_MEDIUM_BLOB => "MEDIUMBLOB",
        MYSQL_TYPE_LONG_BLOB => "LONGBLOB",
        MYSQL_TYPE_BLOB => "BLOB",
        MYSQL_TYPE_STRING => "CHAR",
        MYSQL_TYPE_GEOMETRY => "GEOMETRY",
        _ => "UNKNOWN",
    }
}

/// Length of the fixed-size fields block, as servers announce it.
const FIXED_FIELDS_LEN: u8 = 0x0C;
/// Bytes of that block that carry values (the last two are filler).
const FIXED_FIELDS_USED: usize = 10;

/// One column (Protocol::ColumnDefinition41).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnDefinition {
    /// Always `def`.
    pub catalog: Bytes,
    pub schema: Bytes,
    /// Table alias as the query names it.
    pub table: Bytes,
    /// The table's real name.
    pub org_table: Bytes,
    /// Column alias as the query names it (what clients show).
    pub name: Bytes,
    /// The column's real name.
    pub org_name: Bytes,
    /// With MariaDB's [`MARIADB_CLIENT_EXTENDED_TYPE_INFO`]: type details
    /// (e.g. `json`, `uuid`), as sent.
    pub extended_metadata: Option<Bytes>,
    /// Collation id of the values ([`BINARY`] for bytes and numbers).
    pub charset: u16,
    /// Maximum display length.
    pub column_length: u32,
    /// `MYSQL_TYPE_*`.
    pub column_type: u8,
    /// Column flags (`*_FLAG`).
    pub flags: u16,
    pub decimals: u8,
    /// In COM_FIELD_LIST answers only: the column's default value.
    pub default_value: Option<Bytes>,
}

impl ColumnDefinition {
    const WHAT: &'static str = "column definition";

    /// Decodes a column definition; `capabilities` are the negotiated ones
    /// (MariaDB's extended type info adds a field).
    pub fn decode(payload: &Bytes, capabilities: u64) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload, Self::WHAT);
        let mut string = || r.lenenc_range().map(|range| share(payload, range));
        let catalog = string()?;
        let schema = string()?;
        let table = string()?;
        let org_table = string()?;
        let name = string()?;
        let org_name = string()?;
        let extended_metadata = if capabilities & MARIADB_CLIENT_EXTENDED_TYPE_INFO != 0 {
            Some(string()?)
        } else {
            None
        };
        let fixed = r.lenenc_bytes()?;
        let mut f = Reader::new(fixed, Self::WHAT);
        if fixed.len() < FIXED_FIELDS_USED {
            return Err(f.invalid("fixed-length fields shorter than 10 bytes"));
        }
        let charset = f.u16()?;
        let column_length = f.u32()?;
        let column_type = f.u8()?;
        let flags = f.u16()?;
        let decimals = f.u8()?;
        let default_value = if r.is_empty() {
            None
        } else {
            r.lenenc_range_nullable()?
                .map(|range| share(payload, range))
        };
        r.finish()?;
        Ok(ColumnDefinition {
            catalog,
            schema,
            table,
            org_table,
            name,
            org_name,
            extended_metadata,
            charset,
            column_length,
            column_type,
            flags,
            decimals,
            default_value,
        })
    }

    /// Encodes the payload. Extended metadata is written exactly when the
    /// capabilities include [`MARIADB_CLIENT_EXTENDED_TYPE_INFO`] (empty if
    /// `None`); given without it, it is refused.
    pub fn encode(&self, capabilities: u64, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let extended = capabilities & MARIADB_CLIENT_EXTENDED_TYPE_INFO != 0;
        if self.extended_metadata.is_some() && !extended {
            return Err(EncodeError::Invalid {
                field: "extended metadata",
                reason: "given without MARIADB_CLIENT_EXTENDED_TYPE_INFO",
            });
        }
        for s in [
            &self.catalog,
            &self.schema,
            &self.table,
            &self.org_table,
            &self.name,
            &self.org_name,
        ] {
            put_lenenc_str(out, s);
        }
        if extended {
            put_lenenc_str(out, self.extended_metadata.as_deref().unwrap_or(b""));
        }
        out.put_u8(FIXED_FIELDS_LEN);
        out.put_u16_le(self.charset);
        out.put_u32_le(self.column_length);
        out.put_u8(self.column_type);
        out.put_u16_le(self.flags);
        out.put_u8(self.decimals);
        out.put_u16(0);
        if let Some(default) = &self.default_value {
            put_lenenc_str(out, default);
        }
        Ok(())
    }

    /// A column with `name` and `column_type`, the rest defaulted as
    /// servers send computed columns (catalog `def`, binary charset).
    pub fn new(name: &str, column_type: u8) -> Self {
        ColumnDefinition {
            catalog: Bytes::from_static(b"def"),
            name: Bytes::copy_from_slice(name.as_bytes()),
            charset: BINARY,
            column_type,
            ..ColumnDefinition::default()
        }
    }

    /// The column alias as text, invalid UTF-8 replaced.
    pub fn name_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// The real column name as text (the alias when there is none).
    pub fn org_name_lossy(&self) -> Cow<'_, str> {
        if self.org_name.is_empty() {
            self.name_lossy()
        } else {
            String::from_utf8_lossy(&self.org_name)
        }
    }

    pub fn is_unsigned(&self) -> bool {
        self.flags & UNSIGNED_FLAG != 0
    }

    /// Whether values are bytes rather than text in a character set.
    pub fn is_binary(&self) -> bool {
        self.charset == BINARY
    }

    /// Whether a content masker should look at this column's values
    /// ([`is_text_like`] type, any character set).
    pub fn is_text_like(&self) -> bool {
        is_text_like(self.column_type)
    }
}
