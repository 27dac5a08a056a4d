//! SPDY/3.1 frames, as much as the server side of `kubectl port-forward`
//! needs (the Go `spdystream` client kubectl uses): decoding every frame
//! type the client may send, encoding `SYN_REPLY`, `DATA`, `PING`,
//! `RST_STREAM` and `GOAWAY`. Header blocks are zlib streams, one per
//! direction for the whole connection, sync-flushed after each frame;
//! the client's starts with the SPDY/3 preset dictionary. No I/O here:
//! [`decode`] takes the bytes read so far and says whether a whole frame
//! is there.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest frame accepted, payload included: kubectl's data frames are
/// at most 32 KiB and its control frames a few hundred bytes.
pub const MAX_FRAME: usize = 1 << 20;
/// Largest header block once inflated.
pub const MAX_HEADER_BLOCK: usize = 64 << 10;
/// Most headers in one block.
pub const MAX_HEADERS: usize = 64;

/// `DATA` and control frame flag: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status: PROTOCOL_ERROR.
pub const RST_PROTOCOL_ERROR: u32 = 1;

/// One decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    SynReply {
        id: u32,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last: u32,
    },
    Headers {
        id: u32,
    },
    WindowUpdate {
        id: u32,
    },
    Data {
        id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A control frame type SPDY/3 does not define: skipped.
    Unknown(u16),
}

/// Why the bytes are not SPDY/3.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    Version(u16),
    TooLarge(usize),
    Short(&'static str),
    HeaderBlock(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Version(v) => write!(f, "spdy version {v}, expected 3"),
            FrameError::TooLarge(n) => write!(f, "frame of {n} bytes, over the {MAX_FRAME} cap"),
            FrameError::Short(what) => write!(f, "{what} frame too short"),
            FrameError::HeaderBlock(why) => write!(f, "bad header block: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decodes the frame at the start of `buf`: `Ok(None)` until it is all
/// there, else the frame and how many bytes it took.
pub fn decode(buf: &[u8], inflater: &mut Inflater) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
    if len + 8 > MAX_FRAME {
        return Err(FrameError::TooLarge(len + 8));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let flags = buf[4];
    let p = &buf[8..8 + len];
    let id_at = |at: usize, what| {
        u32_at(p, at)
            .map(|v| v & 0x7fff_ffff)
            .ok_or(FrameError::Short(what))
    };
    if buf[0] & 0x80 == 0 {
        let id = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) & 0x7fff_ffff;
        let fin = flags & FLAG_FIN != 0;
        return Ok(Some((
            Frame::Data {
                id,
                fin,
                data: p.to_vec(),
            },
            8 + len,
        )));
    }
    let version = u16::from_be_bytes([buf[0], buf[1]]) & 0x7fff;
    if version != 3 {
        return Err(FrameError::Version(version));
    }
    let frame = match u16::from_be_bytes([buf[2], buf[3]]) {
        1 => {
            let id = id_at(0, "SYN_STREAM")?;
            let block = p.get(10..).ok_or(FrameError::Short("SYN_STREAM"))?;
            let headers = parse_headers(&inflater.inflate(block)?)?;
            Frame::SynStream { id, flags, headers }
        }
        2 => {
            let id = id_at(0, "SYN_REPLY")?;
            // Inflated to keep the shared zlib stream in step.
            parse_headers(&inflater.inflate(&p[4..])?)?;
            Frame::SynReply { id }
        }
        3 => Frame::RstStream {
            id: id_at(0, "RST_STREAM")?,
            status: u32_at(p, 4).ok_or(FrameError::Short("RST_STREAM"))?,
        },
        4 => Frame::Settings,
        6 => Frame::Ping(u32_at(p, 0).ok_or(FrameError::Short("PING"))?),
        7 => Frame::GoAway {
            last: id_at(0, "GOAWAY")?,
        },
        8 => {
            let id = id_at(0, "HEADERS")?;
            parse_headers(&inflater.inflate(&p[4..])?)?;
            Frame::Headers { id }
        }
        9 => Frame::WindowUpdate {
            id: id_at(0, "WINDOW_UPDATE")?,
        },
        other => Frame::Unknown(other),
    };
    Ok(Some((frame, 8 + len)))
}

/// A decoded header block: u32 count, then (u32 length, name, u32
/// length, value) pairs; every length checked against what is left.
pub fn parse_headers(b: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    let count = u32_at(b, 0).ok_or(FrameError::HeaderBlock("no count"))? as usize;
    if count > MAX_HEADERS {
        return Err(FrameError::HeaderBlock("too many headers"));
    }
    let mut at = 4;
    let string = |at: &mut usize| -> Result<String, FrameError> {
        let n = u32_at(b, *at).ok_or(FrameError::HeaderBlock("truncated length"))? as usize;
        let s = b
            .get(*at + 4..)
            .and_then(|rest| rest.get(..n))
            .ok_or(FrameError::HeaderBlock("length past the end"))?;
        *at += 4 + n;
        Ok(String::from_utf8_lossy(s).into_owned())
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let name = string(&mut at)?;
        let value = string(&mut at)?;
        out.push((name, value));
    }
    Ok(out)
}

/// Encodes a header block (before compression).
pub fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        for s in [k, v] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
    b
}

/// The client-to-server header stream.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(true))
    }
}

impl Inflater {
    /// Inflates one frame's header block (up to its sync flush).
    pub fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let (in0, out0) = (self.0.total_in(), self.0.total_out());
            let res = self.0.decompress(input, &mut buf, FlushDecompress::Sync);
            let used = (self.0.total_in() - in0) as usize;
            let made = (self.0.total_out() - out0) as usize;
            input = input.get(used..).unwrap_or_default();
            out.extend_from_slice(&buf[..made]);
            if out.len() > MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlock("inflates past the cap"));
            }
            match res {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(&dictionary())
                        .map_err(|_| FrameError::HeaderBlock("not the SPDY/3 dictionary"))?;
                }
                Err(_) => return Err(FrameError::HeaderBlock("not zlib")),
                Ok(Status::StreamEnd) => return Err(FrameError::HeaderBlock("zlib stream ended")),
                Ok(_) if input.is_empty() && made < buf.len() => return Ok(out),
                Ok(_) if used == 0 && made == 0 => {
                    return Err(FrameError::HeaderBlock("no progress"));
                }
                Ok(_) => {}
            }
        }
    }
}

/// The server-to-client header stream. It uses no preset dictionary:
/// Go's zlib reader takes a stream without one (FDICT unset) as it is.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        Deflater(Compress::new(Compression::default(), true))
    }
}

impl Deflater {
    /// Compresses one header block, sync-flushed.
    pub fn deflate(&mut self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let (in0, out0) = (self.0.total_in(), self.0.total_out());
            // Cannot fail: the stream is never finished or misused.
            let _ = self.0.compress(input, &mut buf, FlushCompress::Sync);
            let used = (self.0.total_in() - in0) as usize;
            let made = (self.0.total_out() - out0) as usize;
            input = input.get(used..).unwrap_or_default();
            out.extend_from_slice(&buf[..made]);
            if input.is_empty() && made < buf.len() {
                return out;
            }
        }
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(0x8000u16 | 3).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// `SYN_REPLY` with no headers.
pub fn syn_reply(id: u32, deflater: &mut Deflater) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend(deflater.deflate(&header_block(&[])));
    control(2, 0, &p)
}

/// A `DATA` frame; `data` must be under [`MAX_FRAME`].
pub fn data(id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    f.push(if fin { FLAG_FIN } else { 0 });
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

pub fn ping(id: u32) -> Vec<u8> {
    control(6, 0, &id.to_be_bytes())
}

pub fn rst_stream(id: u32, status: u32) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&status.to_be_bytes());
    control(3, 0, &p)
}

pub fn goaway(last: u32) -> Vec<u8> {
    let mut p = last.to_be_bytes().to_vec();
    p.extend_from_slice(&0u32.to_be_bytes());
    control(7, 0, &p)
}

/// The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1):
/// length-prefixed words, then a run of plain text.
pub fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
        203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request\
        401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented\
        503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
        Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,\
        application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=\
        gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Its Adler-32, the DICTID a SPDY/3 client's zlib header carries.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn headers_round_trip_through_a_dictionary_stream() {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(&dictionary()).unwrap();
        let mut inf = Inflater::default();
        for n in 0..3 {
            let port = format!("8{n}");
            let block = header_block(&[("streamtype", "data"), ("port", &port)]);
            let mut z = Vec::with_capacity(1024);
            c.compress_vec(&block, &mut z, FlushCompress::Sync).unwrap();
            let got = parse_headers(&inf.inflate(&z).unwrap()).unwrap();
            assert_eq!(got[1], ("port".into(), port));
        }
    }

    #[test]
    fn our_stream_inflates_without_a_dictionary() {
        let mut d = Deflater::default();
        let mut inf = Decompress::new(true);
        for _ in 0..2 {
            let z = d.deflate(&header_block(&[]));
            let mut out = Vec::with_capacity(64);
            inf.decompress_vec(&z, &mut out, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, [0, 0, 0, 0]);
        }
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics() {
        let mut inf = Inflater::default();
        // A length of 16 MiB - 1.
        let big = [0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff];
        assert_eq!(
            decode(&big, &mut inf),
            Err(FrameError::TooLarge(0xff_ffff + 8))
        );
        // A SYN_STREAM with 2 bytes of payload.
        assert_eq!(
            decode(&[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 1], &mut inf),
            Err(FrameError::Short("SYN_STREAM"))
        );
        assert_eq!(decode(&[0x80, 3, 0, 1, 0, 0, 0], &mut inf), Ok(None));
        assert_eq!(
            decode(&[0x80, 2, 0, 1, 0, 0, 0, 0], &mut inf),
            Err(FrameError::Version(2))
        );
        // Header blocks: a huge count, a length past the end.
        assert!(parse_headers(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse_headers(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0, b'a']).is_err());
        assert!(parse_headers(&[0, 0, 0, 1, 0, 0, 0]).is_err());
        // Not zlib.
        assert!(Inflater::default().inflate(&[0xff; 32]).is_err());
        // A zlib bomb: 1 MiB of zeros.
        let mut c = Compress::new(Compression::best(), true);
        let mut z = Vec::with_capacity(1 << 16);
        c.compress_vec(&vec![0u8; 1 << 20], &mut z, FlushCompress::Sync)
            .unwrap();
        assert_eq!(
            Inflater::default().inflate(&z),
            Err(FrameError::HeaderBlock("inflates past the cap"))
        );
    }
}
