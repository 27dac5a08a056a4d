//! MySQL and MariaDB: the agent greets the client itself (no password and
//! no TLS on the loopback leg: who the caller is was settled on the
//! tunnel), logs in to the backend as the connection's user with the
//! stored password, then relays one command at a time: each statement is
//! audited, checked against the guardrails, and its result rows masked.
//!
//! The client sees the backend's version string and thread id (so
//! `KILL QUERY <id>` from a second session reaches the right thread) and
//! the capabilities both the backend and this relay support; the backend
//! session gets the same ones, so every result has the layout the client
//! expects. Not offered: compression, TLS (on the local leg), MariaDB's
//! metadata cache and progress reports, and `CLIENT_LOCAL_FILES` unless
//! the connection allows `LOAD DATA LOCAL INFILE`.

mod login;
mod masking;
mod read_only;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::flags::*;
use hoop_proto::mysql::response::{ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR};
use hoop_proto::mysql::{
    self, ErrPacket, HandshakeResponse, InitialHandshake, OkPacket, auth::MYSQL_NATIVE_PASSWORD,
    is_ssl_request, scramble,
};
use quinn::{RecvStream, SendStream};

use super::Outcome;
use crate::audit::{AuditLog, Who};
use crate::config::ConnectionConfig;
use crate::guard::Guard;
use crate::mask::Masker;

/// ER_UNKNOWN_ERROR: the code of the agent's own errors (backend
/// unreachable, TLS to it failed, a session ended by the agent). Not the
/// client-side codes such as 2003 or 2013: libmariadb reads a server's ERR
/// packet carrying one as "Received malformed packet" (2027) and drops the
/// message.
const ER_HOOP: u16 = 1105;

/// How long a client may take to answer the greeting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Capabilities this relay can carry. Everything else the backend offers
/// is withheld from both legs.
const SUPPORTED: u64 = CLIENT_MYSQL
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_NO_SCHEMA
    | CLIENT_ODBC
    | CLIENT_IGNORE_SPACE
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS
    | CLIENT_RESERVED
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF
    | MARIADB_CLIENT_EXTENDED_TYPE_INFO;

/// The caller of a session.
pub struct Caller {
    pub session: String,
    pub who: Who,
    pub audit: AuditLog,
    /// The connection's masking engine, when it masks anything.
    pub masker: Option<Arc<Masker>>,
}

/// Writes `payload` as one packet with sequence id `seq`, and finishes the
/// stream: for refusals before the session starts.
async fn refuse(send: &mut SendStream, seq: u8, err: &ErrPacket) {
    let mut out = BytesMut::new();
    if mysql::write_packet(&mut out, seq, |o| err.encode(o)).is_ok() {
        let _ = send.write_chunk(out.freeze()).await;
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
}

/// Why a packet could not be read from the client.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    /// Bad framing (too long, continuation out of sequence): worth an ERR.
    #[error("{0}")]
    Malformed(mysql::DecodeError),
    /// The tunnel stream failed: nobody to tell.
    #[error("{0}")]
    Io(String),
}

/// Reads one logical packet from the client.
async fn client_packet(
    recv: &mut RecvStream,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<mysql::Packet>, ClientError> {
    loop {
        if let Some(p) = mysql::split_packet(buf, max).map_err(ClientError::Malformed)? {
            return Ok(Some(p));
        }
        match read_chunk(recv, 64 * 1024).await? {
            Some(c) => buf.extend_from_slice(&c),
            None => return Ok(None),
        }
    }
}

/// The client's next bytes, at most `max`; `None` once it has finished.
async fn read_chunk(recv: &mut RecvStream, max: usize) -> Result<Option<Bytes>, ClientError> {
    match recv.read_chunk(max, true).await {
        Ok(c) => Ok(c.map(|c| c.bytes)),
        Err(e) => Err(ClientError::Io(e.to_string())),
    }
}

/// Reads and drops the client's packet at the front of `buf`, one that was
/// refused as too long, frame by frame; returns the sequence id of its last
/// frame and the packet's size in bytes, `None` if the client left first.
/// Nothing of it is kept: memory stays at one read chunk. Refusing without
/// reading it would close the stream under the client's write, and a
/// socket closed with unread bytes resets the connection: the client would
/// see "Lost connection" instead of the refusal. Past
/// [`mysql::MAX_PACKET_LEN`] (the protocol's own ceiling) it stops and the
/// session ends.
async fn skip_packet(
    recv: &mut RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<(u8, usize)>, ClientError> {
    let mut skipped = 0usize;
    let mut last: Option<u8> = None;
    loop {
        let Some(header) = mysql::peek_header(buf) else {
            match read_chunk(recv, 64 * 1024).await? {
                Some(c) => buf.extend_from_slice(&c),
                None => return Ok(None),
            }
            continue;
        };
        if last.is_some_and(|seq| header.seq != seq.wrapping_add(1)) {
            return Err(ClientError::Malformed(mysql::DecodeError::Invalid {
                what: "packet",
                reason: "continuation packet out of sequence",
            }));
        }
        last = Some(header.seq);
        skipped = skipped.saturating_add(4 + header.len);
        if skipped > mysql::MAX_PACKET_LEN {
            return Err(ClientError::Malformed(mysql::DecodeError::TooLong {
                len: skipped,
                max: mysql::MAX_PACKET_LEN,
            }));
        }
        let mut left = 4 + header.len;
        let here = left.min(buf.len());
        bytes::Buf::advance(buf, here);
        left -= here;
        while left > 0 {
            match read_chunk(recv, left.min(64 * 1024)).await? {
                Some(c) => left -= c.len(),
                None => return Ok(None),
            }
        }
        if !header.continues() {
            return Ok(Some((header.seq, skipped)));
        }
    }
}

/// Serves one client connection on the tunnel stream.
pub async fn serve(
    cfg: &ConnectionConfig,
    caller: Caller,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Outcome {
    let mut outcome = Outcome::default();
    let denied = |msg: &str| ErrPacket::new(ER_ACCESS_DENIED_ERROR, "28000", msg);

    // The backend speaks first: its greeting shapes ours.
    let greeting = match login::open(cfg).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(connection = %cfg.name, error = %e, "backend unreachable");
            let msg = format!(
                "hoop could not reach the database of connection \"{}\": {e}; tell the hoop agent's operator if this persists",
                cfg.name
            );
            refuse(&mut send, 0, &ErrPacket::new(ER_HOOP, "08S01", &msg)).await;
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let backend_hs = &greeting.handshake;
    let mut offered = backend_hs.capabilities & SUPPORTED;
    if cfg.allow_local_infile {
        offered |= backend_hs.capabilities & CLIENT_LOCAL_FILES;
    }
    let Some(nonce) = scramble::random_nonce() else {
        refuse(
            &mut send,
            0,
            &ErrPacket::new(ER_HOOP, "HY000", "hoop: the random generator failed"),
        )
        .await;
        outcome.error = Some("random generator failed".into());
        return outcome;
    };
    let mut plugin_data = nonce.to_vec();
    plugin_data.push(0);
    let ours = InitialHandshake {
        server_version: backend_hs.server_version.clone(),
        connection_id: backend_hs.connection_id,
        auth_plugin_data: Bytes::from(plugin_data),
        capabilities: offered,
        charset: backend_hs.charset,
        status: backend_hs.status,
        auth_plugin_name: Some(MYSQL_NATIVE_PASSWORD.to_string()),
    };
    let mut out = BytesMut::new();
    if mysql::write_packet(&mut out, 0, |o| ours.encode(o)).is_err()
        || send.write_chunk(out.freeze()).await.is_err()
    {
        outcome.error = Some("client went away before the greeting".into());
        return outcome;
    }

    let mut cbuf = BytesMut::with_capacity(1024);
    let packet = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        client_packet(&mut recv, &mut cbuf, mysql::MAX_PRE_AUTH_PACKET_LEN),
    )
    .await
    {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => {
            // A port probe (`nc -z`, a health check): nothing to do.
            outcome.error = Some("client closed before logging in".into());
            return outcome;
        }
        Ok(Err(e)) => {
            refuse(
                &mut send,
                1,
                &ErrPacket::new(1043, "08S01", &format!("hoop: bad handshake: {e}")),
            )
            .await;
            outcome.error = Some(format!("bad handshake: {e}"));
            return outcome;
        }
        Err(_) => {
            outcome.error = Some("no login within 30s".into());
            return outcome;
        }
    };
    let reply_seq = packet.next_seq();
    if is_ssl_request(&packet.payload) {
        let msg = "hoop: the local connection does not use TLS (the tunnel to the agent is encrypted); \
                   connect with --ssl-mode=DISABLED (mysql), --skip-ssl (mariadb) or your driver's equivalent";
        refuse(&mut send, reply_seq, &ErrPacket::new(1043, "08S01", msg)).await;
        outcome.error = Some("client asked for TLS on the local leg".into());
        return outcome;
    }
    let hello = match HandshakeResponse::decode(&packet.payload) {
        Ok(h) => h,
        Err(e) => {
            refuse(
                &mut send,
                reply_seq,
                &ErrPacket::new(1043, "08S01", &format!("hoop: bad handshake: {e}")),
            )
            .await;
            outcome.error = Some(format!("bad handshake: {e}"));
            return outcome;
        }
    };
    let client_user = String::from_utf8_lossy(&hello.username).into_owned();
    outcome.client_user = Some(client_user.clone());
    let backend_db = cfg.database.clone().unwrap_or_default();
    let database = match hello
        .database()
        .map(|d| String::from_utf8_lossy(d).into_owned())
    {
        None => backend_db.clone(),
        Some(d) if d.is_empty() || d == backend_db || cfg.databases.contains(&d) => {
            if d.is_empty() { backend_db.clone() } else { d }
        }
        Some(d) => {
            let msg = format!(
                "hoop: database '{d}' is not available through connection \"{}\"; use one of: {}",
                cfg.name,
                allowed_databases(cfg).join(", ")
            );
            refuse(
                &mut send,
                reply_seq,
                &ErrPacket::new(ER_DBACCESS_DENIED_ERROR, "42000", &msg),
            )
            .await;
            outcome.error = Some(format!("database {d:?} refused"));
            return outcome;
        }
    };
    outcome.database = Some(database.clone());

    let guard = match Guard::new(&cfg.deny, cfg.read_only) {
        Ok(g) => g,
        Err(e) => {
            refuse(
                &mut send,
                reply_seq,
                &denied("hoop: this connection's guardrails are misconfigured"),
            )
            .await;
            outcome.error = Some(format!("bad deny rule: {e}"));
            return outcome;
        }
    };

    let caps = hello.capabilities & offered;
    let mut attrs: Vec<(Bytes, Bytes)> = hello
        .connect_attrs
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.as_ref() != b"program_name")
        .collect();
    let program = hello
        .connect_attr(b"program_name")
        .map(|p| format!("hoop:{} {}", caller.who.user, String::from_utf8_lossy(p)))
        .unwrap_or_else(|| format!("hoop:{}", caller.who.user));
    attrs.push((Bytes::from_static(b"program_name"), Bytes::from(program)));
    attrs.push((
        Bytes::from_static(b"_hoop_user"),
        Bytes::from(caller.who.user.clone()),
    ));
    let wanted = login::Wanted {
        capabilities: caps,
        max_packet_size: hello.max_packet_size,
        charset: hello.charset,
        database: &database,
        connect_attrs: attrs,
    };
    let backend = match login::login(cfg, greeting, wanted).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(connection = %cfg.name, error = %e, "backend login failed");
            let (code, state) = match &e {
                login::LoginError::Backend(err)
                | login::LoginError::BackendWithoutTls(err)
                | login::LoginError::BackendWithoutRsaKey(err) => {
                    (err.code, err.sql_state_str().into_owned())
                }
                _ => (ER_HOOP, "08S01".to_string()),
            };
            let msg = format!(
                "hoop could not log in to the database of connection \"{}\": {e}; \
                 the connection's stored credential or settings are wrong: tell the hoop agent's operator",
                cfg.name
            );
            refuse(&mut send, reply_seq, &ErrPacket::new(code, &state, &msg)).await;
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };

    let ctx = relay::Ctx {
        session: caller.session.clone(),
        who: caller.who.clone(),
        connection: cfg.name.clone(),
        audit: caller.audit.clone(),
        guard,
        masker: caller.masker.clone(),
        capabilities: caps,
        databases: allowed_databases(cfg),
    };
    let mut session = relay::Session::new(ctx, send, recv, cbuf, backend.stream, backend.leftover);
    // The backend refuses longer packets anyway; knowing its limit keeps
    // the agent from buffering more than that for one client command.
    let mut setup = Ok(());
    if cfg.read_only {
        setup = session
            .backend_setup("SET SESSION TRANSACTION READ ONLY")
            .await;
    }
    if setup.is_ok() {
        setup = session.learn_max_packet().await;
    }
    if setup.is_ok() && caller.masker.as_ref().is_some_and(|m| m.has_table_rules()) {
        setup = session.learn_base_tables().await;
    }
    if let Err(e) = setup {
        session
            .refuse_login(
                reply_seq,
                &ErrPacket::new(ER_HOOP, "08S01", &format!("hoop: {e}")),
            )
            .await;
        outcome.error = Some(e.to_string());
        return outcome;
    }
    let ok = OkPacket {
        status: backend.ok.status,
        ..OkPacket::default()
    };
    let result = session.run(reply_seq, ok).await;
    let (up, down) = session.counts();
    outcome.bytes_up = up;
    outcome.bytes_down = down;
    outcome.error = result.err().map(|e| e.to_string());
    outcome
}

fn allowed_databases(cfg: &ConnectionConfig) -> Vec<String> {
    cfg.database
        .iter()
        .chain(cfg.databases.iter())
        .cloned()
        .collect()
}
