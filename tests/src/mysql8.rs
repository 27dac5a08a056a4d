//! A stand-in MySQL 8.0 server for the agent's `caching_sha2_password`
//! logins. It is a stand-in because no MySQL 8 server can be installed
//! on this machine kind, and MariaDB (what [`crate::mysql`] runs) has no
//! server-side `caching_sha2_password`. It speaks the connection phase as
//! MySQL 8.0's server does and just enough of the command phase for a
//! session through hoop: `SELECT <integer>`, `SELECT current_user()`,
//! `SELECT @@max_allowed_packet` (the agent asks at login), `SET ...`
//! (OK), COM_PING and COM_QUIT. Anything else gets ERR 1064.
//!
//! The protocol facts it relies on, from MySQL's documentation of the
//! caching_sha2_password exchanges
//! (<https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html>)
//! and the server's `sql/auth/sha2_password.cc` and
//! `sql/auth/sql_authentication.cc`:
//!
//! - The greeting carries a 20-byte nonce and a NUL (8 + 13 bytes) and
//!   the server's default plugin. If the HandshakeResponse names another
//!   plugin than the account's, the server sends an AuthSwitchRequest
//!   (0xFE, plugin name, NUL, the *same* 20-byte nonce, NUL: the nonce is
//!   made once per connection).
//! - `mysql_native_password`: the client sends
//!   `SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))`; the server, holding
//!   `SHA1(SHA1(pw))`, checks that SHA1 of the unmasked value matches.
//! - `caching_sha2_password` fast path: the client sends
//!   `SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)` (32 bytes). If the
//!   server has the account in its in-memory cache and the scramble
//!   checks out, it sends AuthMoreData `0x01 0x03` (fast auth success)
//!   then OK. Otherwise (not cached, or a wrong scramble) `0x01 0x04`
//!   (perform full authentication).
//! - Full authentication over TLS: the client sends the password in
//!   clear, NUL-terminated (the server drops the last byte).
//! - Full authentication without TLS: without RSA keys the server fails
//!   the login. Otherwise the client may ask for the public key with a
//!   single `0x02`; the server answers AuthMoreData with the PEM
//!   (`-----BEGIN PUBLIC KEY-----`). The client sends the password,
//!   NUL-terminated, XOR-ed with the nonce (cycled), RSA-OAEP encrypted
//!   (SHA-1, MGF1-SHA-1); the ciphertext must be exactly the key's size.
//!   The server decrypts, XORs with the nonce, takes the string up to
//!   the first NUL and compares it with the password.
//! - A full authentication that succeeds puts the account in the cache,
//!   so the next login takes the fast path.
//! - Every refusal is ERR 1045, SQLSTATE 28000, `Access denied for user
//!   'USER'@'HOST' (using password: YES)`.
//!
//! The checks here are written from those descriptions, not with the
//! agent's own proof functions, so a wrong formula on either side fails.
//! [`Mysql8::logins`] records what each login went through and every
//! byte the client sent outside TLS, for "the password never crossed in
//! clear" assertions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use hoop_proto::mysql::auth::{CACHING_SHA2_PASSWORD, MYSQL_NATIVE_PASSWORD};
use hoop_proto::mysql::column::{MYSQL_TYPE_LONGLONG, MYSQL_TYPE_VAR_STRING};
use hoop_proto::mysql::flags::*;
use hoop_proto::mysql::{
    self, AuthMoreData, AuthSwitchRequest, ColumnDefinition, EofPacket, ErrPacket,
    HandshakeResponse, InitialHandshake, OkPacket, is_ssl_request, scramble,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::harness::TempDir;
use crate::pg::TestCerts;

/// What the stand-in's greeting says it is.
pub const SERVER_VERSION: &str = "8.0.36";

/// `@@max_allowed_packet`: MySQL 8.0's default, 64 MiB.
pub const MAX_ALLOWED_PACKET: u64 = 64 << 20;

/// MySQL 8.0's greeting capabilities: every flag but
/// CLIENT_CAPABILITY_EXTENSION (`0xDFFFFFFF`); CLIENT_SSL only when TLS
/// is on.
const SERVER_CAPS: u64 = 0xDFFF_FFFF & !CLIENT_SSL;

/// utf8mb4_0900_ai_ci, MySQL 8.0's default collation.
const CHARSET: u8 = 255;

const ER_ACCESS_DENIED_ERROR: u16 = 1045;
const ER_PARSE_ERROR: u16 = 1064;
const ER_UNKNOWN_COM_ERROR: u16 = 1047;

/// Largest packet the stand-in reads.
const MAX_PACKET: usize = 16 << 20;

/// An account's auth plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    Native,
    CachingSha2,
}

impl Plugin {
    pub fn name(self) -> &'static str {
        match self {
            Plugin::Native => MYSQL_NATIVE_PASSWORD,
            Plugin::CachingSha2 => CACHING_SHA2_PASSWORD,
        }
    }
}

/// One step of a login, as the server saw or did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Sent an AuthSwitchRequest to the account's plugin.
    Switch,
    /// Checked a `mysql_native_password` scramble.
    Native,
    /// Sent `0x01 0x03`: the cached fast path.
    FastAuthSuccess,
    /// Sent `0x01 0x04`: full authentication.
    PerformFullAuth,
    /// The client asked for the public key (`0x02`).
    PublicKeyRequested,
    /// Sent the PEM public key.
    PublicKeySent,
    /// Got the password RSA-encrypted (no TLS).
    PasswordRsa,
    /// Got the password in clear over TLS.
    PasswordOverTls,
}

/// What one login went through.
#[derive(Clone, Debug, Default)]
pub struct Login {
    pub user: String,
    /// Whether the client switched to TLS first.
    pub tls: bool,
    /// The plugin the HandshakeResponse named.
    pub client_plugin: String,
    /// The capabilities both sides agreed on.
    pub capabilities: u64,
    pub steps: Vec<Step>,
    /// Every auth data packet from the client: the HandshakeResponse's
    /// auth response, then each answer.
    pub auth_data: Vec<Vec<u8>>,
    /// Whether the server said OK.
    pub ok: bool,
    /// Every byte the client sent outside TLS during the login.
    pub plain: Vec<u8>,
}

/// Options for a [`Mysql8`]; [`Mysql8::builder`] makes one.
pub struct Mysql8Builder {
    default_plugin: Plugin,
    accounts: Vec<(String, String, Plugin)>,
    cached: Vec<String>,
    tls: bool,
    rsa: bool,
}

impl Mysql8Builder {
    /// The plugin the greeting proposes (MySQL 8.0's
    /// `default_authentication_plugin`); `caching_sha2_password` unless
    /// set.
    pub fn default_plugin(mut self, plugin: Plugin) -> Self {
        self.default_plugin = plugin;
        self
    }

    /// An account that logs in with `plugin`.
    pub fn account(mut self, user: &str, password: &str, plugin: Plugin) -> Self {
        self.accounts.push((user.into(), password.into(), plugin));
        self
    }

    /// The server has `user`'s password in its cache already (as after a
    /// full authentication since it started).
    pub fn cached(mut self, user: &str) -> Self {
        self.cached.push(user.into());
        self
    }

    /// Offer TLS (CLIENT_SSL) with a certificate for `127.0.0.1` and
    /// `localhost` signed by a test CA ([`Mysql8::ca_path`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// No RSA key pair, as a server whose keys are missing: full
    /// authentication without TLS fails.
    pub fn without_rsa(mut self) -> Self {
        self.rsa = false;
        self
    }

    /// Starts serving on a free loopback port.
    pub async fn start(self) -> anyhow::Result<Mysql8> {
        let rsa = if self.rsa {
            Some(Rsa::generate()?)
        } else {
            None
        };
        let (tls, dir, ca_path) = if self.tls {
            let certs = TestCerts::generate("hoop mysql8 stand-in CA")?;
            let dir = TempDir::new("hoop-mysql8");
            let ca_path = dir.path().join("ca.pem");
            std::fs::write(&ca_path, &certs.ca_pem)?;
            (Some(acceptor(&certs)?), Some(dir), Some(ca_path))
        } else {
            (None, None, None)
        };
        let state = Arc::new(State {
            default_plugin: self.default_plugin,
            accounts: self.accounts,
            cache: Mutex::new(self.cached.into_iter().collect()),
            rsa,
            tls,
            logins: Mutex::default(),
            queries: Mutex::default(),
            next_id: AtomicU32::new(8),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    // A connection that breaks the protocol just ends.
                    let _ = serve(&st, stream, peer).await;
                });
            }
        });
        Ok(Mysql8 {
            addr,
            state,
            task,
            ca_path,
            _dir: dir,
        })
    }
}

/// A running stand-in; dropping it stops accepting connections.
pub struct Mysql8 {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
    ca_path: Option<PathBuf>,
    _dir: Option<TempDir>,
}

impl Mysql8 {
    /// No accounts, `caching_sha2_password` proposed, RSA keys, no TLS.
    pub fn builder() -> Mysql8Builder {
        Mysql8Builder {
            default_plugin: Plugin::CachingSha2,
            accounts: Vec::new(),
            cached: Vec::new(),
            tls: false,
            rsa: true,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA that signed the server's certificate, with [`Mysql8Builder::tls`].
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// Every login so far, finished ones (OK or ERR sent) in order.
    pub fn logins(&self) -> Vec<Login> {
        self.state.logins.lock().unwrap().clone()
    }

    /// Every COM_QUERY text so far.
    pub fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }

    /// Whether `user`'s password is in the server's cache.
    pub fn is_cached(&self, user: &str) -> bool {
        self.state.cache.lock().unwrap().contains(user)
    }
}

impl Drop for Mysql8 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    default_plugin: Plugin,
    accounts: Vec<(String, String, Plugin)>,
    cache: Mutex<HashSet<String>>,
    rsa: Option<Rsa>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    logins: Mutex<Vec<Login>>,
    queries: Mutex<Vec<String>>,
    next_id: AtomicU32,
}

/// The server's RSA key pair for full authentication without TLS.
struct Rsa {
    key: OaepPrivateDecryptingKey,
    /// Ciphertexts must be exactly this long.
    size: usize,
    pem: String,
}

impl Rsa {
    fn generate() -> anyhow::Result<Rsa> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let der = key
            .public_key()
            .as_der()
            .map_err(|_| anyhow::anyhow!("RSA public key encoding failed"))?;
        let b64 = B64.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line)?);
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        let size = key.key_size_bytes();
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| anyhow::anyhow!("RSA-OAEP key failed"))?;
        Ok(Rsa { key, size, pem })
    }

    /// The password from an encrypted answer, or `None` (refused).
    fn decrypt(&self, ciphertext: &[u8], nonce: &[u8]) -> Option<Vec<u8>> {
        if ciphertext.len() != self.size {
            return None;
        }
        let mut out = vec![0; self.size];
        let plain = self
            .key
            .decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut out, None)
            .ok()?;
        for (i, b) in plain.iter_mut().enumerate() {
            *b ^= nonce[i % nonce.len()];
        }
        // Up to the first NUL, as the server's strlen().
        let end = plain.iter().position(|&b| b == 0).unwrap_or(plain.len());
        Some(plain[..end].to_vec())
    }
}

fn acceptor(certs: &TestCerts) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(certs.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).context("server key")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One client connection: reads whole packets with exact reads (never
/// past a packet, so nothing of a TLS ClientHello is read early).
struct Conn {
    io: Box<dyn Io>,
    tls: bool,
    /// Bytes read outside TLS.
    plain: Vec<u8>,
}

impl Conn {
    /// One logical packet: its sequence id and payload.
    async fn read(&mut self) -> anyhow::Result<(u8, Bytes)> {
        let mut payload = Vec::new();
        let mut first_seq = None;
        loop {
            let mut header = [0u8; 4];
            self.io.read_exact(&mut header).await?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            if payload.len() + len > MAX_PACKET {
                bail!("packet over {MAX_PACKET} bytes");
            }
            let start = payload.len();
            payload.resize(start + len, 0);
            self.io.read_exact(&mut payload[start..]).await?;
            if !self.tls {
                self.plain.extend_from_slice(&header);
                self.plain.extend_from_slice(&payload[start..]);
            }
            first_seq.get_or_insert(header[3]);
            if len < mysql::MAX_CHUNK_LEN {
                return Ok((first_seq.unwrap_or(0), Bytes::from(payload)));
            }
        }
    }

    /// Writes one packet with sequence id `seq`; the next id.
    async fn write(
        &mut self,
        seq: u8,
        f: impl FnOnce(&mut BytesMut) -> Result<(), mysql::EncodeError>,
    ) -> anyhow::Result<u8> {
        let mut out = BytesMut::new();
        let next = mysql::write_packet(&mut out, seq, f)?;
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(next)
    }
}

async fn serve(state: &State, tcp: TcpStream, peer: SocketAddr) -> anyhow::Result<()> {
    let nonce = scramble::random_nonce().context("random nonce")?;
    let mut caps = SERVER_CAPS;
    if state.tls.is_some() {
        caps |= CLIENT_SSL;
    }
    let mut data = nonce.to_vec();
    data.push(0);
    let greeting = InitialHandshake {
        server_version: SERVER_VERSION.into(),
        connection_id: state.next_id.fetch_add(1, Ordering::Relaxed),
        auth_plugin_data: Bytes::from(data),
        capabilities: caps,
        charset: CHARSET,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: Some(state.default_plugin.name().into()),
    };
    let mut conn = Conn {
        io: Box::new(tcp),
        tls: false,
        plain: Vec::new(),
    };
    conn.write(0, |o| greeting.encode(o)).await?;
    let (mut seq, mut payload) = conn.read().await?;
    if is_ssl_request(&payload) {
        let Some(acceptor) = &state.tls else {
            bail!("SSLRequest, but TLS was not offered");
        };
        // The only stream so far is the plain TCP one.
        let io = std::mem::replace(&mut conn.io, Box::new(tokio::io::empty()));
        let tls = acceptor.accept(io).await?;
        conn.io = Box::new(tls);
        conn.tls = true;
        (seq, payload) = conn.read().await?;
    }
    let hello = HandshakeResponse::decode(&payload)?;
    let agreed = hello.capabilities & caps;
    let mut login = Login {
        user: String::from_utf8_lossy(&hello.username).into_owned(),
        tls: conn.tls,
        client_plugin: hello
            .auth_plugin
            .clone()
            .unwrap_or_else(|| MYSQL_NATIVE_PASSWORD.into()),
        capabilities: agreed,
        auth_data: vec![hello.auth_response.to_vec()],
        ..Login::default()
    };
    let ok = authenticate(state, &mut conn, &mut login, &nonce, seq.wrapping_add(1)).await;
    login.plain = conn.plain.clone();
    let (ok, seq) = match ok {
        Ok(r) => r,
        Err(e) => {
            state.logins.lock().unwrap().push(login);
            return Err(e);
        }
    };
    login.ok = ok;
    let user = login.user.clone();
    state.logins.lock().unwrap().push(login);
    if !ok {
        let msg = format!(
            "Access denied for user '{user}'@'{}' (using password: YES)",
            peer.ip()
        );
        let err = ErrPacket::new(ER_ACCESS_DENIED_ERROR, "28000", &msg);
        conn.write(seq, |o| err.encode(o)).await?;
        return Ok(());
    }
    let ok = OkPacket {
        status: SERVER_STATUS_AUTOCOMMIT,
        ..OkPacket::default()
    };
    conn.write(seq, |o| ok.encode(agreed, o)).await?;
    commands(state, &mut conn, agreed, &user).await
}

/// Runs the account's plugin; whether the login succeeds, and the
/// sequence id of the server's verdict.
async fn authenticate(
    state: &State,
    conn: &mut Conn,
    login: &mut Login,
    nonce: &[u8],
    mut seq: u8,
) -> anyhow::Result<(bool, u8)> {
    let Some((_, password, plugin)) = state
        .accounts
        .iter()
        .find(|(u, _, _)| *u == login.user)
        .cloned()
    else {
        return Ok((false, seq));
    };
    let mut data = login.auth_data[0].clone();
    if login.client_plugin != plugin.name() {
        let mut switch_data = nonce.to_vec();
        switch_data.push(0);
        let switch = AuthSwitchRequest {
            plugin: plugin.name().into(),
            data: Bytes::from(switch_data),
        };
        login.steps.push(Step::Switch);
        conn.write(seq, |o| switch.encode(o)).await?;
        let (s, d) = conn.read().await?;
        seq = s.wrapping_add(1);
        data = d.to_vec();
        login.auth_data.push(data.clone());
    }
    // No password sent (an empty packet, or a single NUL): fine only for
    // an account without one.
    if data.is_empty() || data == [0] {
        return Ok((password.is_empty(), seq));
    }
    match plugin {
        Plugin::Native => {
            login.steps.push(Step::Native);
            Ok((native_ok(&password, nonce, &data), seq))
        }
        Plugin::CachingSha2 => {
            if data.len() != 32 {
                return Ok((false, seq));
            }
            let cached = state.cache.lock().unwrap().contains(&login.user);
            if cached && sha2_scramble_ok(&password, nonce, &data) {
                login.steps.push(Step::FastAuthSuccess);
                let more = AuthMoreData(Bytes::from_static(&[0x03]));
                let seq = conn
                    .write(seq, |o| {
                        more.encode(o);
                        Ok(())
                    })
                    .await?;
                return Ok((true, seq));
            }
            login.steps.push(Step::PerformFullAuth);
            let more = AuthMoreData(Bytes::from_static(&[0x04]));
            conn.write(seq, |o| {
                more.encode(o);
                Ok(())
            })
            .await?;
            let (s, mut pkt) = conn.read().await?;
            seq = s.wrapping_add(1);
            login.auth_data.push(pkt.to_vec());
            let given = if conn.tls {
                login.steps.push(Step::PasswordOverTls);
                // The server drops the last byte, the NUL.
                match pkt.split_last() {
                    Some((0, pw)) => pw.to_vec(),
                    _ => return Ok((false, seq)),
                }
            } else {
                let Some(rsa) = &state.rsa else {
                    return Ok((false, seq));
                };
                if pkt[..] == [0x02] {
                    login.steps.push(Step::PublicKeyRequested);
                    let more = AuthMoreData(Bytes::from(rsa.pem.clone()));
                    login.steps.push(Step::PublicKeySent);
                    conn.write(seq, |o| {
                        more.encode(o);
                        Ok(())
                    })
                    .await?;
                    let (s, p) = conn.read().await?;
                    seq = s.wrapping_add(1);
                    pkt = p;
                    login.auth_data.push(pkt.to_vec());
                }
                login.steps.push(Step::PasswordRsa);
                match rsa.decrypt(&pkt, nonce) {
                    Some(pw) if !pw.is_empty() => pw,
                    _ => return Ok((false, seq)),
                }
            };
            let ok = given == password.as_bytes();
            if ok {
                state.cache.lock().unwrap().insert(login.user.clone());
            }
            Ok((ok, seq))
        }
    }
}

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// MySQL's `check_scramble`: the server holds `SHA1(SHA1(pw))`, unmasks
/// the client's token to `SHA1(pw)` and hashes it once more.
fn native_ok(password: &str, nonce: &[u8], token: &[u8]) -> bool {
    let stored = sha1(&[&sha1(&[password.as_bytes()])]);
    if token.len() != stored.len() {
        return false;
    }
    let stage1 = xor(token, &sha1(&[nonce, &stored]));
    sha1(&[&stage1]) == stored
}

/// MySQL's `Validate_scramble` for the fast path: the cache holds
/// `SHA256(SHA256(pw))`; unmask the client's scramble to `SHA256(pw)`
/// and hash it once more.
fn sha2_scramble_ok(password: &str, nonce: &[u8], scramble: &[u8]) -> bool {
    let stored = sha256(&[&sha256(&[password.as_bytes()])]);
    let stage1 = xor(scramble, &sha256(&[&stored, nonce]));
    sha256(&[&stage1]) == stored
}

/// The command phase, minimal.
async fn commands(state: &State, conn: &mut Conn, caps: u64, user: &str) -> anyhow::Result<()> {
    loop {
        let (_, p) = match conn.read().await {
            Ok(p) => p,
            Err(_) => return Ok(()),
        };
        match p.first() {
            Some(&mysql::command::COM_QUIT) => return Ok(()),
            Some(&mysql::command::COM_PING) => {
                let ok = OkPacket {
                    status: SERVER_STATUS_AUTOCOMMIT,
                    ..OkPacket::default()
                };
                conn.write(1, |o| ok.encode(caps, o)).await?;
            }
            Some(&mysql::command::COM_QUERY) => {
                let sql = String::from_utf8_lossy(&p[1..]).into_owned();
                state.queries.lock().unwrap().push(sql.clone());
                query(conn, caps, user, &sql).await?;
            }
            _ => {
                let err = ErrPacket::new(ER_UNKNOWN_COM_ERROR, "08S01", "Unknown command");
                conn.write(1, |o| err.encode(o)).await?;
            }
        }
    }
}

async fn query(conn: &mut Conn, caps: u64, user: &str, sql: &str) -> anyhow::Result<()> {
    let text = sql.trim().trim_end_matches(';').trim();
    let lower = text.to_ascii_lowercase();
    let ok = OkPacket {
        status: SERVER_STATUS_AUTOCOMMIT,
        ..OkPacket::default()
    };
    if lower.starts_with("set ") {
        conn.write(1, |o| ok.encode(caps, o)).await?;
        return Ok(());
    }
    let expr = lower
        .strip_prefix("select ")
        .map(|_| text["select ".len()..].trim());
    let (column_type, value) = match expr {
        Some(e) if e.eq_ignore_ascii_case("@@max_allowed_packet") => {
            (MYSQL_TYPE_LONGLONG, MAX_ALLOWED_PACKET.to_string())
        }
        Some(e) if e.parse::<i64>().is_ok() => (MYSQL_TYPE_LONGLONG, e.to_string()),
        Some(e) if e.eq_ignore_ascii_case("current_user()") => {
            (MYSQL_TYPE_VAR_STRING, format!("{user}@%"))
        }
        _ => {
            let msg = format!(
                "the MySQL 8 stand-in answers only SELECT <integer>, SELECT current_user(), \
                 SELECT @@max_allowed_packet and SET, not: {sql}"
            );
            let err = ErrPacket::new(ER_PARSE_ERROR, "42000", &msg);
            conn.write(1, |o| err.encode(o)).await?;
            return Ok(());
        }
    };
    let name = expr.unwrap_or_default();
    let column = ColumnDefinition::new(name, column_type);
    let mut seq = conn
        .write(1, |o| {
            mysql::encode_lenenc_int(1, o);
            Ok(())
        })
        .await?;
    seq = conn.write(seq, |o| column.encode(caps, o)).await?;
    let eof = EofPacket {
        warnings: 0,
        status: SERVER_STATUS_AUTOCOMMIT,
    };
    if caps & CLIENT_DEPRECATE_EOF == 0 {
        seq = conn
            .write(seq, |o| {
                eof.encode(caps, o);
                Ok(())
            })
            .await?;
    }
    seq = conn
        .write(seq, |o| {
            mysql::encode_text_row(&[Some(value.as_bytes())], o)
        })
        .await?;
    if caps & CLIENT_DEPRECATE_EOF == 0 {
        conn.write(seq, |o| {
            eof.encode(caps, o);
            Ok(())
        })
        .await?;
    } else {
        conn.write(seq, |o| ok.encode_as_eof(caps, o)).await?;
    }
    Ok(())
}
