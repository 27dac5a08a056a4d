//! Shared by the `postgres*` end-to-end tests: an agent with postgres
//! connections and a signed-in caller, a minimal raw PostgreSQL frontend
//! (to see exactly which messages come back), a recording TCP proxy, and
//! bounded polling on the audit log and the agent's log.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hoop_tests::harness::{Agent, Conn, Connect};
use hoop_tests::issuer::TestIssuer;
use hoop_tests::pg::{APP_DB, APP_USER, PgCluster, psql_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Who the test issuer signs the caller in as.
pub const HOOP_USER: &str = "alice@example.com";
/// The user name clients give (anything works: the agent logs in as the
/// connection's own `user`).
pub const CLIENT_USER: &str = "alice";
/// How long any awaited outcome may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A test issuer, an agent serving `conns` and a token for [`HOOP_USER`].
pub struct Setup {
    pub issuer: TestIssuer,
    pub agent: Agent,
    pub token: String,
}

impl Setup {
    pub async fn start(conns: &[Conn]) -> Setup {
        Self::start_env(conns, &[]).await
    }

    /// With extra environment variables for the agent process.
    pub async fn start_env(conns: &[Conn], env: &[(&str, &str)]) -> Setup {
        let issuer = TestIssuer::start().await.unwrap();
        let agent = Agent::start_env(issuer.url(), conns, "", "", env).unwrap();
        let token = issuer.token_for(HOOP_USER, &["eng"], "hoop", 3600).unwrap();
        Setup {
            issuer,
            agent,
            token,
        }
    }

    /// `hoop connect NAME -p 0`.
    pub fn connect(&self, name: &str) -> Connect {
        Connect::start(&self.agent, &self.token, name)
            .unwrap_or_else(|e| panic!("hoop connect {name}: {e:#}"))
    }

    /// Audit events so far whose `event` is `kind`.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.agent
            .audit()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// Polls the audit log until `f` picks something from it.
    pub fn wait_audit<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&[serde_json::Value]) -> Option<T>,
    ) -> T {
        wait_for(what, || f(&self.agent.audit())).unwrap_or_else(|e| {
            panic!("{e}; audit log:\n{:#?}", self.agent.audit());
        })
    }

    /// The first audit event of kind `kind` for which `f` holds, waiting
    /// for it to be written.
    pub fn wait_event(
        &self,
        kind: &str,
        mut f: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_audit(&format!("a {kind} audit event"), |evs| {
            evs.iter().find(|e| e["event"] == kind && f(e)).cloned()
        })
    }

    /// The agent's log lines (JSON) at `level` (`ERROR`, `WARN`, ...).
    pub fn log_at(&self, level: &str) -> Vec<serde_json::Value> {
        self.agent
            .log
            .all()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == level)
            .collect()
    }
}

/// A postgres connection to `pg`'s `appdb` as `app`, the password given
/// inline (tests only); no TLS, or `verify-full` with the cluster's CA on
/// a TLS cluster. Add keys with [`Conn::extra`].
pub fn pg_conn(name: &str, pg: &PgCluster) -> Conn {
    pg_conn_via(name, pg, pg.addr())
}

/// Like [`pg_conn`], reaching the cluster at `addr` (a proxy in front of it).
pub fn pg_conn_via(name: &str, pg: &PgCluster, addr: SocketAddr) -> Conn {
    let tls = match pg.ca_path() {
        Some(ca) => format!(
            "tls = \"verify-full\"\ntls_ca = {:?}",
            ca.display().to_string()
        ),
        None => "tls = \"disable\"".to_string(),
    };
    pg_conn_tls(name, pg, addr, &tls)
}

/// Like [`pg_conn_via`], with `tls` (TOML lines) for the TLS settings.
pub fn pg_conn_tls(name: &str, pg: &PgCluster, addr: SocketAddr, tls: &str) -> Conn {
    Conn::postgres(name, addr).extra(&format!(
        "user = {APP_USER:?}\ndatabase = {APP_DB:?}\npassword = {{ value = {:?} }}\n{tls}",
        pg.app_password()
    ))
}

/// A cluster that logs every statement it receives (`log_statement =
/// all`), so a test can tell whether a statement reached it.
pub fn logging_cluster() -> PgCluster {
    PgCluster::builder()
        .setting("log_statement", "'all'")
        .start()
        .unwrap()
}

/// The server error of a failed tokio-postgres call.
pub fn db_error(e: tokio_postgres::Error) -> tokio_postgres::error::DbError {
    e.as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e}"))
        .clone()
}

/// `e` is a guardrail refusal: 42501, `message`, and the rule in the hint.
pub fn assert_refused(e: tokio_postgres::Error, message: &str, rule: &str) {
    let db = db_error(e);
    assert_eq!(
        db.code(),
        &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
        "{db:?}"
    );
    assert_eq!(db.severity(), "ERROR");
    assert_eq!(db.message(), message);
    assert_eq!(
        db.hint(),
        Some(format!("refused by hoop guardrail {rule}").as_str())
    );
}

/// Polls `f` (every 20 ms) until it gives a value, for at most [`WAIT`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// psql through a `hoop connect` port as [`CLIENT_USER`] on `db`, no
/// password; returns the output.
pub fn psql(c: &Connect, db: &str, args: &[&str]) -> Output {
    psql_command("127.0.0.1", c.addr.port(), CLIENT_USER, db)
        .args(args)
        .output()
        .expect("run psql")
}

/// `psql -At -c SQL` through `c` on `appdb`; asserts success and returns
/// the trimmed output.
pub fn psql_ok(c: &Connect, sql: &str) -> String {
    let out = psql(c, APP_DB, &["-At", "-c", sql]);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    stdout(&out)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `n` backend sessions of `pg` currently running a query containing
/// `tag` (seen as the superuser, straight at the cluster).
pub fn active_with(pg: &PgCluster, tag: &str) -> usize {
    pg.sql(
        "postgres",
        &format!(
            "select count(*) from pg_stat_activity where state = 'active' \
             and query like '%{tag}%' and pid <> pg_backend_pid()"
        ),
    )
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or(0)
}

/// Waits until some session of `pg` is running a query containing `tag`.
pub fn wait_active(pg: &PgCluster, tag: &str) {
    wait_for(&format!("a query with {tag} to run"), || {
        (active_with(pg, tag) > 0).then_some(())
    })
    .unwrap();
}

// ---------------------------------------------------------------------
// A raw frontend: just enough of the protocol to send chosen messages and
// see every message that comes back.

/// One backend message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// The fields of an ErrorResponse or NoticeResponse, by code.
    pub fn fields(&self) -> HashMap<char, String> {
        let mut out = HashMap::new();
        for f in self.body.split(|b| *b == 0) {
            if let Some((&code, value)) = f.split_first() {
                out.insert(code as char, String::from_utf8_lossy(value).into_owned());
            }
        }
        out
    }

    /// The SQLSTATE of an ErrorResponse.
    pub fn code(&self) -> String {
        self.fields().get(&'C').cloned().unwrap_or_default()
    }

    /// The (pid, key) of a BackendKeyData.
    pub fn key_data(&self) -> (i32, Vec<u8>) {
        let b = &self.body;
        (
            i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            b[4..].to_vec(),
        )
    }

    /// The values of a DataRow, as text (NULL as `None`).
    pub fn values(&self) -> Vec<Option<String>> {
        let b = &self.body;
        let n = u16::from_be_bytes([b[0], b[1]]) as usize;
        let mut i = 2;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let len = i32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            i += 4;
            if len < 0 {
                out.push(None);
            } else {
                let len = len as usize;
                out.push(Some(String::from_utf8_lossy(&b[i..i + len]).into_owned()));
                i += len;
            }
        }
        out
    }
}

/// Tags of `msgs`, as a string (`"TDCZ"`): easy to assert on.
pub fn tags(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.tag as char).collect()
}

/// Frontend message encoders.
pub mod fe {
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for (k, v) in params {
            cstr(&mut body, k);
            cstr(&mut body, v);
        }
        body.push(0);
        let mut out = (body.len() as i32 + 4).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    pub fn ssl_request() -> Vec<u8> {
        let mut out = 8i32.to_be_bytes().to_vec();
        out.extend_from_slice(&80_877_103i32.to_be_bytes());
        out
    }

    pub fn gssenc_request() -> Vec<u8> {
        let mut out = 8i32.to_be_bytes().to_vec();
        out.extend_from_slice(&80_877_104i32.to_be_bytes());
        out
    }

    pub fn flush() -> Vec<u8> {
        msg(b'H', &[])
    }

    pub fn cancel(pid: i32, key: &[u8]) -> Vec<u8> {
        let mut out = (12 + key.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&80_877_102i32.to_be_bytes());
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(key);
        out
    }

    pub fn query(sql: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, sql);
        msg(b'Q', &b)
    }

    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, name);
        cstr(&mut b, sql);
        b.extend_from_slice(&0i16.to_be_bytes());
        msg(b'P', &b)
    }

    /// Bind with text parameters and text results.
    pub fn bind(portal: &str, statement: &str, params: &[Option<&str>]) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        cstr(&mut b, statement);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b.extend_from_slice(&0i16.to_be_bytes());
        msg(b'B', &b)
    }

    pub fn execute(portal: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        b.extend_from_slice(&0i32.to_be_bytes());
        msg(b'E', &b)
    }

    pub fn sync() -> Vec<u8> {
        msg(b'S', &[])
    }

    pub fn terminate() -> Vec<u8> {
        msg(b'X', &[])
    }
}

/// A frontend connection that shows every backend message.
pub struct RawPg {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawPg {
    /// Connects and logs in (no password), returning the login's messages
    /// up to ReadyForQuery, or up to the error that ended it.
    pub async fn connect(
        addr: SocketAddr,
        params: &[(&str, &str)],
    ) -> anyhow::Result<(RawPg, Vec<Msg>)> {
        Self::login(TcpStream::connect(addr).await?, params).await
    }

    /// Like [`RawPg::connect`] on a stream already connected (and perhaps
    /// already through an SSLRequest).
    pub async fn login(
        stream: TcpStream,
        params: &[(&str, &str)],
    ) -> anyhow::Result<(RawPg, Vec<Msg>)> {
        let mut pg = RawPg {
            stream,
            buf: Vec::new(),
        };
        pg.send(&fe::startup(params)).await?;
        let mut msgs = Vec::new();
        loop {
            let Some(m) = pg.read_msg().await? else {
                bail!("closed during login after {}", tags(&msgs))
            };
            let done = m.tag == b'Z' || m.tag == b'E';
            msgs.push(m);
            if done {
                return Ok((pg, msgs));
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The next message, `None` at end of stream; at most [`WAIT`].
    pub async fn read_msg(&mut self) -> anyhow::Result<Option<Msg>> {
        tokio::time::timeout(WAIT, self.read_msg_inner())
            .await
            .context("no message from the server within the time limit")?
    }

    async fn read_msg_inner(&mut self) -> anyhow::Result<Option<Msg>> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                anyhow::ensure!(len >= 4, "bad message length {len}");
                let total = len as usize + 1;
                if self.buf.len() >= total {
                    let rest = self.buf.split_off(total);
                    let mut m = std::mem::replace(&mut self.buf, rest);
                    let tag = m[0];
                    m.drain(..5);
                    return Ok(Some(Msg { tag, body: m }));
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = match self.stream.read(&mut chunk).await {
                Ok(n) => n,
                // A reset after the server's last words counts as the end.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                anyhow::ensure!(self.buf.is_empty(), "stream ended inside a message");
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Messages up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self) -> anyhow::Result<Vec<Msg>> {
        let mut msgs = Vec::new();
        loop {
            let Some(m) = self.read_msg().await? else {
                bail!("closed after {}", tags(&msgs))
            };
            let done = m.tag == b'Z';
            msgs.push(m);
            if done {
                return Ok(msgs);
            }
        }
    }

    /// Every message until the server closes the stream.
    pub async fn until_closed(&mut self) -> anyhow::Result<Vec<Msg>> {
        let mut msgs = Vec::new();
        while let Some(m) = self.read_msg().await? {
            msgs.push(m);
        }
        Ok(msgs)
    }

    /// Sends a simple query and returns its messages through ReadyForQuery.
    pub async fn simple(&mut self, sql: &str) -> anyhow::Result<Vec<Msg>> {
        self.send(&fe::query(sql)).await?;
        self.until_ready().await
    }
}

/// Sends a CancelRequest to `addr` and waits for the server to close.
pub async fn send_cancel(addr: SocketAddr, pid: i32, key: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&fe::cancel(pid, key)).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
}

// ---------------------------------------------------------------------
// A TCP proxy that records what passes and can cut every connection.

/// Bytes one proxied connection carried: (client → server, server → client).
#[derive(Default)]
pub struct Recording {
    pub up: Mutex<Vec<u8>>,
    pub down: Mutex<Vec<u8>>,
}

/// Forwards connections on `addr` to a target, recording both directions.
pub struct Proxy {
    pub addr: SocketAddr,
    recordings: Arc<Mutex<Vec<Arc<Recording>>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let recordings: Arc<Mutex<Vec<Arc<Recording>>>> = Arc::default();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (recs, ts) = (recordings.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rec = Arc::new(Recording::default());
                recs.lock().unwrap().push(rec.clone());
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, &rec.up), pipe(sr, cw, &rec.down));
                });
                ts.lock().unwrap().push(task);
            }
        });
        Ok(Proxy {
            addr,
            recordings,
            tasks,
            accept,
        })
    }

    /// Copies of what each connection carried so far: (up, down).
    pub fn recorded(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.recordings
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.up.lock().unwrap().clone(), r.down.lock().unwrap().clone()))
            .collect()
    }

    /// Drops every proxied connection at once (both sides see it close).
    pub fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: &Mutex<Vec<u8>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        record.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A tmux server of its own (a private socket) for one test, with one
/// session named `session`: a terminal that interactive clients (ssh,
/// kubectl exec -it) run in, driven with send-keys and read with
/// capture-pane.
pub struct Tmux {
    pub socket: PathBuf,
    pub session: &'static str,
}

impl Tmux {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("tmux")
    }
    /// Types `keys` into the session (tmux key names: `Enter`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let out = self.run(&[&["send-keys", "-t", self.session][..], keys].concat());
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", self.session]).stdout)
            .into_owned()
    }
    /// Waits until the pane shows `text` somewhere.
    pub fn wait_for(&self, text: &str) -> String {
        wait_for(&format!("{text:?} on the terminal"), || {
            let s = self.screen();
            s.contains(text).then_some(s)
        })
        .unwrap_or_else(|e| panic!("{e}; screen:\n{}", self.screen()))
    }
    /// Waits until a line of the pane is `line` (trailing blanks aside).
    pub fn wait_for_line(&self, line: &str) -> String {
        wait_for(&format!("{line:?} on the terminal"), || {
            let s = self.screen();
            s.lines().any(|l| l.trim_end() == line).then_some(s)
        })
        .unwrap_or_else(|e| panic!("{e}; screen:\n{}", self.screen()))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
