//! Authentication family, both directions: the backend's Authentication
//! requests (`R`) and the frontend's answers (`p`: PasswordMessage,
//! SASLInitialResponse, SASLResponse), plus MD5 password hashing.
//!
//! A `p` message does not say which answer it is: that follows from the
//! request it answers, so the caller picks the decoder.

use bytes::{BufMut, Bytes};
use md5::{Digest, Md5};

use super::wire::{Reader, cstr_len, nullable_len, put_cstr, put_header, put_nullable, sum};
use super::{DecodeError, EncodeError, RawMessage};

/// Type byte of Authentication requests (backend).
pub const TAG_AUTHENTICATION: u8 = b'R';
/// Type byte of the frontend's answers.
pub const TAG_RESPONSE: u8 = b'p';

const OK: i32 = 0;
const CLEARTEXT: i32 = 3;
const MD5: i32 = 5;
const SASL: i32 = 10;
const SASL_CONTINUE: i32 = 11;
const SASL_FINAL: i32 = 12;

/// An Authentication message (backend → frontend, `R`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Authentication succeeded.
    Ok,
    /// Send the password in clear text.
    CleartextPassword,
    /// Send [`md5_password`] with this salt.
    Md5Password { salt: [u8; 4] },
    /// Start SASL with one of these mechanisms, in the server's order.
    Sasl { mechanisms: Vec<String> },
    /// Server's SASL challenge (for SCRAM: server-first-message).
    SaslContinue(Bytes),
    /// Server's SASL outcome (for SCRAM: server-final-message).
    SaslFinal(Bytes),
    /// A method this codec does not implement (2 Kerberos V5, 6 SCM,
    /// 7 GSS, 8 GSSContinue, 9 SSPI, ...); its data is not kept.
    Other(i32),
}

impl Authentication {
    /// Decodes an `R` message.
    pub fn decode(msg: &RawMessage) -> Result<Authentication, DecodeError> {
        let mut r = Reader::body(msg, TAG_AUTHENTICATION)?;
        let auth = match r.i32()? {
            OK => Authentication::Ok,
            CLEARTEXT => Authentication::CleartextPassword,
            MD5 => {
                let salt = r.take(4)?;
                Authentication::Md5Password {
                    salt: [salt[0], salt[1], salt[2], salt[3]],
                }
            }
            SASL => {
                let mut mechanisms = Vec::new();
                loop {
                    let m = r.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m.to_owned());
                }
                if mechanisms.is_empty() {
                    return Err(r.invalid("SASL request offers no mechanism"));
                }
                Authentication::Sasl { mechanisms }
            }
            SASL_CONTINUE => Authentication::SaslContinue(msg.bytes.slice(r.rest_range())),
            SASL_FINAL => Authentication::SaslFinal(msg.bytes.slice(r.rest_range())),
            other => {
                r.rest();
                Authentication::Other(other)
            }
        };
        r.finish()?;
        Ok(auth)
    }

    /// Encodes an `R` message. `Other` is written with an empty body.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        match self {
            Authentication::Ok => encode_authentication_ok(out),
            Authentication::CleartextPassword => put_code(out, CLEARTEXT, 0)?,
            Authentication::Md5Password { salt } => {
                put_code(out, MD5, 4)?;
                out.put_slice(salt);
            }
            Authentication::Sasl { mechanisms } => {
                let mut lens = Vec::with_capacity(mechanisms.len());
                for m in mechanisms {
                    if m.is_empty() {
                        return Err(EncodeError::Invalid {
                            field: "SASL mechanism",
                            reason: "empty",
                        });
                    }
                    lens.push(cstr_len(m.as_bytes(), "SASL mechanism")?);
                }
                put_code(out, SASL, sum(lens).saturating_add(1))?;
                for m in mechanisms {
                    put_cstr(out, m.as_bytes());
                }
                out.put_u8(0);
            }
            Authentication::SaslContinue(data) => {
                put_code(out, SASL_CONTINUE, data.len())?;
                out.put_slice(data);
            }
            Authentication::SaslFinal(data) => {
                put_code(out, SASL_FINAL, data.len())?;
                out.put_slice(data);
            }
            Authentication::Other(code) => put_code(out, *code, 0)?,
        }
        Ok(())
    }
}

fn put_code(out: &mut impl BufMut, code: i32, data_len: usize) -> Result<(), EncodeError> {
    put_header(out, TAG_AUTHENTICATION, data_len.saturating_add(4))?;
    out.put_i32(code);
    Ok(())
}

/// Encodes AuthenticationOk, what the agent tells a local client that
/// needs no password of its own.
pub fn encode_authentication_ok(out: &mut impl BufMut) {
    out.put_u8(TAG_AUTHENTICATION);
    out.put_i32(8);
    out.put_i32(OK);
}

/// Encodes a PasswordMessage: a cleartext password, or the output of
/// [`md5_password`].
pub fn encode_password(password: &str, out: &mut impl BufMut) -> Result<(), EncodeError> {
    let len = cstr_len(password.as_bytes(), "password")?;
    put_header(out, TAG_RESPONSE, len)?;
    put_cstr(out, password.as_bytes());
    Ok(())
}

/// Decodes a PasswordMessage. The password is bytes: PostgreSQL does not
/// require it to be valid in any encoding.
pub fn decode_password(msg: &RawMessage) -> Result<&[u8], DecodeError> {
    let mut r = Reader::body(msg, TAG_RESPONSE)?;
    let password = r.cstr_bytes()?;
    r.finish()?;
    Ok(password)
}

/// A SASLInitialResponse: the chosen mechanism and its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    pub mechanism: &'a str,
    /// `None` when the length field is -1 (no initial response).
    pub data: Option<&'a [u8]>,
}

impl<'a> SaslInitialResponse<'a> {
    /// Decodes a `p` message that answers AuthenticationSASL.
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, TAG_RESPONSE)?;
        let mechanism = r.cstr()?;
        let data = r.nullable()?;
        r.finish()?;
        Ok(SaslInitialResponse { mechanism, data })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let len = cstr_len(self.mechanism.as_bytes(), "SASL mechanism")? + nullable_len(self.data)?;
        put_header(out, TAG_RESPONSE, len)?;
        put_cstr(out, self.mechanism.as_bytes());
        put_nullable(out, self.data);
        Ok(())
    }
}

/// Encodes a SASLInitialResponse for `mechanism` with `data` (for SCRAM:
/// client-first-message).
pub fn encode_sasl_initial(
    mechanism: &str,
    data: &[u8],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    SaslInitialResponse {
        mechanism,
        data: Some(data),
    }
    .encode(out)
}

/// Encodes a SASLResponse (for SCRAM: client-final-message).
pub fn encode_sasl_response(data: &[u8], out: &mut impl BufMut) -> Result<(), EncodeError> {
    put_header(out, TAG_RESPONSE, data.len())?;
    out.put_slice(data);
    Ok(())
}

/// Decodes a SASLResponse: the whole body is the mechanism's data.
pub fn decode_sasl_response(msg: &RawMessage) -> Result<&[u8], DecodeError> {
    let mut r = Reader::body(msg, TAG_RESPONSE)?;
    Ok(r.rest())
}

/// The answer to AuthenticationMD5Password:
/// `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
pub fn md5_password(
    user: impl AsRef<[u8]>,
    password: impl AsRef<[u8]>,
    salt: impl AsRef<[u8]>,
) -> String {
    let inner = hex(&Md5::new()
        .chain_update(password)
        .chain_update(user)
        .finalize());
    let outer = Md5::new().chain_update(inner).chain_update(salt).finalize();
    format!("md5{}", hex(&outer))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}
