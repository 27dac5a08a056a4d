//! A logged-in PostgreSQL session: messages flow both ways, inspected but
//! passed through as the same bytes (runs of messages are forwarded as
//! one chunk, never copied) unless a guardrail refuses one. Every
//! statement is audited with its outcome.
//!
//! A refused statement is not simply dropped: the backend gets a stand-in
//! that raises the refusal (SQLSTATE 42501) in its place, so the error
//! arrives in order and the backend's state matches what the client sees:
//! an open transaction is aborted, and an extended-protocol batch is
//! discarded up to its Sync, as a real error would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hoop_proto::pg::frontend::{
    Bind, Close, Describe, Execute, FunctionCall, Parse, Query, Target, encode_parse, encode_query,
};
use hoop_proto::pg::{self, RawMessage};
use quinn::{RecvStream, SendStream};
use tokio::io::AsyncWriteExt;

use super::downstream;
use super::track::{Expect, Kind, Pending, Track};
use super::types::Catalog;
use crate::audit::{AuditLog, Event, Who};
use crate::connector::backend_split::{self, WriteHalf};
use crate::connector::backend_tls::BackendStream;
use crate::connector::clip_statement as clip;
use crate::guard::{Guard, Verdict};
use crate::mask::Masker;

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
    /// The connection's masking engine, when it masks anything.
    pub masker: Option<Arc<Masker>>,
    /// The backend session's types, read at login when masking is on.
    pub types: Arc<Catalog>,
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
    #[error("{0}")]
    Masking(String),
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
) -> (Counts, Result<(), RelayError>) {
    let track = Arc::new(Mutex::new(Track::default()));
    let (b_read, b_write) = backend_split::split(backend);
    // Counted as it goes: the task may be aborted before it returns.
    let sent = Arc::new(AtomicU64::new(0));
    let mut up = tokio::spawn(client_to_backend(
        ctx.clone(),
        track.clone(),
        client_recv,
        client_buf,
        b_write,
        sent.clone(),
    ));
    let down = downstream::run(ctx.clone(), track, b_read, backend_buf, client_send);
    tokio::pin!(down);
    let (down_bytes, down) = tokio::select! {
        d = &mut down => d,
        u = &mut up => match u {
            // The client side failed: nothing more will reach the backend,
            // so waiting for it would hang. End the session.
            Ok((n, Err(e))) => {
                tracing::warn!(session = %ctx.session, error = %e, "client side of the session failed");
                return ((n, 0), Err(e));
            }
            // The client said goodbye: the backend side ends when the
            // backend closes.
            Ok((n, Ok(()))) => {
                let (down_bytes, down) = down.await;
                return ((n, down_bytes), down);
            }
            Err(e) => {
                return (
                    (sent.load(Ordering::Relaxed), 0),
                    Err(RelayError::Client(format!("the client side stopped: {e}"))),
                );
            }
        },
    };
    // The backend side is over: the client side has nothing left to do.
    up.abort();
    let up_bytes = match up.await {
        Ok((n, Err(e))) => return ((n, down_bytes), down.and(Err(e))),
        Ok((n, Ok(()))) => n,
        Err(_) => sent.load(Ordering::Relaxed),
    };
    ((up_bytes, down_bytes), down)
}

/// The stand-in for a refused statement. It fails while the backend
/// parses it (a constant that is not an integer), so it needs no
/// procedural language, runs on read-only sessions, and fails at Parse in
/// the extended protocol just as the refused statement is expected to.
/// Its error (22P02) is rewritten into the refusal on the way back.
pub(super) const STANDIN_SQL: &str = "SELECT 'statement refused by hoop'::pg_catalog.int4";

/// What to do with a client message.
enum Action {
    Forward,
    /// Send these bytes to the backend instead.
    Replace(Bytes),
}

/// Bound parameters as audited: text, or a size note for binary values.
type Params = Option<Vec<Option<String>>>;
type Portal = (String, Params);

struct ClientState {
    statements: HashMap<String, String>,
    /// Portal → (statement name, bound parameters when audited).
    portals: HashMap<String, Portal>,
}

async fn client_to_backend(
    ctx: Arc<Ctx>,
    track: Arc<Mutex<Track>>,
    mut recv: RecvStream,
    mut buf: BytesMut,
    mut backend: WriteHalf,
    sent: Arc<AtomicU64>,
) -> (u64, Result<(), RelayError>) {
    let mut total = 0u64;
    let mut st = ClientState {
        statements: HashMap::new(),
        portals: HashMap::new(),
    };
    loop {
        // Handle every complete message in the buffer. Runs of forwarded
        // messages leave as one chunk of the original bytes; a refused
        // message is skipped over.
        let mut forward: Vec<Bytes> = Vec::new();
        let mut scanned = 0usize;
        // Bytes still to come of a message cut off at the buffer's end.
        let mut need = 0usize;
        loop {
            let header = match pg::check_header(&buf[scanned..], pg::MAX_MESSAGE_LEN) {
                Ok(h) => h,
                Err(e) => return (total, Err(RelayError::Client(e.to_string()))),
            };
            let Some((tag, len)) = header else { break };
            if buf.len() - scanned < len {
                // Reserved once the messages before it have left the
                // buffer, so that they are not copied along.
                need = len - (buf.len() - scanned);
                break;
            }
            let action = if INSPECTED.contains(&tag) {
                let msg = RawMessage {
                    tag,
                    bytes: Bytes::copy_from_slice(&buf[scanned..scanned + len]),
                };
                match inspect_client(&ctx, &track, &mut st, &msg) {
                    Ok(a) => a,
                    Err(e) => return (total, Err(e)),
                }
            } else {
                if tag == b'X' {
                    if let Ok(mut t) = track.lock() {
                        t.client_done = true;
                    }
                }
                Action::Forward
            };
            match action {
                Action::Forward => scanned += len,
                Action::Replace(_) => {
                    if scanned > 0 {
                        forward.push(buf.split_to(scanned).freeze());
                        scanned = 0;
                    }
                    let _ = buf.split_to(len);
                    if let Action::Replace(b) = action {
                        forward.push(b);
                    }
                }
            }
        }
        if scanned > 0 {
            forward.push(buf.split_to(scanned).freeze());
        }
        buf.reserve(need);
        for chunk in forward {
            if let Err(e) = backend.write_all(&chunk).await {
                return (total, Err(RelayError::BackendIo(e.to_string())));
            }
            total += chunk.len() as u64;
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // Over TLS a write can leave records in the TLS buffer: send them
        // before waiting for the client (else a COPY's last CopyDone could
        // wait there for ever).
        if let Err(e) = backend.flush().await {
            return (total, Err(RelayError::BackendIo(e.to_string())));
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

/// Decides about one client message.
fn inspect_client(
    ctx: &Ctx,
    track: &Mutex<Track>,
    st: &mut ClientState,
    msg: &RawMessage,
) -> Result<Action, RelayError> {
    let bad = |e: pg::DecodeError| RelayError::Client(e.to_string());
    let enc = |e: pg::EncodeError| RelayError::Client(e.to_string());
    let mut t = track
        .lock()
        .map_err(|_| RelayError::Client("state lock poisoned".into()))?;
    let audit_refusal = |kind: &str, text: &str, rule: &str, message: &str| {
        ctx.audit.record(Event::StatementRefused {
            session: ctx.session.clone(),
            who: ctx.who.clone(),
            connection: ctx.connection.clone(),
            kind: kind.to_string(),
            text: clip(text),
            rule: rule.to_string(),
            message: message.to_string(),
        });
    };
    let masking = ctx.masker.is_some();
    let expect = |t: &mut Track, e: Expect| {
        if masking {
            t.expect.push_back(e);
        }
    };
    let refused = |message: &str, rule: &str| Kind::Refused {
        message: message.to_string(),
        rule: rule.to_string(),
    };
    // A simple-protocol stand-in: one Query that fails, ending in its own
    // ReadyForQuery.
    let standin_query = |t: &mut Track, message: &str, rule: &str| -> Result<Action, RelayError> {
        let mut out = Vec::with_capacity(128);
        encode_query(STANDIN_SQL, &mut out).map_err(enc)?;
        t.sent_syncs += 1;
        let sync_no = t.sent_syncs;
        t.pending
            .push_back(pending(refused(message, rule), "", None, sync_no));
        expect(t, Expect::Query);
        Ok(Action::Replace(Bytes::from(out)))
    };
    match msg.tag {
        b'Q' => {
            let q = Query::decode(msg).map_err(bad)?;
            if let Verdict::Deny { rule, message } = ctx.guard.check(q.query) {
                audit_refusal("query", q.query, &rule, &message);
                return standin_query(&mut t, &message, &rule);
            }
            t.sent_syncs += 1;
            let sync_no = t.sent_syncs;
            t.pending
                .push_back(pending(Kind::Query, q.query, None, sync_no));
            expect(&mut t, Expect::Query);
            Ok(Action::Forward)
        }
        b'P' => {
            let p = Parse::decode(msg).map_err(bad)?;
            if let Verdict::Deny { rule, message } = ctx.guard.check(p.query) {
                audit_refusal("parse", p.query, &rule, &message);
                // The stand-in fails this Parse; the backend then skips
                // the rest of the batch up to Sync, as for any error.
                let mut out = Vec::with_capacity(128);
                encode_parse(p.name, STANDIN_SQL, &[], &mut out).map_err(enc)?;
                let sync_no = t.sent_syncs + 1;
                t.pending
                    .push_back(pending(refused(&message, &rule), "", None, sync_no));
                expect(&mut t, Expect::Parse(p.name.to_string()));
                return Ok(Action::Replace(Bytes::from(out)));
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
            expect(&mut t, Expect::Parse(p.name.to_string()));
            Ok(Action::Forward)
        }
        b'B' => {
            let b = Bind::decode(msg).map_err(bad)?;
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
            if masking {
                t.expect.push_back(Expect::Bind {
                    portal: b.portal.to_string(),
                    statement: b.statement.to_string(),
                    formats: b.result_formats.clone(),
                });
            }
            Ok(Action::Forward)
        }
        b'E' => {
            let e = Execute::decode(msg).map_err(bad)?;
            let (stmt, params) = st.portals.get(e.portal).cloned().unwrap_or_default();
            let text = st.statements.get(&stmt).cloned().unwrap_or_default();
            let sync_no = t.sent_syncs + 1;
            t.pending.push_back(pending(
                Kind::Execute { statement: stmt },
                &text,
                params,
                sync_no,
            ));
            expect(&mut t, Expect::Execute(e.portal.to_string()));
            Ok(Action::Forward)
        }
        b'C' => {
            if let Ok(c) = Close::decode(msg) {
                match c.target {
                    Target::Statement => st.statements.remove(c.name),
                    Target::Portal => st.portals.remove(c.name).map(|p| p.0),
                };
            }
            expect(&mut t, Expect::Close);
            Ok(Action::Forward)
        }
        b'D' => {
            if masking {
                let d = Describe::decode(msg).map_err(bad)?;
                let e = match d.target {
                    Target::Statement => Expect::DescribeStatement(d.name.to_string()),
                    Target::Portal => Expect::DescribePortal(d.name.to_string()),
                };
                expect(&mut t, e);
            }
            Ok(Action::Forward)
        }
        b'S' => {
            t.sent_syncs += 1;
            expect(&mut t, Expect::Sync);
            Ok(Action::Forward)
        }
        b'F' => {
            let f = FunctionCall::decode(msg).map_err(bad)?;
            let text = format!("function call oid {}", f.function_oid);
            if ctx.guard.read_only() {
                let (rule, message) = (
                    "read_only",
                    "this connection is read-only: function calls by OID are not allowed through hoop",
                );
                audit_refusal("function_call", &text, rule, message);
                return standin_query(&mut t, message, rule);
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
            expect(&mut t, Expect::Query);
            Ok(Action::Forward)
        }
        // Flush, Describe, CopyData, CopyDone, CopyFail, Terminate and the rest.
        _ => Ok(Action::Forward),
    }
}

pub(super) fn pending(
    kind: Kind,
    text: &str,
    params: Option<Vec<Option<String>>>,
    sync_no: u64,
) -> Pending {
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
        masked: Default::default(),
    }
}

pub(super) fn audit_done(ctx: &Ctx, p: Pending, outcome: &str) {
    if matches!(p.kind, Kind::Refused { .. }) {
        // Already recorded as statement_refused.
        return;
    }
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
        masked: (!p.masked.is_empty()).then_some(p.masked),
    });
}
