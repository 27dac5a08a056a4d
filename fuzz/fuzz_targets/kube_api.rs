//! The kubernetes connection's readers on arbitrary input: the API path
//! parser never panics, and the WebSocket frame parser (exec/attach
//! streams) never panics and reads the same stream the same way however
//! it is cut into reads: the same data per channel, the same whole
//! messages, the same error.

#![no_main]

use hoop_agent::connector::kubernetes::path;
use hoop_agent::connector::kubernetes::ws::{Event, Parser, Side};
use libfuzzer_sys::fuzz_target;

/// What a parser saw, with stdin/stdout/stderr bytes joined per run of
/// the same channel (they arrive as the reads cut them).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Data(u8, Vec<u8>),
    Message(u8, Vec<u8>),
    Close,
    Error(String),
}

fn read(side: Side, bytes: &[u8], chunk: usize) -> Vec<Seen> {
    let mut p = Parser::new(side);
    let mut seen: Vec<Seen> = Vec::new();
    for part in bytes.chunks(chunk.max(1)) {
        let r = p.feed(part, &mut |e| match e {
            Event::Data { channel, data } => match seen.last_mut() {
                Some(Seen::Data(c, d)) if *c == channel => d.extend_from_slice(data),
                _ => seen.push(Seen::Data(channel, data.to_vec())),
            },
            Event::Message { channel, data } => seen.push(Seen::Message(channel, data.to_vec())),
            Event::Close => seen.push(Seen::Close),
        });
        if let Err(e) = r {
            seen.push(Seen::Error(e.to_string()));
            break;
        }
    }
    // An empty data run says nothing: drop it so cuts compare equal.
    seen.retain(|s| !matches!(s, Seen::Data(_, d) if d.is_empty()));
    seen
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (head, stream) = rest.split_at(rest.len().min(usize::from(selector) % 64));
    let text = String::from_utf8_lossy(head);
    let (p, q) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    for m in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get",
    ] {
        if let Ok(method) = m.parse() {
            let r = path::parse(&method, p, q);
            let _ = (r.is_read(), r.is_terminal());
        }
    }
    let _ = path::query_problem(q);
    let _ = path::query_pairs(q);
    for side in [Side::Client, Side::Server] {
        let whole = read(side, stream, stream.len());
        let cut = read(side, stream, 1 + usize::from(selector % 7));
        assert_eq!(whole, cut, "{side:?}");
    }
});
