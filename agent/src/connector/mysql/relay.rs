//! A logged-in MySQL session. The protocol is one command, then its
//! answer, so the relay is one task: it reads a command, decides about it
//! (guardrails, allowed databases, supported commands), forwards it, then
//! reads the whole answer from the backend, passing packets on (rows
//! masked where the connection says so) and noting what the audit event
//! needs. Packets that need no change leave as the same bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::flags::{
    CLIENT_DEPRECATE_EOF, CLIENT_LOCAL_FILES, SERVER_MORE_RESULTS_EXISTS,
};
use hoop_proto::mysql::response::{
    ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR, ER_UNKNOWN_COM_ERROR,
};
use hoop_proto::mysql::{
    self, ColumnDefinition, Command, EofPacket, ErrPacket, OkPacket, Packet, RowPacketKind,
    StmtPrepareOk, classify_row_packet, result::ResultSetHeader,
};
use quinn::{RecvStream, SendStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::masking::{self, BaseTables, Cols, RowScratch};
use super::read_only;
use super::{ClientError, client_packet, skip_packet};
use crate::audit::{AuditLog, Event, Who};
use crate::connector::backend_tls::BackendStream;
use crate::connector::clip_statement as clip;
use crate::guard::{Guard, Verdict};
use crate::mask::{MaskSummary, Masker};

/// Prepared statements remembered per session.
const MAX_STATEMENTS: usize = 10_000;
/// Most base tables listed for column rules; past that, none is trusted.
const MAX_BASE_TABLES: usize = 100_000;
/// ER_NET_PACKET_TOO_LARGE: "Got a packet bigger than 'max_allowed_packet'".
const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
/// Output is sent on to the client once this much has gathered.
const FLUSH_AT: usize = 64 * 1024;

/// What the relay needs to know about the session.
pub struct Ctx {
    pub session: String,
    pub who: Who,
    pub connection: String,
    pub audit: AuditLog,
    pub guard: Guard,
    pub masker: Option<std::sync::Arc<Masker>>,
    /// The capabilities both legs use.
    pub capabilities: u64,
    /// Databases a client may switch to.
    pub databases: Vec<String>,
}

/// Why the session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client sent a malformed packet: {0}")]
    Client(String),
    #[error("backend sent a malformed packet: {0}")]
    Backend(String),
    #[error("the backend connection failed: {0}")]
    BackendIo(String),
    #[error("the backend closed the connection")]
    BackendClosed,
    #[error("the tunnel stream failed: {0}")]
    Tunnel(String),
    #[error("masking: {0}; the session was ended so that nothing leaves unmasked")]
    Masking(String),
}

/// What one statement did, for its audit event.
#[derive(Default)]
struct Outcome {
    rows: u64,
    commands: Vec<String>,
    sqlstate: Option<String>,
    error: Option<String>,
    masked: MaskSummary,
}

/// One session, both legs.
pub struct Session {
    ctx: Ctx,
    send: SendStream,
    recv: RecvStream,
    cbuf: BytesMut,
    backend: BackendStream,
    bbuf: BytesMut,
    /// Gathered output for the client.
    out: BytesMut,
    /// Added to the sequence ids of the packets passed on in this answer
    /// (a masked row can need another number of 16 MiB chunks).
    shift: u8,
    /// The sequence id the client expects next: 1 between commands, then
    /// one past the last packet of the answer given so far.
    next_seq: u8,
    up: u64,
    down: u64,
    /// Prepared statement id → its SQL.
    statements: HashMap<u32, String>,
    /// Largest client packet accepted: the backend's `max_allowed_packet`.
    max_packet: usize,
    /// Base tables, when column rules name tables ([`Session::learn_base_tables`]).
    base_tables: Option<Arc<BaseTables>>,
}

/// The database a lone `USE name` statement switches to.
fn use_target(sql: &str) -> Option<String> {
    let s = sql.trim().trim_end_matches(';').trim();
    let (word, rest) = s.split_once(char::is_whitespace)?;
    if !word.eq_ignore_ascii_case("use") {
        return None;
    }
    let name = rest.trim();
    let name = name
        .strip_prefix('`')
        .and_then(|n| n.strip_suffix('`'))
        .unwrap_or(name);
    (!name.is_empty() && !name.contains(char::is_whitespace)).then(|| name.to_string())
}

impl Session {
    pub fn new(
        ctx: Ctx,
        send: SendStream,
        recv: RecvStream,
        cbuf: BytesMut,
        backend: BackendStream,
        bbuf: BytesMut,
    ) -> Session {
        Session {
            ctx,
            send,
            recv,
            cbuf,
            backend,
            bbuf,
            out: BytesMut::with_capacity(FLUSH_AT + 1024),
            shift: 0,
            next_seq: 1,
            up: 0,
            down: 0,
            statements: HashMap::new(),
            max_packet: mysql::MAX_PACKET_LEN,
            base_tables: None,
        }
    }

    /// Bytes moved: (client → backend, backend → client).
    pub fn counts(&self) -> (u64, u64) {
        (self.up, self.down)
    }

    fn caps(&self) -> u64 {
        self.ctx.capabilities
    }

    /// Runs one statement of the agent's own on the backend before the
    /// client's session starts (e.g. making it read-only).
    pub async fn backend_setup(&mut self, sql: &str) -> Result<(), RelayError> {
        let mut cmd = BytesMut::new();
        mysql::write_packet(&mut cmd, 0, |o| {
            mysql::command::encode_query(sql.as_bytes(), self.ctx.capabilities, o);
            Ok(())
        })
        .map_err(|e| RelayError::Backend(e.to_string()))?;
        self.backend
            .write_all(&cmd)
            .await
            .map_err(|e| RelayError::BackendIo(e.to_string()))?;
        let p = self.backend_packet().await?;
        match p.first() {
            Some(0x00) => Ok(()),
            Some(0xFF) => Err(RelayError::Backend(format!(
                "{sql}: {}",
                ErrPacket::decode(&p.payload)
                    .map(|e| e.message_lossy().into_owned())
                    .unwrap_or_default()
            ))),
            _ => Err(RelayError::Backend(format!("{sql}: unexpected answer"))),
        }
    }

    /// Runs a query of the agent's own before the client's session starts
    /// and returns its text rows of `columns` values (at most `limit`;
    /// `None` when there were more).
    async fn backend_rows(
        &mut self,
        sql: &str,
        columns: usize,
        limit: usize,
    ) -> Result<Option<Vec<Vec<Option<Vec<u8>>>>>, RelayError> {
        let caps = self.caps();
        let mut cmd = BytesMut::new();
        mysql::write_packet(&mut cmd, 0, |o| {
            mysql::command::encode_query(sql.as_bytes(), caps, o);
            Ok(())
        })
        .map_err(|e| RelayError::Backend(e.to_string()))?;
        self.send_backend(&cmd).await?;
        let bad = |what: &str| RelayError::Backend(format!("{sql}: {what}"));
        let head = self.backend_packet().await?;
        if head.first() == Some(0xFF) {
            let e = ErrPacket::decode(&head.payload)
                .map(|e| e.message_lossy().into_owned())
                .unwrap_or_default();
            return Err(bad(&e));
        }
        let header = ResultSetHeader::decode(&head.payload).map_err(|_| bad("no result set"))?;
        if header.column_count != columns {
            return Err(bad("not the columns asked for"));
        }
        for _ in 0..columns {
            self.backend_packet().await?;
        }
        if caps & CLIENT_DEPRECATE_EOF == 0 {
            self.backend_packet().await?;
        }
        let mut rows = Some(Vec::new());
        loop {
            let p = self.backend_packet().await?;
            match classify_row_packet(&p.payload) {
                RowPacketKind::End => return Ok(rows),
                RowPacketKind::Err => return Err(bad("failed while sending rows")),
                RowPacketKind::Row => {
                    let row = mysql::TextRow::decode(&p.payload, columns)
                        .map_err(|e| bad(&e.to_string()))?;
                    match rows.as_mut() {
                        Some(r) if r.len() < limit => {
                            r.push(row.iter().map(|v| v.map(<[u8]>::to_vec)).collect());
                        }
                        // Read to the end, keep nothing.
                        _ => rows = None,
                    }
                }
            }
        }
    }

    /// Reads the backend's `max_allowed_packet`: client packets longer
    /// than that are refused before the agent buffers them whole.
    pub async fn learn_max_packet(&mut self) -> Result<(), RelayError> {
        let sql = "SELECT @@max_allowed_packet";
        let rows = self.backend_rows(sql, 1, 1).await?;
        let value = rows
            .as_deref()
            .and_then(|r| r.first())
            .and_then(|r| r[0].as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| RelayError::Backend(format!("{sql}: not one number")))?;
        self.max_packet = value.clamp(1 << 20, mysql::MAX_PACKET_LEN);
        Ok(())
    }

    /// Reads which tables are base tables, for column rules that name a
    /// table: a result names a view it was read through (not the table
    /// its data lives in), and a table created later is not known either;
    /// columns of those match rules by their name alone. A backend that
    /// cannot say, or has more than [`MAX_BASE_TABLES`], leaves every
    /// table unknown: more is masked, never less.
    pub async fn learn_base_tables(&mut self) -> Result<(), RelayError> {
        let sql = "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                   WHERE TABLE_TYPE = 'BASE TABLE'";
        let rows = match self.backend_rows(sql, 2, MAX_BASE_TABLES).await {
            Ok(r) => r,
            Err(RelayError::Backend(e)) => {
                tracing::warn!(error = %e, "cannot list base tables; table-qualified column rules match by column name");
                None
            }
            Err(e) => return Err(e),
        };
        let tables = rows.map(|rows| {
            rows.into_iter()
                .filter_map(|r| match (&r[0], &r[1]) {
                    (Some(s), Some(t)) => Some((s.clone(), t.clone())),
                    _ => None,
                })
                .collect()
        });
        self.base_tables = Some(Arc::new(BaseTables(tables.unwrap_or_default())));
        Ok(())
    }

    /// Tells the client its login failed after all, and ends.
    pub async fn refuse_login(&mut self, seq: u8, err: &ErrPacket) {
        let _ = mysql::write_packet(&mut self.out, seq, |o| err.encode(o));
        let _ = self.flush().await;
        let _ = self.send.finish();
    }

    /// Sends the client its login OK, then relays until either side ends.
    pub async fn run(&mut self, ok_seq: u8, ok: OkPacket) -> Result<(), RelayError> {
        let caps = self.caps();
        mysql::write_packet(&mut self.out, ok_seq, |o| ok.encode(caps, o))
            .map_err(|e| RelayError::Backend(e.to_string()))?;
        self.flush().await?;
        let result = self.serve_commands().await;
        let told = match &result {
            Err(RelayError::Tunnel(_)) | Ok(()) => None,
            Err(e) => Some(e),
        };
        if let Some(e) = told {
            // Tell the client why, as the next packet of the answer it is
            // reading (what was passed on before stays whole), or as the
            // answer to its next command when it was idle.
            let err = ErrPacket::new(super::ER_HOOP, "08S01", &format!("hoop: {e}"));
            let _ = mysql::write_packet(&mut self.out, self.next_seq, |o| err.encode(o));
            let _ = self.flush().await;
        }
        let _ = self.send.finish();
        let _ = self.backend.shutdown().await;
        result
    }

    /// A command longer than the backend's `max_allowed_packet`: it is
    /// read past without being kept, never sent, and answered with the
    /// backend's own code for it; the session goes on, as the stream is
    /// still in step.
    async fn refuse_too_long(&mut self, max: usize) -> Result<(), RelayError> {
        let seq = match skip_packet(&mut self.recv, &mut self.cbuf).await {
            Ok(Some((seq, size))) => {
                // It crossed the tunnel, if it went no further.
                self.up += size as u64;
                seq
            }
            Ok(None) => {
                return Err(RelayError::Tunnel(
                    "client left during a refused command".into(),
                ));
            }
            Err(ClientError::Malformed(e)) => return Err(RelayError::Client(e.to_string())),
            Err(ClientError::Io(e)) => return Err(RelayError::Tunnel(e)),
        };
        tracing::info!(session = %self.ctx.session, max, "command over max_allowed_packet refused");
        let msg = format!(
            "hoop: the command is over the database's {max}-byte limit (max_allowed_packet) and was not run; send a shorter one"
        );
        let err = ErrPacket::new(ER_NET_PACKET_TOO_LARGE, "08S01", &msg);
        mysql::write_packet(&mut self.out, seq.wrapping_add(1), |o| err.encode(o))
            .map_err(|e| RelayError::Client(e.to_string()))?;
        self.flush().await
    }

    async fn serve_commands(&mut self) -> Result<(), RelayError> {
        loop {
            self.next_seq = 1;
            let packet = tokio::select! {
                p = client_packet(&mut self.recv, &mut self.cbuf, self.max_packet) => {
                    match p {
                        Ok(Some(p)) => p,
                        Ok(None) => {
                            // The client went away without COM_QUIT.
                            let mut quit = BytesMut::new();
                            let _ = mysql::encode_packet(0, &[mysql::command::COM_QUIT], &mut quit);
                            let _ = self.backend.write_all(&quit).await;
                            return Ok(());
                        }
                        Err(ClientError::Malformed(mysql::DecodeError::TooLong { max, .. })) => {
                            self.refuse_too_long(max).await?;
                            continue;
                        }
                        Err(ClientError::Malformed(e)) => return Err(RelayError::Client(e.to_string())),
                        Err(ClientError::Io(e)) => return Err(RelayError::Tunnel(e)),
                    }
                }
                r = self.backend.read_buf(&mut self.bbuf) => {
                    match r {
                        Ok(0) => return Err(RelayError::BackendClosed),
                        // Unasked-for words from an idle server: a kill
                        // notice before it closes.
                        Ok(_) => {
                            let why = mysql::split_packet(&mut self.bbuf, mysql::MAX_PACKET_LEN)
                                .ok()
                                .flatten()
                                .and_then(|p| ErrPacket::decode(&p.payload).ok())
                                .map(|e| e.message_lossy().into_owned())
                                .unwrap_or_else(|| "an unexpected packet".into());
                            return Err(RelayError::Backend(format!("the backend ended the session: {why}")));
                        }
                        Err(e) => return Err(RelayError::BackendIo(e.to_string())),
                    }
                }
            };
            self.up += packet.raw.len() as u64;
            if !self.command(packet).await? {
                return Ok(());
            }
        }
    }

    /// Handles one command; `false` once the session is over.
    async fn command(&mut self, p: Packet) -> Result<bool, RelayError> {
        self.shift = 0;
        let reply = p.next_seq();
        self.next_seq = reply;
        let cmd = match Command::decode(&p.payload, self.caps()) {
            Ok(c) => c,
            Err(e) => {
                let err = ErrPacket::new(1047, "08S01", &format!("hoop: {e}"));
                self.reply_err(reply, &err).await?;
                return Ok(true);
            }
        };
        match cmd {
            Command::Quit => {
                self.send_backend(&p.raw).await?;
                Ok(false)
            }
            Command::Query(q) => {
                let text = String::from_utf8_lossy(&q.sql).into_owned();
                if let Some(refusal) = self.check(&text, "query") {
                    self.reply_err(reply, &refusal).await?;
                    return Ok(true);
                }
                if let Some(db) = use_target(&text) {
                    if let Some(refusal) = self.check_database(&db) {
                        self.reply_err(reply, &refusal).await?;
                        return Ok(true);
                    }
                }
                self.statement(&p, "query", None, &text, false).await?;
                Ok(true)
            }
            Command::InitDb(db) => {
                let db = String::from_utf8_lossy(&db).into_owned();
                if let Some(refusal) = self.check_database(&db) {
                    self.reply_err(reply, &refusal).await?;
                    return Ok(true);
                }
                self.statement(&p, "init_db", None, &format!("USE `{db}`"), false)
                    .await?;
                Ok(true)
            }
            Command::StmtPrepare(sql) => {
                let text = String::from_utf8_lossy(&sql).into_owned();
                if let Some(refusal) = self.check(&text, "prepare") {
                    self.reply_err(reply, &refusal).await?;
                    return Ok(true);
                }
                self.prepare(&p, &text).await?;
                Ok(true)
            }
            Command::StmtExecute(e) => {
                if e.opens_cursor() {
                    let err = ErrPacket::new(
                        ER_UNKNOWN_COM_ERROR,
                        "HY000",
                        "hoop: server-side cursors are not supported through hoop; turn cursor fetch off in the driver (e.g. useCursorFetch=false)",
                    );
                    self.reply_err(reply, &err).await?;
                    return Ok(true);
                }
                let text = self
                    .statements
                    .get(&e.statement_id)
                    .cloned()
                    .unwrap_or_default();
                let id = e.statement_id.to_string();
                self.statement(&p, "execute", Some(id), &text, true).await?;
                Ok(true)
            }
            Command::StmtClose(id) => {
                self.statements.remove(&id);
                self.send_backend(&p.raw).await?;
                Ok(true)
            }
            Command::StmtSendLongData { .. } => {
                self.send_backend(&p.raw).await?;
                Ok(true)
            }
            Command::ResetConnection => {
                self.statements.clear();
                self.send_backend(&p.raw).await?;
                let ok = self.single_answer().await?;
                self.flush().await?;
                if ok && self.ctx.guard.read_only() {
                    // The reset dropped the session's read-only setting;
                    // the client's next command is read only after this.
                    // Should it fail, the client was answered already and
                    // takes the error as the answer to its next command.
                    self.next_seq = 1;
                    self.backend_setup("SET SESSION TRANSACTION READ ONLY")
                        .await?;
                }
                Ok(true)
            }
            Command::StmtReset(_)
            | Command::Ping
            | Command::Statistics
            | Command::SetOption(_)
            | Command::ProcessKill(_) => {
                self.send_backend(&p.raw).await?;
                self.single_answer().await?;
                self.flush().await?;
                Ok(true)
            }
            Command::FieldList { .. } => {
                self.send_backend(&p.raw).await?;
                self.field_list().await?;
                self.flush().await?;
                Ok(true)
            }
            Command::StmtFetch { .. } => {
                let err = ErrPacket::new(
                    ER_UNKNOWN_COM_ERROR,
                    "HY000",
                    "hoop: server-side cursors are not supported through hoop",
                );
                self.reply_err(reply, &err).await?;
                Ok(true)
            }
            Command::ChangeUser(_) => {
                let err = ErrPacket::new(
                    ER_UNKNOWN_COM_ERROR,
                    "HY000",
                    "hoop: COM_CHANGE_USER is not available: the agent logs in to the database itself; open another connection instead",
                );
                self.reply_err(reply, &err).await?;
                Ok(true)
            }
            Command::Other { code, .. } => {
                let err = ErrPacket::new(
                    ER_UNKNOWN_COM_ERROR,
                    "08S01",
                    &format!(
                        "hoop: command {} is not supported through hoop",
                        mysql::command::command_name(code)
                    ),
                );
                self.reply_err(reply, &err).await?;
                Ok(true)
            }
        }
    }

    /// The guardrails' verdict on `text`; a refusal is audited.
    fn check(&self, text: &str, kind: &str) -> Option<ErrPacket> {
        let verdict = match self.ctx.guard.check(text) {
            Verdict::Allow if self.ctx.guard.read_only() => match read_only::lift_reason(text) {
                Some(why) => Verdict::Deny {
                    rule: "read_only".into(),
                    message: format!(
                        "this connection is read-only: {why} is not allowed through hoop"
                    ),
                },
                None => Verdict::Allow,
            },
            v => v,
        };
        let Verdict::Deny { rule, message } = verdict else {
            return None;
        };
        self.ctx.audit.record(Event::StatementRefused {
            session: self.ctx.session.clone(),
            who: self.ctx.who.clone(),
            connection: self.ctx.connection.clone(),
            kind: kind.to_string(),
            text: clip(text),
            rule: rule.clone(),
            message: message.clone(),
        });
        Some(ErrPacket::new(
            ER_TABLEACCESS_DENIED_ERROR,
            "42000",
            &format!("{message} (refused by hoop guardrail {rule})"),
        ))
    }

    fn check_database(&self, db: &str) -> Option<ErrPacket> {
        if self.ctx.databases.iter().any(|d| d == db) {
            return None;
        }
        Some(ErrPacket::new(
            ER_DBACCESS_DENIED_ERROR,
            "42000",
            &format!(
                "hoop: database '{db}' is not available through connection \"{}\"; use one of: {}",
                self.ctx.connection,
                self.ctx.databases.join(", ")
            ),
        ))
    }

    async fn reply_err(&mut self, seq: u8, err: &ErrPacket) -> Result<(), RelayError> {
        self.next_seq = mysql::write_packet(&mut self.out, seq, |o| err.encode(o))
            .map_err(|e| RelayError::Client(e.to_string()))?;
        self.flush().await
    }

    async fn send_backend(&mut self, raw: &[u8]) -> Result<(), RelayError> {
        let io = |e: std::io::Error| RelayError::BackendIo(e.to_string());
        self.backend.write_all(raw).await.map_err(io)?;
        // Over TLS, records can wait in the TLS buffer until a flush.
        self.backend.flush().await.map_err(io)
    }

    /// Sends what has gathered to the client.
    async fn flush(&mut self) -> Result<(), RelayError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = self.out.split().freeze();
        self.down += chunk.len() as u64;
        self.send
            .write_chunk(chunk)
            .await
            .map_err(|e| RelayError::Tunnel(e.to_string()))
    }

    /// The next whole packet from the backend; what has gathered for the
    /// client goes first if the backend has to be waited for.
    async fn backend_packet(&mut self) -> Result<Packet, RelayError> {
        loop {
            if let Some(p) = mysql::split_packet(&mut self.bbuf, mysql::MAX_PACKET_LEN)
                .map_err(|e| RelayError::Backend(e.to_string()))?
            {
                return Ok(p);
            }
            if !self.out.is_empty() {
                self.flush().await?;
            }
            if self.bbuf.capacity() - self.bbuf.len() < 8 * 1024 {
                self.bbuf.reserve(64 * 1024);
            }
            match self.backend.read_buf(&mut self.bbuf).await {
                Ok(0) => return Err(RelayError::BackendClosed),
                Ok(_) => {}
                Err(e) => return Err(RelayError::BackendIo(e.to_string())),
            }
        }
    }

    /// Passes a backend packet on as it came (sequence ids shifted if an
    /// earlier packet of this answer changed its chunk count).
    fn pass(&mut self, p: &Packet) -> Result<(), RelayError> {
        if self.shift == 0 {
            self.out.extend_from_slice(&p.raw);
            self.next_seq = p.last_seq.wrapping_add(1);
            Ok(())
        } else {
            self.replace(p, &p.payload)
        }
    }

    /// Passes `payload` on in place of `p`.
    fn replace(&mut self, p: &Packet, payload: &[u8]) -> Result<(), RelayError> {
        let first = p.seq.wrapping_add(self.shift);
        let next = mysql::encode_packet(first, payload, &mut self.out)
            .map_err(|e| RelayError::Backend(e.to_string()))?;
        self.next_seq = next;
        // Chunks now minus chunks before.
        let now = next.wrapping_sub(first);
        let before = p.last_seq.wrapping_sub(p.seq).wrapping_add(1);
        self.shift = self.shift.wrapping_add(now.wrapping_sub(before));
        Ok(())
    }

    async fn maybe_flush(&mut self) -> Result<(), RelayError> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Passes an ERR packet on, masked; notes it in `o`.
    fn pass_err(&mut self, p: &Packet, o: &mut Outcome) -> Result<(), RelayError> {
        let mut err =
            ErrPacket::decode(&p.payload).map_err(|e| RelayError::Backend(e.to_string()))?;
        let masked = match &self.ctx.masker {
            Some(m) => masking::error_message(m, &err.message_lossy(), &mut o.masked),
            None => None,
        };
        if let Some(msg) = masked {
            err.message = Bytes::from(msg);
            let mut payload = Vec::new();
            err.encode(&mut payload)
                .map_err(|e| RelayError::Backend(e.to_string()))?;
            self.replace(p, &payload)?;
        } else {
            self.pass(p)?;
        }
        o.sqlstate = Some(err.sql_state_str().into_owned());
        o.error = Some(format!("{}: {}", err.code, err.message_lossy()));
        Ok(())
    }

    /// Forwards a statement and relays its answer, then audits it.
    async fn statement(
        &mut self,
        p: &Packet,
        kind: &str,
        statement: Option<String>,
        text: &str,
        binary: bool,
    ) -> Result<(), RelayError> {
        let started = Instant::now();
        self.send_backend(&p.raw).await?;
        let mut o = Outcome::default();
        let result = self.results(binary, &mut o).await;
        let flushed = self.flush().await;
        self.ctx.audit.record(Event::Statement {
            session: self.ctx.session.clone(),
            who: self.ctx.who.clone(),
            connection: self.ctx.connection.clone(),
            kind: kind.to_string(),
            statement,
            text: clip(text),
            params: None,
            duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            rows: o.rows,
            commands: o.commands,
            outcome: if o.error.is_some() || result.is_err() {
                "error".into()
            } else {
                "ok".into()
            },
            sqlstate: o.sqlstate,
            error: o
                .error
                .or_else(|| result.as_ref().err().map(|e| e.to_string())),
            masked: (!o.masked.is_empty()).then_some(o.masked),
        });
        result.and(flushed)
    }

    /// The answer to a query or an execute: OK, ERR, a LOCAL INFILE
    /// request, or result sets, as many as the server says follow.
    async fn results(&mut self, binary: bool, o: &mut Outcome) -> Result<(), RelayError> {
        let caps = self.caps();
        loop {
            let p = self.backend_packet().await?;
            match p.first() {
                Some(0x00) => {
                    let ok = OkPacket::decode(&p.payload, caps)
                        .map_err(|e| RelayError::Backend(e.to_string()))?;
                    o.rows += ok.affected_rows;
                    o.commands.push(format!("OK {}", ok.affected_rows));
                    self.pass(&p)?;
                    if ok.status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        return Ok(());
                    }
                }
                Some(0xFF) => return self.pass_err(&p, o),
                Some(0xFB) if caps & CLIENT_LOCAL_FILES == 0 => {
                    // Only a rogue server asks for a file the session did
                    // not agree to send (a well-behaved one refuses the
                    // statement itself): the client is never asked.
                    return Err(RelayError::Backend(
                        "the backend asked for a client file (LOCAL INFILE), which this connection does not allow".into(),
                    ));
                }
                Some(0xFB) => {
                    self.pass(&p)?;
                    self.flush().await?;
                    let sent = self.local_infile().await?;
                    o.commands.push(format!("LOCAL INFILE {sent} bytes"));
                }
                _ => {
                    let more = self.result_set(&p, binary, o).await?;
                    if !more {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// One result set after its header packet `head`; `true` if another
    /// result follows.
    async fn result_set(
        &mut self,
        head: &Packet,
        binary: bool,
        o: &mut Outcome,
    ) -> Result<bool, RelayError> {
        let caps = self.caps();
        let header = ResultSetHeader::decode(&head.payload)
            .map_err(|e| RelayError::Backend(e.to_string()))?;
        if !header.has_metadata() {
            return Err(RelayError::Backend(
                "a result set without column definitions (metadata caching was not offered)".into(),
            ));
        }
        self.pass(head)?;
        let masker = self.ctx.masker.clone();
        let mut defs = Vec::with_capacity(header.column_count.min(4096));
        for _ in 0..header.column_count {
            let p = self.backend_packet().await?;
            if masker.is_some() {
                defs.push(
                    ColumnDefinition::decode(&p.payload, caps)
                        .map_err(|e| RelayError::Backend(e.to_string()))?,
                );
            }
            self.pass(&p)?;
        }
        if caps & CLIENT_DEPRECATE_EOF == 0 {
            let p = self.backend_packet().await?;
            EofPacket::decode(&p.payload, caps).map_err(|e| RelayError::Backend(e.to_string()))?;
            self.pass(&p)?;
        }
        let base = self.base_tables.clone();
        let cols = masker
            .as_ref()
            .map(|m| Cols::new(m, &defs, binary, base.as_deref()));
        let mut scratch = RowScratch::default();
        let mut masked_row = Vec::new();
        let mut rows = 0u64;
        loop {
            let p = self.backend_packet().await?;
            match classify_row_packet(&p.payload) {
                RowPacketKind::Row => {
                    rows += 1;
                    match (&masker, &cols) {
                        (Some(m), Some(c)) if !c.binary() => {
                            if c.text_row_into(
                                m,
                                &p.payload,
                                &mut scratch,
                                &mut masked_row,
                                &mut o.masked,
                            )
                            .map_err(RelayError::Masking)?
                            {
                                self.replace(&p, &masked_row)?;
                            } else {
                                self.pass(&p)?;
                            }
                        }
                        (Some(m), Some(c)) => {
                            match c
                                .row(m, &p.payload, &mut o.masked)
                                .map_err(RelayError::Masking)?
                            {
                                Some(payload) => self.replace(&p, &payload)?,
                                None => self.pass(&p)?,
                            }
                        }
                        _ => self.pass(&p)?,
                    }
                    self.maybe_flush().await?;
                }
                RowPacketKind::End => {
                    let end = EofPacket::decode_terminator(&p.payload, caps)
                        .map_err(|e| RelayError::Backend(e.to_string()))?;
                    self.pass(&p)?;
                    o.rows += rows;
                    o.commands.push(format!("SELECT {rows}"));
                    return Ok(end.status & SERVER_MORE_RESULTS_EXISTS != 0);
                }
                RowPacketKind::Err => {
                    o.rows += rows;
                    self.pass_err(&p, o)?;
                    return Ok(false);
                }
            }
        }
    }

    /// `LOAD DATA LOCAL INFILE`: the client's file, packet by packet, to
    /// the backend until the empty packet that ends it.
    /// Returns the file's size.
    async fn local_infile(&mut self) -> Result<u64, RelayError> {
        let mut sent = 0u64;
        loop {
            let p = match client_packet(&mut self.recv, &mut self.cbuf, self.max_packet).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return Err(RelayError::Tunnel("client left during LOCAL INFILE".into()));
                }
                Err(ClientError::Malformed(e)) => return Err(RelayError::Client(e.to_string())),
                Err(ClientError::Io(e)) => return Err(RelayError::Tunnel(e)),
            };
            self.up += p.raw.len() as u64;
            sent += p.payload.len() as u64;
            if self.shift == 0 {
                self.send_backend(&p.raw).await?;
            } else {
                // The client numbers on from the shifted request.
                let mut raw = BytesMut::with_capacity(p.raw.len());
                mysql::encode_packet(p.seq.wrapping_sub(self.shift), &p.payload, &mut raw)
                    .map_err(|e| RelayError::Client(e.to_string()))?;
                self.send_backend(&raw).await?;
            }
            if p.payload.is_empty() {
                return Ok(sent);
            }
        }
    }

    /// A prepare and its answer: OK with parameter and column definitions,
    /// or ERR.
    async fn prepare(&mut self, p: &Packet, text: &str) -> Result<(), RelayError> {
        let caps = self.caps();
        self.send_backend(&p.raw).await?;
        let first = self.backend_packet().await?;
        if first.first() == Some(0xFF) {
            let mut o = Outcome::default();
            self.pass_err(&first, &mut o)?;
            return self.flush().await;
        }
        let ok = StmtPrepareOk::decode(&first.payload)
            .map_err(|e| RelayError::Backend(e.to_string()))?;
        self.pass(&first)?;
        for n in [ok.num_params, ok.num_columns] {
            for _ in 0..n {
                let d = self.backend_packet().await?;
                self.pass(&d)?;
            }
            if n > 0 && caps & CLIENT_DEPRECATE_EOF == 0 {
                let e = self.backend_packet().await?;
                self.pass(&e)?;
            }
        }
        self.flush().await?;
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(ok.statement_id, text.to_string());
        self.ctx.audit.record(Event::StatementPrepared {
            session: self.ctx.session.clone(),
            who: self.ctx.who.clone(),
            connection: self.ctx.connection.clone(),
            statement: ok.statement_id.to_string(),
            text: clip(text),
        });
        Ok(())
    }

    /// A one-packet answer (OK, ERR, EOF or a string), passed on; `true`
    /// if it was not an error.
    async fn single_answer(&mut self) -> Result<bool, RelayError> {
        let p = self.backend_packet().await?;
        if p.first() == Some(0xFF) {
            let mut o = Outcome::default();
            self.pass_err(&p, &mut o)?;
            return Ok(false);
        }
        self.pass(&p)?;
        Ok(true)
    }

    /// COM_FIELD_LIST: column definitions until EOF (or ERR).
    async fn field_list(&mut self) -> Result<(), RelayError> {
        loop {
            let p = self.backend_packet().await?;
            match classify_row_packet(&p.payload) {
                RowPacketKind::Row => self.pass(&p)?,
                RowPacketKind::End => return self.pass(&p),
                RowPacketKind::Err => {
                    let mut o = Outcome::default();
                    return self.pass_err(&p, &mut o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::use_target;

    #[test]
    fn use_statements() {
        assert_eq!(use_target("USE shop"), Some("shop".into()));
        assert_eq!(use_target("  use `shop`;"), Some("shop".into()));
        assert_eq!(use_target("select 1"), None);
        assert_eq!(use_target("user_stats"), None);
        assert_eq!(use_target("use"), None);
    }
}
