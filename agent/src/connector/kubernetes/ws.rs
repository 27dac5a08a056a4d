//! WebSocket frames (RFC 6455) carrying the Kubernetes stream protocols
//! `v4.channel.k8s.io` and `v5.channel.k8s.io`, read as they pass by so
//! `exec` and `attach` can be recorded. Nothing here writes: the bytes
//! are forwarded unchanged by the caller of [`Parser::feed`].
//!
//! Each binary message starts with a channel byte: 0 stdin, 1 stdout,
//! 2 stderr, 3 error/status (JSON), 4 terminal resize (JSON
//! `{"Width":..,"Height":..}`), and with v5 255 "close channel N".
//!
//! Stdin, stdout and stderr stream through as they arrive, so the parser
//! holds at most a frame header; messages of the other channels, which
//! are read whole, are capped at [`MAX_SMALL_MESSAGE`], control frames
//! at 125 bytes, and any frame at [`MAX_FRAME`]. What does not parse (an
//! unmasked frame from the caller, reserved bits, a text message, a
//! continuation out of place) is an error: the session ends rather than
//! go unrecorded.

/// Largest frame accepted, in bytes (16 MiB); kubectl and the API server
/// send at most 32 KiB.
pub const MAX_FRAME: u64 = 16 << 20;
/// Largest status, resize or close message read whole (64 KiB).
pub const MAX_SMALL_MESSAGE: usize = 64 << 10;

/// Who sends the frames a parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller: every frame must be masked.
    Client,
    /// The API server: no frame may be masked.
    Server,
}

/// What the parser saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Bytes of a stdin, stdout or stderr message (channel 0-2), as they
    /// arrive.
    Data { channel: u8, data: &'a [u8] },
    /// A whole message of another channel (3 status, 4 resize, 255 close).
    Message { channel: u8, data: &'a [u8] },
    /// A close frame.
    Close,
}

/// Why the stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("a WebSocket frame from the {0} uses reserved bits or an extension")]
    Reserved(&'static str),
    #[error("a WebSocket frame from the {0} has reserved opcode {1}")]
    Opcode(&'static str, u8),
    #[error("a WebSocket frame from the caller is not masked")]
    Unmasked,
    #[error("a WebSocket frame from the API server is masked")]
    Masked,
    #[error("a WebSocket frame from the {0} is {1} bytes, more than the {MAX_FRAME} allowed")]
    TooLarge(&'static str, u64),
    #[error("a WebSocket control frame from the {0} is fragmented or longer than 125 bytes")]
    BadControl(&'static str),
    #[error("a channel {1} message from the {0} is longer than {MAX_SMALL_MESSAGE} bytes")]
    SmallTooLarge(&'static str, u8),
    #[error("a WebSocket frame from the {0} continues no message, or starts one inside another")]
    Sequence(&'static str),
    #[error(
        "a text WebSocket message from the {0}: only the binary v4/v5 channel protocols are recorded"
    )]
    Text(&'static str),
}

#[derive(Debug)]
enum State {
    /// Reading a frame header (up to 14 bytes).
    Header,
    Payload {
        left: u64,
        mask: Option<[u8; 4]>,
        /// Payload bytes read so far (for the mask's position).
        pos: u64,
        control: bool,
        fin: bool,
    },
}

/// An incremental reader of one direction's frames.
#[derive(Debug)]
pub struct Parser {
    side: Side,
    head: [u8; 14],
    head_len: usize,
    state: State,
    /// A data message is under way: its channel once its first byte came.
    in_message: bool,
    channel: Option<u8>,
    small: Vec<u8>,
    control: Vec<u8>,
    control_opcode: u8,
    scratch: Vec<u8>,
}

fn is_small(channel: u8) -> bool {
    channel > 2
}

impl Parser {
    pub fn new(side: Side) -> Parser {
        Parser {
            side,
            head: [0; 14],
            head_len: 0,
            state: State::Header,
            in_message: false,
            channel: None,
            small: Vec::new(),
            control: Vec::new(),
            control_opcode: 0,
            scratch: Vec::new(),
        }
    }

    fn who(&self) -> &'static str {
        match self.side {
            Side::Client => "caller",
            Side::Server => "API server",
        }
    }

    /// Reads `bytes`, calling `on` for what they complete.
    pub fn feed(&mut self, mut bytes: &[u8], on: &mut dyn FnMut(Event<'_>)) -> Result<(), WsError> {
        while !bytes.is_empty() {
            match self.state {
                State::Header => {
                    let need = self.header_len();
                    let take = (need - self.head_len).min(bytes.len());
                    self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
                    self.head_len += take;
                    bytes = &bytes[take..];
                    // The length may say more header bytes are needed.
                    if self.head_len == self.header_len() {
                        self.start_frame(on)?;
                    }
                }
                State::Payload { left, .. } => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    self.payload(&bytes[..take], on)?;
                    bytes = &bytes[take..];
                }
            }
        }
        Ok(())
    }

    /// Header bytes needed, given what has been read of it.
    fn header_len(&self) -> usize {
        if self.head_len < 2 {
            return 2;
        }
        let masked = self.head[1] & 0x80 != 0;
        let ext = match self.head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if masked { 4 } else { 0 }
    }

    fn start_frame(&mut self, on: &mut dyn FnMut(Event<'_>)) -> Result<(), WsError> {
        let who = self.who();
        let (b0, b1) = (self.head[0], self.head[1]);
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(WsError::Reserved(who));
        }
        let opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        match (self.side, masked) {
            (Side::Client, false) => return Err(WsError::Unmasked),
            (Side::Server, true) => return Err(WsError::Masked),
            _ => {}
        }
        let (len, at) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                4,
            ),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.head[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = masked.then(|| {
            let mut m = [0u8; 4];
            m.copy_from_slice(&self.head[at..at + 4]);
            m
        });
        let control = opcode >= 8;
        match opcode {
            0 if !self.in_message => return Err(WsError::Sequence(who)),
            0 => {}
            1 => return Err(WsError::Text(who)),
            2 if self.in_message => return Err(WsError::Sequence(who)),
            2 => {
                self.in_message = true;
                self.channel = None;
                self.small.clear();
            }
            8..=10 => {
                if !fin || len > 125 {
                    return Err(WsError::BadControl(who));
                }
                self.control.clear();
                self.control_opcode = opcode;
            }
            other => return Err(WsError::Opcode(who, other)),
        }
        if len > MAX_FRAME {
            return Err(WsError::TooLarge(who, len));
        }
        self.head_len = 0;
        self.state = State::Payload {
            left: len,
            mask,
            pos: 0,
            control,
            fin,
        };
        if len == 0 {
            self.end_frame(on)?;
        }
        Ok(())
    }

    fn payload(&mut self, chunk: &[u8], on: &mut dyn FnMut(Event<'_>)) -> Result<(), WsError> {
        let State::Payload {
            left,
            mask,
            pos,
            control,
            ..
        } = &mut self.state
        else {
            return Ok(());
        };
        let mut data = std::mem::take(&mut self.scratch);
        data.clear();
        data.extend_from_slice(chunk);
        if let Some(m) = mask {
            for (i, b) in data.iter_mut().enumerate() {
                *b ^= m[((*pos + i as u64) % 4) as usize];
            }
        }
        *pos += chunk.len() as u64;
        *left -= chunk.len() as u64;
        let (done, control) = (*left == 0, *control);
        let result = if control {
            self.control.extend_from_slice(&data);
            Ok(())
        } else {
            self.message_bytes(&data, on)
        };
        self.scratch = data;
        result?;
        if done {
            self.end_frame(on)?;
        }
        Ok(())
    }

    fn message_bytes(
        &mut self,
        mut data: &[u8],
        on: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), WsError> {
        let channel = match self.channel {
            Some(c) => c,
            None => {
                let Some((&c, rest)) = data.split_first() else {
                    return Ok(());
                };
                self.channel = Some(c);
                data = rest;
                c
            }
        };
        if data.is_empty() {
            return Ok(());
        }
        if is_small(channel) {
            if self.small.len() + data.len() > MAX_SMALL_MESSAGE {
                return Err(WsError::SmallTooLarge(self.who(), channel));
            }
            self.small.extend_from_slice(data);
        } else {
            on(Event::Data { channel, data });
        }
        Ok(())
    }

    fn end_frame(&mut self, on: &mut dyn FnMut(Event<'_>)) -> Result<(), WsError> {
        let State::Payload { control, fin, .. } = self.state else {
            return Ok(());
        };
        self.state = State::Header;
        if control {
            if self.control_opcode == 8 {
                on(Event::Close);
            }
            return Ok(());
        }
        if fin {
            self.in_message = false;
            if let Some(c) = self.channel.take().filter(|c| is_small(*c)) {
                on(Event::Message {
                    channel: c,
                    data: &self.small,
                });
                self.small.clear();
            }
        }
        Ok(())
    }
}

/// Encodes a frame, for the tests here and in `exec`: `mask` for frames
/// from the caller. The stand-in API server of `hoop-tests` writes and
/// reads its frames with code of its own, so the end-to-end tests do not
/// check this parser against itself.
#[cfg(test)]
pub(crate) fn encode(opcode: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Data(u8, Vec<u8>),
        Message(u8, Vec<u8>),
        Close,
    }

    /// Feeds `bytes` `step` at a time, joining adjacent data of a channel.
    fn run(side: Side, bytes: &[u8], step: usize) -> Result<Vec<Owned>, WsError> {
        let mut p = Parser::new(side);
        let mut out: Vec<Owned> = Vec::new();
        for chunk in bytes.chunks(step.max(1)) {
            p.feed(chunk, &mut |e| match e {
                Event::Data { channel, data } => match out.last_mut() {
                    Some(Owned::Data(c, d)) if *c == channel => d.extend_from_slice(data),
                    _ => out.push(Owned::Data(channel, data.to_vec())),
                },
                Event::Message { channel, data } => {
                    out.push(Owned::Message(channel, data.to_vec()))
                }
                Event::Close => out.push(Owned::Close),
            })?;
        }
        Ok(out)
    }

    const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    #[test]
    fn channels_from_both_sides_in_any_split() {
        let mut client = encode(2, true, b"\x00ls -l\n", KEY);
        client.extend(encode(2, true, b"\x04{\"Width\":120,\"Height\":40}", KEY));
        client.extend(encode(9, true, b"ping", KEY));
        client.extend(encode(2, true, b"\xff\x00", KEY));
        client.extend(encode(8, true, b"\x03\xe8", KEY));
        for step in [1, 2, 3, 7, 1000] {
            assert_eq!(
                run(Side::Client, &client, step).unwrap(),
                [
                    Owned::Data(0, b"ls -l\n".to_vec()),
                    Owned::Message(4, br#"{"Width":120,"Height":40}"#.to_vec()),
                    Owned::Message(255, vec![0]),
                    Owned::Close,
                ],
                "step {step}"
            );
        }
        let big = vec![b'x'; 70_000];
        let mut server = encode(2, true, &[&[1u8][..], &big].concat(), None);
        server.extend(encode(2, true, b"\x02oops", None));
        server.extend(encode(2, true, b"\x03{\"status\":\"Success\"}", None));
        assert_eq!(
            run(Side::Server, &server, 4096).unwrap(),
            [
                Owned::Data(1, big),
                Owned::Data(2, b"oops".to_vec()),
                Owned::Message(3, br#"{"status":"Success"}"#.to_vec()),
            ]
        );
    }

    #[test]
    fn fragments_with_control_frames_between() {
        let mut b = encode(2, false, b"\x01hel", None);
        b.extend(encode(10, true, b"", None));
        b.extend(encode(0, false, b"", None));
        b.extend(encode(0, true, b"lo", None));
        b.extend(encode(2, true, b"", None));
        assert_eq!(
            run(Side::Server, &b, 1).unwrap(),
            [Owned::Data(1, b"hello".to_vec())]
        );
    }

    #[test]
    fn hostile_frames_are_errors() {
        let cases: Vec<(Side, Vec<u8>, WsError)> = vec![
            (
                Side::Client,
                encode(2, true, b"\x00x", None),
                WsError::Unmasked,
            ),
            (
                Side::Server,
                encode(2, true, b"\x01x", KEY),
                WsError::Masked,
            ),
            (
                Side::Server,
                vec![0x82 | 0x40, 0],
                WsError::Reserved("API server"),
            ),
            (
                Side::Server,
                vec![0x83, 0],
                WsError::Opcode("API server", 3),
            ),
            (
                Side::Server,
                encode(0, true, b"x", None),
                WsError::Sequence("API server"),
            ),
            (
                Side::Server,
                [
                    encode(2, false, b"\x01", None),
                    encode(2, true, b"\x01", None),
                ]
                .concat(),
                WsError::Sequence("API server"),
            ),
            (
                Side::Server,
                encode(1, true, b"AQ==", None),
                WsError::Text("API server"),
            ),
            (
                Side::Server,
                encode(9, false, b"", None),
                WsError::BadControl("API server"),
            ),
            (
                Side::Server,
                [&[0x89u8, 126, 0, 200][..], &[0; 200]].concat(),
                WsError::BadControl("API server"),
            ),
            (
                Side::Server,
                vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
                WsError::TooLarge("API server", 1 << 63),
            ),
            (
                Side::Server,
                vec![0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0],
                WsError::TooLarge("API server", 1 << 28),
            ),
            (
                Side::Server,
                encode(
                    2,
                    true,
                    &[&[3u8][..], &vec![b'{'; MAX_SMALL_MESSAGE + 1]].concat(),
                    None,
                ),
                WsError::SmallTooLarge("API server", 3),
            ),
        ];
        for (side, bytes, want) in cases {
            assert_eq!(run(side, &bytes, 5).unwrap_err(), want, "{bytes:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), step in 1usize..20, client: bool) {
            let side = if client { Side::Client } else { Side::Server };
            let _ = run(side, &bytes, step);
        }
    }
}
