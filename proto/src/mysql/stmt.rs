//! Prepared statements: COM_STMT_EXECUTE (client → server) and the
//! COM_STMT_PREPARE_OK answer (server → client). The other statement
//! commands are small enough to live in [`super::Command`].
//!
//! After COM_STMT_PREPARE_OK come `num_params` parameter definitions and
//! `num_columns` column definitions ([`super::ColumnDefinition`]), each
//! group followed by an EOF packet unless `CLIENT_DEPRECATE_EOF`. The
//! results of COM_STMT_EXECUTE carry binary rows ([`super::BinaryRow`]).

use bytes::{BufMut, Bytes};

use super::DecodeError;
use super::command::COM_STMT_EXECUTE;
use super::flags::CLIENT_QUERY_ATTRIBUTES;
use super::response::OK_HEADER;
use super::wire::{Reader, expect_header, share};

// COM_STMT_EXECUTE flags.

pub const CURSOR_TYPE_NO_CURSOR: u8 = 0;
pub const CURSOR_TYPE_READ_ONLY: u8 = 1;
pub const CURSOR_TYPE_FOR_UPDATE: u8 = 2;
pub const CURSOR_TYPE_SCROLLABLE: u8 = 4;
/// MySQL 8 with query attributes: the parameter count is sent.
pub const PARAMETER_COUNT_AVAILABLE: u8 = 8;

/// Flag bit on a parameter type: the integer is unsigned.
pub const PARAM_UNSIGNED: u8 = 0x80;

/// COM_STMT_EXECUTE, decoded up to its parameters, which stay opaque
/// until [`StmtExecute::params`] is given their count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StmtExecute {
    pub statement_id: u32,
    /// Cursor type and [`PARAMETER_COUNT_AVAILABLE`].
    pub flags: u8,
    /// Always 1.
    pub iteration_count: u32,
    /// Everything after the fixed fields: NULL bitmap, types, values.
    pub params: Bytes,
}

impl StmtExecute {
    const WHAT: &'static str = "COM_STMT_EXECUTE";

    /// Decodes the whole command payload (code byte included).
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        expect_header(payload, COM_STMT_EXECUTE, Self::WHAT)?;
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let statement_id = r.u32()?;
        let flags = r.u8()?;
        let iteration_count = r.u32()?;
        let params = share(payload, r.rest_range());
        Ok(StmtExecute {
            statement_id,
            flags,
            iteration_count,
            params,
        })
    }

    /// Encodes the whole command payload (code byte included).
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(COM_STMT_EXECUTE);
        out.put_u32_le(self.statement_id);
        out.put_u8(self.flags);
        out.put_u32_le(self.iteration_count);
        out.put_slice(&self.params);
    }

    /// Whether the execute opens a cursor (rows then come with
    /// COM_STMT_FETCH).
    pub fn opens_cursor(&self) -> bool {
        self.flags & (CURSOR_TYPE_READ_ONLY | CURSOR_TYPE_FOR_UPDATE | CURSOR_TYPE_SCROLLABLE) != 0
    }

    /// Decodes the parameter block for a statement with `num_params`
    /// parameters (from its COM_STMT_PREPARE_OK); `capabilities` are the
    /// negotiated ones. With query attributes the packet carries its own
    /// count, which wins. Values stay opaque bytes.
    pub fn params(
        &self,
        num_params: usize,
        capabilities: u64,
    ) -> Result<ExecuteParams, DecodeError> {
        let block = &self.params;
        let mut r = Reader::new(block, Self::WHAT);
        let attributes = capabilities & CLIENT_QUERY_ATTRIBUTES != 0;
        let count = if attributes && self.flags & PARAMETER_COUNT_AVAILABLE != 0 {
            let n = r.lenenc()?;
            usize::try_from(n).map_err(|_| r.invalid("parameter count too large"))?
        } else {
            num_params
        };
        if count == 0 {
            return Ok(ExecuteParams {
                count,
                values: share(block, r.rest_range()),
                ..ExecuteParams::default()
            });
        }
        let bitmap = count.div_ceil(8);
        r.check_count(bitmap, 1)?;
        let null_bitmap = share(block, r.take_range(bitmap)?);
        let new_params_bound = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(r.invalid("new-params-bound flag is not 0 or 1")),
        };
        let mut types = Vec::new();
        if new_params_bound {
            r.check_count(count, 2)?;
            types.reserve_exact(count);
            for _ in 0..count {
                let column_type = r.u8()?;
                let flags = r.u8()?;
                let name = if attributes {
                    Some(share(block, r.lenenc_range()?))
                } else {
                    None
                };
                types.push(ParamType {
                    column_type,
                    unsigned: flags & PARAM_UNSIGNED != 0,
                    name,
                });
            }
        }
        Ok(ExecuteParams {
            count,
            null_bitmap,
            new_params_bound,
            types,
            values: share(block, r.rest_range()),
        })
    }
}

/// The parameter block of a COM_STMT_EXECUTE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecuteParams {
    /// Number of parameters (and query attributes).
    pub count: usize,
    /// Bit `i` set: parameter `i` is NULL (no offset, unlike rows).
    pub null_bitmap: Bytes,
    /// Whether types follow; if not, the previous execute's types apply.
    pub new_params_bound: bool,
    /// One per parameter when `new_params_bound`, empty otherwise.
    pub types: Vec<ParamType>,
    /// The non-NULL values in binary form, as sent.
    pub values: Bytes,
}

impl ExecuteParams {
    /// Whether parameter `index` is NULL.
    pub fn is_null(&self, index: usize) -> bool {
        self.null_bitmap
            .get(index / 8)
            .is_some_and(|b| b & (1 << (index % 8)) != 0)
    }
}

/// A bound parameter's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamType {
    /// `MYSQL_TYPE_*`.
    pub column_type: u8,
    pub unsigned: bool,
    /// With query attributes: the parameter's name (empty for plain
    /// statement parameters).
    pub name: Option<Bytes>,
}

/// COM_STMT_PREPARE_OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StmtPrepareOk {
    pub statement_id: u32,
    pub num_columns: u16,
    pub num_params: u16,
    pub warnings: u16,
    /// With `CLIENT_OPTIONAL_RESULTSET_METADATA`: 0 when the definitions
    /// are left out.
    pub metadata_follows: Option<u8>,
}

impl StmtPrepareOk {
    const WHAT: &'static str = "COM_STMT_PREPARE_OK";

    /// Decodes the answer to COM_STMT_PREPARE (which may also be an ERR
    /// packet: check the first byte).
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        expect_header(payload, OK_HEADER, Self::WHAT)?;
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let statement_id = r.u32()?;
        let num_columns = r.u16()?;
        let num_params = r.u16()?;
        r.u8()?; // reserved
        // Servers before 4.1 ended here; later ones always send warnings.
        let warnings = if r.is_empty() { 0 } else { r.u16()? };
        let metadata_follows = if r.is_empty() { None } else { Some(r.u8()?) };
        r.finish()?;
        Ok(StmtPrepareOk {
            statement_id,
            num_columns,
            num_params,
            warnings,
            metadata_follows,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(OK_HEADER);
        out.put_u32_le(self.statement_id);
        out.put_u16_le(self.num_columns);
        out.put_u16_le(self.num_params);
        out.put_u8(0);
        out.put_u16_le(self.warnings);
        if let Some(m) = self.metadata_follows {
            out.put_u8(m);
        }
    }
}
