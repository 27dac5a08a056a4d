//! NotificationResponse (`A`), backend → frontend: a NOTIFY on a channel
//! this session LISTENs to.

use bytes::BufMut;

use crate::pg::wire::{Reader, cstr_len, put_cstr, put_header};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// An asynchronous notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationResponse {
    /// The notifying session's backend process id.
    pub process_id: i32,
    pub channel: String,
    pub payload: String,
}

impl NotificationResponse {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'A')?;
        let process_id = r.i32()?;
        let channel = r.cstr()?.to_owned();
        let payload = r.cstr()?.to_owned();
        r.finish()?;
        Ok(NotificationResponse {
            process_id,
            channel,
            payload,
        })
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let len = 4
            + cstr_len(self.channel.as_bytes(), "notification channel")?
            + cstr_len(self.payload.as_bytes(), "notification payload")?;
        put_header(out, b'A', len)?;
        out.put_i32(self.process_id);
        put_cstr(out, self.channel.as_bytes());
        put_cstr(out, self.payload.as_bytes());
        Ok(())
    }
}
