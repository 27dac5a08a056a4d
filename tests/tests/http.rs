//! `http` connections end to end: the real agent and `hoop connect`, the
//! real `curl` (and reqwest, and a raw WebSocket client) on the caller's
//! side, and a real HTTP/1.1 server on the backend side: Python's
//! `http.server` (`tests/py/http_backend.py`), which records what it
//! received so the tests can check it without going through hoop.

#[path = "postgres_common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use anyhow::{Context, bail};
use common::{Setup, WAIT};
use hoop_tests::harness::{Conn, Connect, READY_TIMEOUT, TempDir, bin};
use hoop_tests::pg::TestCerts;
use hoop_tests::servers::{self, Noise};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bearer token the agent injects; must never reach the caller.
const API_TOKEN: &str = "agent-only-token-3f9a1c77";
/// The API key the agent reads from a file; must never reach the caller.
const FILE_KEY: &str = "file-only-key-8d2e0b41";

/// `tests/py/http_backend.py` on a free port.
struct Backend {
    child: Child,
    port: u16,
    tls: bool,
}

impl Backend {
    fn start() -> anyhow::Result<Backend> {
        Self::spawn(&[])
    }

    /// Serving https with `cert` and `key` (PEM files).
    fn start_tls(cert: &Path, key: &Path) -> anyhow::Result<Backend> {
        Self::spawn(&["--tls".as_ref(), cert.as_os_str(), key.as_os_str()])
    }

    fn spawn(args: &[&std::ffi::OsStr]) -> anyhow::Result<Backend> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/http_backend.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("python3 tests/py/http_backend.py")?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
        let Some(port) = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            bail!("the HTTP backend did not start: {line:?}");
        };
        Ok(Backend {
            child,
            port,
            tls: !args.is_empty(),
        })
    }

    /// The backend's URL with `path`.
    fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// What the backend received so far (asked directly, not through hoop).
    async fn requests(&self) -> Vec<Value> {
        direct()
            .get(self.url("/__requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The first request the backend received whose target starts with
    /// `prefix`.
    async fn request(&self, prefix: &str) -> Value {
        self.requests()
            .await
            .into_iter()
            .find(|r| r["target"].as_str().unwrap_or("").starts_with(prefix))
            .unwrap_or_else(|| panic!("the backend never got {prefix}"))
    }

    /// Lets a waiting `/sse` response finish.
    async fn release(&self) {
        direct()
            .post(self.url("/__release"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn direct() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Values of header `name` in a backend record.
fn header_values(rec: &Value, name: &str) -> Vec<String> {
    rec["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

/// `curl -sS ARGS` with no proxy.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "60"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl")
}

/// Status and body of one request with curl.
fn curl_status(args: &[&str]) -> (u16, String) {
    let out = curl(&[args, &["-w", "\n%{http_code}"]].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl {args:?}: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        }),
        body.to_string(),
    )
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The deterministic bytes `/download?n=N` sends.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 256) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_credentials_replace_the_callers_and_never_reach_them() {
    let be = Backend::start().unwrap();
    let dir = TempDir::new("hoop-http-secrets");
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{FILE_KEY}\n")).unwrap();
    let conn = Conn::http("api", &be.url("/api/")).extra(&format!(
        "[[connection.header]]\nname = \"Authorization\"\nvalue = {{ env = \"API_TOKEN\" }}\nprefix = \"Bearer \"\n\
         [[connection.header]]\nname = \"X-Api-Key\"\nvalue = {{ file = {:?} }}\n",
        key_file.display().to_string()
    ));
    let s = Setup::start_env(&[conn], &[("API_TOKEN", API_TOKEN)]).await;
    let c = s.connect("api");
    let base = format!("http://{}", c.addr);

    // Two requests on one kept-alive connection, with the caller's own
    // credentials, which must not reach the backend.
    let out = curl(&[
        "-v",
        "-H",
        "Authorization: Bearer caller-token",
        "-H",
        "X-Api-Key: caller-key",
        "-H",
        "Proxy-Authorization: Basic Y2FsbGVyOnB3",
        &format!("{base}/echo?q=query-value-77&page=2"),
        &format!("{base}/json"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("Re-using existing connection"),
        "curl opened a second connection: {stderr}"
    );
    for secret in [API_TOKEN, FILE_KEY] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the caller saw {secret}"
        );
    }
    let echo: Value = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(echo["target"], "/api/echo?q=query-value-77&page=2");
    assert_eq!(echo["headers"]["host"], format!("127.0.0.1:{}", be.port));
    assert_eq!(
        echo["present"],
        serde_json::json!(["authorization", "x-api-key"])
    );
    assert!(
        echo["headers"].get("proxy-authorization").is_none(),
        "{echo}"
    );

    // What the backend got: exactly the injected values.
    let rec = be.request("/api/echo").await;
    assert_eq!(
        header_values(&rec, "authorization"),
        [format!("Bearer {API_TOKEN}")]
    );
    assert_eq!(header_values(&rec, "x-api-key"), [FILE_KEY]);
    assert!(header_values(&rec, "proxy-authorization").is_empty());

    // A rotated file is read at the next request.
    std::fs::write(&key_file, "rotated-key-1\n").unwrap();
    let (status, _) = curl_status(&[&format!("{base}/echo?rotated=1")]);
    assert_eq!(status, 200);
    assert_eq!(
        header_values(&be.request("/api/echo?rotated").await, "x-api-key"),
        ["rotated-key-1"]
    );

    // One audit event per request, on one session, with no secret and no
    // query value in it.
    let echo_ev = s.wait_event("http_request", |e| {
        e["path"] == "/echo" && e["query"] == serde_json::json!(["q", "page"])
    });
    let json_ev = s.wait_event("http_request", |e| e["path"] == "/json");
    for ev in [&echo_ev, &json_ev] {
        assert_eq!(ev["method"], "GET");
        assert_eq!(ev["status"], 200);
        assert_eq!(ev["outcome"], "ok");
        assert_eq!(ev["connection"], "api");
        assert_eq!(ev["user"], common::HOOP_USER);
        assert!(ev["bytes_down"].as_u64().unwrap() > 0, "{ev}");
    }
    assert_eq!(echo_ev["session"], json_ev["session"]);
    s.wait_event("session_end", |e| e["session"] == echo_ev["session"]);
    let audit = std::fs::read_to_string(s.agent.data_dir().join("audit/audit.jsonl")).unwrap();
    for secret in [
        API_TOKEN,
        FILE_KEY,
        "rotated-key-1",
        "caller-token",
        "query-value-77",
    ] {
        assert!(!audit.contains(secret), "{secret} in the audit log");
    }
    assert!(!s.agent.log.all().contains(API_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_stream_both_ways() {
    const SIZE: usize = 10 << 20;
    let be = Backend::start().unwrap();
    let s = Setup::start(&[Conn::http("api", &be.url("/"))]).await;
    let c = s.connect("api");
    let base = format!("http://{}", c.addr);
    let dir = TempDir::new("hoop-http-bodies");

    // 10 MiB up, with a Content-Length and chunked.
    let mut data = vec![0u8; SIZE];
    Noise::new(7).fill(&mut data);
    let file = dir.path().join("up.bin");
    std::fs::write(&file, &data).unwrap();
    let sha = hex::encode(servers::sha256(&data));
    let at = format!("@{}", file.display());
    let file_arg = file.display().to_string();
    for args in [
        vec!["--data-binary", at.as_str()],
        vec!["-T", file_arg.as_str(), "-H", "Transfer-Encoding: chunked"],
    ] {
        let url = format!("{base}/echo");
        let (status, body) = curl_status(&[args.as_slice(), &[url.as_str()]].concat());
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        assert_eq!(v["body_len"], SIZE, "{args:?}");
        assert_eq!(v["body_sha256"], sha, "{args:?}");
    }
    let up = s.wait_event("http_request", |e| e["method"] == "PUT");
    assert_eq!(up["bytes_up"], SIZE);

    // 10 MiB down, chunked.
    let got = dir.path().join("down.bin");
    let out = curl(&[
        "-o",
        &got.display().to_string(),
        &format!("{base}/download?n={SIZE}"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let down = std::fs::read(&got).unwrap();
    assert_eq!(down.len(), SIZE);
    assert!(down == pattern(SIZE), "the download differs");
    let ev = s.wait_event("http_request", |e| e["path"] == "/download");
    assert_eq!(ev["bytes_down"], SIZE);

    // A response without a body (HEAD) is recorded as complete.
    let (status, _) = curl_status(&["-I", &format!("{base}/echo?head=1")]);
    assert_eq!(status, 200);
    let ev = s.wait_event("http_request", |e| e["method"] == "HEAD");
    assert_eq!(ev["outcome"], "ok", "{ev}");

    // Server-sent events: the first arrives while the response is still
    // open (the backend holds it until released).
    let mut resp = direct().get(format!("{base}/sse")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut got = String::new();
    while !got.contains("data: first\n\n") {
        let chunk = tokio::time::timeout(WAIT, resp.chunk())
            .await
            .expect("the first event did not arrive while the stream was open")
            .unwrap()
            .expect("the stream ended early");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!got.contains("second"));
    be.release().await;
    while let Some(chunk) = tokio::time::timeout(WAIT, resp.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(got, "data: first\n\ndata: second\n\n");
    s.wait_event("http_request", |e| {
        e["path"] == "/sse" && e["status"] == 200
    });
}

/// Writes one masked client frame.
async fn ws_send(s: &mut TcpStream, opcode: u8, data: &[u8]) {
    let mut f = vec![0x80 | opcode];
    match data.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&mask);
    f.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&f).await.unwrap();
}

/// Reads one server frame: (opcode, payload).
async fn ws_recv(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await.unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await.unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut data = vec![0u8; len];
    s.read_exact(&mut data).await.unwrap();
    (h[0] & 0x0f, data)
}

/// Sends a WebSocket upgrade request for `/ws`; returns the response head.
async fn ws_open(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(n == 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_pass_through() {
    let be = Backend::start().unwrap();
    let s = Setup::start(&[Conn::http("api", &be.url("/"))]).await;
    let c = s.connect("api");

    let (mut ws, head) = ws_open(c.addr).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // RFC 6455's example key and its accept value.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    ws_send(&mut ws, 0x1, b"hello through hoop").await;
    assert_eq!(
        ws_recv(&mut ws).await,
        (0x1, b"hello through hoop".to_vec())
    );
    let mut big = vec![0u8; 200_000];
    Noise::new(3).fill(&mut big);
    ws_send(&mut ws, 0x2, &big).await;
    assert!(
        ws_recv(&mut ws).await == (0x2, big),
        "the binary echo differs"
    );
    ws_send(&mut ws, 0x8, &1000u16.to_be_bytes()).await;
    assert_eq!(ws_recv(&mut ws).await.0, 0x8);
    drop(ws);

    let ev = s.wait_event("http_request", |e| e["path"] == "/ws");
    assert_eq!(ev["upgrade"], "websocket");
    assert_eq!(ev["status"], 101);
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert!(ev["bytes_up"].as_u64().unwrap() > 200_000, "{ev}");
    assert!(ev["bytes_down"].as_u64().unwrap() > 200_000, "{ev}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_rules_and_read_only_refuse_before_the_backend() {
    let be = Backend::start().unwrap();
    let rule = "^DELETE /items(/|$)";
    let s = Setup::start(&[
        Conn::http("api", &be.url("/")).extra(&format!(
            "[[connection.deny]]\npattern = {rule:?}\nmessage = \"items are never deleted through hoop\"\n"
        )),
        Conn::http("ro", &be.url("/")).extra("read_only = true"),
    ])
    .await;
    let api = s.connect("api");
    let ro = s.connect("ro");
    let (a, r) = (
        format!("http://{}", api.addr),
        format!("http://{}", ro.addr),
    );

    for path in ["/items/7", "/%69tems/7", "//items"] {
        let (status, body) = curl_status(&["-X", "DELETE", &format!("{a}{path}")]);
        assert_eq!(status, 403, "{path}: {body}");
        let v = json(&body);
        assert_eq!(v["rule"], rule);
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("items are never deleted through hoop"),
            "{v}"
        );
    }
    let (status, body) = curl_status(&["--path-as-is", &format!("{a}/x/../items/7")]);
    assert_eq!(status, 400, "{body}");
    // Other methods on the same path reach the backend.
    let (status, _) = curl_status(&["-X", "PUT", &format!("{a}/items/7/echo")]);
    assert_eq!(status, 200);

    let (status, body) = curl_status(&["-X", "POST", "-d", "x=1", &format!("{r}/echo")]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(json(&body)["rule"], "read_only");
    let (status, _) = curl_status(&[&format!("{r}/echo")]);
    assert_eq!(status, 200);
    let (_ws, head) = ws_open(ro.addr).await;
    assert!(head.starts_with("http/1.1 403"), "{head}");

    // The connection's credentials are for programs on this machine and
    // pages it serves: a foreign Host (DNS rebinding) or a page of
    // another site (Origin, Sec-Fetch-Site) is refused.
    for extra in [
        ["-H", "Host: evil.example"],
        ["-H", "Origin: https://evil.example"],
        ["-H", "Origin: null"],
        ["-H", "Sec-Fetch-Site: cross-site"],
    ] {
        let (status, body) =
            curl_status(&[&extra[..], &["-X", "PUT", &format!("{a}/items/8/echo")]].concat());
        assert_eq!(status, 403, "{extra:?}: {body}");
    }
    let (status, _) = curl_status(&[
        "-H",
        "Origin: http://localhost:3000",
        "-X",
        "PUT",
        &format!("{a}/items/7/echo"),
    ]);
    assert_eq!(status, 200);

    // None of the refused requests reached the backend.
    let seen: Vec<String> = be
        .requests()
        .await
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        seen,
        ["PUT /items/7/echo", "GET /echo", "PUT /items/7/echo"],
        "{seen:?}"
    );

    let refused = s.wait_audit("refusals", |evs| {
        let r: Vec<_> = evs
            .iter()
            .filter(|e| e["event"] == "http_request" && e["outcome"] == "refused")
            .cloned()
            .collect();
        (r.len() >= 6).then_some(r)
    });
    assert!(
        refused
            .iter()
            .any(|e| e["rule"] == rule && e["status"] == 403)
    );
    assert!(
        refused
            .iter()
            .any(|e| e["rule"] == "read_only" && e["method"] == "POST")
    );
    assert!(
        refused
            .iter()
            .any(|e| e["rule"] == "path" && e["status"] == 400)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_responses_are_masked_and_what_cannot_be_masked_is_refused() {
    let be = Backend::start().unwrap();
    let s = Setup::start(&[Conn::http("api", &be.url("/")).extra(
        "[connection.mask]\ndetectors = [\"email\"]\n\
         [[connection.mask.column]]\npattern = \"*password*\"\nname = \"password\"\n",
    )])
    .await;
    let c = s.connect("api");
    let base = format!("http://{}", c.addr);
    let raw = [
        "alice@example.com",
        "bob@example.org",
        "carol@example.net",
        "hunter2",
        "correct horse",
    ];

    let out = curl(&["-i", &format!("{base}/json")]);
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    assert_eq!(length, body.len(), "{head}");
    for r in raw {
        assert!(!body.contains(r), "{r} unmasked in {body}");
    }
    let v = json(body);
    assert_eq!(v["users"][0]["name"], "Alice");
    assert_eq!(v["users"][1]["id"], 2);
    assert_eq!(v["count"], 2);
    // The agent asked for a body it can read.
    assert_eq!(
        header_values(&be.request("/json").await, "accept-encoding"),
        ["identity"]
    );
    let ev = s.wait_event("http_request", |e| e["path"] == "/json");
    assert_eq!(ev["masked"]["values"], 5, "{ev}");
    assert_eq!(ev["masked"]["detectors"]["email"], 3, "{ev}");
    assert_eq!(ev["masked"]["detectors"]["password"], 2, "{ev}");
    assert_eq!(ev["bytes_down"], body.len());

    // HEAD does not tell the unmasked length.
    let out = curl(&["-I", &format!("{base}/json")]);
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-length: 231"), "{head}");
    let ev = s.wait_event("http_request", |e| e["method"] == "HEAD");
    assert_eq!(ev["outcome"], "ok", "{ev}");

    // A JSON-lines stream is masked line by line.
    let (status, body) = curl_status(&[&format!("{base}/ndjson")]);
    assert_eq!(status, 200);
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["seq"], 1);
    assert!(
        !body.contains("dave@example.com") && !body.contains("erin@"),
        "{body}"
    );

    // Media passes as it is; the rest is refused, not passed unmasked.
    let (status, body) = curl_status(&[&format!("{base}/image")]);
    assert_eq!(status, 200);
    assert!(
        body.starts_with("\u{fffd}PNG") || body.contains("PNG"),
        "{body}"
    );
    for (path, why) in [
        ("/text", "text/plain"),
        ("/bad-json", "does not parse as JSON"),
        ("/gzip-json", "gzip"),
        ("/sse", "text/event-stream"),
    ] {
        let (status, body) = curl_status(&[&format!("{base}{path}")]);
        assert_eq!(status, 502, "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
        for r in raw {
            assert!(!body.contains(r), "{path}: {r} in {body}");
        }
        let ev = s.wait_event("http_request", |e| e["path"] == path);
        assert_eq!(ev["status"], 502);
        assert_eq!(ev["outcome"], "error");
    }
    let (_ws, head) = ws_open(c.addr).await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_failures_are_502_with_the_cause() {
    let dir = TempDir::new("hoop-http-tls");
    let certs = TestCerts::generate("hoop-tests HTTP CA").unwrap();
    let write = |name: &str, pem: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let ca = write("ca.pem", &certs.ca_pem);
    let cert = write("cert.pem", &certs.cert_pem);
    let key = write("key.pem", &certs.key_pem);
    let tls = Backend::start_tls(&cert, &key).unwrap();
    let down = servers::closed_port();
    let s = Setup::start(&[
        Conn::http("down", &format!("http://{down}")),
        Conn::http("tls", &tls.url("/")).extra(&format!("tls_ca = {:?}", ca.display().to_string())),
        Conn::http("untrusted", &tls.url("/")),
    ])
    .await;

    let c = s.connect("down");
    let (status, body) = curl_status(&[&format!("http://{}/echo", c.addr)]);
    assert_eq!(status, 502, "{body}");
    let err = json(&body)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("cannot reach the backend") && err.contains(&down.to_string()),
        "{err}"
    );

    let c = s.connect("tls");
    let (status, body) = curl_status(&[&format!("http://{}/echo", c.addr)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["headers"]["host"],
        format!("127.0.0.1:{}", tls.port)
    );

    let c = s.connect("untrusted");
    let (status, body) = curl_status(&[&format!("http://{}/echo", c.addr)]);
    assert_eq!(status, 502, "{body}");
    let err = json(&body)["error"].as_str().unwrap().to_string();
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");

    let evs = s.wait_audit("two failed requests", |evs| {
        let f: Vec<_> = evs
            .iter()
            .filter(|e| e["event"] == "http_request" && e["status"] == 502)
            .cloned()
            .collect();
        (f.len() == 2).then_some(f)
    });
    assert!(
        evs.iter()
            .all(|e| e["outcome"] == "error" && e["error"].is_string())
    );
}

/// A running `hoop-agent dev`, killed on drop.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_serves_http_connections() {
    let be = Backend::start().unwrap();
    let mut child = Command::new(bin("hoop-agent"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--idp-listen",
            "127.0.0.1:0",
        ])
        .args(["--http", &format!("api={}", be.url("/v1"))])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let dev = Dev(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut fields = std::collections::HashMap::new();
    loop {
        let line = rx
            .recv_timeout(READY_TIMEOUT)
            .expect("hoop-agent dev did not say ready");
        if line.starts_with("ready:") {
            break;
        }
        if let Some((k, v)) = line.split_once(": ") {
            fields.entry(k.to_string()).or_insert(v.to_string());
        }
    }
    assert_eq!(fields["connection"], format!("api http {}", be.url("/v1")));
    let (client, secret) = fields["client-credentials"].split_once(' ').unwrap();
    let token: Value = direct()
        .post(format!("{}/token", fields["idp"]))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cli = TempDir::new("hoop-http-dev-cli");
    let mut cmd = Command::new(bin("hoop"));
    cmd.env("HOOP_AGENT", &fields["agent"])
        .env("HOOP_AGENT_FINGERPRINT", &fields["fingerprint"])
        .env("HOOP_TOKEN", token["access_token"].as_str().unwrap())
        .env("HOOP_CONFIG_DIR", cli.path())
        .env_remove("HOOP_AGENT_CA")
        .stdin(Stdio::null());
    let c = Connect::start_cmd(cmd, "api").unwrap();
    let (status, body) = curl_status(&[&format!("http://{}/echo", c.addr)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["target"], "/v1/echo");
    drop(c);
    drop(dev);
}
