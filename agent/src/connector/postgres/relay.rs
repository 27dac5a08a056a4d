//! A logged-in PostgreSQL session: messages flow both ways, inspected but
//! passed through as the same bytes (runs of messages are forwarded as
//! one chunk, never copied) unless a guardrail refuses one. Every
//! statement is audited with its outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hoop_proto::pg::backend::{self, ErrorFields, Severity, TransactionStatus};
use hoop_proto::pg::frontend::{Bind, Close, Execute, FunctionCall, Parse, Query, Target};
use hoop_proto::pg::{self, RawMessage};
use quinn::{RecvStream, SendStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Notify;

use super::track::{Injection, Kind, Pending, Track, When};
use crate::audit::{AuditLog, Event, Who};
use crate::connector::backend_tls::BackendStream;
use crate::guard::{Guard, Verdict};

/// Longest statement text kept in an audit event, in bytes.
const MAX_AUDIT_TEXT: usize = 16 * 1024;
/// Prepared statements and portals remembered per session.
const MAX_NAMES: usize = 10_000;
/// Client messages the relay looks into; the rest pass untouched.
const INSPECTED: &[u8] = b"QPBECDHSF";

/// What the relay needs to know about the session.
pub struct Ctx {
    pub session: String,
    pub who: Who,
    pub connection: String,
    pub audit: AuditLog,
    pub guard: Guard,
    pub audit_parameters: bool,
}

/// Why the session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client sent a malformed message: {0}")]
    Client(String),
    #[error("backend sent a malformed message: {0}")]
    Backend(String),
    #[error("the backend connection failed: {0}")]
    BackendIo(String),
    #[error("the backend closed the connection")]
    BackendClosed,
    #[error("the tunnel stream failed: {0}")]
    Tunnel(String),
}

/// Bytes moved: (client → backend, backend → client).
pub type Counts = (u64, u64);

/// Runs the session until either side ends it.
pub async fn run(
    ctx: Arc<Ctx>,
    client_send: SendStream,
    client_recv: RecvStream,
    client_buf: BytesMut,
    backend: BackendStream,
    backend_buf: BytesMut,
    status: TransactionStatus,
) -> (Counts, Result<(), RelayError>) {
    let track = Arc::new(Mutex::new(Track::new(status.as_u8())));
    let notify = Arc::new(Notify::new());
    let (b_read, b_write) = tokio::io::split(backend);
    let up = tokio::spawn(client_to_backend(
        ctx.clone(),
        track.clone(),
        notify.clone(),
        client_recv,
        client_buf,
        b_write,
    ));
    let (down_bytes, down) =
        backend_to_client(ctx.clone(), track, notify, b_read, backend_buf, client_send).await;
    // The backend side is over: the client side has nothing left to do.
    up.abort();
    let up_bytes = match up.await {
        Ok((n, Err(e))) => return ((n, down_bytes), down.and(Err(e))),
        Ok((n, Ok(()))) => n,
        Err(_) => 0,
    };
    ((up_bytes, down_bytes), down)
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_AUDIT_TEXT {
        return s.to_string();
    }
    let mut end = MAX_AUDIT_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &s[..end], s.len())
}

fn refusal(message: &str, rule: &str) -> Bytes {
    let mut f = ErrorFields::new(Severity::Error, "42501", message, None);
    f.set(
        backend::field::HINT,
        format!("refused by hoop guardrail {rule}"),
    );
    let mut out = Vec::with_capacity(128 + message.len());
    if f.encode_error(&mut out).is_err() {
        // A message with a NUL byte: fall back to a fixed text.
        out.clear();
        let _ = ErrorFields::new(Severity::Error, "42501", "statement refused by hoop", None)
            .encode_error(&mut out);
    }
    Bytes::from(out)
}

/// Bound parameters as audited: text, or a size note for binary values.
type Params = Option<Vec<Option<String>>>;
type Portal = (String, Params);

struct ClientState {
    /// Refusing everything up to the next Sync (extended protocol).
    discard: bool,
    /// The refusal that started `discard`.
    discard_error: Option<Bytes>,
    /// Messages forwarded since the last Sync.
    fwd_since_sync: u64,
    statements: HashMap<String, String>,
    /// Portal → (statement name, bound parameters when audited).
    portals: HashMap<String, Portal>,
}

async fn client_to_backend(
    ctx: Arc<Ctx>,
    track: Arc<Mutex<Track>>,
    notify: Arc<Notify>,
    mut recv: RecvStream,
    mut buf: BytesMut,
    mut backend: WriteHalf<BackendStream>,
) -> (u64, Result<(), RelayError>) {
    let mut total = 0u64;
    let mut st = ClientState {
        discard: false,
        discard_error: None,
        fwd_since_sync: 0,
        statements: HashMap::new(),
        portals: HashMap::new(),
    };
    loop {
        // Handle every complete message in the buffer. Runs of forwarded
        // messages leave as one chunk of the original bytes; a refused
        // message is skipped over.
        let mut forward: Vec<Bytes> = Vec::new();
        let mut scanned = 0usize;
        loop {
            let header = match pg::check_header(&buf[scanned..], pg::MAX_MESSAGE_LEN) {
                Ok(h) => h,
                Err(e) => return (total, Err(RelayError::Client(e.to_string()))),
            };
            let Some((tag, len)) = header else { break };
            if buf.len() - scanned < len {
                buf.reserve(len - (buf.len() - scanned));
                break;
            }
            let keep = if INSPECTED.contains(&tag) {
                let msg = RawMessage {
                    tag,
                    bytes: Bytes::copy_from_slice(&buf[scanned..scanned + len]),
                };
                match inspect_client(&ctx, &track, &notify, &mut st, &msg) {
                    Ok(k) => k,
                    Err(e) => return (total, Err(e)),
                }
            } else {
                if tag == b'X' {
                    if let Ok(mut t) = track.lock() {
                        t.client_done = true;
                    }
                }
                true
            };
            if keep {
                scanned += len;
            } else {
                if scanned > 0 {
                    forward.push(buf.split_to(scanned).freeze());
                    scanned = 0;
                }
                let _ = buf.split_to(len);
            }
        }
        if scanned > 0 {
            forward.push(buf.split_to(scanned).freeze());
        }
        for chunk in forward {
            total += chunk.len() as u64;
            if let Err(e) = backend.write_all(&chunk).await {
                return (total, Err(RelayError::BackendIo(e.to_string())));
            }
        }
        match recv.read_chunk(256 * 1024, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                if let Ok(mut t) = track.lock() {
                    t.client_done = true;
                }
                let _ = backend.shutdown().await;
                return (total, Ok(()));
            }
            Err(e) => {
                let _ = backend.shutdown().await;
                return (total, Err(RelayError::Tunnel(e.to_string())));
            }
        }
    }
}

/// Decides about one client message; true to forward it.
fn inspect_client(
    ctx: &Ctx,
    track: &Mutex<Track>,
    notify: &Notify,
    st: &mut ClientState,
    msg: &RawMessage,
) -> Result<bool, RelayError> {
    let bad = |e: pg::DecodeError| RelayError::Client(e.to_string());
    let mut t = track
        .lock()
        .map_err(|_| RelayError::Client("state lock poisoned".into()))?;
    let refuse =
        |t: &mut Track, kind: &str, text: &str, rule: String, message: String, immediate: bool| {
            ctx.audit.record(Event::StatementRefused {
                session: ctx.session.clone(),
                who: ctx.who.clone(),
                connection: ctx.connection.clone(),
                kind: kind.to_string(),
                text: clip(text),
                rule: rule.clone(),
                message: message.clone(),
            });
            let error = refusal(&message, &rule);
            if immediate {
                let at = t.sent_syncs;
                t.injections.push_back(Injection {
                    when: When::AfterRfq(at),
                    error,
                });
                notify.notify_one();
                None
            } else {
                Some(error)
            }
        };
    match msg.tag {
        b'Q' => {
            let q = Query::decode(msg).map_err(bad)?;
            if let Verdict::Deny { rule, message } = ctx.guard.check(q.query) {
                refuse(&mut t, "query", q.query, rule, message, true);
                return Ok(false);
            }
            t.sent_syncs += 1;
            let sync_no = t.sent_syncs;
            t.pending
                .push_back(pending(Kind::Query, q.query, None, sync_no));
            Ok(true)
        }
        b'P' => {
            let p = Parse::decode(msg).map_err(bad)?;
            if st.discard {
                return Ok(false);
            }
            if let Verdict::Deny { rule, message } = ctx.guard.check(p.query) {
                st.discard = true;
                st.discard_error = refuse(&mut t, "parse", p.query, rule, message, false);
                return Ok(false);
            }
            if st.statements.len() >= MAX_NAMES {
                st.statements.clear();
            }
            st.statements
                .insert(p.name.to_string(), p.query.to_string());
            ctx.audit.record(Event::StatementPrepared {
                session: ctx.session.clone(),
                who: ctx.who.clone(),
                connection: ctx.connection.clone(),
                statement: p.name.to_string(),
                text: clip(p.query),
            });
            st.fwd_since_sync += 1;
            Ok(true)
        }
        b'B' => {
            let b = Bind::decode(msg).map_err(bad)?;
            if st.discard {
                return Ok(false);
            }
            let params = ctx.audit_parameters.then(|| {
                b.params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        p.map(|v| match b.param_format(i) {
                            Some(pg::Format::Text) => String::from_utf8_lossy(v).into_owned(),
                            _ => format!("<{} bytes binary>", v.len()),
                        })
                    })
                    .collect()
            });
            if st.portals.len() >= MAX_NAMES {
                st.portals.clear();
            }
            st.portals
                .insert(b.portal.to_string(), (b.statement.to_string(), params));
            st.fwd_since_sync += 1;
            Ok(true)
        }
        b'E' => {
            let e = Execute::decode(msg).map_err(bad)?;
            if st.discard {
                return Ok(false);
            }
            let (stmt, params) = st.portals.get(e.portal).cloned().unwrap_or_default();
            let text = st.statements.get(&stmt).cloned().unwrap_or_default();
            let sync_no = t.sent_syncs + 1;
            t.pending.push_back(pending(
                Kind::Execute { statement: stmt },
                &text,
                params,
                sync_no,
            ));
            st.fwd_since_sync += 1;
            Ok(true)
        }
        b'C' => {
            if st.discard {
                return Ok(false);
            }
            if let Ok(c) = Close::decode(msg) {
                match c.target {
                    Target::Statement => st.statements.remove(c.name),
                    Target::Portal => st.portals.remove(c.name).map(|p| p.0),
                };
            }
            st.fwd_since_sync += 1;
            Ok(true)
        }
        b'D' | b'H' => {
            if st.discard {
                return Ok(false);
            }
            st.fwd_since_sync += 1;
            Ok(true)
        }
        b'S' => {
            if st.discard {
                st.discard = false;
                let error = st
                    .discard_error
                    .take()
                    .unwrap_or_else(|| refusal("statement refused by hoop", "unknown"));
                if st.fwd_since_sync > 0 {
                    // Part of the batch already reached the backend: end it
                    // there, and put the refusal before its ReadyForQuery.
                    st.fwd_since_sync = 0;
                    t.sent_syncs += 1;
                    let n = t.sent_syncs;
                    t.injections.push_back(Injection {
                        when: When::BeforeRfq(n),
                        error,
                    });
                    return Ok(true);
                }
                let at = t.sent_syncs;
                t.injections.push_back(Injection {
                    when: When::AfterRfq(at),
                    error,
                });
                notify.notify_one();
                return Ok(false);
            }
            st.fwd_since_sync = 0;
            t.sent_syncs += 1;
            Ok(true)
        }
        b'F' => {
            let f = FunctionCall::decode(msg).map_err(bad)?;
            let text = format!("function call oid {}", f.function_oid);
            if ctx.guard.read_only() {
                refuse(
                    &mut t,
                    "function_call",
                    &text,
                    "read_only".into(),
                    "this connection is read-only: function calls by OID are not allowed through hoop".into(),
                    true,
                );
                return Ok(false);
            }
            // A FunctionCall is answered by a ReadyForQuery of its own.
            t.sent_syncs += 1;
            let sync_no = t.sent_syncs;
            t.pending.push_back(pending(
                Kind::FunctionCall {
                    oid: f.function_oid,
                },
                &text,
                None,
                sync_no,
            ));
            Ok(true)
        }
        // CopyData, CopyDone, CopyFail, Terminate and the rest pass.
        _ => Ok(true),
    }
}

fn pending(kind: Kind, text: &str, params: Option<Vec<Option<String>>>, sync_no: u64) -> Pending {
    Pending {
        kind,
        text: clip(text),
        params,
        started: Instant::now(),
        sync_no,
        rows: 0,
        commands: Vec::new(),
        sqlstate: None,
        error: None,
    }
}

fn audit_done(ctx: &Ctx, p: Pending, outcome: &str) {
    let statement = match &p.kind {
        Kind::Execute { statement } => Some(statement.clone()),
        _ => None,
    };
    ctx.audit.record(Event::Statement {
        session: ctx.session.clone(),
        who: ctx.who.clone(),
        connection: ctx.connection.clone(),
        kind: p.kind.name().to_string(),
        statement,
        text: p.text,
        params: p.params,
        duration_us: u64::try_from(p.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        rows: p.rows,
        commands: p.commands,
        outcome: if p.error.is_some() {
            "error".into()
        } else {
            outcome.into()
        },
        sqlstate: p.sqlstate,
        error: p.error,
    });
}

async fn write(send: &mut SendStream, bytes: Bytes) -> Result<(), RelayError> {
    if bytes.is_empty() {
        return Ok(());
    }
    send.write_chunk(bytes)
        .await
        .map_err(|e| RelayError::Tunnel(e.to_string()))
}

fn ready_for_query(status: u8) -> Bytes {
    let s = match status {
        b'T' => TransactionStatus::InTransaction,
        b'E' => TransactionStatus::Failed,
        _ => TransactionStatus::Idle,
    };
    let mut out = Vec::with_capacity(6);
    backend::encode_ready_for_query(s, &mut out);
    Bytes::from(out)
}

async fn backend_to_client(
    ctx: Arc<Ctx>,
    track: Arc<Mutex<Track>>,
    notify: Arc<Notify>,
    mut backend: ReadHalf<BackendStream>,
    mut buf: BytesMut,
    mut send: SendStream,
) -> (u64, Result<(), RelayError>) {
    let mut total = 0u64;
    let result = loop {
        // Scan complete messages; forward runs of them in one chunk.
        let mut scanned = 0usize;
        let mut out: Vec<Bytes> = Vec::new();
        let mut failure = None;
        loop {
            let header = match pg::check_header(&buf[scanned..], pg::MAX_MESSAGE_LEN) {
                Ok(h) => h,
                Err(e) => {
                    failure = Some(RelayError::Backend(e.to_string()));
                    break;
                }
            };
            let Some((tag, len)) = header else { break };
            if buf.len() - scanned < len {
                // Make room for the rest of a large message in one go.
                buf.reserve(len - (buf.len() - scanned));
                break;
            }
            let Ok(mut t) = track.lock() else {
                failure = Some(RelayError::Backend("state lock poisoned".into()));
                break;
            };
            let status_byte = buf.get(scanned + 5).copied().unwrap_or(b'I');
            match tag {
                b'C' => {
                    let body = &buf[scanned + 5..scanned + len];
                    let tag_text =
                        String::from_utf8_lossy(body.split(|b| *b == 0).next().unwrap_or(&[]))
                            .into_owned();
                    let rows = backend::rows(&tag_text).unwrap_or(0);
                    let execute_done = match t.pending.front_mut() {
                        Some(p) => {
                            p.rows += rows;
                            p.commands.push(tag_text);
                            !matches!(p.kind, Kind::Query)
                        }
                        None => false,
                    };
                    if execute_done {
                        if let Some(p) = t.pending.pop_front() {
                            audit_done(&ctx, p, "ok");
                        }
                    }
                }
                b'I' | b's' | b'V'
                    if t.pending
                        .front()
                        .is_some_and(|p| !matches!(p.kind, Kind::Query)) =>
                {
                    if let Some(p) = t.pending.pop_front() {
                        audit_done(&ctx, p, "ok");
                    }
                }
                b'E' => {
                    let raw = RawMessage {
                        tag,
                        bytes: Bytes::copy_from_slice(&buf[scanned..scanned + len]),
                    };
                    if let Ok(f) = ErrorFields::decode(&raw) {
                        if let Some(p) = t.pending.front_mut() {
                            p.sqlstate = f.code().map(String::from);
                            p.error = f.message().map(String::from);
                            if !matches!(p.kind, Kind::Query) {
                                if let Some(p) = t.pending.pop_front() {
                                    audit_done(&ctx, p, "error");
                                }
                            }
                        }
                    }
                }
                b'Z' => {
                    let n = t.seen_rfq + 1;
                    let before = t.take_before(n);
                    if !before.is_empty() {
                        out.push(buf.split_to(scanned).freeze());
                        scanned = 0;
                        out.extend(before);
                    }
                    t.seen_rfq = n;
                    t.status = status_byte;
                    for p in t.finish_batch(n) {
                        let outcome = if matches!(p.kind, Kind::Query) || p.error.is_some() {
                            "ok"
                        } else {
                            "skipped"
                        };
                        audit_done(&ctx, p, outcome);
                    }
                    let after = t.take_after();
                    if !after.is_empty() {
                        out.push(buf.split_to(scanned + len).freeze());
                        scanned = 0;
                        let status = t.status;
                        for e in after {
                            out.push(e);
                            out.push(ready_for_query(status));
                        }
                        continue;
                    }
                }
                _ => {}
            }
            drop(t);
            scanned += len;
        }
        if scanned > 0 {
            out.push(buf.split_to(scanned).freeze());
        }
        let mut write_failed = None;
        for chunk in out {
            total += chunk.len() as u64;
            if let Err(e) = write(&mut send, chunk).await {
                write_failed = Some(e);
                break;
            }
        }
        if let Some(e) = write_failed {
            break Err(e);
        }
        if let Some(f) = failure {
            break Err(f);
        }
        // Refusals that became due without backend traffic.
        let due: Vec<(Bytes, u8)> = match track.lock() {
            Ok(mut t) => {
                let status = t.status;
                t.take_after().into_iter().map(|e| (e, status)).collect()
            }
            Err(_) => Vec::new(),
        };
        let mut write_failed = None;
        for (e, status) in due {
            total += e.len() as u64 + 6;
            if let Err(err) = write(&mut send, e).await {
                write_failed = Some(err);
                break;
            }
            if let Err(err) = write(&mut send, ready_for_query(status)).await {
                write_failed = Some(err);
                break;
            }
        }
        if let Some(e) = write_failed {
            break Err(e);
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            n = backend.read_buf(&mut buf) => match n {
                Ok(0) => {
                    let client_done = track.lock().map(|t| t.client_done).unwrap_or(false);
                    break if client_done { Ok(()) } else { Err(RelayError::BackendClosed) };
                }
                Ok(_) => {}
                Err(e) => break Err(RelayError::BackendIo(e.to_string())),
            },
            () = notify.notified() => {}
        }
    };
    // Tell the client why, in its own protocol, unless it hung up itself.
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
            backend::field::HINT,
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
