//! Frontend (client → server) messages after the startup packet, decoded
//! by borrowing from the [`RawMessage`] they came in: statement text is a
//! `&str` and parameter values are slices of the read buffer.

mod copy;
mod extended;
mod function;
mod query;
mod terminate;

use bytes::BufMut;

pub use copy::{CopyFail, encode_copy_data, encode_copy_done, encode_copy_fail};
pub use extended::{
    Bind, Close, Describe, Execute, Parse, Target, encode_bind, encode_close, encode_describe,
    encode_execute, encode_flush, encode_parse, encode_sync,
};
pub use function::{FunctionCall, encode_function_call};
pub use query::{Query, encode_query};
pub use terminate::encode_terminate;

use super::wire::{Reader, decode_empty, put_header};
use super::{DecodeError, EncodeError, RawMessage};

/// Frontend message type bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    Query,
    Parse,
    Bind,
    Execute,
    Describe,
    Close,
    Sync,
    Flush,
    CopyData,
    CopyDone,
    CopyFail,
    FunctionCall,
    Terminate,
    /// PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse:
    /// which one depends on the authentication request it answers.
    AuthResponse,
}

impl Tag {
    /// The tag for a type byte, `None` for bytes no frontend sends.
    pub fn from_u8(byte: u8) -> Option<Tag> {
        Some(match byte {
            b'Q' => Tag::Query,
            b'P' => Tag::Parse,
            b'B' => Tag::Bind,
            b'E' => Tag::Execute,
            b'D' => Tag::Describe,
            b'C' => Tag::Close,
            b'S' => Tag::Sync,
            b'H' => Tag::Flush,
            b'd' => Tag::CopyData,
            b'c' => Tag::CopyDone,
            b'f' => Tag::CopyFail,
            b'F' => Tag::FunctionCall,
            b'X' => Tag::Terminate,
            b'p' => Tag::AuthResponse,
            _ => return None,
        })
    }

    /// The type byte.
    pub fn as_u8(self) -> u8 {
        match self {
            Tag::Query => b'Q',
            Tag::Parse => b'P',
            Tag::Bind => b'B',
            Tag::Execute => b'E',
            Tag::Describe => b'D',
            Tag::Close => b'C',
            Tag::Sync => b'S',
            Tag::Flush => b'H',
            Tag::CopyData => b'd',
            Tag::CopyDone => b'c',
            Tag::CopyFail => b'f',
            Tag::FunctionCall => b'F',
            Tag::Terminate => b'X',
            Tag::AuthResponse => b'p',
        }
    }
}

/// Any frontend message after startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// `Q`: simple query, possibly several statements.
    Query(Query<'a>),
    /// `P`
    Parse(Parse<'a>),
    /// `B`
    Bind(Bind<'a>),
    /// `E`
    Execute(Execute<'a>),
    /// `D`
    Describe(Describe<'a>),
    /// `C`
    Close(Close<'a>),
    /// `S`
    Sync,
    /// `H`
    Flush,
    /// `d`: a chunk of COPY FROM STDIN data, as sent.
    CopyData(&'a [u8]),
    /// `c`
    CopyDone,
    /// `f`
    CopyFail(CopyFail<'a>),
    /// `F`: fast-path function call (large objects in JDBC and libpq).
    FunctionCall(FunctionCall<'a>),
    /// `X`
    Terminate,
    /// `p`: the body of an authentication answer; decode it with
    /// [`super::auth::decode_password`],
    /// [`super::auth::SaslInitialResponse::decode`] or
    /// [`super::auth::decode_sasl_response`] on the same message.
    AuthResponse(&'a [u8]),
}

impl<'a> FrontendMessage<'a> {
    /// Decodes any frontend message; an unknown type byte is
    /// [`DecodeError::UnexpectedTag`].
    pub fn decode(msg: &'a RawMessage) -> Result<Self, DecodeError> {
        let tag = Tag::from_u8(msg.tag).ok_or(DecodeError::UnexpectedTag(msg.tag))?;
        Ok(match tag {
            Tag::Query => FrontendMessage::Query(Query::decode(msg)?),
            Tag::Parse => FrontendMessage::Parse(Parse::decode(msg)?),
            Tag::Bind => FrontendMessage::Bind(Bind::decode(msg)?),
            Tag::Execute => FrontendMessage::Execute(Execute::decode(msg)?),
            Tag::Describe => FrontendMessage::Describe(Describe::decode(msg)?),
            Tag::Close => FrontendMessage::Close(Close::decode(msg)?),
            Tag::Sync => decode_empty(msg, b'S').map(|()| FrontendMessage::Sync)?,
            Tag::Flush => decode_empty(msg, b'H').map(|()| FrontendMessage::Flush)?,
            Tag::CopyData => FrontendMessage::CopyData(Reader::body(msg, b'd')?.rest()),
            Tag::CopyDone => decode_empty(msg, b'c').map(|()| FrontendMessage::CopyDone)?,
            Tag::CopyFail => FrontendMessage::CopyFail(CopyFail::decode(msg)?),
            Tag::FunctionCall => FrontendMessage::FunctionCall(FunctionCall::decode(msg)?),
            Tag::Terminate => decode_empty(msg, b'X').map(|()| FrontendMessage::Terminate)?,
            Tag::AuthResponse => FrontendMessage::AuthResponse(Reader::body(msg, b'p')?.rest()),
        })
    }

    /// The message's tag.
    pub fn tag(&self) -> Tag {
        match self {
            FrontendMessage::Query(_) => Tag::Query,
            FrontendMessage::Parse(_) => Tag::Parse,
            FrontendMessage::Bind(_) => Tag::Bind,
            FrontendMessage::Execute(_) => Tag::Execute,
            FrontendMessage::Describe(_) => Tag::Describe,
            FrontendMessage::Close(_) => Tag::Close,
            FrontendMessage::Sync => Tag::Sync,
            FrontendMessage::Flush => Tag::Flush,
            FrontendMessage::CopyData(_) => Tag::CopyData,
            FrontendMessage::CopyDone => Tag::CopyDone,
            FrontendMessage::CopyFail(_) => Tag::CopyFail,
            FrontendMessage::FunctionCall(_) => Tag::FunctionCall,
            FrontendMessage::Terminate => Tag::Terminate,
            FrontendMessage::AuthResponse(_) => Tag::AuthResponse,
        }
    }

    /// Encodes the message.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        match self {
            FrontendMessage::Query(m) => m.encode(out)?,
            FrontendMessage::Parse(m) => m.encode(out)?,
            FrontendMessage::Bind(m) => m.encode(out)?,
            FrontendMessage::Execute(m) => m.encode(out)?,
            FrontendMessage::Describe(m) => m.encode(out)?,
            FrontendMessage::Close(m) => m.encode(out)?,
            FrontendMessage::Sync => encode_sync(out),
            FrontendMessage::Flush => encode_flush(out),
            FrontendMessage::CopyData(data) => encode_copy_data(data, out)?,
            FrontendMessage::CopyDone => encode_copy_done(out),
            FrontendMessage::CopyFail(m) => m.encode(out)?,
            FrontendMessage::FunctionCall(m) => m.encode(out)?,
            FrontendMessage::Terminate => encode_terminate(out),
            FrontendMessage::AuthResponse(body) => {
                put_header(out, b'p', body.len())?;
                out.put_slice(body);
            }
        }
        Ok(())
    }
}
