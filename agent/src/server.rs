//! The QUIC server: authenticates each tunnel on its control stream, then
//! serves one forwarded connection per further bidirectional stream.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoop_proto::tunnel::{
    ConnectionInfo, ErrorCode, Identity, LoginSettings, PROTOCOL_VERSION, Request, Response,
    WireError, close,
};
use hoop_tunnel::frame::{self, ReadFrameError};
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use tokio::sync::RwLock;

use crate::audit::{AuditLog, Event, Who};
use crate::config::{AgentConfig, ConnectionConfig, ConnectionKind, normalize_issuer};
use crate::connector;
use crate::identity::Identity as TlsIdentity;
use crate::mask::Masker;
use crate::policy;
use crate::token::{Verifier, now_unix};

/// How long a new tunnel may take to authenticate, and a new stream to
/// send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC close code: normal shutdown.
const CLOSE_OK: VarInt = VarInt::from_u32(close::OK);
/// QUIC close code: authentication or protocol failure.
const CLOSE_REFUSED: VarInt = VarInt::from_u32(close::REFUSED);
/// QUIC close code: the token expired without a refresh.
const CLOSE_EXPIRED: VarInt = VarInt::from_u32(close::TOKEN_EXPIRED);

/// Everything the connection handlers share.
pub struct Shared {
    pub cfg: AgentConfig,
    pub verifier: Verifier,
    pub audit: AuditLog,
    connections: HashMap<String, ConnectionConfig>,
    pg_cancels: Arc<connector::postgres::CancelRegistry>,
    /// Compiled masking engines, by connection name.
    maskers: HashMap<String, Arc<Masker>>,
}

impl Shared {
    pub fn new(cfg: AgentConfig, verifier: Verifier, audit: AuditLog) -> Self {
        let connections = cfg
            .connections
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        Shared {
            cfg,
            verifier,
            audit,
            connections,
            pg_cancels: Arc::default(),
            maskers: HashMap::new(),
        }
    }

    /// Sets the masking engines (by connection name).
    pub fn with_maskers(mut self, maskers: HashMap<String, Arc<Masker>>) -> Self {
        self.maskers = maskers;
        self
    }

    fn login_settings(&self) -> Option<LoginSettings> {
        self.cfg.issuers.first().map(|i| LoginSettings {
            issuer: i.url.clone(),
            client_id: i.client_id.clone(),
            audience: i.audience.clone(),
            scopes: i.scopes.clone(),
        })
    }

    fn leeway_for(&self, issuer: &str) -> u64 {
        self.cfg
            .issuers
            .iter()
            .find(|i| normalize_issuer(&i.url) == normalize_issuer(issuer))
            .map_or(0, |i| i.leeway_secs)
    }
}

/// Binds the QUIC endpoint.
pub fn bind(
    addr: SocketAddr,
    tls: &TlsIdentity,
) -> anyhow::Result<(Endpoint, hoop_tunnel::transport::BufferSizes)> {
    let server = hoop_tunnel::tls::server_config(tls.chain.clone(), tls.key.clone_key())?;
    let (ep, sizes) =
        hoop_tunnel::transport::endpoint_with_reset_key(addr, Some(server), &tls.reset_key)?;
    Ok((ep, sizes))
}

/// Serves until `shutdown` completes, then closes every tunnel and flushes
/// the audit log.
pub async fn serve(endpoint: Endpoint, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                tokio::spawn(handle_tunnel(shared.clone(), incoming));
            }
            () = &mut shutdown => break,
        }
    }
    endpoint.close(CLOSE_OK, b"agent shutting down");
    // Give relays a moment to record how their sessions ended.
    let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    shared.audit.record(Event::AgentStop);
    shared.audit.flush().await;
}

/// State of one authenticated tunnel.
struct Tunnel {
    peer: SocketAddr,
    identity: RwLock<Identity>,
}

async fn reply(send: &mut SendStream, msg: &Response) -> bool {
    match frame::write(send, msg).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "could not send reply");
            false
        }
    }
}

/// Sends a final error, waits briefly for it to be delivered, and closes
/// the tunnel.
async fn refuse(conn: &Connection, send: &mut SendStream, err: WireError) {
    if reply(send, &Response::Error(err)).await {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }
    conn.close(CLOSE_REFUSED, b"refused");
}

async fn handle_tunnel(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let peer = incoming.remote_address();
    let conn = match tokio::time::timeout(HEADER_TIMEOUT, incoming).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    let (mut send, mut recv) = match tokio::time::timeout(HEADER_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => {
            conn.close(CLOSE_REFUSED, b"no control stream");
            return;
        }
    };
    let identity = loop {
        let req =
            match tokio::time::timeout(HEADER_TIMEOUT, frame::read::<Request>(&mut recv)).await {
                Ok(Ok(r)) => r,
                Ok(Err(ReadFrameError::Unrecognised {
                    version: Some(v), ..
                })) if v != PROTOCOL_VERSION => {
                    refuse(&conn, &mut send, version_error(v)).await;
                    return;
                }
                Ok(Err(ReadFrameError::Closed)) => return,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "bad control header");
                    refuse(
                        &conn,
                        &mut send,
                        WireError::new(ErrorCode::BadRequest, format!("bad request: {e}")),
                    )
                    .await;
                    return;
                }
                Err(_) => {
                    conn.close(CLOSE_REFUSED, b"no hello");
                    return;
                }
            };
        match req {
            Request::Discover { .. } => {
                let msg = match shared.login_settings() {
                    Some(s) => Response::Discovery(s),
                    None => Response::Error(WireError::new(
                        ErrorCode::Internal,
                        "this agent trusts no issuer",
                    )),
                };
                if !reply(&mut send, &msg).await {
                    return;
                }
            }
            Request::Hello { version, token, .. } => {
                if version != PROTOCOL_VERSION {
                    refuse(&conn, &mut send, version_error(version)).await;
                    return;
                }
                match shared.verifier.verify(token.expose()).await {
                    Ok(id) => break id,
                    Err(e) => {
                        let wire = e.to_wire();
                        tracing::warn!(%peer, reason = %e, "token refused");
                        shared.audit.record(Event::AuthFailed {
                            peer: peer.to_string(),
                            code: code_name(wire.code),
                            reason: e.to_string(),
                        });
                        refuse(&conn, &mut send, wire).await;
                        return;
                    }
                }
            }
            _ => {
                refuse(
                    &conn,
                    &mut send,
                    WireError::new(ErrorCode::Unauthenticated, "send Hello with a token first"),
                )
                .await;
                return;
            }
        }
    };
    tracing::info!(%peer, user = %identity.user, "tunnel authenticated");
    shared.audit.record(Event::Login {
        peer: peer.to_string(),
        who: Who::from(&identity),
    });
    let welcome = Response::Welcome {
        version: PROTOCOL_VERSION,
        identity: identity.clone(),
        agent: concat!("hoop-agent ", env!("CARGO_PKG_VERSION")).to_string(),
    };
    if !reply(&mut send, &welcome).await {
        return;
    }
    let tunnel = Arc::new(Tunnel {
        peer,
        identity: RwLock::new(identity),
    });
    tokio::spawn(control_loop(shared.clone(), tunnel.clone(), send, recv));
    tokio::spawn(expiry_watch(shared.clone(), tunnel.clone(), conn.clone()));
    while let Ok((s, r)) = conn.accept_bi().await {
        tokio::spawn(handle_stream(shared.clone(), tunnel.clone(), s, r));
    }
}

/// Ends the tunnel once its token has been expired for longer than the
/// grace period without a `Refresh`; refreshes push the deadline out.
async fn expiry_watch(shared: Arc<Shared>, tunnel: Arc<Tunnel>, conn: Connection) {
    loop {
        let id = tunnel.identity.read().await.clone();
        let deadline = id.expires_at.saturating_add(shared.cfg.token_grace_secs);
        let now = now_unix();
        if now >= deadline {
            let msg = format!(
                "your token expired at {} and was not refreshed, so the agent ended this tunnel; \
                 run `hoop login` (or give a fresh HOOP_TOKEN) and connect again",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(id.expires_at)
                )
            );
            tracing::info!(peer = %tunnel.peer, user = %id.user, "token expired without refresh; closing tunnel");
            shared.audit.record(Event::TunnelExpired {
                peer: tunnel.peer.to_string(),
                who: Who::from(&id),
                expired_at: id.expires_at,
            });
            conn.close(CLOSE_EXPIRED, msg.as_bytes());
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(deadline - now)) => {}
            _ = conn.closed() => return,
        }
    }
}

fn version_error(theirs: u32) -> WireError {
    let advice = if theirs > PROTOCOL_VERSION {
        "upgrade hoop-agent, or use an older hoop"
    } else {
        "upgrade hoop"
    };
    WireError::new(
        ErrorCode::VersionMismatch,
        format!(
            "hoop speaks tunnel protocol version {theirs} but this agent speaks version {PROTOCOL_VERSION}; {advice}"
        ),
    )
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{code:?}"))
}

async fn control_loop(
    shared: Arc<Shared>,
    tunnel: Arc<Tunnel>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    loop {
        let req = match frame::read::<Request>(&mut recv).await {
            Ok(r) => r,
            Err(ReadFrameError::Closed) => return,
            Err(e) => {
                tracing::debug!(peer = %tunnel.peer, error = %e, "control stream ended");
                let _ = reply(
                    &mut send,
                    &Response::Error(WireError::new(
                        ErrorCode::BadRequest,
                        format!("bad request: {e}"),
                    )),
                )
                .await;
                return;
            }
        };
        let resp = match req {
            Request::ListConnections => {
                let id = tunnel.identity.read().await.clone();
                let mut connections: Vec<ConnectionInfo> = shared
                    .cfg
                    .connections
                    .iter()
                    .filter(|c| policy::allowed(c, &id))
                    .map(|c| ConnectionInfo {
                        name: c.name.clone(),
                        kind: c.kind.as_str().to_string(),
                        default_port: c.kind.default_port(),
                        ssh_host_key: (c.kind == ConnectionKind::Ssh)
                            .then(|| ssh_public_key(&shared.cfg.data_dir))
                            .flatten(),
                        namespace: c.namespace.clone(),
                    })
                    .collect();
                connections.sort_by(|a, b| a.name.cmp(&b.name));
                Response::Connections { connections }
            }
            Request::Refresh { token } => match shared.verifier.verify(token.expose()).await {
                Ok(new_id) => {
                    let mut cur = tunnel.identity.write().await;
                    if new_id.user != cur.user
                        || normalize_issuer(&new_id.issuer) != normalize_issuer(&cur.issuer)
                    {
                        Response::Error(WireError::new(
                            ErrorCode::TokenInvalid,
                            "a refreshed token must be for the same user; reconnect to switch users",
                        ))
                    } else {
                        *cur = new_id.clone();
                        shared.audit.record(Event::TokenRefreshed {
                            peer: tunnel.peer.to_string(),
                            who: Who::from(&new_id),
                            expires_at: new_id.expires_at,
                        });
                        Response::Refreshed { identity: new_id }
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %tunnel.peer, reason = %e, "refresh token refused");
                    Response::Error(e.to_wire())
                }
            },
            Request::Hello { .. } | Request::Discover { .. } => Response::Error(WireError::new(
                ErrorCode::BadRequest,
                "this tunnel is already authenticated",
            )),
            Request::ListSessions => {
                let id = tunnel.identity.read().await.clone();
                Response::Sessions {
                    sessions: connector::ssh::sessions::list(
                        &shared.cfg.data_dir,
                        &id,
                        shared.cfg.auditor_group.as_deref(),
                    ),
                }
            }
            Request::Open { .. } | Request::FetchRecording { .. } => {
                Response::Error(WireError::new(
                    ErrorCode::BadRequest,
                    "Open and FetchRecording belong on their own stream, not the control stream",
                ))
            }
        };
        if !reply(&mut send, &resp).await {
            return;
        }
    }
}

/// The agent's SSH host public key, as a known_hosts line's key part.
fn ssh_public_key(data_dir: &std::path::Path) -> Option<String> {
    match crate::identity::ssh_host_key(data_dir) {
        Ok(k) => k.public_key().to_openssh().ok(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the agent's SSH host key");
            None
        }
    }
}

fn new_session_id() -> String {
    let mut b = [0u8; 8];
    // A failing system RNG leaves zeros; the audit sequence still orders events.
    let _ = aws_lc_rs::rand::fill(&mut b);
    hex::encode(b)
}

async fn handle_stream(
    shared: Arc<Shared>,
    tunnel: Arc<Tunnel>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let req = match tokio::time::timeout(HEADER_TIMEOUT, frame::read::<Request>(&mut recv)).await {
        Ok(Ok(r)) => r,
        Ok(Err(ReadFrameError::Closed)) | Err(_) => return,
        Ok(Err(e)) => {
            let _ = reply(
                &mut send,
                &Response::Error(WireError::new(
                    ErrorCode::BadRequest,
                    format!("bad request: {e}"),
                )),
            )
            .await;
            let _ = send.finish();
            return;
        }
    };
    if let Request::FetchRecording { recording } = req {
        send_recording(&shared, &tunnel, send, &recording).await;
        return;
    }
    let Request::Open {
        connection,
        client_addr,
    } = req
    else {
        let _ = reply(
            &mut send,
            &Response::Error(WireError::new(
                ErrorCode::BadRequest,
                "a data stream must start with Open",
            )),
        )
        .await;
        let _ = send.finish();
        return;
    };
    let id = tunnel.identity.read().await.clone();
    let peer = tunnel.peer.to_string();
    let refuse = |code: ErrorCode, msg: String| {
        shared.audit.record(Event::Refused {
            peer: peer.clone(),
            who: Who::from(&id),
            connection: connection.clone(),
            client_addr: client_addr.clone(),
            code: code_name(code),
            reason: msg.clone(),
        });
        Response::Error(WireError::new(code, msg))
    };
    let leeway = shared.leeway_for(&id.issuer);
    let outcome: Result<&ConnectionConfig, Response> = if id.expires_at + leeway < now_unix() {
        Err(refuse(
            ErrorCode::TokenExpired,
            "your token has expired; sign in again (or give a fresh HOOP_TOKEN)".into(),
        ))
    } else {
        match shared.connections.get(&connection) {
            None => Err(refuse(
                ErrorCode::UnknownConnection,
                format!(
                    "this agent has no connection named {connection:?}; `hoop connections` lists the ones you may use"
                ),
            )),
            Some(c) if !policy::allowed(c, &id) => Err(refuse(
                ErrorCode::Forbidden,
                format!(
                    "{} may not use connection {connection:?}; ask the agent's operator to add you to its allow_users or allow_groups",
                    id.user
                ),
            )),
            Some(c) => Ok(c),
        }
    };
    let conn_cfg = match outcome {
        Ok(c) => c,
        Err(resp) => {
            let _ = reply(&mut send, &resp).await;
            let _ = send.finish();
            return;
        }
    };
    // What can still refuse the open comes before the session starts.
    let ready = match prepare(&shared, conn_cfg).await {
        Ok(r) => r,
        Err((code, msg)) => {
            let _ = reply(&mut send, &refuse(code, msg)).await;
            let _ = send.finish();
            return;
        }
    };
    let Some(audit) =
        SessionAudit::open(&shared, &mut send, &id, &peer, conn_cfg, client_addr).await
    else {
        return;
    };
    let session = audit.session.clone();
    let who = Who::from(&id);
    let masker = shared.maskers.get(&conn_cfg.name).cloned();
    let out = match ready {
        Ready::Tcp(tcp) => {
            let (stats, result) = hoop_tunnel::relay::relay(tcp, send, recv).await;
            connector::Outcome {
                bytes_up: stats.quic_to_tcp,
                bytes_down: stats.tcp_to_quic,
                error: result.err().map(|e| e.to_string()),
                ..Default::default()
            }
        }
        Ready::Ssh(host_key) => {
            let caller = connector::ssh::Caller {
                session,
                who,
                audit: shared.audit.clone(),
                data_dir: shared.cfg.data_dir.clone(),
                host_key,
            };
            connector::ssh::serve(conn_cfg, caller, send, recv).await
        }
        Ready::Other => match conn_cfg.kind {
            ConnectionKind::Postgres => {
                let caller = connector::postgres::Caller {
                    session,
                    who,
                    audit: shared.audit.clone(),
                    cancels: shared.pg_cancels.clone(),
                    masker,
                };
                connector::postgres::serve(conn_cfg, caller, send, recv).await
            }
            ConnectionKind::Mysql => {
                let caller = connector::mysql::Caller {
                    session,
                    who,
                    audit: shared.audit.clone(),
                    masker,
                };
                connector::mysql::serve(conn_cfg, caller, send, recv).await
            }
            ConnectionKind::Http | ConnectionKind::Kubernetes => {
                let caller = connector::http::Caller {
                    session,
                    who,
                    audit: shared.audit.clone(),
                    masker,
                    data_dir: shared.cfg.data_dir.clone(),
                };
                connector::http::serve(conn_cfg, caller, send, recv).await
            }
            // `prepare` answers these two itself.
            ConnectionKind::Tcp | ConnectionKind::Ssh => unreachable!("prepared above"),
        },
    };
    audit.end(&shared, out);
}

/// What a connection kind needs before its session starts.
enum Ready {
    /// The backend, dialled: an unreachable one is refused, not opened.
    Tcp(tokio::net::TcpStream),
    /// The agent's SSH host key.
    Ssh(Arc<russh::keys::PrivateKey>),
    /// The connector does its own setup after `Opened`.
    Other,
}

/// `Err` says why the open is refused.
async fn prepare(shared: &Shared, cfg: &ConnectionConfig) -> Result<Ready, (ErrorCode, String)> {
    match cfg.kind {
        ConnectionKind::Tcp => match connector::tcp::dial(&cfg.address).await {
            Ok(t) => Ok(Ready::Tcp(t)),
            Err(e) => {
                tracing::warn!(connection = %cfg.name, error = %e, "backend unreachable");
                Err((
                    ErrorCode::BackendUnreachable,
                    format!(
                        "the agent could not reach the backend of {:?}: {e}",
                        cfg.name
                    ),
                ))
            }
        },
        ConnectionKind::Ssh => match crate::identity::ssh_host_key(&shared.cfg.data_dir) {
            Ok(k) => Ok(Ready::Ssh(Arc::new(k))),
            Err(e) => {
                tracing::error!(error = %e, "cannot load the agent's SSH host key");
                Err((
                    ErrorCode::BackendUnreachable,
                    format!("the agent has no usable SSH host key: {e}"),
                ))
            }
        },
        _ => Ok(Ready::Other),
    }
}

/// Answers `FetchRecording` (see [`connector::ssh::sessions::send`]) and
/// records who fetched what.
async fn send_recording(shared: &Shared, tunnel: &Tunnel, send: SendStream, name: &str) {
    let id = tunnel.identity.read().await.clone();
    let leeway = shared.leeway_for(&id.issuer);
    let expired = id.expires_at + leeway < now_unix();
    let outcome = connector::ssh::sessions::send(
        &shared.cfg.data_dir,
        shared.cfg.auditor_group.as_deref(),
        &id,
        expired,
        name,
        send,
    )
    .await;
    shared.audit.record(Event::RecordingFetched {
        peer: tunnel.peer.to_string(),
        who: Who::from(&id),
        recording: name.to_string(),
        outcome: if outcome.is_ok() { "ok" } else { "refused" }.into(),
        session: outcome.ok(),
    });
}

/// The start and end records of one forwarded connection.
struct SessionAudit {
    session: String,
    who: Who,
    connection: String,
    started: Instant,
}

impl SessionAudit {
    /// Answers `Opened` and records the start; `None` if the caller left.
    async fn open(
        shared: &Shared,
        send: &mut SendStream,
        id: &Identity,
        peer: &str,
        cfg: &ConnectionConfig,
        client_addr: Option<String>,
    ) -> Option<SessionAudit> {
        let session = new_session_id();
        if !reply(
            send,
            &Response::Opened {
                session: session.clone(),
            },
        )
        .await
        {
            return None;
        }
        shared.audit.record(Event::SessionStart {
            session: session.clone(),
            peer: peer.to_string(),
            who: Who::from(id),
            connection: cfg.name.clone(),
            connection_type: cfg.kind.as_str().to_string(),
            client_addr,
        });
        tracing::info!(%session, user = %id.user, connection = %cfg.name, "session started");
        Some(SessionAudit {
            session,
            who: Who::from(id),
            connection: cfg.name.clone(),
            started: Instant::now(),
        })
    }

    fn end(self, shared: &Shared, out: connector::Outcome) {
        let connector::Outcome {
            bytes_up,
            bytes_down,
            error,
            client_user,
            database,
        } = out;
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(session = %self.session, up = bytes_up, down = bytes_down, duration_ms, "session ended");
        shared.audit.record(Event::SessionEnd {
            session: self.session,
            who: self.who,
            connection: self.connection,
            bytes_up,
            bytes_down,
            duration_ms,
            outcome: if error.is_none() { "ok" } else { "error" }.into(),
            error,
            client_user,
            database,
        });
    }
}
