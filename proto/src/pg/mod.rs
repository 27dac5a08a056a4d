//! PostgreSQL frontend/backend protocol, version 3.0 (and the parts of 3.2
//! that change field sizes), as codecs without I/O.
//!
//! The caller owns the sockets. It cuts messages out of its read buffer with
//! [`split_startup`] (the first, untagged packet) and [`split_message`]
//! (everything after), then decodes only what it needs to look at: a
//! [`RawMessage`] it does not touch is forwarded as the same bytes, without
//! a copy. Decoders are bounds-checked, never panic, and check every
//! announced length or count against the bytes actually present before
//! allocating for it.
//!
//! Message families live one per file: [`startup`], [`auth`] (both
//! directions of the authentication exchange) and [`scram`], then
//! [`frontend`] (client → server) and [`backend`] (server → client), each
//! with its own [`frontend::Tag`] / [`backend::Tag`] since the same byte
//! means different messages in each direction (`C` is Close and
//! CommandComplete).
//!
//! Strings are decoded as UTF-8 and a message whose strings are not is
//! [`DecodeError::Invalid`]: the gateway audits and matches SQL text, and
//! text it cannot read is refused rather than guessed at. Connections should
//! run with `client_encoding=UTF8`.

pub mod auth;
pub mod backend;
pub mod frame;
pub mod frontend;
pub mod scram;
pub mod startup;
mod wire;

#[cfg(test)]
mod tests;

pub use auth::{Authentication, md5_password};
pub use backend::BackendMessage;
pub use frame::{RawMessage, check_header, peek_header, split_message, split_startup};
pub use frontend::FrontendMessage;
pub use scram::{ChannelBinding, ScramClient, ScramError, tls_server_end_point_hash};
pub use startup::{Startup, StartupPacket};

/// Largest startup packet accepted, in bytes including its length word.
/// PostgreSQL's own `MAX_STARTUP_PACKET_LENGTH`.
pub const MAX_STARTUP_LEN: usize = 10_000;

/// Largest message accepted before authentication has completed (password,
/// SASL and authentication request messages), in bytes counted as the
/// length word counts them (body plus the 4 length bytes).
pub const MAX_PRE_AUTH_MESSAGE_LEN: usize = 8 * 1024;

/// Largest message accepted at all: PostgreSQL's `MaxAllocSize`, the most a
/// server will ever build or read. Counted like [`MAX_PRE_AUTH_MESSAGE_LEN`].
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// Answer to `SSLRequest` / `GSSENCRequest` that accepts: a single byte,
/// not a framed message.
pub const ENCRYPTION_ACCEPTED: u8 = b'S';

/// Answer to `SSLRequest` / `GSSENCRequest` that refuses: a single byte,
/// not a framed message. The client then continues in plain text (or gives
/// up, if it insisted on encryption).
pub const ENCRYPTION_REFUSED: u8 = b'N';

/// `tag` value used in errors about the untagged startup packet.
pub const STARTUP_TAG: u8 = 0;

/// Why bytes could not be decoded. "Need more bytes" is not an error: the
/// framing functions return `Ok(None)` for it.
///
/// `tag` is the message type byte, or [`STARTUP_TAG`] for a startup packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header announces more than the caller's limit. Raised as soon as
    /// the header is seen, before anything is reserved for the body.
    #[error("{} announces {len} bytes, more than the {max}-byte limit", tag_name(*.tag))]
    TooLong { tag: u8, len: usize, max: usize },
    /// The bytes do not form a valid message of this type.
    #[error("malformed {}: {reason}", tag_name(*.tag))]
    Invalid { tag: u8, reason: &'static str },
    /// A type byte that does not exist in this direction, or is not the one
    /// the decoder was given.
    #[error("unexpected {}", tag_name(*.0))]
    UnexpectedTag(u8),
    /// A startup packet asking for a protocol this codec does not speak
    /// (anything but major version 3). Minor versions of 3 are accepted by
    /// the decoder and reported, so the caller can answer with
    /// NegotiateProtocolVersion.
    #[error("unsupported frontend protocol {major}.{minor}: hoop speaks 3.0 to 3.2")]
    UnsupportedProtocol { major: u16, minor: u16 },
}

/// Why a message could not be encoded. Encoders refuse rather than emit a
/// message the peer would read differently (an interior NUL would end a
/// string early and let the rest be read as further fields).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string field contains a NUL byte, which the protocol cannot carry.
    #[error("{field} contains a NUL byte")]
    Nul { field: &'static str },
    /// The message would be longer than [`MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    /// A list is longer than its count field can express.
    #[error("too many {what}: {count}, at most {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// A field value the protocol does not allow, e.g. a 3-byte cancel key.
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

/// How error messages name the message with type byte `tag`.
fn tag_name(tag: u8) -> String {
    if tag == STARTUP_TAG {
        "startup packet".to_owned()
    } else if tag.is_ascii_graphic() {
        format!("message '{}'", tag as char)
    } else {
        format!("message 0x{tag:02x}")
    }
}

/// Wire format of a column or parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Format code 0.
    Text,
    /// Format code 1.
    Binary,
}

impl Format {
    /// Decodes a format code; PostgreSQL knows only 0 and 1.
    pub fn from_code(code: i16) -> Option<Format> {
        match code {
            0 => Some(Format::Text),
            1 => Some(Format::Binary),
            _ => None,
        }
    }

    /// The format code on the wire.
    pub fn code(self) -> i16 {
        match self {
            Format::Text => 0,
            Format::Binary => 1,
        }
    }

    /// The format of value `index` given a Bind/FunctionCall list of format
    /// codes: no codes means all text, one code applies to every value,
    /// otherwise one code per value. `None` for an index outside the list or
    /// an unknown code.
    pub fn for_index(codes: &[i16], index: usize) -> Option<Format> {
        match codes {
            [] => Some(Format::Text),
            [one] => Format::from_code(*one),
            many => many.get(index).copied().and_then(Format::from_code),
        }
    }
}
