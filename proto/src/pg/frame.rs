//! Framing, both directions: cuts whole messages out of a read buffer
//! without copying them, and rejects hostile lengths from the header alone.
//!
//! A tagged message is `tag: u8`, `len: i32` (counting itself and the body,
//! not the tag), then `len - 4` body bytes. The startup packet that opens a
//! connection has no tag: `len: i32` (counting itself), then the body.

use bytes::{Bytes, BytesMut};

use super::wire::HEADER_LEN;
use super::{DecodeError, MAX_STARTUP_LEN, STARTUP_TAG};

/// One whole tagged message, sharing the read buffer's memory.
///
/// [`split_message`] guarantees `bytes[0] == tag` and that the length word
/// matches `bytes.len() - 1`; decoders read only [`RawMessage::body`], so a
/// hand-built value with inconsistent fields cannot make them panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The type byte.
    pub tag: u8,
    /// The whole message: tag, length word and body. Forward this to pass
    /// the message through unchanged.
    pub bytes: Bytes,
}

impl RawMessage {
    /// The body, after the tag and length word.
    pub fn body(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Length of the whole message in bytes, tag included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true for a message from [`split_message`], which always holds
    /// at least the 5 header bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Frames one message from a buffer holding exactly one, e.g. bytes an
    /// encoder produced. `Ok(None)` if it is incomplete; trailing bytes
    /// after the message are [`DecodeError::Invalid`].
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Option<RawMessage>, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let Some(msg) = split_message(&mut buf, max_len)? else {
            return Ok(None);
        };
        if !buf.is_empty() {
            return Err(DecodeError::Invalid {
                tag: msg.tag,
                reason: "trailing bytes after the message",
            });
        }
        Ok(Some(msg))
    }
}

/// Tag and total length (tag included) announced by the header at the
/// front of `buf`, or `None` with fewer than 5 bytes. Does not validate:
/// the length may be absurd or less than 5. Use [`check_header`] to apply
/// the same checks as [`split_message`].
pub fn peek_header(buf: &[u8]) -> Option<(u8, usize)> {
    let (&tag, rest) = buf.split_first()?;
    let len = rest.first_chunk::<4>().map(|l| u32::from_be_bytes(*l))?;
    Some((tag, (len as usize).saturating_add(1)))
}

/// Validated header at the front of `buf`: tag and total length (tag
/// included). `Ok(None)` with fewer than 5 bytes. For callers that stream a
/// large CopyData or DataRow instead of buffering it whole.
pub fn check_header(buf: &[u8], max_len: usize) -> Result<Option<(u8, usize)>, DecodeError> {
    let Some((tag, total)) = peek_header(buf) else {
        return Ok(None);
    };
    let len = total - 1;
    if len < 4 {
        return Err(DecodeError::Invalid {
            tag,
            reason: "length word smaller than 4",
        });
    }
    // The length word is an Int32: above i32::MAX it is negative, which no
    // caller's limit can allow.
    if len > max_len || len > i32::MAX as usize {
        return Err(DecodeError::TooLong {
            tag,
            len,
            max: max_len,
        });
    }
    Ok(Some((tag, total)))
}

/// Cuts the first whole message off `buf`.
///
/// Returns `Ok(None)` when `buf` holds less than a whole message; nothing
/// is reserved for the announced length, so a peer announcing 1 GiB costs
/// only the bytes it actually sends. `max_len` bounds the length word
/// (body + 4): use [`super::MAX_PRE_AUTH_MESSAGE_LEN`] until authentication
/// has completed, [`super::MAX_MESSAGE_LEN`] after. A longer announcement
/// is [`DecodeError::TooLong`] as soon as the 5-byte header has arrived.
pub fn split_message(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<RawMessage>, DecodeError> {
    let Some((tag, total)) = check_header(buf, max_len)? else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(RawMessage {
        tag,
        bytes: buf.split_to(total).freeze(),
    }))
}

/// Cuts the untagged startup packet (StartupMessage, SSLRequest,
/// GSSENCRequest or CancelRequest) off `buf`, length word included; decode
/// it with [`super::StartupPacket::decode`]. Capped at
/// [`MAX_STARTUP_LEN`]; shorter than 8 bytes is invalid.
pub fn split_startup(buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
    let Some(len) = buf
        .first_chunk::<4>()
        .map(|l| u32::from_be_bytes(*l) as usize)
    else {
        return Ok(None);
    };
    if len < 8 {
        return Err(DecodeError::Invalid {
            tag: STARTUP_TAG,
            reason: "startup packet shorter than 8 bytes",
        });
    }
    if len > MAX_STARTUP_LEN {
        return Err(DecodeError::TooLong {
            tag: STARTUP_TAG,
            len,
            max: MAX_STARTUP_LEN,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(buf.split_to(len).freeze()))
}
