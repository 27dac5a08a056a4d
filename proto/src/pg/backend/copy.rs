//! COPY, backend → frontend: CopyInResponse (`G`), CopyOutResponse (`H`),
//! CopyBothResponse (`W`), then CopyData (`d`) and CopyDone (`c`), which
//! have the same layout as the frontend's (see
//! [`crate::pg::frontend::encode_copy_data`]). COPY TO STDOUT output is
//! masked chunk by chunk from the CopyData messages.

use bytes::BufMut;

use crate::pg::wire::{Reader, count16, put_header};
use crate::pg::{DecodeError, EncodeError, Format, RawMessage};

/// Which COPY response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyDirection {
    /// `G`: COPY FROM STDIN, the client sends data.
    In,
    /// `H`: COPY TO STDOUT, the server sends data.
    Out,
    /// `W`: both ways (replication).
    Both,
}

impl CopyDirection {
    pub fn tag(self) -> u8 {
        match self {
            CopyDirection::In => b'G',
            CopyDirection::Out => b'H',
            CopyDirection::Both => b'W',
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            b'G' => Some(CopyDirection::In),
            b'H' => Some(CopyDirection::Out),
            b'W' => Some(CopyDirection::Both),
            _ => None,
        }
    }
}

/// The body of CopyInResponse, CopyOutResponse and CopyBothResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResponse {
    /// Text (rows of delimited text) or binary (COPY BINARY).
    pub format: Format,
    /// One per column; all equal to `format` in text mode.
    pub column_formats: Vec<Format>,
}

impl CopyResponse {
    /// Decodes a `G`, `H` or `W` message.
    pub fn decode(msg: &RawMessage) -> Result<(CopyDirection, Self), DecodeError> {
        let direction =
            CopyDirection::from_tag(msg.tag).ok_or(DecodeError::UnexpectedTag(msg.tag))?;
        let mut r = Reader::body(msg, msg.tag)?;
        let format = match r.u8()? {
            0 => Format::Text,
            1 => Format::Binary,
            _ => return Err(r.invalid("unknown copy format")),
        };
        let n = r.count16(2)?;
        let column_formats = (0..n)
            .map(|_| Format::from_code(r.i16()?).ok_or_else(|| r.invalid("unknown format code")))
            .collect::<Result<_, _>>()?;
        r.finish()?;
        Ok((
            direction,
            CopyResponse {
                format,
                column_formats,
            },
        ))
    }

    /// Encodes the response for `direction`.
    pub fn encode(
        &self,
        direction: CopyDirection,
        out: &mut impl BufMut,
    ) -> Result<(), EncodeError> {
        let count = count16(self.column_formats.len(), "columns")?;
        put_header(out, direction.tag(), 3 + 2 * self.column_formats.len())?;
        // Cannot truncate: format codes are 0 and 1.
        out.put_u8(self.format.code() as u8);
        out.put_u16(count);
        for f in &self.column_formats {
            out.put_i16(f.code());
        }
        Ok(())
    }
}
