//! The server's first packet after COM_QUERY (and COM_STMT_EXECUTE): OK,
//! ERR, a LOCAL INFILE request (0xFB), or the column count that starts a
//! result set.
//!
//! A result set is then: the column count, that many column definitions,
//! an EOF packet unless [`super::flags::CLIENT_DEPRECATE_EOF`], rows
//! ([`super::TextRow`] or [`super::BinaryRow`]), and a terminator (see
//! [`super::classify_row_packet`]) whose status may say another result
//! follows.

use bytes::{BufMut, Bytes};

use super::response::{ERR_HEADER, ErrPacket, OK_HEADER, OkPacket};
use super::wire::{Reader, expect_header, put_lenenc_int};
use super::{DecodeError, EncodeError};

/// First byte of a LOCAL INFILE request, where a column count would be.
pub const LOCAL_INFILE_HEADER: u8 = 0xFB;

/// Most columns a result set may announce: prepared statements count
/// them in 16 bits, and no server builds wider results.
pub const MAX_COLUMNS: usize = u16::MAX as usize;

/// The server asks the client to send a local file's contents (for
/// `LOAD DATA LOCAL INFILE`). The client answers with the contents in
/// packets, then an empty packet; an empty packet alone sends nothing,
/// and the server answers that with an ERR or an OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfileRequest {
    pub filename: Bytes,
}

impl LocalInfileRequest {
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        expect_header(payload, LOCAL_INFILE_HEADER, "LOCAL INFILE request")?;
        Ok(LocalInfileRequest {
            filename: payload.slice(1..),
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(LOCAL_INFILE_HEADER);
        out.put_slice(&self.filename);
    }
}

/// The packet that starts a result set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultSetHeader {
    /// Number of columns, 1 to [`MAX_COLUMNS`].
    pub column_count: usize,
    /// MySQL's optional metadata / MariaDB's metadata cache: 0 when the
    /// column definitions are left out, 1 when they follow. Absent
    /// without those capabilities (definitions always follow).
    pub metadata_follows: Option<u8>,
}

impl ResultSetHeader {
    const WHAT: &'static str = "column count";

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload, Self::WHAT);
        let count = r.lenenc()?;
        let column_count = usize::try_from(count)
            .ok()
            .filter(|n| (1..=MAX_COLUMNS).contains(n))
            .ok_or_else(|| r.invalid("column count not between 1 and 65535"))?;
        let metadata_follows = if r.is_empty() { None } else { Some(r.u8()?) };
        r.finish()?;
        Ok(ResultSetHeader {
            column_count,
            metadata_follows,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        if !(1..=MAX_COLUMNS).contains(&self.column_count) {
            return Err(EncodeError::Invalid {
                field: "column count",
                reason: "not between 1 and 65535",
            });
        }
        put_lenenc_int(out, self.column_count as u64);
        if let Some(m) = self.metadata_follows {
            out.put_u8(m);
        }
        Ok(())
    }

    /// Whether column definitions follow this packet.
    pub fn has_metadata(&self) -> bool {
        self.metadata_follows != Some(0)
    }
}

/// What the server answers to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResponse {
    /// A statement without a result set.
    Ok(OkPacket),
    Err(ErrPacket),
    /// `LOAD DATA LOCAL INFILE`: the server wants a file from the client.
    LocalInfile(LocalInfileRequest),
    /// A result set follows.
    ResultSet(ResultSetHeader),
}

impl QueryResponse {
    /// Decodes the first packet of a query's answer; `capabilities` are
    /// the negotiated ones.
    pub fn decode(payload: &Bytes, capabilities: u64) -> Result<Self, DecodeError> {
        match payload.first() {
            Some(&OK_HEADER) => OkPacket::decode(payload, capabilities).map(QueryResponse::Ok),
            Some(&ERR_HEADER) => ErrPacket::decode(payload).map(QueryResponse::Err),
            Some(&LOCAL_INFILE_HEADER) => {
                LocalInfileRequest::decode(payload).map(QueryResponse::LocalInfile)
            }
            Some(_) => ResultSetHeader::decode(payload).map(QueryResponse::ResultSet),
            None => Err(DecodeError::Invalid {
                what: "query response",
                reason: "empty payload",
            }),
        }
    }

    /// Encodes the packet.
    pub fn encode(&self, capabilities: u64, out: &mut impl BufMut) -> Result<(), EncodeError> {
        match self {
            QueryResponse::Ok(ok) => ok.encode(capabilities, out),
            QueryResponse::Err(err) => err.encode(out),
            QueryResponse::LocalInfile(req) => {
                req.encode(out);
                Ok(())
            }
            QueryResponse::ResultSet(header) => header.encode(out),
        }
    }
}
