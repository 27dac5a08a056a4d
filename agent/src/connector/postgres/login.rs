//! The agent's own login to the PostgreSQL backend: TLS per the
//! connection's mode, then SCRAM-SHA-256(-PLUS), MD5 or (over TLS, or
//! when allowed) cleartext with the stored password. Nothing of this
//! exchange reaches the client.

use bytes::BytesMut;
use hoop_proto::pg::backend::{BackendKeyData, ErrorFields, TransactionStatus, data_row_ranges};
use hoop_proto::pg::frontend;
use hoop_proto::pg::scram::SaltedPasswordCache;
use hoop_proto::pg::{
    self, Authentication, ChannelBinding, RawMessage, ScramClient, auth, startup,
    tls_server_end_point_hash,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{ConnectionConfig, Secret, TlsMode, split_host_port};
use crate::connector::backend_tls::{self, BackendStream};
use crate::connector::tcp;

use super::types::{self, Catalog};

/// Largest message accepted from the backend before it is logged in
/// (ParameterStatus, notices, auth challenges are all small).
const MAX_LOGIN_MESSAGE: usize = 64 * 1024;

/// SCRAM salted passwords of earlier backend logins, for the whole agent:
/// PBKDF2 (4096 iterations by default, about 0.9 ms of CPU) then runs once
/// per (password, salt, iteration count) instead of at every connection.
/// The backend still proves at every login that it knows the password.
/// 64 entries cover many more roles and servers than one agent serves.
static SCRAM_KEYS: SaltedPasswordCache = SaltedPasswordCache::new(64);

/// Why the agent could not log in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cannot reach the backend: {0}")]
    Dial(String),
    #[error("TLS to the backend failed: {0}")]
    Tls(String),
    #[error("the backend refused TLS, but this connection requires it (tls = \"{0}\")")]
    TlsRefused(&'static str),
    #[error("{0}")]
    Secret(String),
    /// The backend said no; its fields go to the client.
    #[error("the backend refused the login: {}", .0.message().unwrap_or("(no message)"))]
    Backend(ErrorFields),
    #[error(
        "the backend asks for the password in clear over an unencrypted connection; \
         set tls = \"require\" or better, or allow_cleartext_password = true"
    )]
    CleartextRefused,
    #[error("the backend asks for an authentication method hoop does not support ({0})")]
    Unsupported(String),
    #[error("SCRAM exchange with the backend failed: {0}")]
    Scram(String),
    #[error("the backend broke the protocol during login: {0}")]
    Protocol(String),
    #[error("the backend closed the connection during login")]
    Closed,
    #[error("backend I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A logged-in backend session, ready for queries.
pub struct Backend {
    pub stream: BackendStream,
    pub key: Option<BackendKeyData>,
    /// ParameterStatus and NoticeResponse messages, raw, to pass on.
    pub greeting: Vec<RawMessage>,
    pub status: TransactionStatus,
    /// Bytes read past ReadyForQuery (normally none).
    pub leftover: BytesMut,
}

/// Dials the backend and establishes TLS as the mode asks.
pub async fn open(cfg: &ConnectionConfig) -> Result<BackendStream, LoginError> {
    let tcp = tcp::dial(&cfg.address)
        .await
        .map_err(|e| LoginError::Dial(e.to_string()))?;
    let Some(tls) = backend_tls::client_config(cfg.tls, cfg.tls_ca.as_deref())
        .map_err(|e| LoginError::Tls(e.to_string()))?
    else {
        return Ok(BackendStream::Plain(tcp));
    };
    let mut tcp = tcp;
    let mut req = Vec::with_capacity(8);
    startup::encode_ssl_request(&mut req);
    tcp.write_all(&req).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        pg::ENCRYPTION_ACCEPTED => {
            let (host, _) = split_host_port(&cfg.address).map_err(LoginError::Dial)?;
            backend_tls::connect(tls, host, tcp)
                .await
                .map_err(|e| LoginError::Tls(e.to_string()))
        }
        pg::ENCRYPTION_REFUSED if cfg.tls == TlsMode::Prefer => Ok(BackendStream::Plain(tcp)),
        pg::ENCRYPTION_REFUSED => Err(LoginError::TlsRefused(cfg.tls.as_str())),
        other => Err(LoginError::Protocol(format!(
            "answer {other:#04x} to SSLRequest"
        ))),
    }
}

/// Reads one whole message, reading more as needed.
async fn read_message(
    stream: &mut BackendStream,
    buf: &mut BytesMut,
) -> Result<RawMessage, LoginError> {
    loop {
        if let Some(m) = pg::split_message(buf, MAX_LOGIN_MESSAGE)
            .map_err(|e| LoginError::Protocol(e.to_string()))?
        {
            return Ok(m);
        }
        buf.reserve(8 * 1024);
        if stream.read_buf(buf).await? == 0 {
            return Err(LoginError::Closed);
        }
    }
}

/// Logs in with the connection's credential; `params` are the startup
/// parameters (user and database included).
pub async fn login(
    cfg: &ConnectionConfig,
    mut stream: BackendStream,
    params: &[(String, String)],
) -> Result<Backend, LoginError> {
    let user = cfg.user.clone().unwrap_or_default();
    let password: Secret = match &cfg.password {
        Some(r) => r.resolve().map_err(LoginError::Secret)?,
        None => return Err(LoginError::Secret("no password configured".into())),
    };
    let mut out = Vec::with_capacity(256);
    startup::encode_startup(params, &mut out).map_err(|e| LoginError::Protocol(e.to_string()))?;
    stream.write_all(&out).await?;

    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut scram: Option<ScramClient> = None;
    let mut greeting = Vec::new();
    let mut key = None;
    loop {
        let msg = read_message(&mut stream, &mut buf).await?;
        match msg.tag {
            b'R' => {
                let a = Authentication::decode(&msg)
                    .map_err(|e| LoginError::Protocol(e.to_string()))?;
                let mut reply = Vec::with_capacity(256);
                match a {
                    Authentication::Ok => continue,
                    Authentication::CleartextPassword => {
                        if !stream.is_tls() && !cfg.allow_cleartext_password {
                            return Err(LoginError::CleartextRefused);
                        }
                        auth::encode_password(password.expose(), &mut reply)
                            .map_err(|e| LoginError::Protocol(e.to_string()))?;
                    }
                    Authentication::Md5Password { salt } => {
                        let hashed = pg::md5_password(&user, password.expose(), salt);
                        auth::encode_password(&hashed, &mut reply)
                            .map_err(|e| LoginError::Protocol(e.to_string()))?;
                    }
                    Authentication::Sasl { mechanisms } => {
                        let has = |m: &str| mechanisms.iter().any(|x| x == m);
                        let cert = stream.peer_certificate();
                        let binding = match (&cert, has("SCRAM-SHA-256-PLUS")) {
                            (Some(c), true) => {
                                ChannelBinding::TlsServerEndPoint(tls_server_end_point_hash(c))
                            }
                            (Some(_), false) => ChannelBinding::SupportedButNotUsed,
                            (None, _) => ChannelBinding::Unsupported,
                        };
                        if !has("SCRAM-SHA-256")
                            && !matches!(binding, ChannelBinding::TlsServerEndPoint(_))
                        {
                            return Err(LoginError::Unsupported(mechanisms.join(", ")));
                        }
                        let mut client = ScramClient::new(password.expose().as_bytes(), binding);
                        let first = client.client_first();
                        auth::encode_sasl_initial(client.mechanism(), &first, &mut reply)
                            .map_err(|e| LoginError::Protocol(e.to_string()))?;
                        scram = Some(client);
                    }
                    Authentication::SaslContinue(data) => {
                        let client = scram.as_mut().ok_or_else(|| {
                            LoginError::Protocol("SASL continue before SASL".into())
                        })?;
                        let fin = client
                            .handle_server_first_cached(&data, &SCRAM_KEYS)
                            .map_err(|e| LoginError::Scram(e.to_string()))?;
                        auth::encode_sasl_response(&fin, &mut reply)
                            .map_err(|e| LoginError::Protocol(e.to_string()))?;
                    }
                    Authentication::SaslFinal(data) => {
                        let client = scram
                            .as_ref()
                            .ok_or_else(|| LoginError::Protocol("SASL final before SASL".into()))?;
                        client
                            .verify_server_final(&data)
                            .map_err(|e| LoginError::Scram(e.to_string()))?;
                        continue;
                    }
                    Authentication::Other(code) => {
                        return Err(LoginError::Unsupported(format!(
                            "authentication code {code}"
                        )));
                    }
                }
                stream.write_all(&reply).await?;
            }
            b'E' => {
                let f =
                    ErrorFields::decode(&msg).map_err(|e| LoginError::Protocol(e.to_string()))?;
                return Err(LoginError::Backend(f));
            }
            b'S' | b'N' => greeting.push(msg),
            b'K' => {
                key = Some(
                    BackendKeyData::decode(&msg)
                        .map_err(|e| LoginError::Protocol(e.to_string()))?,
                );
            }
            b'v' => {} // NegotiateProtocolVersion: we asked for 3.0.
            b'Z' => {
                let status = TransactionStatus::decode(&msg)
                    .map_err(|e| LoginError::Protocol(e.to_string()))?;
                return Ok(Backend {
                    stream,
                    key,
                    greeting,
                    status,
                    leftover: buf,
                });
            }
            other => {
                return Err(LoginError::Protocol(format!(
                    "unexpected message {:?} before ReadyForQuery",
                    other as char
                )));
            }
        }
    }
}

/// Reads what masking needs to know of the session ([`types::QUERY`],
/// and `columns`, the real-name lookup for column rules, when given) on a
/// backend just logged in, in one round trip; the backend's status is
/// updated from the answer's end.
pub async fn load_catalog(b: &mut Backend, columns: Option<&str>) -> Result<Catalog, LoginError> {
    let bad = |what: &str| LoginError::Protocol(format!("reading the catalog for masking: {what}"));
    // One implicit transaction: SET LOCAL keeps the client's search_path
    // (an operator of the client's own shadowing a catalog one) out of
    // these queries, and ends with them.
    let sql = match columns {
        Some(c) => format!("SET LOCAL search_path = pg_catalog; {}; {c}", types::QUERY),
        None => format!("SET LOCAL search_path = pg_catalog; {}", types::QUERY),
    };
    let mut out = Vec::with_capacity(sql.len() + 8);
    frontend::encode_query(&sql, &mut out).map_err(|e| bad(&e.to_string()))?;
    b.stream.write_all(&out).await?;
    let mut found = Catalog::default();
    let mut failed = false;
    // Which statement's rows are coming (one CommandComplete each): the
    // SET, the types, the columns.
    let mut result = 0;
    let mut ranges = Vec::with_capacity(5);
    loop {
        let msg = read_message(&mut b.stream, &mut b.leftover).await?;
        match msg.tag {
            b'T' | b'N' => {}
            b'C' => result += 1,
            b'S' => b.greeting.push(msg),
            b'D' if failed => {}
            b'D' => {
                data_row_ranges(&msg.bytes, &mut ranges).map_err(|e| bad(&e.to_string()))?;
                let field = |i: usize| -> Result<&str, LoginError> {
                    ranges
                        .get(i)
                        .cloned()
                        .flatten()
                        .and_then(|r| std::str::from_utf8(&msg.bytes[r]).ok())
                        .ok_or_else(|| bad("a row with a missing field"))
                };
                let oid = |i: usize| -> Result<u32, LoginError> {
                    field(i)?
                        .parse()
                        .map_err(|_| bad("an OID that is not a number"))
                };
                if result <= 1 {
                    found.add(oid(0)?, field(1)?, oid(2)?);
                } else {
                    let attnum: i16 = field(1)?
                        .parse()
                        .map_err(|_| bad("a column number that is not a number"))?;
                    // A name this client's encoding makes not UTF-8: left
                    // out, so the column is matched by the name results
                    // show, as one created after login.
                    let text = |i: usize| {
                        ranges
                            .get(i)
                            .cloned()
                            .flatten()
                            .map(|r| std::str::from_utf8(&msg.bytes[r]))
                    };
                    match (text(2), text(3)) {
                        (None, Some(Ok(name))) => found.add_column(oid(0)?, attnum, None, name),
                        (Some(Ok(table)), Some(Ok(name))) => {
                            found.add_column(oid(0)?, attnum, Some(table), name);
                        }
                        _ => {}
                    }
                }
            }
            b'E' => {
                // A server without these catalogs (a PostgreSQL look-alike):
                // masking goes on with the built-in types (values of any
                // other type are withheld) and column rules by the names
                // results show.
                let f =
                    ErrorFields::decode(&msg).map_err(|e| LoginError::Protocol(e.to_string()))?;
                tracing::warn!(
                    error = %f.message().unwrap_or_default(),
                    "cannot read the catalog for masking; binary values of non-built-in types will be withheld"
                );
                found = Catalog::default();
                failed = true;
            }
            b'Z' => {
                b.status = TransactionStatus::decode(&msg)
                    .map_err(|e| LoginError::Protocol(e.to_string()))?;
                return Ok(found);
            }
            other => return Err(bad(&format!("unexpected message {:?}", other as char))),
        }
    }
}

/// Sends a CancelRequest for (`pid`, `key`) to the backend, over TLS when
/// the connection requires it.
pub async fn cancel(cfg: &ConnectionConfig, pid: i32, key: &[u8]) -> Result<(), LoginError> {
    let mut stream = open(cfg).await?;
    let mut out = Vec::with_capacity(16);
    startup::encode_cancel(pid, key, &mut out).map_err(|e| LoginError::Protocol(e.to_string()))?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    // The server closes after acting on it; wait for that, briefly.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut sink)).await;
    Ok(())
}
