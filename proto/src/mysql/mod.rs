//! MySQL and MariaDB client/server protocol (protocol 4.1, handshake v10)
//! as codecs without I/O.
//!
//! The caller owns the sockets. It cuts logical packets out of its read
//! buffer with [`split_packet`], which joins 16 MiB continuation packets
//! and caps the total before anything is reserved, then decodes only what
//! it needs to look at: a [`Packet`] it does not touch is forwarded as its
//! [`Packet::raw`] bytes, without a copy.
//!
//! Every decoder reads a packet's *payload* (without the 4-byte header);
//! every encoder writes a payload, which [`write_packet`] or
//! [`encode_packet`] frames with a sequence id. MySQL does not say what a
//! packet is: that follows from where the conversation is, so the caller
//! picks the decoder (a 0xFE first byte is an auth switch during login, an
//! EOF or a closing OK among rows, see [`classify_row_packet`]).
//!
//! Families, one per file: [`handshake`] (the server's greeting, SSLRequest
//! and the client's HandshakeResponse41), [`auth`] (auth switch and more
//! data) and [`scramble`] (password proofs), [`response`] (OK, ERR, EOF),
//! [`command`] and [`stmt`] (client commands, prepared statements),
//! [`result`] (what answers a query), [`column`](mod@column) (column
//! definitions and types) and [`row`] (text and binary rows). Flags and
//! character sets are in [`flags`].
//!
//! Names, SQL and values are kept as bytes: their character set is the
//! connection's (`character_set_client` / `_results`), not necessarily
//! UTF-8, and a dump restored through the gateway may carry binary string
//! literals. Plugin names and the server version are ASCII and decoded as
//! UTF-8 strings.
//!
//! Not covered: the compressed protocol (`CLIENT_COMPRESS`, zstd), the
//! pre-4.1 protocol and old passwords, replication commands beyond
//! recognising them, MariaDB's bulk execute and metadata caching beyond the
//! `metadata follows` byte. A connector should not offer capabilities this
//! module does not decode.

pub mod auth;
pub mod column;
pub mod command;
pub mod flags;
pub mod frame;
pub mod handshake;
pub mod response;
pub mod result;
pub mod row;
pub mod scramble;
pub mod stmt;
mod wire;

#[cfg(test)]
mod tests;

pub use auth::{AuthMoreData, AuthPacket, AuthSwitchRequest};
pub use column::{ColumnDefinition, is_text_like};
pub use command::Command;
pub use frame::{
    Header, Packet, check_header, encode_packet, peek_header, split_packet, write_packet,
};
pub use handshake::{HandshakeResponse, InitialHandshake, SslRequest, is_ssl_request};
pub use response::{
    EofPacket, ErrPacket, OkPacket, RowPacketKind, classify_row_packet, is_eof_packet,
};
pub use result::{LocalInfileRequest, QueryResponse, ResultSetHeader};
pub use row::{
    BinaryRow, TextRow, encode_binary_row, encode_text_row, put_text_value, text_row_ranges,
};
pub use stmt::{ExecuteParams, StmtExecute, StmtPrepareOk};
pub use wire::{
    LENENC_NULL, decode_lenenc_int, decode_lenenc_str, encode_lenenc_int, encode_lenenc_str,
};

/// Largest payload of one physical packet: a payload of exactly this size
/// says that the logical packet continues in the next one.
pub const MAX_CHUNK_LEN: usize = 0xFF_FFFF;

/// Bytes before each physical packet's payload: 3-byte length, sequence id.
pub const HEADER_LEN: usize = 4;

/// Largest logical packet accepted before authentication has completed, in
/// payload bytes. A HandshakeResponse41 carries at most 64 KiB of connect
/// attributes (the server's own limit) plus a user name, auth data and a
/// database name; an auth exchange carries at most an RSA public key.
pub const MAX_PRE_AUTH_PACKET_LEN: usize = 128 * 1024;

/// Largest logical packet accepted at all, in payload bytes: the largest
/// `max_allowed_packet` either server allows (1 GiB).
pub const MAX_PACKET_LEN: usize = 1 << 30;

/// Why bytes could not be decoded. "Need more bytes" is not an error: the
/// framing functions return `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The headers announce a logical packet longer than the caller's
    /// limit. Raised as soon as a header is seen, before anything is
    /// reserved for the payload.
    #[error("packet announces {len} bytes, more than the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    /// The bytes do not form a valid `what`.
    #[error("malformed {what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
    /// A packet whose first byte says it is not a `what`, e.g. an ERR
    /// packet where a handshake was expected.
    #[error("expected {what}, got a packet starting with 0x{header:02x}")]
    Unexpected { what: &'static str, header: u8 },
    /// A valid packet using a protocol feature this codec does not speak
    /// (protocol v9, pre-4.1 clients, old password auth).
    #[error("unsupported {what}: {reason}")]
    Unsupported {
        what: &'static str,
        reason: &'static str,
    },
}

/// Why a payload could not be encoded. Encoders refuse rather than emit
/// bytes the peer would read differently (a NUL inside a NUL-terminated
/// string ends it early and turns the rest into further fields).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A NUL-terminated field contains a NUL byte.
    #[error("{field} contains a NUL byte")]
    Nul { field: &'static str },
    /// A field or the whole packet is longer than its length can express
    /// or than [`MAX_PACKET_LEN`].
    #[error("{field} of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A field value the protocol does not allow with the others, e.g. a
    /// fixed-size column value of the wrong size.
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}
