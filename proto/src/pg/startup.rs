//! Startup family, frontend → backend, untagged: StartupMessage,
//! SSLRequest, GSSENCRequest and CancelRequest. Each is `len: i32`
//! (counting itself), `code: i32`, then a body that depends on the code.

use std::collections::HashSet;

use bytes::BufMut;

use super::wire::{Reader, cstr_len, put_cstr, sum};
use super::{DecodeError, EncodeError, MAX_STARTUP_LEN, STARTUP_TAG};

/// Major protocol version spoken here.
pub const PROTOCOL_MAJOR: u16 = 3;
/// Newest minor version this codec understands (3.2 lengthened the cancel
/// key; nothing else in these messages changed).
pub const PROTOCOL_MINOR_LATEST: u16 = 2;

const SPECIAL_MAJOR: u16 = 1234;
const CANCEL_MINOR: u16 = 5678;
const SSL_MINOR: u16 = 5679;
const GSSENC_MINOR: u16 = 5680;

/// Shortest cancel key: protocol 3.0 uses exactly 4 bytes.
pub const MIN_CANCEL_KEY_LEN: usize = 4;
/// Longest cancel key: protocol 3.2 allows up to 256 bytes.
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// Asks for TLS; answer with a single byte,
    /// [`super::ENCRYPTION_ACCEPTED`] or [`super::ENCRYPTION_REFUSED`].
    SslRequest,
    /// Asks for GSSAPI encryption; answered like `SslRequest`.
    GssEncRequest,
    /// Cancels the query running on another connection. Sent on a fresh
    /// connection that is closed right after.
    Cancel {
        process_id: i32,
        /// 4 bytes in protocol 3.0, up to 256 in 3.2.
        secret_key: Vec<u8>,
    },
    /// Opens a session.
    Startup(Startup),
}

/// A StartupMessage: protocol version and session parameters (`user`,
/// `database`, `application_name`, `options`, `_pq_.*` extensions, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// Always [`PROTOCOL_MAJOR`] once decoded.
    pub major: u16,
    /// May be newer than [`PROTOCOL_MINOR_LATEST`]: the server then answers
    /// with NegotiateProtocolVersion.
    pub minor: u16,
    /// In the order sent; names are unique and never empty.
    pub params: Vec<(String, String)>,
}

impl Startup {
    /// A 3.0 startup message with these parameters.
    pub fn new(params: Vec<(String, String)>) -> Self {
        Startup {
            major: PROTOCOL_MAJOR,
            minor: 0,
            params,
        }
    }

    /// The value of parameter `name`, e.g. `param("user")`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Encodes with this message's own version.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_startup_version(self.major, self.minor, &self.params, out)
    }
}

impl StartupPacket {
    /// Decodes a whole packet, length word included, as
    /// [`super::split_startup`] returns it.
    ///
    /// Rejects a length word that disagrees with `packet.len()`, strings
    /// without a NUL or not UTF-8, a missing final terminator or bytes after
    /// it, empty and duplicate parameter names (a gateway that reads the
    /// first `user` while the server honours the last would be fooled), and
    /// protocol majors other than 3 ([`DecodeError::UnsupportedProtocol`]).
    pub fn decode(packet: &[u8]) -> Result<StartupPacket, DecodeError> {
        let invalid = |reason| DecodeError::Invalid {
            tag: STARTUP_TAG,
            reason,
        };
        if packet.len() > MAX_STARTUP_LEN {
            return Err(DecodeError::TooLong {
                tag: STARTUP_TAG,
                len: packet.len(),
                max: MAX_STARTUP_LEN,
            });
        }
        let mut r = Reader::new(packet, 0, STARTUP_TAG);
        let len = r
            .u32()
            .map_err(|_| invalid("startup packet shorter than 8 bytes"))?;
        if len as usize != packet.len() {
            return Err(invalid("length word does not match the packet size"));
        }
        let code = r
            .u32()
            .map_err(|_| invalid("startup packet shorter than 8 bytes"))?;
        let (major, minor) = ((code >> 16) as u16, code as u16);
        match (major, minor) {
            (SPECIAL_MAJOR, SSL_MINOR) => r.finish().map(|_| StartupPacket::SslRequest),
            (SPECIAL_MAJOR, GSSENC_MINOR) => r.finish().map(|_| StartupPacket::GssEncRequest),
            (SPECIAL_MAJOR, CANCEL_MINOR) => {
                let process_id = r.i32()?;
                let key = r.rest();
                if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
                    return Err(invalid("cancel key not between 4 and 256 bytes"));
                }
                Ok(StartupPacket::Cancel {
                    process_id,
                    secret_key: key.to_vec(),
                })
            }
            (PROTOCOL_MAJOR, minor) => decode_params(&mut r).map(|params| {
                StartupPacket::Startup(Startup {
                    major,
                    minor,
                    params,
                })
            }),
            (major, minor) => Err(DecodeError::UnsupportedProtocol { major, minor }),
        }
    }

    /// Encodes the packet, length word included.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        match self {
            StartupPacket::SslRequest => encode_ssl_request(out),
            StartupPacket::GssEncRequest => encode_special(GSSENC_MINOR, out),
            StartupPacket::Cancel {
                process_id,
                secret_key,
            } => return encode_cancel(*process_id, secret_key, out),
            StartupPacket::Startup(s) => return s.encode(out),
        }
        Ok(())
    }
}

fn decode_params(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, DecodeError> {
    let mut params = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let name = r.cstr()?;
        if name.is_empty() {
            r.finish()?;
            return Ok(params);
        }
        let value = r.cstr()?;
        if !seen.insert(name) {
            return Err(r.invalid("duplicate startup parameter"));
        }
        params.push((name.to_owned(), value.to_owned()));
    }
}

/// Encodes a protocol 3.0 StartupMessage with `params`, in order.
pub fn encode_startup<K: AsRef<str>, V: AsRef<str>>(
    params: &[(K, V)],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    encode_startup_version(PROTOCOL_MAJOR, 0, params, out)
}

/// Encodes a StartupMessage asking for protocol `major.minor`.
pub fn encode_startup_version<K: AsRef<str>, V: AsRef<str>>(
    major: u16,
    minor: u16,
    params: &[(K, V)],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let mut parts = Vec::with_capacity(params.len());
    for (k, v) in params {
        let (k, v) = (k.as_ref().as_bytes(), v.as_ref().as_bytes());
        if k.is_empty() {
            return Err(EncodeError::Invalid {
                field: "startup parameter name",
                reason: "empty",
            });
        }
        parts.push(cstr_len(k, "startup parameter name")? + cstr_len(v, "startup parameter")?);
    }
    // Length word, version, parameters, final terminator.
    let len = sum(parts).saturating_add(9);
    if len > MAX_STARTUP_LEN {
        return Err(EncodeError::TooLong {
            len,
            max: MAX_STARTUP_LEN,
        });
    }
    // Cannot truncate: MAX_STARTUP_LEN fits in u32.
    out.put_u32(len as u32);
    out.put_u16(major);
    out.put_u16(minor);
    for (k, v) in params {
        put_cstr(out, k.as_ref().as_bytes());
        put_cstr(out, v.as_ref().as_bytes());
    }
    out.put_u8(0);
    Ok(())
}

/// Encodes an SSLRequest.
pub fn encode_ssl_request(out: &mut impl BufMut) {
    encode_special(SSL_MINOR, out);
}

/// Encodes a GSSENCRequest.
pub fn encode_gssenc_request(out: &mut impl BufMut) {
    encode_special(GSSENC_MINOR, out);
}

fn encode_special(minor: u16, out: &mut impl BufMut) {
    out.put_u32(8);
    out.put_u16(SPECIAL_MAJOR);
    out.put_u16(minor);
}

/// Encodes a CancelRequest. `secret_key` must be 4 to 256 bytes.
pub fn encode_cancel(
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
    // Cannot truncate: at most 12 + 256.
    out.put_u32(12 + secret_key.len() as u32);
    out.put_u16(SPECIAL_MAJOR);
    out.put_u16(CANCEL_MINOR);
    out.put_i32(process_id);
    out.put_slice(secret_key);
    Ok(())
}
