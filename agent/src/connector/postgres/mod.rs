//! The PostgreSQL connector. The agent ends the client's startup itself
//! (no TLS on the loopback leg, which the tunnel already encrypts, and no
//! password: the caller was verified on the tunnel), logs in to the
//! backend with the connection's own credential, then relays messages,
//! auditing each statement and applying guardrails.

mod cancel;
mod downstream;
mod login;
mod masking;
mod relay;
mod track;
mod types;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hoop_proto::pg::backend::{self, ErrorFields, Severity};
use hoop_proto::pg::{self, StartupPacket};
use quinn::{RecvStream, SendStream};

pub use cancel::CancelRegistry;
use cancel::Target;
use types::Catalog;

use crate::audit::{AuditLog, Who};
use crate::config::ConnectionConfig;
use crate::guard::Guard;

/// How long a client has to send its startup packet.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Startup parameters passed from the client to the backend. Anything
/// else (notably `options`, which could set any setting, and
/// `replication`) is dropped.
const PASSED_PARAMS: &[&str] = &[
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
];

/// The caller of a session, for audit and cancel ownership.
pub struct Caller {
    pub session: String,
    pub who: Who,
    pub audit: AuditLog,
    pub cancels: Arc<CancelRegistry>,
    /// The connection's masking engine, when it masks anything.
    pub masker: Option<Arc<crate::mask::Masker>>,
}

pub use super::Outcome;

fn fatal(sqlstate: &str, message: &str, hint: Option<&str>) -> Bytes {
    let mut f = ErrorFields::new(Severity::Fatal, sqlstate, message, None);
    if let Some(h) = hint {
        f.set(backend::field::HINT, h);
    }
    let mut out = Vec::new();
    if f.encode_error(&mut out).is_err() {
        out.clear();
        let _ = ErrorFields::new(
            Severity::Fatal,
            sqlstate,
            "hoop refused the connection",
            None,
        )
        .encode_error(&mut out);
    }
    Bytes::from(out)
}

async fn send_and_finish(send: &mut SendStream, bytes: Bytes) {
    let _ = send.write_chunk(bytes).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
}

/// Reads the client's startup packet, answering SSL and GSS requests with
/// `N`. Returns the packet and any bytes read past it.
async fn read_startup(
    send: &mut SendStream,
    recv: &mut RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<StartupPacket>, String> {
    loop {
        match pg::split_startup(buf) {
            Ok(Some(packet)) => {
                let p = StartupPacket::decode(&packet).map_err(|e| e.to_string())?;
                match p {
                    StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                        send.write_all(&[pg::ENCRYPTION_REFUSED])
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    other => return Ok(Some(other)),
                }
            }
            Ok(None) => match recv.read_chunk(16 * 1024, true).await {
                Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
                Ok(None) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            },
            Err(e) => return Err(e.to_string()),
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
    let mut outcome = Outcome {
        bytes_up: 0,
        bytes_down: 0,
        error: None,
        client_user: None,
        database: None,
    };
    let mut cbuf = BytesMut::with_capacity(1024);
    let packet = match tokio::time::timeout(
        STARTUP_TIMEOUT,
        read_startup(&mut send, &mut recv, &mut cbuf),
    )
    .await
    {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => {
            // A port probe (`nc -z`, a health check): nothing to do.
            outcome.error = Some("client closed before startup".into());
            return outcome;
        }
        Ok(Err(e)) => {
            send_and_finish(
                &mut send,
                fatal("08P01", &format!("hoop: invalid startup packet: {e}"), None),
            )
            .await;
            outcome.error = Some(format!("invalid startup packet: {e}"));
            return outcome;
        }
        Err(_) => {
            outcome.error = Some("no startup packet within 30s".into());
            return outcome;
        }
    };
    let startup = match packet {
        StartupPacket::Cancel {
            process_id,
            secret_key,
        } => {
            outcome.error = handle_cancel(cfg, &caller, process_id, &secret_key)
                .await
                .err();
            let _ = send.finish();
            return outcome;
        }
        StartupPacket::Startup(s) => s,
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => return outcome,
    };
    let client_user = startup.param("user").unwrap_or("").to_string();
    outcome.client_user = Some(client_user.clone());
    let backend_db = cfg.database.clone().unwrap_or_default();
    let database = match startup.param("database") {
        None | Some("") => backend_db.clone(),
        Some(d) if d == backend_db || cfg.databases.iter().any(|x| x == d) => d.to_string(),
        // libpq's default database is the user name: treat it as "none".
        Some(d) if d == client_user => backend_db.clone(),
        Some(d) => {
            let allowed: Vec<&str> = std::iter::once(backend_db.as_str())
                .chain(cfg.databases.iter().map(String::as_str))
                .collect();
            let msg = format!(
                "hoop: database \"{d}\" is not available through connection \"{}\"; use one of: {}",
                cfg.name,
                allowed.join(", ")
            );
            send_and_finish(&mut send, fatal("3D000", &msg, None)).await;
            outcome.error = Some(format!("database {d:?} refused"));
            return outcome;
        }
    };
    outcome.database = Some(database.clone());

    let mut params: Vec<(String, String)> = vec![
        ("user".into(), cfg.user.clone().unwrap_or_default()),
        ("database".into(), database.clone()),
    ];
    let app = startup.param("application_name").filter(|a| !a.is_empty());
    // The hoop user first, so truncation to 63 bytes never drops it.
    let app_name = match app {
        Some(a) => format!("hoop:{} {a}", caller.who.user),
        None => format!("hoop:{}", caller.who.user),
    };
    params.push(("application_name".into(), app_name));
    for (k, v) in &startup.params {
        if PASSED_PARAMS.contains(&k.to_ascii_lowercase().as_str()) {
            params.push((k.clone(), v.clone()));
        }
    }
    if cfg.read_only {
        params.push(("default_transaction_read_only".into(), "on".into()));
    }

    let guard = match Guard::new(&cfg.deny, cfg.read_only) {
        Ok(g) => g,
        Err(e) => {
            send_and_finish(
                &mut send,
                fatal(
                    "XX000",
                    "hoop: this connection's guardrails are misconfigured",
                    None,
                ),
            )
            .await;
            outcome.error = Some(format!("bad deny rule: {e}"));
            return outcome;
        }
    };

    let backend = match login::open(cfg).await {
        Ok(stream) => login::login(cfg, stream, &params).await,
        Err(e) => Err(e),
    };
    // Masking reads binary values by their type: the session's types
    // whose OIDs are not fixed are looked up before the client's first
    // statement.
    let backend = match backend {
        Ok(mut b) if caller.masker.is_some() => {
            let columns = caller.masker.as_deref().and_then(|m| {
                let globs: Vec<&str> = m.column_globs().collect();
                types::columns_query(&globs)
            });
            login::load_catalog(&mut b, columns.as_deref())
                .await
                .map(|t| (b, t))
        }
        Ok(b) => Ok((b, Catalog::default())),
        Err(e) => Err(e),
    };
    let (backend, types) = match backend {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(connection = %cfg.name, error = %e, "backend login failed");
            let (code, detail) = match &e {
                login::LoginError::Backend(f) => {
                    (f.code().unwrap_or("28000").to_string(), e.to_string())
                }
                _ => ("08001".to_string(), e.to_string()),
            };
            let msg = format!(
                "hoop could not log in to the database of connection \"{}\": {detail}",
                cfg.name
            );
            send_and_finish(
                &mut send,
                fatal(&code, &msg, Some("the connection's stored credential or settings are wrong; tell the hoop agent's operator")),
            )
            .await;
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };

    // The client's login: OK, the backend's settings, our cancel key.
    let registered = backend.key.as_ref().map(|k| {
        caller.cancels.register(Target {
            connection: cfg.name.clone(),
            user: caller.who.user.clone(),
            backend_pid: k.process_id,
            backend_key: k.secret_key.clone(),
        })
    });
    let mut hello = Vec::with_capacity(512);
    // The agent speaks protocol 3.0 to the client whatever the backend
    // does; a client asking for more (or for `_pq_` extensions) is told so.
    let extensions: Vec<&str> = startup
        .params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if startup.minor > 0 || !extensions.is_empty() {
        let _ = backend::encode_negotiate_protocol_version(0, &extensions, &mut hello);
    }
    backend::encode_authentication_ok(&mut hello);
    for m in &backend.greeting {
        hello.extend_from_slice(&m.bytes);
    }
    if let Some((pid, key)) = registered {
        let _ = backend::encode_backend_key_data(pid, &key, &mut hello);
    }
    backend::encode_ready_for_query(backend.status, &mut hello);
    if send.write_chunk(Bytes::from(hello)).await.is_err() {
        if let Some((pid, _)) = registered {
            caller.cancels.unregister(pid);
        }
        outcome.error = Some("client went away during login".into());
        return outcome;
    }

    let ctx = Arc::new(relay::Ctx {
        session: caller.session.clone(),
        who: caller.who.clone(),
        connection: cfg.name.clone(),
        audit: caller.audit.clone(),
        guard,
        audit_parameters: cfg.audit_parameters,
        masker: caller.masker.clone(),
        types: Arc::new(types),
    });
    let ((up, down), result) =
        relay::run(ctx, send, recv, cbuf, backend.stream, backend.leftover).await;
    if let Some((pid, _)) = registered {
        caller.cancels.unregister(pid);
    }
    outcome.bytes_up = up;
    outcome.bytes_down = down;
    outcome.error = result.err().map(|e| e.to_string());
    outcome
}

async fn handle_cancel(
    cfg: &ConnectionConfig,
    caller: &Caller,
    pid: i32,
    key: &[u8],
) -> Result<(), String> {
    let Some(target) = caller.cancels.lookup(pid, key, &caller.who.user) else {
        // As PostgreSQL does: say nothing to the client about a bad key.
        tracing::info!(connection = %cfg.name, "cancel request with an unknown key ignored");
        return Err("cancel request with an unknown key".into());
    };
    if target.connection != cfg.name {
        return Err("cancel request for another connection".into());
    }
    login::cancel(cfg, target.backend_pid, &target.backend_key)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(connection = %cfg.name, "cancel request forwarded");
    Ok(())
}
