//! Packet framing, both directions: cuts whole logical packets out of a
//! read buffer, joining continuation packets, and rejects hostile lengths
//! from the headers alone.
//!
//! A physical packet is a 3-byte little-endian payload length, a sequence
//! id, then the payload. A payload of exactly [`MAX_CHUNK_LEN`] bytes means
//! the logical packet continues in the next physical packet (with the next
//! sequence id); the last one is shorter, possibly empty. Sequence ids
//! count every physical packet of an exchange from 0 and wrap at 255; a
//! command from the client starts a new exchange.

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::check_payload_len;
use super::{DecodeError, EncodeError, HEADER_LEN, MAX_CHUNK_LEN};

/// The header of one physical packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes in this physical packet.
    pub len: usize,
    /// Sequence id.
    pub seq: u8,
}

impl Header {
    /// Whether the logical packet continues in the next physical one.
    pub fn continues(&self) -> bool {
        self.len == MAX_CHUNK_LEN
    }
}

/// One whole logical packet, sharing the read buffer's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the first physical packet.
    pub seq: u8,
    /// Sequence id of the last physical packet: equal to `seq` unless the
    /// payload needed continuation packets.
    pub last_seq: u8,
    /// The logical payload, continuation headers removed. Shares `raw`'s
    /// memory when the packet was not split; joined (one copy) when it was.
    pub payload: Bytes,
    /// Every physical packet, headers included. Forward this to pass the
    /// packet through unchanged.
    pub raw: Bytes,
}

impl Packet {
    /// The sequence id the next packet of the exchange should carry.
    pub fn next_seq(&self) -> u8 {
        self.last_seq.wrapping_add(1)
    }

    /// The payload's first byte, which tells most packet kinds apart.
    pub fn first(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    /// Frames one logical packet from a buffer holding exactly one, e.g.
    /// bytes an encoder produced. `Ok(None)` if it is incomplete; trailing
    /// bytes after it are [`DecodeError::Invalid`].
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Option<Packet>, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let Some(packet) = split_packet(&mut buf, max_len)? else {
            return Ok(None);
        };
        if !buf.is_empty() {
            return Err(DecodeError::Invalid {
                what: "packet",
                reason: "trailing bytes after the packet",
            });
        }
        Ok(Some(packet))
    }
}

/// The header at the front of `buf`, or `None` with fewer than 4 bytes.
pub fn peek_header(buf: &[u8]) -> Option<Header> {
    let h = buf.first_chunk::<HEADER_LEN>()?;
    Some(Header {
        len: usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16,
        seq: h[3],
    })
}

/// The header at the front of `buf`, refused as [`DecodeError::TooLong`]
/// if its payload alone exceeds `max_len`. `Ok(None)` with fewer than 4
/// bytes. For callers that stream a large packet's chunks instead of
/// buffering the logical packet whole.
pub fn check_header(buf: &[u8], max_len: usize) -> Result<Option<Header>, DecodeError> {
    let Some(header) = peek_header(buf) else {
        return Ok(None);
    };
    if header.len > max_len {
        return Err(DecodeError::TooLong {
            len: header.len,
            max: max_len,
        });
    }
    Ok(Some(header))
}

/// Cuts the first whole logical packet off `buf`.
///
/// Returns `Ok(None)` when `buf` holds less than a whole logical packet;
/// nothing is reserved for announced lengths, so a peer announcing 16 MiB
/// costs only the bytes it actually sends. `max_len` bounds the logical
/// payload (all chunks together): use [`super::MAX_PRE_AUTH_PACKET_LEN`]
/// until authentication has completed, [`super::MAX_PACKET_LEN`] (or the
/// session's `max_allowed_packet`) after. Going over it is
/// [`DecodeError::TooLong`] as soon as the header that does so has arrived.
/// A continuation packet whose sequence id does not follow is
/// [`DecodeError::Invalid`].
pub fn split_packet(buf: &mut BytesMut, max_len: usize) -> Result<Option<Packet>, DecodeError> {
    let mut offset = 0;
    let mut total = 0usize;
    let mut first_seq = None;
    let mut last_seq = 0u8;
    loop {
        let Some(header) = peek_header(&buf[offset..]) else {
            return Ok(None);
        };
        match first_seq {
            None => first_seq = Some(header.seq),
            Some(_) if header.seq != last_seq.wrapping_add(1) => {
                return Err(DecodeError::Invalid {
                    what: "packet",
                    reason: "continuation packet out of sequence",
                });
            }
            Some(_) => {}
        }
        last_seq = header.seq;
        total = total.saturating_add(header.len);
        if total > max_len {
            return Err(DecodeError::TooLong {
                len: total,
                max: max_len,
            });
        }
        let end = offset + HEADER_LEN + header.len;
        if buf.len() < end {
            return Ok(None);
        }
        offset = end;
        if !header.continues() {
            break;
        }
    }
    let seq = first_seq.unwrap_or(last_seq);
    let raw = buf.split_to(offset).freeze();
    let payload = if total + HEADER_LEN == raw.len() {
        raw.slice(HEADER_LEN..)
    } else {
        join_chunks(&raw, total)
    };
    Ok(Some(Packet {
        seq,
        last_seq,
        payload,
        raw,
    }))
}

/// The payloads of the physical packets in `raw`, joined. `total` is their
/// sum, already checked against the caller's limit and against the bytes
/// present in `raw`.
fn join_chunks(raw: &Bytes, total: usize) -> Bytes {
    let mut payload = BytesMut::with_capacity(total);
    let mut rest = &raw[..];
    while let Some(header) = peek_header(rest) {
        let end = (HEADER_LEN + header.len).min(rest.len());
        payload.extend_from_slice(&rest[HEADER_LEN..end]);
        rest = &rest[end..];
    }
    payload.freeze()
}

/// Frames `payload` as one logical packet starting at sequence id `seq`,
/// splitting it into continuation packets when it needs them (and ending
/// with an empty packet when its length is a multiple of
/// [`MAX_CHUNK_LEN`]). Returns the sequence id for the next packet.
///
/// A rebuilt packet (e.g. a masked row) may need more or fewer physical
/// packets than the one it replaces; the caller then shifts the sequence
/// ids of the rest of the exchange by the difference.
pub fn encode_packet(seq: u8, payload: &[u8], out: &mut impl BufMut) -> Result<u8, EncodeError> {
    check_payload_len(payload.len())?;
    let mut seq = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_CHUNK_LEN);
        out.put_slice(&(n as u32).to_le_bytes()[..3]);
        out.put_u8(seq);
        out.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_CHUNK_LEN {
            return Ok(seq);
        }
    }
}

/// Appends one logical packet to `out` whose payload `write` produces,
/// without an intermediate buffer for payloads under 16 MiB: a header is
/// reserved and patched afterwards. Returns the sequence id for the next
/// packet. On error `out` is left as it was.
pub fn write_packet(
    out: &mut BytesMut,
    seq: u8,
    write: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<u8, EncodeError> {
    let start = out.len();
    out.put_bytes(0, HEADER_LEN);
    let written = write(out).and_then(|()| check_payload_len(out.len() - start - HEADER_LEN));
    if let Err(e) = written {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - HEADER_LEN;
    if len < MAX_CHUNK_LEN {
        out[start..start + 3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
        out[start + 3] = seq;
        return Ok(seq.wrapping_add(1));
    }
    let payload = out.split_off(start + HEADER_LEN);
    out.truncate(start);
    encode_packet(seq, &payload, out)
}
