//! ErrorResponse (`E`) and NoticeResponse (`N`), backend → frontend: the
//! same list of fields, each a code byte and a string, kept in the order
//! sent so a modified list re-encodes faithfully.

use bytes::BufMut;

use crate::pg::wire::{Reader, cstr_len, put_cstr, put_header, sum};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// Field codes (protocol "Error and Notice Message Fields").
pub mod field {
    /// Localized severity: `ERROR`, `FATAL`, `PANIC`, `WARNING`, `NOTICE`,
    /// `DEBUG`, `INFO`, `LOG`, or a translation.
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (PostgreSQL 9.6 and later).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const CODE: u8 = b'C';
    pub const MESSAGE: u8 = b'M';
    pub const DETAIL: u8 = b'D';
    pub const HINT: u8 = b'H';
    /// 1-based character position in the query string.
    pub const POSITION: u8 = b'P';
    pub const INTERNAL_POSITION: u8 = b'p';
    pub const INTERNAL_QUERY: u8 = b'q';
    pub const WHERE: u8 = b'W';
    pub const SCHEMA: u8 = b's';
    pub const TABLE: u8 = b't';
    pub const COLUMN: u8 = b'c';
    pub const DATA_TYPE: u8 = b'd';
    pub const CONSTRAINT: u8 = b'n';
    pub const FILE: u8 = b'F';
    pub const LINE: u8 = b'L';
    pub const ROUTINE: u8 = b'R';
}

/// Severities a message can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Fatal,
    Panic,
    Warning,
    Notice,
    Debug,
    Info,
    Log,
}

impl Severity {
    /// The non-localized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Panic => "PANIC",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Log => "LOG",
        }
    }

    /// Parses a non-localized name.
    pub fn parse(name: &str) -> Option<Severity> {
        Some(match name {
            "ERROR" => Severity::Error,
            "FATAL" => Severity::Fatal,
            "PANIC" => Severity::Panic,
            "WARNING" => Severity::Warning,
            "NOTICE" => Severity::Notice,
            "DEBUG" => Severity::Debug,
            "INFO" => Severity::Info,
            "LOG" => Severity::Log,
            _ => return None,
        })
    }
}

/// The fields of an ErrorResponse or NoticeResponse, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorFields {
    /// (field code, value); see [`field`]. Codes are never 0.
    pub fields: Vec<(u8, String)>,
}

impl ErrorFields {
    /// Decodes an `E` or `N` message (either tag is accepted; the caller
    /// knows which it had).
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        if msg.tag != b'E' && msg.tag != b'N' {
            return Err(DecodeError::UnexpectedTag(msg.tag));
        }
        let mut r = Reader::body(msg, msg.tag)?;
        let mut fields = Vec::new();
        loop {
            let code = r.u8()?;
            if code == 0 {
                break;
            }
            fields.push((code, r.cstr()?.to_owned()));
        }
        r.finish()?;
        Ok(ErrorFields { fields })
    }

    /// The first field with `code`.
    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the first field with `code` in place, or appends one.
    pub fn set(&mut self, code: u8, value: impl Into<String>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => *v = value,
            None => self.fields.push((code, value)),
        }
    }

    /// Removes every field with `code`.
    pub fn remove(&mut self, code: u8) {
        self.fields.retain(|(c, _)| *c != code);
    }

    /// The severity, non-localized when the server sent it so.
    pub fn severity(&self) -> Option<&str> {
        self.get(field::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(field::SEVERITY))
    }

    /// The SQLSTATE code.
    pub fn code(&self) -> Option<&str> {
        self.get(field::CODE)
    }

    pub fn message(&self) -> Option<&str> {
        self.get(field::MESSAGE)
    }

    pub fn detail(&self) -> Option<&str> {
        self.get(field::DETAIL)
    }

    pub fn hint(&self) -> Option<&str> {
        self.get(field::HINT)
    }

    /// Encodes the fields as an ErrorResponse.
    pub fn encode_error(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        self.encode_with_tag(b'E', out)
    }

    /// Encodes the fields as a NoticeResponse.
    pub fn encode_notice(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        self.encode_with_tag(b'N', out)
    }

    fn encode_with_tag(&self, tag: u8, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let mut lens = Vec::with_capacity(self.fields.len());
        for (code, value) in &self.fields {
            if *code == 0 {
                return Err(EncodeError::Invalid {
                    field: "error field code",
                    reason: "0 ends the field list",
                });
            }
            lens.push(1 + cstr_len(value.as_bytes(), "error field")?);
        }
        put_header(out, tag, sum(lens).saturating_add(1))?;
        for (code, value) in &self.fields {
            out.put_u8(*code);
            put_cstr(out, value.as_bytes());
        }
        out.put_u8(0);
        Ok(())
    }

    /// The fields PostgreSQL always sends: severity (localized and not),
    /// SQLSTATE and message, then the detail if any.
    pub fn new(severity: Severity, sqlstate: &str, message: &str, detail: Option<&str>) -> Self {
        let mut fields = vec![
            (field::SEVERITY, severity.as_str().to_owned()),
            (field::SEVERITY_NONLOCALIZED, severity.as_str().to_owned()),
            (field::CODE, sqlstate.to_owned()),
            (field::MESSAGE, message.to_owned()),
        ];
        if let Some(detail) = detail {
            fields.push((field::DETAIL, detail.to_owned()));
        }
        ErrorFields { fields }
    }
}

fn check_sqlstate(sqlstate: &str) -> Result<(), EncodeError> {
    let valid = sqlstate.len() == 5
        && sqlstate
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !valid {
        return Err(EncodeError::Invalid {
            field: "SQLSTATE",
            reason: "not 5 upper-case letters or digits",
        });
    }
    Ok(())
}

/// Encodes an ErrorResponse, e.g. `(Severity::Error, "42501", "permission
/// denied for table t", None)`. `sqlstate` must be 5 upper-case letters or
/// digits.
pub fn encode_error(
    severity: Severity,
    sqlstate: &str,
    message: &str,
    detail: Option<&str>,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    check_sqlstate(sqlstate)?;
    ErrorFields::new(severity, sqlstate, message, detail).encode_error(out)
}

/// Encodes a NoticeResponse; see [`encode_error`].
pub fn encode_notice(
    severity: Severity,
    sqlstate: &str,
    message: &str,
    detail: Option<&str>,
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    check_sqlstate(sqlstate)?;
    ErrorFields::new(severity, sqlstate, message, detail).encode_notice(out)
}
