//! Backend → client: runs of messages go to the client as the same bytes;
//! the relay only looks at the messages that end statements (for the audit
//! log), hides the answers to its own stand-ins, and tidies the errors its
//! stand-ins raise.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use hoop_proto::pg::backend::{self, ErrorFields, Severity, field};
use hoop_proto::pg::{self, RawMessage};
use quinn::SendStream;
use tokio::io::AsyncReadExt;

use super::masking::MaskState;
use super::relay::{Ctx, RelayError, audit_done};
use super::track::{Kind, Track};
use crate::connector::backend_split::ReadHalf;

async fn write(send: &mut SendStream, bytes: Bytes) -> Result<(), RelayError> {
    if bytes.is_empty() {
        return Ok(());
    }
    send.write_chunk(bytes)
        .await
        .map_err(|e| RelayError::Tunnel(e.to_string()))
}

/// What to do with one backend message.
enum Step {
    Pass,
    /// Send these bytes instead (none: drop the message).
    Replace(Bytes),
    /// End the session: masking cannot go on safely.
    Fail(String),
}

/// Hands what masking counted to the statement whose results these were.
fn take_tally(t: &mut Track, mask: &mut Option<&mut MaskState>) {
    if let Some(m) = mask {
        let mut summary = m.take_summary();
        if !summary.is_empty() {
            if let Some(p) = t.pending.front_mut() {
                p.masked.absorb(&mut summary);
            }
        }
    }
}

/// The error a client sees for a refused statement.
fn refusal_error(message: &str, rule: &str) -> Bytes {
    let mut f = ErrorFields::new(Severity::Error, "42501", message, None);
    f.set(field::HINT, format!("refused by hoop guardrail {rule}"));
    let mut out = Vec::with_capacity(128 + message.len());
    if f.encode_error(&mut out).is_err() {
        out.clear();
        let _ = ErrorFields::new(Severity::Error, "42501", "statement refused by hoop", None)
            .encode_error(&mut out);
    }
    Bytes::from(out)
}

/// Updates the bookkeeping for one complete backend message.
fn inspect(
    ctx: &Ctx,
    t: &mut Track,
    tag: u8,
    msg: &[u8],
    mut mask: Option<&mut MaskState>,
) -> Step {
    let mut masked = None;
    if let Some(m) = mask.as_deref_mut() {
        if matches!(tag, b'C' | b'E' | b'Z' | b's' | b'I') {
            take_tally(t, &mut Some(&mut *m));
        }
        match m.message(t, tag, msg) {
            Ok(r) => masked = r,
            Err(e) => return Step::Fail(e),
        }
    }
    match inspect_audit(ctx, t, tag, msg, mask) {
        Step::Pass => masked.map_or(Step::Pass, Step::Replace),
        other => other,
    }
}

fn inspect_audit(
    ctx: &Ctx,
    t: &mut Track,
    tag: u8,
    msg: &[u8],
    mask: Option<&mut MaskState>,
) -> Step {
    let body = msg.get(5..).unwrap_or(&[]);
    match tag {
        b'C' => {
            let text =
                String::from_utf8_lossy(body.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
            let rows = backend::rows(&text).unwrap_or(0);
            let done = match t.pending.front_mut() {
                Some(p) => {
                    p.rows += rows;
                    p.commands.push(text);
                    !matches!(p.kind, Kind::Query)
                }
                None => false,
            };
            if done {
                if let Some(p) = t.pending.pop_front() {
                    audit_done(ctx, p, "ok");
                }
            }
            Step::Pass
        }
        b'I' | b's' | b'V' => {
            if t.pending
                .front()
                .is_some_and(|p| !matches!(p.kind, Kind::Query))
            {
                if let Some(p) = t.pending.pop_front() {
                    audit_done(ctx, p, "ok");
                }
            }
            Step::Pass
        }
        b'E' => {
            let raw = RawMessage {
                tag,
                bytes: Bytes::copy_from_slice(msg),
            };
            let Ok(mut f) = ErrorFields::decode(&raw) else {
                return match mask {
                    Some(_) => Step::Fail(
                        "masking: the backend sent an ErrorResponse that does not decode; the session was ended so that nothing leaves unmasked".into(),
                    ),
                    None => Step::Pass,
                };
            };
            let mut refusal = match t.pending.front().map(|p| &p.kind) {
                Some(Kind::Refused { message, rule }) if f.code() == Some("22P02") => {
                    Some(refusal_error(message, rule))
                }
                _ => None,
            };
            if let (None, Some(m)) = (&refusal, mask) {
                match m.error(&mut f) {
                    Ok(r) => refusal = r,
                    Err(e) => return Step::Fail(e),
                }
                take_tally(t, &mut Some(m));
            }
            if let Some(p) = t.pending.front_mut() {
                p.sqlstate = f.code().map(String::from);
                p.error = f.message().map(String::from);
            }
            if t.pending
                .front()
                .is_some_and(|p| !matches!(p.kind, Kind::Query))
            {
                if let Some(p) = t.pending.pop_front() {
                    audit_done(ctx, p, "error");
                }
            }
            match refusal {
                Some(bytes) => Step::Replace(bytes),
                None => Step::Pass,
            }
        }
        b'Z' => {
            t.seen_rfq += 1;
            let n = t.seen_rfq;
            for p in t.finish_batch(n) {
                let outcome = if matches!(p.kind, Kind::Query) || p.error.is_some() {
                    "ok"
                } else {
                    "skipped"
                };
                audit_done(ctx, p, outcome);
            }
            Step::Pass
        }
        _ => Step::Pass,
    }
}

/// Relays until the backend closes or fails.
pub async fn run(
    ctx: Arc<Ctx>,
    track: Arc<Mutex<Track>>,
    mut backend: ReadHalf,
    mut buf: BytesMut,
    mut send: SendStream,
) -> (u64, Result<(), RelayError>) {
    let mut total = 0u64;
    let mut mask = ctx
        .masker
        .clone()
        .map(|m| MaskState::new(m, ctx.types.clone()));
    let result = loop {
        let mut scanned = 0usize;
        let mut out: Vec<Bytes> = Vec::new();
        // On a masked connection the messages are copied into one buffer
        // as they are checked (rows masked on the way): one write per
        // read, however many rows change. Sized for what was read plus a
        // little growth, so that it is not reallocated (and copied again)
        // a dozen times per read as it grows from empty.
        let mut copied: Vec<u8> = match mask {
            Some(_) => Vec::with_capacity(buf.len() + buf.len() / 8),
            None => Vec::new(),
        };
        let mut failure = None;
        // Bytes still to come of a message cut off at the buffer's end.
        let mut need = 0usize;
        loop {
            let (tag, len) = match pg::check_header(&buf[scanned..], pg::MAX_MESSAGE_LEN) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(RelayError::Backend(e.to_string()));
                    break;
                }
            };
            if buf.len() - scanned < len {
                // Room for the rest of it is made once the messages before
                // it have left the buffer: reserved now, a full buffer
                // would be copied whole (tens of KiB per read) to make it.
                need = len - (buf.len() - scanned);
                break;
            }
            let msg = &buf[scanned..scanned + len];
            // Row data and copy data pass without a look unless masked.
            let step = match (tag, mask.as_mut()) {
                (b'D' | b'd', None) => Step::Pass,
                (b'D', Some(m)) => match m.row(&track, msg, &mut copied) {
                    Ok(()) => {
                        scanned += len;
                        continue;
                    }
                    Err(e) => Step::Fail(e),
                },
                (b'd', Some(m)) => match m.copy_data(msg) {
                    Ok(None) => Step::Pass,
                    Ok(Some(b)) => Step::Replace(b),
                    Err(e) => Step::Fail(e),
                },
                _ => match track.lock() {
                    Ok(mut t) => inspect(&ctx, &mut t, tag, msg, mask.as_mut()),
                    Err(_) => {
                        failure = Some(RelayError::Backend("state lock poisoned".into()));
                        break;
                    }
                },
            };
            let copying = mask.is_some();
            match step {
                Step::Pass if copying => {
                    copied.extend_from_slice(&buf[scanned..scanned + len]);
                    scanned += len;
                }
                Step::Replace(b) if copying => {
                    copied.extend_from_slice(&b);
                    scanned += len;
                }
                Step::Pass => scanned += len,
                Step::Fail(e) => {
                    failure = Some(RelayError::Masking(e));
                    break;
                }
                Step::Replace(_) => {
                    if scanned > 0 {
                        out.push(buf.split_to(scanned).freeze());
                        scanned = 0;
                    }
                    let _ = buf.split_to(len);
                    if let Step::Replace(b) = step {
                        out.push(b);
                    }
                }
            }
        }
        if mask.is_some() {
            let _ = buf.split_to(scanned);
            if !copied.is_empty() {
                out.push(Bytes::from(copied));
            }
        } else if scanned > 0 {
            out.push(buf.split_to(scanned).freeze());
        }
        // One call for every chunk: masked rows interleave many of them.
        out.retain(|c| !c.is_empty());
        total += out.iter().map(|c| c.len() as u64).sum::<u64>();
        let write_failed = send
            .write_all_chunks(&mut out)
            .await
            .err()
            .map(|e| RelayError::Tunnel(e.to_string()));
        if let Some(e) = write_failed.or(failure) {
            break Err(e);
        }
        // The rest of a large message in one go, else a read's worth.
        if buf.capacity() - buf.len() < need.max(8 * 1024) {
            buf.reserve(need.max(64 * 1024));
        }
        match backend.read_buf(&mut buf).await {
            Ok(0) => {
                let client_done = track.lock().map(|t| t.client_done).unwrap_or(false);
                break if client_done {
                    Ok(())
                } else {
                    Err(RelayError::BackendClosed)
                };
            }
            Ok(_) => {}
            Err(e) => break Err(RelayError::BackendIo(e.to_string())),
        }
    };
    // Tell the client why, in its own protocol, unless it hung up itself.
    if let Err(e @ RelayError::Masking(_)) = &result {
        let mut f = ErrorFields::new(Severity::Fatal, "XX000", &format!("hoop: {e}"), None);
        f.set(
            field::HINT,
            "reconnect to continue; tell the hoop agent's operator if this repeats",
        );
        let mut out = Vec::new();
        if f.encode_error(&mut out).is_ok() {
            let _ = write(&mut send, Bytes::from(out)).await;
        }
    }
    if let Err(
        e @ (RelayError::Backend(_) | RelayError::BackendIo(_) | RelayError::BackendClosed),
    ) = &result
    {
        let mut f = ErrorFields::new(
            Severity::Fatal,
            "08006",
            &format!("hoop: {e}; the session has ended, reconnect to continue"),
            None,
        );
        f.set(
            field::HINT,
            "the database may have restarted, or the agent lost its connection to it",
        );
        let mut out = Vec::new();
        if f.encode_error(&mut out).is_ok() {
            let _ = write(&mut send, Bytes::from(out)).await;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), send.stopped()).await;
    (total, result)
}
