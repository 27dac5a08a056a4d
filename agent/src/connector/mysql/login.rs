//! The agent's own login to the MySQL or MariaDB backend: the server's
//! greeting, TLS per the connection's mode, then `mysql_native_password`
//! or `caching_sha2_password` (fast path, full authentication over TLS,
//! or the RSA public-key exchange without it) with the stored password.
//! Nothing of this exchange reaches the client.

use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::auth::{
    self, CACHING_SHA2_PASSWORD, FAST_AUTH_SUCCESS, MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD,
    PERFORM_FULL_AUTH, REQUEST_PUBLIC_KEY, SHA256_PASSWORD,
};
use hoop_proto::mysql::flags::*;
use hoop_proto::mysql::{
    self, AuthPacket, ErrPacket, HandshakeResponse, InitialHandshake, OkPacket, SslRequest,
    scramble,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::{ConnectionConfig, Secret, TlsMode, split_host_port};
use crate::connector::backend_tls::{self, BackendStream};
use crate::connector::tcp;

/// Why the agent could not log in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cannot reach the backend: {0}")]
    Dial(String),
    #[error("TLS to the backend failed: {0}")]
    Tls(String),
    #[error("the backend does not offer TLS, but this connection requires it (tls = \"{0}\")")]
    TlsRefused(&'static str),
    #[error("{0}")]
    Secret(String),
    /// The backend said no; its code and message go to the client.
    #[error("the backend refused the login: {}", .0.message_lossy())]
    Backend(ErrPacket),
    /// A refusal over plain TCP from a backend that offers TLS: a server
    /// that requires secure transport says "access denied" like for a
    /// wrong password (MariaDB: 1045), so say what else it may mean.
    #[error(
        "the backend refused the login: {}; the backend offers TLS, which this connection \
         does not use (tls = \"disable\"): if it requires secure transport, set \
         tls = \"verify-full\" and tls_ca",
        .0.message_lossy()
    )]
    BackendWithoutTls(ErrPacket),
    /// A refusal right after the agent asked for the server's RSA key
    /// (full authentication without TLS): a server with no key pair says
    /// only "access denied".
    #[error(
        "the backend refused the login: {}; it was asked for its RSA public key \
         (caching_sha2_password without TLS) and refused: if it has no RSA key pair, \
         set tls = \"verify-full\" and tls_ca, or give the server keys",
        .0.message_lossy()
    )]
    BackendWithoutRsaKey(ErrPacket),
    #[error(
        "the backend asks for the password in clear over an unencrypted connection; \
         set tls = \"require\" or better, or allow_cleartext_password = true"
    )]
    CleartextRefused,
    #[error("the backend asks for something hoop does not support: {0}")]
    Unsupported(String),
    #[error("the backend's RSA key exchange failed: {0}")]
    Rsa(String),
    #[error("the backend broke the protocol during login: {0}")]
    Protocol(String),
    #[error("the backend closed the connection during login")]
    Closed,
    #[error("backend I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A backend connection before login: its greeting, read.
pub struct Greeting {
    pub stream: BackendStream,
    pub handshake: InitialHandshake,
    /// Sequence id of the next packet the agent sends.
    seq: u8,
    buf: BytesMut,
}

/// A logged-in backend session.
pub struct Backend {
    pub stream: BackendStream,
    /// The server's OK to the login (status flags).
    pub ok: OkPacket,
    /// Bytes read past the OK (normally none).
    pub leftover: BytesMut,
}

/// Reads one logical packet, reading more as needed.
pub async fn read_packet<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<mysql::Packet, LoginError> {
    loop {
        if let Some(p) =
            mysql::split_packet(buf, max).map_err(|e| LoginError::Protocol(e.to_string()))?
        {
            return Ok(p);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(LoginError::Closed);
        }
    }
}

/// Dials the backend and reads its greeting; TLS comes with the login.
pub async fn open(cfg: &ConnectionConfig) -> Result<Greeting, LoginError> {
    let mut tcp = tcp::dial(&cfg.address)
        .await
        .map_err(|e| LoginError::Dial(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(1024);
    let p = read_packet(&mut tcp, &mut buf, mysql::MAX_PRE_AUTH_PACKET_LEN).await?;
    if p.first() == Some(0xFF) {
        let err = ErrPacket::decode(&p.payload).map_err(|e| LoginError::Protocol(e.to_string()))?;
        return Err(LoginError::Backend(err));
    }
    let handshake =
        InitialHandshake::decode(&p.payload).map_err(|e| LoginError::Protocol(e.to_string()))?;
    Ok(Greeting {
        stream: BackendStream::Plain(tcp),
        handshake,
        seq: p.next_seq(),
        buf,
    })
}

/// What the client asked for, to carry into the backend session.
pub struct Wanted<'a> {
    /// Capabilities the client and the agent agreed on; the backend
    /// session gets the same ones, so results have the client's layout.
    pub capabilities: u64,
    pub max_packet_size: u32,
    pub charset: u8,
    pub database: &'a str,
    pub connect_attrs: Vec<(Bytes, Bytes)>,
}

/// Logs in as the connection's user.
pub async fn login(
    cfg: &ConnectionConfig,
    greeting: Greeting,
    wanted: Wanted<'_>,
) -> Result<Backend, LoginError> {
    let Greeting {
        stream,
        handshake,
        mut seq,
        mut buf,
    } = greeting;
    let server_caps = handshake.capabilities;
    let BackendStream::Plain(mut tcp) = stream else {
        return Err(LoginError::Protocol("greeting read over TLS".into()));
    };
    let mut caps = wanted.capabilities
        | CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_CONNECT_ATTRS;
    caps &= server_caps;
    // Without CLIENT_MYSQL the extended (MariaDB) bits are the server's to
    // read; with it they must be clear.
    if caps & CLIENT_MYSQL != 0 {
        caps &= 0xFFFF_FFFF;
    }

    let tls_config = backend_tls::client_config(cfg.tls, cfg.tls_ca.as_deref())
        .map_err(|e| LoginError::Tls(e.to_string()))?;
    let mut stream = match tls_config {
        Some(tls) if server_caps & CLIENT_SSL != 0 => {
            caps |= CLIENT_SSL;
            let mut out = BytesMut::new();
            seq = mysql::write_packet(&mut out, seq, |o| {
                SslRequest {
                    capabilities: caps,
                    max_packet_size: wanted.max_packet_size,
                    charset: wanted.charset,
                }
                .encode(o)
            })
            .map_err(|e| LoginError::Protocol(e.to_string()))?;
            tcp.write_all(&out).await?;
            let (host, _) = split_host_port(&cfg.address).map_err(LoginError::Dial)?;
            backend_tls::connect(tls, host, tcp)
                .await
                .map_err(|e| LoginError::Tls(e.to_string()))?
        }
        Some(_) if cfg.tls != TlsMode::Prefer => {
            return Err(LoginError::TlsRefused(cfg.tls.as_str()));
        }
        _ => BackendStream::Plain(tcp),
    };
    let tls = stream.is_tls();

    let password = match cfg.password.as_ref().map(|p| p.resolve()) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(LoginError::Secret(e.to_string())),
        None => return Err(LoginError::Secret("no password configured".into())),
    };
    let nonce = handshake.scramble().to_vec();
    let plugin = handshake
        .auth_plugin_name
        .clone()
        .unwrap_or_else(|| MYSQL_NATIVE_PASSWORD.to_string());
    let first = proof(&plugin, &password, &nonce, tls, cfg)?;
    if caps & CLIENT_CONNECT_WITH_DB == 0 && !wanted.database.is_empty() {
        return Err(LoginError::Unsupported(
            "choosing a database at login (CLIENT_CONNECT_WITH_DB)".into(),
        ));
    }
    // Each optional field only when the server reads it.
    let has = |flag: u64| caps & flag != 0;
    let response = HandshakeResponse {
        capabilities: caps,
        max_packet_size: wanted.max_packet_size,
        charset: wanted.charset,
        username: Bytes::from(cfg.user.clone().unwrap_or_default()),
        auth_response: Bytes::from(first),
        database: has(CLIENT_CONNECT_WITH_DB).then(|| Bytes::from(wanted.database.to_string())),
        auth_plugin: has(CLIENT_PLUGIN_AUTH).then(|| plugin.clone()),
        connect_attrs: has(CLIENT_CONNECT_ATTRS).then_some(wanted.connect_attrs),
        zstd_level: None,
    };
    let mut out = BytesMut::new();
    mysql::write_packet(&mut out, seq, |o| response.encode(o))
        .map_err(|e| LoginError::Protocol(e.to_string()))?;
    stream.write_all(&out).await?;

    let mut plugin = plugin;
    let mut nonce = nonce;
    let mut asked_for_key = false;
    loop {
        let p = read_packet(&mut stream, &mut buf, mysql::MAX_PRE_AUTH_PACKET_LEN).await?;
        seq = p.next_seq();
        let answer: Vec<u8> = match AuthPacket::decode(&p.payload, caps)
            .map_err(|e| LoginError::Protocol(e.to_string()))?
        {
            AuthPacket::Ok(ok) => {
                return Ok(Backend {
                    stream,
                    ok,
                    leftover: buf,
                });
            }
            AuthPacket::Err(e) if asked_for_key => {
                return Err(LoginError::BackendWithoutRsaKey(e));
            }
            AuthPacket::Err(e) if !tls && server_caps & CLIENT_SSL != 0 => {
                return Err(LoginError::BackendWithoutTls(e));
            }
            AuthPacket::Err(e) => return Err(LoginError::Backend(e)),
            AuthPacket::Switch(sw) => {
                plugin = sw.plugin.clone();
                nonce = sw.scramble().to_vec();
                proof(&plugin, &password, &nonce, tls, cfg)?
            }
            AuthPacket::MoreData(more) => match (plugin.as_str(), more.status()) {
                (CACHING_SHA2_PASSWORD, Some(FAST_AUTH_SUCCESS)) => continue,
                (CACHING_SHA2_PASSWORD, Some(PERFORM_FULL_AUTH)) if tls => {
                    cleartext(password.expose().as_bytes())?
                }
                (CACHING_SHA2_PASSWORD, Some(PERFORM_FULL_AUTH)) => vec![REQUEST_PUBLIC_KEY],
                (CACHING_SHA2_PASSWORD | SHA256_PASSWORD, _) if !tls => {
                    // The server's public key, PEM.
                    scramble::rsa_encrypt_password(&more.0, password.expose().as_bytes(), &nonce)
                        .map_err(|e| LoginError::Rsa(e.to_string()))?
                }
                (other, _) => {
                    return Err(LoginError::Protocol(format!(
                        "unexpected auth data for {other}"
                    )));
                }
            },
        };
        asked_for_key = !tls
            && matches!(
                (plugin.as_str(), answer.as_slice()),
                (CACHING_SHA2_PASSWORD, [REQUEST_PUBLIC_KEY])
                    | (SHA256_PASSWORD, [auth::SHA256_REQUEST_PUBLIC_KEY])
            );
        let mut out = BytesMut::new();
        mysql::write_packet(&mut out, seq, |o| {
            auth::encode_auth_data(&answer, o);
            Ok(())
        })
        .map_err(|e| LoginError::Protocol(e.to_string()))?;
        stream.write_all(&out).await?;
    }
}

fn cleartext(password: &[u8]) -> Result<Vec<u8>, LoginError> {
    let mut v = Vec::with_capacity(password.len() + 1);
    auth::encode_cleartext_password(password, &mut v)
        .map_err(|e| LoginError::Protocol(e.to_string()))?;
    Ok(v)
}

/// The answer to `plugin`'s challenge.
fn proof(
    plugin: &str,
    password: &Secret,
    nonce: &[u8],
    tls: bool,
    cfg: &ConnectionConfig,
) -> Result<Vec<u8>, LoginError> {
    let pw = password.expose().as_bytes();
    match plugin {
        MYSQL_NATIVE_PASSWORD => Ok(scramble::native_password(pw, nonce)),
        CACHING_SHA2_PASSWORD => Ok(scramble::caching_sha2_password(pw, nonce)),
        // sha256_password: the password in clear over TLS, else ask for
        // the server's key (a single 0x01).
        SHA256_PASSWORD if tls => cleartext(pw),
        SHA256_PASSWORD => Ok(vec![auth::SHA256_REQUEST_PUBLIC_KEY]),
        MYSQL_CLEAR_PASSWORD if tls || cfg.allow_cleartext_password => cleartext(pw),
        MYSQL_CLEAR_PASSWORD => Err(LoginError::CleartextRefused),
        other => Err(LoginError::Unsupported(format!(
            "the authentication method {other}"
        ))),
    }
}
