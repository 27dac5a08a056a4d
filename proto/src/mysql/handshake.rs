//! Connection phase, first packets: the server's initial handshake (v10),
//! the client's SSLRequest and its HandshakeResponse41.
//!
//! MariaDB announces itself with a server version starting `5.5.5-` and
//! by clearing [`CLIENT_MYSQL`]; both sides then carry MariaDB's extended
//! capabilities (the high 32 bits of the `u64` capability words here) in
//! bytes MySQL leaves reserved.

use bytes::{BufMut, Bytes};

use super::flags::{
    CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_MYSQL, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    CLIENT_SSL, CLIENT_ZSTD_COMPRESSION_ALGORITHM,
};
use super::wire::{
    Reader, cstr_len, expect_header, lenenc_str_len, put_cstr, put_lenenc_int, put_lenenc_str,
    share, sum,
};
use super::{DecodeError, EncodeError};

/// Protocol version byte of the handshake this codec speaks.
pub const PROTOCOL_VERSION: u8 = 10;

/// Prefix MariaDB puts before its real version, so that old MySQL clients
/// see a version they accept.
pub const MARIADB_VERSION_PREFIX: &str = "5.5.5-";

/// Length of an SSLRequest payload, and of the fixed part that starts
/// every HandshakeResponse41.
pub const SSL_REQUEST_LEN: usize = 32;

const FILLER_LEN: usize = 23;
const SERVER_RESERVED_LEN: usize = 10;
const AUTH_DATA_PART1_LEN: usize = 8;
const AUTH_DATA_PART2_MIN: usize = 13;

/// The server's first packet (Protocol::HandshakeV10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialHandshake {
    /// As sent, e.g. `8.0.36` or `5.5.5-10.11.6-MariaDB`.
    pub server_version: String,
    /// The server's thread id for this connection (what `KILL` takes).
    pub connection_id: u32,
    /// Both parts of the auth plugin data as sent: usually 20 random bytes
    /// and a NUL. [`InitialHandshake::scramble`] is the nonce without it.
    pub auth_plugin_data: Bytes,
    /// Capability flags, MariaDB's extended ones in the high 32 bits.
    pub capabilities: u64,
    /// Default collation id (low byte).
    pub charset: u8,
    /// Server status flags.
    pub status: u16,
    /// The default auth plugin; `Some` exactly when the capabilities
    /// include [`CLIENT_PLUGIN_AUTH`].
    pub auth_plugin_name: Option<String>,
}

impl InitialHandshake {
    const WHAT: &'static str = "initial handshake";

    /// Decodes the server's first packet. An ERR packet (a server refusing
    /// the connection outright) is [`DecodeError::Unexpected`] with header
    /// 0xFF; decode it with [`super::ErrPacket::decode`].
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        match payload.first() {
            Some(9) => {
                return Err(DecodeError::Unsupported {
                    what: Self::WHAT,
                    reason: "protocol version 9",
                });
            }
            _ => expect_header(payload, PROTOCOL_VERSION, Self::WHAT)?,
        }
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let server_version = r.cstr_utf8()?;
        let connection_id = r.u32()?;
        let part1 = r.take(AUTH_DATA_PART1_LEN)?;
        r.u8()?; // filler
        let mut capabilities = u64::from(r.u16()?);
        let charset = r.u8()?;
        let status = r.u16()?;
        capabilities |= u64::from(r.u16()?) << 16;
        let auth_data_len = usize::from(r.u8()?);
        let reserved = r.take(SERVER_RESERVED_LEN)?;
        if capabilities & CLIENT_MYSQL == 0 {
            capabilities |= u64::from(u32::from_le_bytes([
                reserved[6],
                reserved[7],
                reserved[8],
                reserved[9],
            ])) << 32;
        }
        let mut auth_plugin_data = part1.to_vec();
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            // The announced length counts only with plugin auth, as
            // clients read it.
            let announced = if capabilities & CLIENT_PLUGIN_AUTH != 0 {
                auth_data_len.saturating_sub(AUTH_DATA_PART1_LEN)
            } else {
                0
            };
            let part2_len = AUTH_DATA_PART2_MIN.max(announced);
            auth_plugin_data.extend_from_slice(r.take(part2_len)?);
        }
        let auth_plugin_name = if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            let name = r.cstr_or_rest_range();
            Some(r.utf8(name)?)
        } else {
            None
        };
        r.finish()?;
        Ok(InitialHandshake {
            server_version,
            connection_id,
            auth_plugin_data: Bytes::from(auth_plugin_data),
            capabilities,
            charset,
            status,
            auth_plugin_name,
        })
    }

    /// Encodes the payload. With [`CLIENT_SECURE_CONNECTION`] the auth data
    /// must be at least 21 bytes (and exactly 21 without
    /// [`CLIENT_PLUGIN_AUTH`]), otherwise exactly 8.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let caps = self.capabilities;
        let data = &self.auth_plugin_data[..];
        let invalid = |reason| EncodeError::Invalid {
            field: "auth plugin data",
            reason,
        };
        let secure = caps & CLIENT_SECURE_CONNECTION != 0;
        let plugin_auth = caps & CLIENT_PLUGIN_AUTH != 0;
        let min = AUTH_DATA_PART1_LEN + AUTH_DATA_PART2_MIN;
        match (secure, plugin_auth) {
            (false, _) if data.len() != AUTH_DATA_PART1_LEN => {
                return Err(invalid("must be 8 bytes without CLIENT_SECURE_CONNECTION"));
            }
            (true, _) if data.len() < min => return Err(invalid("shorter than 21 bytes")),
            (true, false) if data.len() != min => {
                return Err(invalid("must be 21 bytes without CLIENT_PLUGIN_AUTH"));
            }
            (true, true) if data.len() > usize::from(u8::MAX) => {
                return Err(EncodeError::TooLong {
                    field: "auth plugin data",
                    len: data.len(),
                    max: usize::from(u8::MAX),
                });
            }
            _ => {}
        }
        let name = plugin_name_field(self.auth_plugin_name.as_deref(), caps)?;
        cstr_len(self.server_version.as_bytes(), "server version")?;
        let ext = extended_caps(caps)?;
        out.put_u8(PROTOCOL_VERSION);
        put_cstr(out, self.server_version.as_bytes());
        out.put_u32_le(self.connection_id);
        out.put_slice(&data[..AUTH_DATA_PART1_LEN]);
        out.put_u8(0);
        out.put_u16_le(caps as u16);
        out.put_u8(self.charset);
        out.put_u16_le(self.status);
        out.put_u16_le((caps >> 16) as u16);
        out.put_u8(if plugin_auth { data.len() as u8 } else { 0 });
        out.put_bytes(0, 6);
        out.put_u32_le(ext);
        if secure {
            out.put_slice(&data[AUTH_DATA_PART1_LEN..]);
        }
        if let Some(name) = name {
            put_cstr(out, name);
        }
        Ok(())
    }

    /// The nonce the password proofs use: the auth data without its
    /// trailing NUL (20 bytes from real servers).
    pub fn scramble(&self) -> &[u8] {
        strip_nul(&self.auth_plugin_data)
    }

    /// Whether the server is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }

    /// The version without MariaDB's compatibility prefix.
    pub fn version(&self) -> &str {
        match self.server_version.strip_prefix(MARIADB_VERSION_PREFIX) {
            Some(rest) if self.is_mariadb() => rest,
            _ => &self.server_version,
        }
    }
}

/// A nonce without the NUL that servers send after it.
pub(crate) fn strip_nul(data: &[u8]) -> &[u8] {
    data.strip_suffix(&[0]).unwrap_or(data)
}

/// Checks that a plugin name is given exactly when the capabilities ask
/// for one, and returns its bytes to write.
fn plugin_name_field(name: Option<&str>, caps: u64) -> Result<Option<&[u8]>, EncodeError> {
    match (name, caps & CLIENT_PLUGIN_AUTH != 0) {
        (Some(_), false) => Err(EncodeError::Invalid {
            field: "auth plugin name",
            reason: "given without CLIENT_PLUGIN_AUTH",
        }),
        (name, true) => {
            let name = name.unwrap_or("").as_bytes();
            cstr_len(name, "auth plugin name")?;
            Ok(Some(name))
        }
        (None, false) => Ok(None),
    }
}

/// MariaDB's extended capabilities, refusing them unless [`CLIENT_MYSQL`]
/// is clear (the peer would not read them).
fn extended_caps(caps: u64) -> Result<u32, EncodeError> {
    let ext = (caps >> 32) as u32;
    if ext != 0 && caps & CLIENT_MYSQL != 0 {
        return Err(EncodeError::Invalid {
            field: "capabilities",
            reason: "MariaDB extended capabilities need CLIENT_MYSQL clear",
        });
    }
    Ok(ext)
}

/// Whether a client's first packet is an SSLRequest: the fixed part of a
/// HandshakeResponse41 alone, with [`CLIENT_SSL`] set. A real response
/// always has at least a user name after it.
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == SSL_REQUEST_LEN
        && payload
            .first_chunk::<4>()
            .is_some_and(|c| u64::from(u32::from_le_bytes(*c)) & CLIENT_SSL != 0)
}

/// The client's request to switch to TLS before its HandshakeResponse41.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    pub capabilities: u64,
    pub max_packet_size: u32,
    pub charset: u8,
}

impl SslRequest {
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload, "SSL request");
        let (capabilities, max_packet_size, charset) = fixed_part(&mut r)?;
        r.finish()?;
        if capabilities & CLIENT_SSL == 0 {
            return Err(r.invalid("CLIENT_SSL not set"));
        }
        Ok(SslRequest {
            capabilities,
            max_packet_size,
            charset,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        if self.capabilities & CLIENT_SSL == 0 {
            return Err(EncodeError::Invalid {
                field: "capabilities",
                reason: "an SSL request needs CLIENT_SSL",
            });
        }
        put_fixed_part(out, self.capabilities, self.max_packet_size, self.charset)
    }
}

/// The client's capabilities, max packet size and collation, shared by
/// SSLRequest and HandshakeResponse41.
fn fixed_part(r: &mut Reader<'_>) -> Result<(u64, u32, u8), DecodeError> {
    let mut caps = u64::from(r.u32()?);
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Err(DecodeError::Unsupported {
            what: "handshake response",
            reason: "client without CLIENT_PROTOCOL_41 (pre-4.1 protocol)",
        });
    }
    let max_packet_size = r.u32()?;
    let charset = r.u8()?;
    let filler = r.take(FILLER_LEN)?;
    if caps & CLIENT_MYSQL == 0 {
        caps |= u64::from(u32::from_le_bytes([
            filler[19], filler[20], filler[21], filler[22],
        ])) << 32;
    }
    Ok((caps, max_packet_size, charset))
}

fn put_fixed_part(
    out: &mut impl BufMut,
    caps: u64,
    max_packet_size: u32,
    charset: u8,
) -> Result<(), EncodeError> {
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Err(EncodeError::Invalid {
            field: "capabilities",
            reason: "CLIENT_PROTOCOL_41 is required",
        });
    }
    let ext = extended_caps(caps)?;
    out.put_u32_le(caps as u32);
    out.put_u32_le(max_packet_size);
    out.put_u8(charset);
    out.put_bytes(0, FILLER_LEN - 4);
    out.put_u32_le(ext);
    Ok(())
}

/// The client's login (Protocol::HandshakeResponse41). Optional fields
/// are `Some` exactly when the capability that announces them is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    /// Capability flags, MariaDB's extended ones in the high 32 bits.
    pub capabilities: u64,
    pub max_packet_size: u32,
    /// Collation id (low byte) for the connection.
    pub charset: u8,
    pub username: Bytes,
    /// The first auth plugin's answer (e.g. a native password proof).
    pub auth_response: Bytes,
    /// With [`CLIENT_CONNECT_WITH_DB`]; empty means no database.
    pub database: Option<Bytes>,
    /// With [`CLIENT_PLUGIN_AUTH`]: the plugin that made `auth_response`.
    pub auth_plugin: Option<String>,
    /// With [`CLIENT_CONNECT_ATTRS`]: `_client_name`, `program_name`, ...
    pub connect_attrs: Option<Vec<(Bytes, Bytes)>>,
    /// With [`CLIENT_ZSTD_COMPRESSION_ALGORITHM`]: the compression level.
    pub zstd_level: Option<u8>,
}

impl HandshakeResponse {
    const WHAT: &'static str = "handshake response";

    /// Decodes a HandshakeResponse41. Call [`is_ssl_request`] first: an
    /// SSLRequest is the same fixed part without the rest.
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload, Self::WHAT);
        let (caps, max_packet_size, charset) = fixed_part(&mut r)?;
        let username = share(payload, r.cstr_range()?);
        let auth = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            r.lenenc_range()?
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            let len = r.u8()?;
            r.take_range(usize::from(len))?
        } else {
            r.cstr_range()?
        };
        let auth_response = share(payload, auth);
        // Trailing optional fields may be cut off by clients that set the
        // flag without a value; the server reads them as empty.
        let database = (caps & CLIENT_CONNECT_WITH_DB != 0).then(|| {
            if r.is_empty() {
                Ok(Bytes::new())
            } else {
                r.cstr_range().map(|range| share(payload, range))
            }
        });
        let database = database.transpose()?;
        let auth_plugin = if caps & CLIENT_PLUGIN_AUTH != 0 {
            let name = r.cstr_or_rest_range();
            Some(r.utf8(name)?)
        } else {
            None
        };
        let connect_attrs = if caps & CLIENT_CONNECT_ATTRS != 0 {
            Some(decode_attrs(&mut r, payload)?)
        } else {
            None
        };
        let zstd_level = if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 && !r.is_empty() {
            Some(r.u8()?)
        } else {
            None
        };
        r.finish()?;
        Ok(HandshakeResponse {
            capabilities: caps,
            max_packet_size,
            charset,
            username,
            auth_response,
            database,
            auth_plugin,
            connect_attrs,
            zstd_level,
        })
    }

    /// Encodes the payload. The auth response is written as the
    /// capabilities say (length-encoded, 1-byte length, or NUL-terminated);
    /// an optional field given without its capability is refused, and a
    /// capability without its field writes an empty one.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let caps = self.capabilities;
        let refuse = |field, reason| Err(EncodeError::Invalid { field, reason });
        cstr_len(&self.username, "user name")?;
        let auth = &self.auth_response[..];
        let auth_form = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            AuthForm::Lenenc
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            if auth.len() > usize::from(u8::MAX) {
                return Err(EncodeError::TooLong {
                    field: "auth response",
                    len: auth.len(),
                    max: usize::from(u8::MAX),
                });
            }
            AuthForm::Byte
        } else {
            cstr_len(auth, "auth response")?;
            AuthForm::Cstr
        };
        let database = match (&self.database, caps & CLIENT_CONNECT_WITH_DB != 0) {
            (Some(_), false) => {
                return refuse("database", "given without CLIENT_CONNECT_WITH_DB");
            }
            (db, true) => Some(db.as_deref().unwrap_or(b"")),
            (None, false) => None,
        };
        if let Some(db) = database {
            cstr_len(db, "database")?;
        }
        let plugin = plugin_name_field(self.auth_plugin.as_deref(), caps)?;
        let attrs = match (&self.connect_attrs, caps & CLIENT_CONNECT_ATTRS != 0) {
            (Some(_), false) => {
                return refuse("connect attributes", "given without CLIENT_CONNECT_ATTRS");
            }
            (attrs, true) => Some(attrs.as_deref().unwrap_or(&[])),
            (None, false) => None,
        };
        if self.zstd_level.is_some() && caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM == 0 {
            return refuse(
                "zstd level",
                "given without CLIENT_ZSTD_COMPRESSION_ALGORITHM",
            );
        }

        put_fixed_part(out, caps, self.max_packet_size, self.charset)?;
        put_cstr(out, &self.username);
        match auth_form {
            AuthForm::Lenenc => put_lenenc_str(out, auth),
            AuthForm::Byte => {
                out.put_u8(auth.len() as u8);
                out.put_slice(auth);
            }
            AuthForm::Cstr => put_cstr(out, auth),
        }
        if let Some(db) = database {
            put_cstr(out, db);
        }
        if let Some(name) = plugin {
            put_cstr(out, name);
        }
        if let Some(attrs) = attrs {
            let len = sum(attrs
                .iter()
                .map(|(k, v)| lenenc_str_len(k).saturating_add(lenenc_str_len(v))));
            put_lenenc_int(out, len as u64);
            for (k, v) in attrs {
                put_lenenc_str(out, k);
                put_lenenc_str(out, v);
            }
        }
        if let Some(level) = self.zstd_level {
            out.put_u8(level);
        }
        Ok(())
    }

    /// The value of connect attribute `key` (e.g. `program_name`).
    pub fn connect_attr(&self, key: &[u8]) -> Option<&Bytes> {
        let attrs = self.connect_attrs.as_ref()?;
        attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The database asked for, `None` when none was (or an empty name).
    pub fn database(&self) -> Option<&Bytes> {
        self.database.as_ref().filter(|d| !d.is_empty())
    }
}

enum AuthForm {
    Lenenc,
    Byte,
    Cstr,
}

/// Connect attributes: a length-encoded total, then key/value pairs of
/// length-encoded strings filling it exactly. Absent (the packet ends) is
/// an empty list.
fn decode_attrs(r: &mut Reader<'_>, payload: &Bytes) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
    if r.is_empty() {
        return Ok(Vec::new());
    }
    let range = r.lenenc_range()?;
    let block = share(payload, range);
    let mut attrs = Vec::new();
    let mut a = Reader::new(&block, "connect attributes");
    while !a.is_empty() {
        let key = a.lenenc_range()?;
        let value = a.lenenc_range()?;
        attrs.push((share(&block, key), share(&block, value)));
    }
    Ok(attrs)
}
