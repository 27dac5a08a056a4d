//! Session status, backend → frontend: ParameterStatus (`S`),
//! BackendKeyData (`K`), ReadyForQuery (`Z`) and NegotiateProtocolVersion
//! (`v`).

use bytes::BufMut;

use crate::pg::startup::{MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN, PROTOCOL_MAJOR};
use crate::pg::wire::{Reader, cstr_len, put_cstr, put_header, sum};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// A run-time parameter's current value (`server_version`,
/// `client_encoding`, `TimeZone`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterStatus {
    pub name: String,
    pub value: String,
}

impl ParameterStatus {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'S')?;
        let name = r.cstr()?.to_owned();
        let value = r.cstr()?.to_owned();
        r.finish()?;
        Ok(ParameterStatus { name, value })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_parameter_status(&self.name, &self.value, out)
    }
}

/// Encodes a ParameterStatus message.
pub fn encode_parameter_status(
    name: &str,
    value: &str,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let len = cstr_len(name.as_bytes(), "parameter name")?
        + cstr_len(value.as_bytes(), "parameter value")?;
    put_header(out, b'S', len)?;
    put_cstr(out, name.as_bytes());
    put_cstr(out, value.as_bytes());
    Ok(())
}

/// The process id and secret key a client needs to cancel its queries.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendKeyData {
    pub process_id: i32,
    /// 4 bytes in protocol 3.0, up to 256 in 3.2.
    pub secret_key: Vec<u8>,
}

impl std::fmt::Debug for BackendKeyData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendKeyData")
            .field("process_id", &self.process_id)
            .field("secret_key", &"***")
            .finish()
    }
}

impl BackendKeyData {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'K')?;
        let process_id = r.i32()?;
        let key = r.rest();
        if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
            return Err(r.invalid("cancel key not between 4 and 256 bytes"));
        }
        Ok(BackendKeyData {
            process_id,
            secret_key: key.to_vec(),
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_backend_key_data(self.process_id, &self.secret_key, out)
    }
}

/// Encodes a BackendKeyData message; `secret_key` must be 4 to 256 bytes.
pub fn encode_backend_key_data(
    process_id: i32,
    secret_key: &[u8],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&secret_key.len()) {
        return Err(EncodeError::Invalid {
            field: "cancel key",
            reason: "not between 4 and 256 bytes",
        });
    }
    put_header(out, b'K', 4 + secret_key.len())?;
    out.put_i32(process_id);
    out.put_slice(secret_key);
    Ok(())
}

/// Transaction state reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block; statements are refused until
    /// it ends.
    Failed,
}

impl TransactionStatus {
    /// The status byte.
    pub fn as_u8(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }

    /// Decodes a ReadyForQuery message.
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'Z')?;
        let status = match r.u8()? {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InTransaction,
            b'E' => TransactionStatus::Failed,
            _ => return Err(r.invalid("unknown transaction status")),
        };
        r.finish()?;
        Ok(status)
    }
}

/// Encodes a ReadyForQuery message.
pub fn encode_ready_for_query(status: TransactionStatus, out: &mut impl BufMut) {
    out.put_u8(b'Z');
    out.put_i32(5);
    out.put_u8(status.as_u8());
}

/// The server supports an older minor version than the client asked for,
/// or not all of its `_pq_.` protocol options.
///
/// The protocol documentation calls the first field the newest minor
/// version, but every PostgreSQL release sends a whole version word
/// (`3 << 16 | minor`, e.g. 196608 for 3.0) and libpq checks its major;
/// this codec does the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateProtocolVersion {
    /// Newest minor version of protocol 3 the server supports.
    pub newest_minor: u16,
    /// Protocol options (`_pq_.*`) the server did not recognise.
    pub unrecognized: Vec<String>,
}

impl NegotiateProtocolVersion {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'v')?;
        let version = r.u32()?;
        if version >> 16 != u32::from(PROTOCOL_MAJOR) {
            return Err(r.invalid("negotiated version is not protocol 3"));
        }
        // Cannot truncate: the low 16 bits.
        let newest_minor = version as u16;
        let n = r.count32(1)?;
        let unrecognized = (0..n)
            .map(|_| r.cstr().map(str::to_owned))
            .collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(NegotiateProtocolVersion {
            newest_minor,
            unrecognized,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_negotiate_protocol_version(self.newest_minor, &self.unrecognized, out)
    }
}

/// Encodes a NegotiateProtocolVersion message offering protocol
/// `3.newest_minor`, e.g. 0 to a client that asked for 3.2.
pub fn encode_negotiate_protocol_version<S: AsRef<str>>(
    newest_minor: u16,
    unrecognized: &[S],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let mut lens = Vec::with_capacity(unrecognized.len());
    for o in unrecognized {
        lens.push(cstr_len(o.as_ref().as_bytes(), "protocol option")?);
    }
    let count = i32::try_from(unrecognized.len()).map_err(|_| EncodeError::TooMany {
        what: "protocol options",
        count: unrecognized.len(),
        max: i32::MAX as usize,
    })?;
    put_header(out, b'v', sum(lens).saturating_add(8))?;
    out.put_u16(PROTOCOL_MAJOR);
    out.put_u16(newest_minor);
    out.put_i32(count);
    for o in unrecognized {
        put_cstr(out, o.as_ref().as_bytes());
    }
    Ok(())
}
