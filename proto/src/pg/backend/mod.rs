//! Backend (server → client) messages. Decoded values own their small
//! strings; row values, COPY data and SASL data share the message's
//! memory as `Bytes`.

mod command_complete;
mod copy;
mod data_row;
mod error_notice;
mod extended;
mod function;
mod notify;
mod row_description;
mod status;

use bytes::{BufMut, Bytes};

pub use super::auth::{Authentication, encode_authentication_ok};
pub use command_complete::{CommandComplete, encode_command_complete, rows};
pub use copy::{CopyDirection, CopyResponse};
pub use data_row::{
    DataRow, RowCursor, RowReader, RowValue, RowValues, data_row_ranges, data_row_reader,
    data_row_values, encode_data_row,
};
pub use error_notice::{ErrorFields, Severity, encode_error, encode_notice, field};
pub use extended::{
    ParameterDescription, encode_bind_complete, encode_close_complete, encode_empty_query_response,
    encode_no_data, encode_parse_complete, encode_portal_suspended,
};
pub use function::FunctionCallResponse;
pub use notify::NotificationResponse;
pub use row_description::{FieldDescription, RowDescription, encode_row_description};
pub use status::{
    BackendKeyData, NegotiateProtocolVersion, ParameterStatus, TransactionStatus,
    encode_backend_key_data, encode_negotiate_protocol_version, encode_parameter_status,
    encode_ready_for_query,
};
// CopyData and CopyDone have the same layout in both directions.
pub use super::frontend::{encode_copy_data, encode_copy_done};

use super::wire::{Reader, decode_empty, put_empty};
use super::{DecodeError, EncodeError, RawMessage};

/// Backend message type bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    Authentication,
    ParameterStatus,
    BackendKeyData,
    ReadyForQuery,
    NegotiateProtocolVersion,
    RowDescription,
    DataRow,
    CommandComplete,
    ErrorResponse,
    NoticeResponse,
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    PortalSuspended,
    ParameterDescription,
    EmptyQueryResponse,
    CopyInResponse,
    CopyOutResponse,
    CopyBothResponse,
    CopyData,
    CopyDone,
    NotificationResponse,
    FunctionCallResponse,
}

const TAGS: [(u8, Tag); 24] = [
    (b'R', Tag::Authentication),
    (b'S', Tag::ParameterStatus),
    (b'K', Tag::BackendKeyData),
    (b'Z', Tag::ReadyForQuery),
    (b'v', Tag::NegotiateProtocolVersion),
    (b'T', Tag::RowDescription),
    (b'D', Tag::DataRow),
    (b'C', Tag::CommandComplete),
    (b'E', Tag::ErrorResponse),
    (b'N', Tag::NoticeResponse),
    (b'1', Tag::ParseComplete),
    (b'2', Tag::BindComplete),
    (b'3', Tag::CloseComplete),
    (b'n', Tag::NoData),
    (b's', Tag::PortalSuspended),
    (b't', Tag::ParameterDescription),
    (b'I', Tag::EmptyQueryResponse),
    (b'G', Tag::CopyInResponse),
    (b'H', Tag::CopyOutResponse),
    (b'W', Tag::CopyBothResponse),
    (b'd', Tag::CopyData),
    (b'c', Tag::CopyDone),
    (b'A', Tag::NotificationResponse),
    (b'V', Tag::FunctionCallResponse),
];

impl Tag {
    /// The tag for a type byte, `None` for bytes no backend sends.
    pub fn from_u8(byte: u8) -> Option<Tag> {
        TAGS.iter().find(|(b, _)| *b == byte).map(|(_, t)| *t)
    }

    /// The type byte.
    pub fn as_u8(self) -> u8 {
        TAGS.iter().find(|(_, t)| *t == self).map_or(0, |(b, _)| *b)
    }
}

/// Any backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    Authentication(Authentication),
    ParameterStatus(ParameterStatus),
    BackendKeyData(BackendKeyData),
    ReadyForQuery(TransactionStatus),
    NegotiateProtocolVersion(NegotiateProtocolVersion),
    RowDescription(RowDescription),
    DataRow(DataRow),
    CommandComplete(CommandComplete),
    ErrorResponse(ErrorFields),
    NoticeResponse(ErrorFields),
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    PortalSuspended,
    ParameterDescription(ParameterDescription),
    EmptyQueryResponse,
    CopyInResponse(CopyResponse),
    CopyOutResponse(CopyResponse),
    CopyBothResponse(CopyResponse),
    /// A chunk of COPY TO STDOUT data (or replication stream), shared.
    CopyData(Bytes),
    CopyDone,
    NotificationResponse(NotificationResponse),
    FunctionCallResponse(FunctionCallResponse),
}

impl BackendMessage {
    /// Decodes any backend message; an unknown type byte is
    /// [`DecodeError::UnexpectedTag`].
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        use BackendMessage as M;
        let tag = Tag::from_u8(msg.tag).ok_or(DecodeError::UnexpectedTag(msg.tag))?;
        let empty = |m: BackendMessage| decode_empty(msg, msg.tag).map(|()| m);
        Ok(match tag {
            Tag::Authentication => M::Authentication(Authentication::decode(msg)?),
            Tag::ParameterStatus => M::ParameterStatus(ParameterStatus::decode(msg)?),
            Tag::BackendKeyData => M::BackendKeyData(BackendKeyData::decode(msg)?),
            Tag::ReadyForQuery => M::ReadyForQuery(TransactionStatus::decode(msg)?),
            Tag::NegotiateProtocolVersion => {
                M::NegotiateProtocolVersion(NegotiateProtocolVersion::decode(msg)?)
            }
            Tag::RowDescription => M::RowDescription(RowDescription::decode(msg)?),
            Tag::DataRow => M::DataRow(DataRow::decode(msg)?),
            Tag::CommandComplete => M::CommandComplete(CommandComplete::decode(msg)?),
            Tag::ErrorResponse => M::ErrorResponse(ErrorFields::decode(msg)?),
            Tag::NoticeResponse => M::NoticeResponse(ErrorFields::decode(msg)?),
            Tag::ParseComplete => empty(M::ParseComplete)?,
            Tag::BindComplete => empty(M::BindComplete)?,
            Tag::CloseComplete => empty(M::CloseComplete)?,
            Tag::NoData => empty(M::NoData)?,
            Tag::PortalSuspended => empty(M::PortalSuspended)?,
            Tag::EmptyQueryResponse => empty(M::EmptyQueryResponse)?,
            Tag::CopyDone => empty(M::CopyDone)?,
            Tag::ParameterDescription => {
                M::ParameterDescription(ParameterDescription::decode(msg)?)
            }
            Tag::CopyInResponse => M::CopyInResponse(CopyResponse::decode(msg)?.1),
            Tag::CopyOutResponse => M::CopyOutResponse(CopyResponse::decode(msg)?.1),
            Tag::CopyBothResponse => M::CopyBothResponse(CopyResponse::decode(msg)?.1),
            Tag::CopyData => {
                let range = Reader::body(msg, b'd')?.rest_range();
                M::CopyData(msg.bytes.slice(range))
            }
            Tag::NotificationResponse => {
                M::NotificationResponse(NotificationResponse::decode(msg)?)
            }
            Tag::FunctionCallResponse => {
                M::FunctionCallResponse(FunctionCallResponse::decode(msg)?)
            }
        })
    }

    /// The message's tag.
    pub fn tag(&self) -> Tag {
        use BackendMessage as M;
        match self {
            M::Authentication(_) => Tag::Authentication,
            M::ParameterStatus(_) => Tag::ParameterStatus,
            M::BackendKeyData(_) => Tag::BackendKeyData,
            M::ReadyForQuery(_) => Tag::ReadyForQuery,
            M::NegotiateProtocolVersion(_) => Tag::NegotiateProtocolVersion,
            M::RowDescription(_) => Tag::RowDescription,
            M::DataRow(_) => Tag::DataRow,
            M::CommandComplete(_) => Tag::CommandComplete,
            M::ErrorResponse(_) => Tag::ErrorResponse,
            M::NoticeResponse(_) => Tag::NoticeResponse,
            M::ParseComplete => Tag::ParseComplete,
            M::BindComplete => Tag::BindComplete,
            M::CloseComplete => Tag::CloseComplete,
            M::NoData => Tag::NoData,
            M::PortalSuspended => Tag::PortalSuspended,
            M::ParameterDescription(_) => Tag::ParameterDescription,
            M::EmptyQueryResponse => Tag::EmptyQueryResponse,
            M::CopyInResponse(_) => Tag::CopyInResponse,
            M::CopyOutResponse(_) => Tag::CopyOutResponse,
            M::CopyBothResponse(_) => Tag::CopyBothResponse,
            M::CopyData(_) => Tag::CopyData,
            M::CopyDone => Tag::CopyDone,
            M::NotificationResponse(_) => Tag::NotificationResponse,
            M::FunctionCallResponse(_) => Tag::FunctionCallResponse,
        }
    }

    /// Encodes the message.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        use BackendMessage as M;
        match self {
            M::Authentication(m) => m.encode(out)?,
            M::ParameterStatus(m) => m.encode(out)?,
            M::BackendKeyData(m) => m.encode(out)?,
            M::ReadyForQuery(s) => encode_ready_for_query(*s, out),
            M::NegotiateProtocolVersion(m) => m.encode(out)?,
            M::RowDescription(m) => m.encode(out)?,
            M::DataRow(m) => m.encode(out)?,
            M::CommandComplete(m) => m.encode(out)?,
            M::ErrorResponse(m) => m.encode_error(out)?,
            M::NoticeResponse(m) => m.encode_notice(out)?,
            M::ParameterDescription(m) => m.encode(out)?,
            M::CopyInResponse(m) => m.encode(CopyDirection::In, out)?,
            M::CopyOutResponse(m) => m.encode(CopyDirection::Out, out)?,
            M::CopyBothResponse(m) => m.encode(CopyDirection::Both, out)?,
            M::CopyData(data) => encode_copy_data(data, out)?,
            M::NotificationResponse(m) => m.encode(out)?,
            M::FunctionCallResponse(m) => m.encode(out)?,
            M::ParseComplete
            | M::BindComplete
            | M::CloseComplete
            | M::NoData
            | M::PortalSuspended
            | M::EmptyQueryResponse
            | M::CopyDone => put_empty(out, self.tag().as_u8()),
        }
        Ok(())
    }
}
