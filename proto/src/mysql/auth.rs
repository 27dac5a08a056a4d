//! Connection phase after the HandshakeResponse, both directions: the
//! server's AuthSwitchRequest (0xFE) and AuthMoreData (0x01), the client's
//! answers (raw auth data), and [`AuthPacket`] for telling the server's
//! replies apart. The proofs themselves are in [`super::scramble`].
//!
//! A `caching_sha2_password` login runs: the client sends the fast-auth
//! scramble; the server answers AuthMoreData [`FAST_AUTH_SUCCESS`] then OK,
//! or [`PERFORM_FULL_AUTH`]. Full auth sends the password NUL-terminated
//! over TLS, or without TLS asks for the server's key
//! ([`REQUEST_PUBLIC_KEY`]), gets it as AuthMoreData (PEM), and sends the
//! password encrypted with it.

use bytes::{BufMut, Bytes};

use super::handshake::strip_nul;
use super::response::{ErrPacket, OkPacket};
use super::wire::{Reader, cstr_len, expect_header, put_cstr, share};
use super::{DecodeError, EncodeError};

/// First byte of an AuthSwitchRequest.
pub const AUTH_SWITCH_HEADER: u8 = 0xFE;
/// First byte of AuthMoreData.
pub const AUTH_MORE_DATA_HEADER: u8 = 0x01;

pub const MYSQL_NATIVE_PASSWORD: &str = "mysql_native_password";
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";
pub const SHA256_PASSWORD: &str = "sha256_password";
pub const MYSQL_CLEAR_PASSWORD: &str = "mysql_clear_password";

/// `caching_sha2_password`, server → client (AuthMoreData): the fast-auth
/// scramble matched the server's cache; an OK packet follows.
pub const FAST_AUTH_SUCCESS: u8 = 0x03;
/// `caching_sha2_password`, server → client (AuthMoreData): send the
/// password itself, over TLS or RSA-encrypted.
pub const PERFORM_FULL_AUTH: u8 = 0x04;
/// `caching_sha2_password`, client → server: send me your RSA public key.
pub const REQUEST_PUBLIC_KEY: u8 = 0x02;
/// `sha256_password`, client → server: send me your RSA public key.
pub const SHA256_REQUEST_PUBLIC_KEY: u8 = 0x01;

/// The server asks the client to authenticate with another plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    pub plugin: String,
    /// Plugin data as sent: for the password plugins a fresh 20-byte
    /// nonce and a NUL ([`AuthSwitchRequest::scramble`] drops the NUL).
    pub data: Bytes,
}

impl AuthSwitchRequest {
    const WHAT: &'static str = "auth switch request";

    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        expect_header(payload, AUTH_SWITCH_HEADER, Self::WHAT)?;
        if payload.len() == 1 {
            return Err(DecodeError::Unsupported {
                what: Self::WHAT,
                reason: "switch to the pre-4.1 mysql_old_password",
            });
        }
        let mut r = Reader::new(payload, Self::WHAT);
        r.u8()?;
        let plugin = r.cstr_utf8()?;
        let data = share(payload, r.rest_range());
        Ok(AuthSwitchRequest { plugin, data })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        cstr_len(self.plugin.as_bytes(), "auth plugin name")?;
        out.put_u8(AUTH_SWITCH_HEADER);
        put_cstr(out, self.plugin.as_bytes());
        out.put_slice(&self.data);
        Ok(())
    }

    /// The nonce for the new plugin's proof.
    pub fn scramble(&self) -> &[u8] {
        strip_nul(&self.data)
    }
}

/// Extra auth data from the server: a `caching_sha2_password` status byte
/// or a PEM public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMoreData(pub Bytes);

impl AuthMoreData {
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        expect_header(payload, AUTH_MORE_DATA_HEADER, "auth more data")?;
        Ok(AuthMoreData(payload.slice(1..)))
    }

    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(AUTH_MORE_DATA_HEADER);
        out.put_slice(&self.0);
    }

    /// The single status byte of a `caching_sha2_password` reply
    /// ([`FAST_AUTH_SUCCESS`], [`PERFORM_FULL_AUTH`]), if it is one.
    pub fn status(&self) -> Option<u8> {
        match self.0[..] {
            [b] => Some(b),
            _ => None,
        }
    }
}

/// Encodes the client's answer to an AuthSwitchRequest or AuthMoreData:
/// the payload is the auth data alone.
pub fn encode_auth_data(data: &[u8], out: &mut impl BufMut) {
    out.put_slice(data);
}

/// Encodes the NUL-terminated cleartext password that full
/// `caching_sha2_password` auth (over TLS only) and `mysql_clear_password`
/// send.
pub fn encode_cleartext_password(
    password: &[u8],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    cstr_len(password, "password")?;
    put_cstr(out, password);
    Ok(())
}

/// What the server says after a HandshakeResponse or an auth answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPacket {
    /// Logged in.
    Ok(OkPacket),
    /// Refused; the server closes the connection.
    Err(ErrPacket),
    /// Authenticate again with another plugin.
    Switch(AuthSwitchRequest),
    /// More data for the current plugin.
    MoreData(AuthMoreData),
}

impl AuthPacket {
    /// Decodes a server packet of the auth exchange; `capabilities` are
    /// the ones both sides agreed on (for the OK packet's layout). A 0xFE
    /// header here is an auth switch, never EOF.
    pub fn decode(payload: &Bytes, capabilities: u64) -> Result<Self, DecodeError> {
        match payload.first() {
            Some(0x00) => OkPacket::decode(payload, capabilities).map(AuthPacket::Ok),
            Some(0xFF) => ErrPacket::decode(payload).map(AuthPacket::Err),
            Some(&AUTH_SWITCH_HEADER) => AuthSwitchRequest::decode(payload).map(AuthPacket::Switch),
            Some(&AUTH_MORE_DATA_HEADER) => AuthMoreData::decode(payload).map(AuthPacket::MoreData),
            Some(&header) => Err(DecodeError::Unexpected {
                what: "auth exchange packet",
                header,
            }),
            None => Err(DecodeError::Invalid {
                what: "auth exchange packet",
                reason: "empty payload",
            }),
        }
    }
}
