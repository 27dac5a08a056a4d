//! Generic responses, server → client: OK (0x00, or 0xFE ending a result
//! set under [`CLIENT_DEPRECATE_EOF`]), ERR (0xFF) and the legacy EOF
//! (0xFE), plus the rules that tell them from rows.
//!
//! 0xFE starts an EOF packet (legacy), an OK packet ending a result set
//! (with [`CLIENT_DEPRECATE_EOF`]), an auth switch (during login), or a
//! text row whose first value is 16 MiB or more. The length settles it: an
//! EOF packet is shorter than 9 bytes, and a row starting with 0xFE is at
//! least [`MAX_CHUNK_LEN`] bytes, so after column definitions a 0xFE
//! packet shorter than that ends the rows ([`classify_row_packet`]).

use std::borrow::Cow;

use bytes::{BufMut, Bytes};

use super::flags::{
    CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS,
    SERVER_SESSION_STATE_CHANGED, SESSION_TRACK_SCHEMA,
};
use super::wire::{Reader, put_lenenc_int, put_lenenc_str, share};
use super::{DecodeError, EncodeError, MAX_CHUNK_LEN};

pub const OK_HEADER: u8 = 0x00;
pub const EOF_HEADER: u8 = 0xFE;
pub const ERR_HEADER: u8 = 0xFF;

/// An EOF packet is shorter than this (header, warnings, status: 5 bytes).
pub const EOF_MAX_LEN: usize = 9;

// Error codes (`ER_*`) and their SQL states, for the agent's own ERRs.

/// `ER_TABLEACCESS_DENIED_ERROR`, SQL state 42000: the code for a
/// statement refused by policy.
pub const ER_TABLEACCESS_DENIED_ERROR: u16 = 1142;
/// `ER_DBACCESS_DENIED_ERROR`, SQL state 42000: database not allowed.
pub const ER_DBACCESS_DENIED_ERROR: u16 = 1044;
/// `ER_ACCESS_DENIED_ERROR`, SQL state 28000.
pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// `ER_HANDSHAKE_ERROR`, SQL state 08S01.
pub const ER_HANDSHAKE_ERROR: u16 = 1043;
/// `ER_UNKNOWN_COM_ERROR`, SQL state 08S01: command not supported.
pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;
/// `ER_NOT_ALLOWED_COMMAND`, SQL state 42000: what servers answer to
/// `LOAD DATA LOCAL` when it is disabled.
pub const ER_NOT_ALLOWED_COMMAND: u16 = 1148;
/// `ER_NET_PACKET_TOO_LARGE`, SQL state 08S01.
pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`, SQL state 42000.
pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;
/// `ER_OPTION_PREVENTS_STATEMENT`, SQL state HY000: e.g. read-only.
pub const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
/// MariaDB progress report (only with `MARIADB_CLIENT_PROGRESS`).
pub const PROGRESS_REPORT_CODE: u16 = 0xFFFF;

/// An OK packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    /// Server status flags (`SERVER_*`).
    pub status: u16,
    pub warnings: u16,
    /// Human-readable information (`Rows matched: 1 Changed: 1 ...`).
    pub info: Bytes,
    /// With [`CLIENT_SESSION_TRACK`] and [`SERVER_SESSION_STATE_CHANGED`]:
    /// the session state changes, as sent (see
    /// [`OkPacket::session_changes`]).
    pub session_state: Option<Bytes>,
}

impl OkPacket {
    const WHAT: &'static str = "OK packet";

    /// Decodes an OK packet with either header (0x00, or 0xFE ending a
    /// result set); `capabilities` are the negotiated ones.
    pub fn decode(payload: &Bytes, capabilities: u64) -> Result<Self, DecodeError> {
        match payload.first() {
            Some(&(OK_HEADER | EOF_HEADER)) => {}
            Some(&header) => {
                return Err(DecodeError::Unexpected {
                    what: Self::WHAT,
                    header,
                });
            }
            None => return Err(Reader::new(payload, Self::WHAT).invalid("empty payload")),
        }
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let affected_rows = r.lenenc()?;
        let last_insert_id = r.lenenc()?;
        let (mut status, mut warnings) = (0, 0);
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            status = r.u16()?;
            warnings = r.u16()?;
        } else if capabilities & CLIENT_TRANSACTIONS != 0 {
            status = r.u16()?;
        }
        let mut info = Bytes::new();
        let mut session_state = None;
        if capabilities & CLIENT_SESSION_TRACK != 0 {
            // Servers leave out an empty info string when no state follows.
            if !r.is_empty() {
                info = share(payload, r.lenenc_range()?);
            }
            if status & SERVER_SESSION_STATE_CHANGED != 0 && !r.is_empty() {
                session_state = Some(share(payload, r.lenenc_range()?));
            }
        } else {
            info = share(payload, r.rest_range());
        }
        r.finish()?;
        Ok(OkPacket {
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info,
            session_state,
        })
    }

    /// Encodes an OK packet with the 0x00 header.
    pub fn encode(&self, capabilities: u64, out: &mut impl BufMut) -> Result<(), EncodeError> {
        self.encode_with(OK_HEADER, capabilities, out)
    }

    /// Encodes the OK packet that ends a result set under
    /// [`CLIENT_DEPRECATE_EOF`] (0xFE header).
    pub fn encode_as_eof(
        &self,
        capabilities: u64,
        out: &mut impl BufMut,
    ) -> Result<(), EncodeError> {
        self.encode_with(EOF_HEADER, capabilities, out)
    }

    fn encode_with(&self, header: u8, caps: u64, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let track = caps & CLIENT_SESSION_TRACK != 0;
        if self.session_state.is_some()
            && !(track && self.status & SERVER_SESSION_STATE_CHANGED != 0)
        {
            return Err(EncodeError::Invalid {
                field: "session state",
                reason: "needs CLIENT_SESSION_TRACK and SERVER_SESSION_STATE_CHANGED",
            });
        }
        out.put_u8(header);
        put_lenenc_int(out, self.affected_rows);
        put_lenenc_int(out, self.last_insert_id);
        if caps & CLIENT_PROTOCOL_41 != 0 {
            out.put_u16_le(self.status);
            out.put_u16_le(self.warnings);
        } else if caps & CLIENT_TRANSACTIONS != 0 {
            out.put_u16_le(self.status);
        }
        if !track {
            out.put_slice(&self.info);
        } else if !self.info.is_empty() || self.session_state.is_some() {
            put_lenenc_str(out, &self.info);
            if let Some(state) = &self.session_state {
                put_lenenc_str(out, state);
            }
        }
        Ok(())
    }

    /// The session state changes: (type, data) pairs, `SESSION_TRACK_*`
    /// types. Empty when there are none.
    pub fn session_changes(&self) -> Result<Vec<(u8, Bytes)>, DecodeError> {
        let Some(state) = &self.session_state else {
            return Ok(Vec::new());
        };
        let mut r = Reader::new(state, "session state");
        let mut changes = Vec::new();
        while !r.is_empty() {
            let kind = r.u8()?;
            changes.push((kind, share(state, r.lenenc_range()?)));
        }
        Ok(changes)
    }

    /// The new current database if the session state says it changed.
    pub fn schema_change(&self) -> Result<Option<Bytes>, DecodeError> {
        for (kind, data) in self.session_changes()? {
            if kind == SESSION_TRACK_SCHEMA {
                let mut r = Reader::new(&data, "session state");
                let name = r.lenenc_range()?;
                return Ok(Some(share(&data, name)));
            }
        }
        Ok(None)
    }
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    /// Error code (`ER_*`).
    pub code: u16,
    /// Five-character SQL state, absent in errors sent before the
    /// handshake agreed on protocol 4.1.
    pub sql_state: Option<[u8; 5]>,
    pub message: Bytes,
}

impl ErrPacket {
    const WHAT: &'static str = "ERR packet";

    /// An error as the agent sends it, e.g.
    /// `ErrPacket::new(ER_TABLEACCESS_DENIED_ERROR, "42000", "...")`. A
    /// state that is not 5 bytes is replaced by `HY000` (general error).
    pub fn new(code: u16, sql_state: &str, message: &str) -> Self {
        let state = <[u8; 5]>::try_from(sql_state.as_bytes()).unwrap_or(*b"HY000");
        ErrPacket {
            code,
            sql_state: Some(state),
            message: Bytes::copy_from_slice(message.as_bytes()),
        }
    }

    /// Decodes an ERR packet. The SQL state is read when its `#` marker is
    /// there, whatever the capabilities, as clients do.
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        super::wire::expect_header(payload, ERR_HEADER, Self::WHAT)?;
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let code = r.u16()?;
        let mut sql_state = None;
        if r.peek() == Some(b'#') && r.remaining() >= 6 {
            let bytes = r.take(6)?;
            sql_state = <[u8; 5]>::try_from(&bytes[1..]).ok();
        }
        let message = share(payload, r.rest_range());
        Ok(ErrPacket {
            code,
            sql_state,
            message,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        if self.sql_state.is_none() && self.message.first() == Some(&b'#') {
            return Err(EncodeError::Invalid {
                field: "error message",
                reason: "starts with '#', which would be read as a SQL state",
            });
        }
        out.put_u8(ERR_HEADER);
        out.put_u16_le(self.code);
        if let Some(state) = &self.sql_state {
            out.put_u8(b'#');
            out.put_slice(state);
        }
        out.put_slice(&self.message);
        Ok(())
    }

    /// The SQL state as text (`HY000` when absent).
    pub fn sql_state_str(&self) -> Cow<'_, str> {
        match &self.sql_state {
            Some(state) => String::from_utf8_lossy(state),
            None => Cow::Borrowed("HY000"),
        }
    }

    /// The message as text, invalid UTF-8 replaced.
    pub fn message_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }
}

/// A legacy EOF packet (without [`CLIENT_DEPRECATE_EOF`]): after column
/// definitions and at the end of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EofPacket {
    pub warnings: u16,
    /// Server status flags (`SERVER_*`).
    pub status: u16,
}

impl EofPacket {
    const WHAT: &'static str = "EOF packet";

    pub fn decode(payload: &[u8], capabilities: u64) -> Result<Self, DecodeError> {
        super::wire::expect_header(payload, EOF_HEADER, Self::WHAT)?;
        let mut r = Reader::new(payload, Self::WHAT);
        if payload.len() >= EOF_MAX_LEN {
            return Err(r.invalid("9 bytes or longer"));
        }
        r.u8()?;
        let mut eof = EofPacket::default();
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            eof.warnings = r.u16()?;
            eof.status = r.u16()?;
        }
        r.finish()?;
        Ok(eof)
    }

    pub fn encode(&self, capabilities: u64, out: &mut impl BufMut) {
        out.put_u8(EOF_HEADER);
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            out.put_u16_le(self.warnings);
            out.put_u16_le(self.status);
        }
    }

    /// Decodes the packet that ends rows (see [`classify_row_packet`]):
    /// an OK packet under [`CLIENT_DEPRECATE_EOF`], an EOF packet
    /// otherwise. Either way what matters is the status (more results, a
    /// cursor) and the warning count.
    pub fn decode_terminator(payload: &Bytes, capabilities: u64) -> Result<Self, DecodeError> {
        if capabilities & CLIENT_DEPRECATE_EOF != 0 {
            let ok = OkPacket::decode(payload, capabilities)?;
            Ok(EofPacket {
                warnings: ok.warnings,
                status: ok.status,
            })
        } else {
            EofPacket::decode(payload, capabilities)
        }
    }
}

/// Whether a payload is a legacy EOF packet: 0xFE and shorter than 9
/// bytes.
pub fn is_eof_packet(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF_HEADER) && payload.len() < EOF_MAX_LEN
}

/// What a packet in the rows part of a result set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPacketKind {
    /// A text or binary row.
    Row,
    /// The end of the rows: EOF, or OK with a 0xFE header.
    End,
    /// An error ended the result set early.
    Err,
}

/// Tells rows from their terminator, in text and binary result sets and
/// with or without [`CLIENT_DEPRECATE_EOF`]: 0xFF is an error (no row
/// starts with it), 0xFE on a payload shorter than 16 MiB is the end
/// (a text row starting with 0xFE announces a 16 MiB value; a binary row
/// starts with 0x00), anything else a row.
pub fn classify_row_packet(payload: &[u8]) -> RowPacketKind {
    match payload.first() {
        Some(&ERR_HEADER) => RowPacketKind::Err,
        Some(&EOF_HEADER) if payload.len() < MAX_CHUNK_LEN => RowPacketKind::End,
        _ => RowPacketKind::Row,
    }
}
