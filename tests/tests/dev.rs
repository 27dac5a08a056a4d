//! `hoop-agent dev` as a developer uses it: the real binary, its built-in
//! identity provider driven over HTTP as an OAuth client would, and the real
//! `hoop` using the tokens it hands out.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hoop_tests::harness::{Connect, READY_TIMEOUT, TempDir, bin};
use hoop_tests::servers;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `hoop-agent dev`, with what it printed.
///
/// `hoop-agent dev` prints, after its banner, one `key: value` line each:
///
/// ```text
/// agent: 127.0.0.1:PORT
/// fingerprint: SHA256:<hex>
/// idp: http://127.0.0.1:PORT
/// user: EMAIL groups=G1,G2
/// client-credentials: hoop-ci SECRET
/// connection: NAME tcp HOST:PORT      (one per --tcp)
/// data-dir: DIR (throwaway, removed on exit)
/// ```
///
/// then instructions, and a last line starting `ready:` once the agent
/// listens.
struct DevAgent {
    child: Option<Child>,
    /// The first value of each `key: value` line.
    fields: HashMap<String, String>,
    connections: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// `HOOP_CONFIG_DIR` for the `hoop` runs.
    cli_dir: TempDir,
    http: reqwest::Client,
}

impl DevAgent {
    /// Starts `hoop-agent dev` on free loopback ports with `extra` flags.
    fn start(extra: &[&str]) -> anyhow::Result<DevAgent> {
        let mut child = Command::new(bin("hoop-agent"))
            .args([
                "dev",
                "--listen",
                "127.0.0.1:0",
                "--idp-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().context("stderr")?, stderr.clone());
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().context("stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut dev = DevAgent {
            child: Some(child),
            fields: HashMap::new(),
            connections: Vec::new(),
            stderr,
            cli_dir: TempDir::new("hoop-dev-cli"),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        };
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                bail!(
                    "hoop-agent dev did not say ready; stderr:\n{}",
                    dev.stderr()
                );
            };
            if line.starts_with("ready:") {
                break;
            }
            if let Some((k, v)) = line.split_once(": ") {
                if k == "connection" {
                    dev.connections.push(v.to_string());
                } else if !k.contains(' ') {
                    dev.fields.insert(k.to_string(), v.to_string());
                }
            }
        }
        Ok(dev)
    }

    fn field(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {key:?} line in {:?}", self.fields))
    }

    fn idp(&self) -> &str {
        self.field("idp")
    }

    fn ci_secret(&self) -> &str {
        let v = self.field("client-credentials");
        v.strip_prefix("hoop-ci ").expect("hoop-ci SECRET")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A `hoop` command pointed at this agent with `token`.
    fn hoop(&self, token: &str) -> Command {
        let mut c = Command::new(bin("hoop"));
        c.env("HOOP_AGENT", self.field("agent"))
            .env("HOOP_AGENT_FINGERPRINT", self.field("fingerprint"))
            .env("HOOP_TOKEN", token)
            .env("HOOP_CONFIG_DIR", self.cli_dir.path())
            .env_remove("HOOP_AGENT_CA")
            .stdin(Stdio::null());
        c
    }

    /// POSTs a form to the provider: (status, JSON body).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.idp()))
            .form(form)
            .send()
            .await
            .expect("POST to the dev idp");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET /authorize` with the usual parameters, overridden by `extra`
    /// (an empty value drops the parameter).
    async fn authorize(&self, challenge: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", "hoop-cli"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email offline_access"),
            ("state", "st-1"),
            ("nonce", "nonce-1"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            params.retain(|(n, _)| n != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        let mut url = reqwest::Url::parse(&format!("{}/authorize", self.idp())).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        self.http.get(url).send().await.expect("GET /authorize")
    }

    /// A fresh authorization code for `challenge`.
    async fn code(&self, challenge: &str) -> String {
        let r = self.authorize(challenge, &[]).await;
        assert_eq!(r.status().as_u16(), 302);
        let q = location_query(&r);
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"), "{q:?}");
        assert_eq!(q.get("iss").map(String::as_str), Some(self.idp()), "{q:?}");
        q.get("code").cloned().expect("a code in the redirect")
    }

    /// SIGTERM and wait: a clean stop.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().expect("wait")
    }
}

impl Drop for DevAgent {
    /// SIGTERM, so the agent removes its throwaway data dir; SIGKILL if it
    /// has not stopped within 10 s.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut s) = into.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
}

const REDIRECT: &str = "http://127.0.0.1:49152/callback";

/// A random PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(b);
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(d.as_ref()))
}

fn location_query(r: &reqwest::Response) -> HashMap<String, String> {
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    reqwest::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

/// `hoop connections -o json` with `token`: the names listed.
fn connection_names(dev: &DevAgent, token: &str) -> Vec<String> {
    let out = dev
        .hoop(token)
        .args(["connections", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hoop connections: {}\nagent: {}",
        String::from_utf8_lossy(&out.stderr),
        dev.stderr()
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Bytes through `hoop connect NAME -p 0` and back from the echo server.
async fn echo_through(dev: &DevAgent, token: &str, name: &str) {
    let connect = Connect::start_cmd(dev.hoop(token), name).unwrap();
    let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = async {
        r.read_to_end(&mut back).await.unwrap();
    };
    tokio::join!(send, recv);
    assert!(
        back == data,
        "echoed {} of {} bytes",
        back.len(),
        data.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_flow_with_pkce_then_refresh_and_connect() {
    let echo = servers::echo().await.unwrap();
    let dev = DevAgent::start(&["--tcp", &format!("echo={echo}")]).unwrap();
    assert_eq!(dev.connections, vec![format!("echo tcp {echo}")]);
    assert!(dev.field("fingerprint").starts_with("SHA256:"));
    assert_eq!(dev.field("user"), "dev@example.com groups=dev");

    // Discovery names every endpoint.
    let disc: Value = dev
        .http
        .get(format!("{}/.well-known/openid-configuration", dev.idp()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disc["issuer"], dev.idp());
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "device_authorization_endpoint",
        "revocation_endpoint",
    ] {
        assert!(disc[key].as_str().unwrap().starts_with(dev.idp()), "{key}");
    }
    assert_eq!(
        disc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // A wrong verifier is refused, and spends the code.
    let (right, challenge) = pkce();
    let code = dev.code(&challenge).await;
    let (wrong, _) = pkce();
    let exchange = |code: String, verifier: String, redirect: &'static str| {
        let dev = &dev;
        async move {
            dev.post(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", "hoop-cli"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(code.clone(), wrong, REDIRECT).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");
    let (status, body) = exchange(code, right, REDIRECT).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");

    // A redirect_uri different from the authorization request's.
    let (verifier, challenge) = pkce();
    let code = dev.code(&challenge).await;
    let (status, body) = exchange(code, verifier, "http://127.0.0.1:49153/callback").await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");

    // The right verifier gets tokens; the same code again is refused.
    let (verifier, challenge) = pkce();
    let code = dev.code(&challenge).await;
    let (status, tokens) = exchange(code.clone(), verifier.clone(), REDIRECT).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["scope"], "openid email offline_access");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "nonce-1");
    assert_eq!(id["aud"], "hoop-cli");
    assert_eq!(id["iss"], dev.idp());
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let at = claims(&access);
    assert_eq!(at["aud"], "hoop");
    assert_eq!(at["email"], "dev@example.com");
    assert_eq!(at["groups"], serde_json::json!(["dev"]));
    let (status, body) = exchange(code, verifier, REDIRECT).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");

    // Refresh rotates: the new token works once, the old one never again.
    let old = tokens["refresh_token"].as_str().unwrap().to_string();
    let refresh = |t: String| {
        let dev = &dev;
        async move {
            dev.post(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", "hoop-cli"),
                    ("refresh_token", &t),
                ],
            )
            .await
        }
    };
    let (status, fresh) = refresh(old.clone()).await;
    assert_eq!(status, 200, "{fresh}");
    let new = fresh["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(fresh["access_token"].is_string());
    let (status, body) = refresh(old).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");

    // Revocation (always 200), after which the token is refused.
    let (status, _) = dev
        .post("/revoke", &[("client_id", "hoop-cli"), ("token", &new)])
        .await;
    assert_eq!(status, 200);
    let (status, _) = dev
        .post(
            "/revoke",
            &[("client_id", "hoop-cli"), ("token", "unknown")],
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = refresh(new).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");

    // The access token opens the agent's connections through the real CLI.
    assert_eq!(connection_names(&dev, &access), vec!["echo"]);
    echo_through(&dev, &access, "echo").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn authorize_refuses_bad_requests() {
    let dev = DevAgent::start(&[]).unwrap();
    let (_, challenge) = pkce();

    // Not loopback, not http, unknown client: a page, never a redirect.
    for extra in [
        [("redirect_uri", "http://example.com:8080/callback")],
        [("redirect_uri", "https://127.0.0.1:8080/callback")],
        [("client_id", "someone-else")],
    ] {
        let r = dev.authorize(&challenge, &extra).await;
        assert_eq!(r.status().as_u16(), 400, "{extra:?}");
        assert!(r.headers().get("location").is_none(), "{extra:?}");
    }

    // With a good redirect URI, errors go back to the client.
    for (extra, error) in [
        (&[("code_challenge_method", "plain")][..], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("scope", "openid admin")], "invalid_scope"),
    ] {
        let r = dev.authorize(&challenge, extra).await;
        assert_eq!(r.status().as_u16(), 302, "{extra:?}");
        let q = location_query(&r);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(error),
            "{extra:?}: {q:?}"
        );
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
        assert!(!q.contains_key("code"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn device_flow_pending_approve_and_deny() {
    let echo = servers::echo().await.unwrap();
    // Interval 0: polls are never too fast here; slow_down is tested below.
    let dev =
        DevAgent::start(&["--device-interval", "0", "--tcp", &format!("echo={echo}")]).unwrap();
    let start = || async {
        let (status, body) = dev
            .post(
                "/device/code",
                &[
                    ("client_id", "hoop-cli"),
                    ("scope", "openid offline_access"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let poll = |device_code: String| {
        let dev = &dev;
        async move {
            dev.post(
                "/token",
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", "hoop-cli"),
                    ("device_code", &device_code),
                ],
            )
            .await
        }
    };
    let decide = |user_code: String, action: &'static str| {
        let dev = &dev;
        async move {
            dev.http
                .post(format!("{}/device", dev.idp()))
                .form(&[("user_code", user_code.as_str()), ("action", action)])
                .send()
                .await
                .unwrap()
        }
    };

    let auth = start().await;
    let user_code = auth["user_code"].as_str().unwrap().to_string();
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(auth["verification_uri"], format!("{}/device", dev.idp()));
    assert_eq!(auth["expires_in"], 600);
    assert_eq!(auth["interval"], 0);
    let device_code = auth["device_code"].as_str().unwrap().to_string();

    let (status, body) = poll(device_code.clone()).await;
    assert_eq!(
        (status, error_of(&body)),
        (400, "authorization_pending"),
        "{body}"
    );

    // The page a person opens shows the code and both buttons.
    let page = dev
        .http
        .get(auth["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&user_code) && page.contains("Approve") && page.contains("Deny"));

    // Approve, typed in lower case without the dash.
    let typed = user_code.replace('-', "").to_lowercase();
    let r = decide(typed, "approve").await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("Approved"));
    let (status, tokens) = poll(device_code.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["email"], "dev@example.com");
    // The device code is spent.
    let (status, body) = poll(device_code).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"), "{body}");
    // A decided code cannot be decided again.
    let r = decide(user_code, "deny").await;
    assert_eq!(r.status().as_u16(), 400);

    assert_eq!(connection_names(&dev, access), vec!["echo"]);
    echo_through(&dev, access, "echo").await;

    // Deny.
    let auth = start().await;
    let r = decide(auth["user_code"].as_str().unwrap().to_string(), "deny").await;
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = poll(auth["device_code"].as_str().unwrap().to_string()).await;
    assert_eq!((status, error_of(&body)), (400, "access_denied"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_polling_too_fast_is_slowed_down() {
    // A long interval, so two polls in a row are certainly too fast.
    let dev = DevAgent::start(&["--device-interval", "30"]).unwrap();
    let (status, auth) = dev.post("/device/code", &[("client_id", "hoop-cli")]).await;
    assert_eq!(status, 200, "{auth}");
    assert_eq!(auth["interval"], 30);
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", "hoop-cli"),
        ("device_code", auth["device_code"].as_str().unwrap()),
    ];
    let (_, body) = dev.post("/token", &form).await;
    assert_eq!(error_of(&body), "authorization_pending", "{body}");
    let (status, body) = dev.post("/token", &form).await;
    assert_eq!((status, error_of(&body)), (400, "slow_down"), "{body}");
    // The interval grew by 5 s (RFC 8628 §3.5).
    assert!(
        body["error_description"].as_str().unwrap().contains("35"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_for_ci() {
    let echo = servers::echo().await.unwrap();
    let dev = DevAgent::start(&["--tcp", &format!("echo={echo}")]).unwrap();
    let url = format!("{}/token", dev.idp());
    let r = dev
        .http
        .post(&url)
        .basic_auth("hoop-ci", Some(dev.ci_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let at = claims(access);
    assert_eq!(at["sub"], "hoop-ci");
    assert_eq!(at["client_id"], "hoop-ci");
    assert_eq!(connection_names(&dev, access), vec!["echo"]);

    // The secret in the form works too; a wrong one is a 401.
    let (status, _) = dev
        .post(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "hoop-ci"),
                ("client_secret", dev.ci_secret()),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let r = dev
        .http
        .post(&url)
        .basic_auth("hoop-ci", Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_of(&body), "invalid_client");
}

#[test]
fn refuses_to_listen_beyond_loopback_without_the_flag() {
    for flag in ["--listen", "--idp-listen"] {
        let out = Command::new(bin("hoop-agent"))
            .args(["dev", flag, "0.0.0.0:0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{flag} 0.0.0.0:0 is not a loopback address"))
                && err.contains("--allow-non-loopback"),
            "{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn throwaway_data_dir_goes_and_a_kept_one_stays() {
    let mut dev = DevAgent::start(&[]).unwrap();
    let printed = dev.field("data-dir").to_string();
    let dir = printed
        .strip_suffix(" (throwaway, removed on exit)")
        .expect("a throwaway dir")
        .to_string();
    assert!(std::path::Path::new(&dir).join("tls").exists());
    assert!(dev.stop().success(), "{}", dev.stderr());
    assert!(!std::path::Path::new(&dir).exists(), "{dir} is still there");

    let keep = TempDir::new("hoop-dev-keep");
    let data = keep.path().join("data");
    let d = data.to_str().unwrap();
    let mut first = DevAgent::start(&["--data-dir", d]).unwrap();
    assert_eq!(first.field("data-dir"), format!("{d} (kept)"));
    let fp = first.field("fingerprint").to_string();
    assert!(first.stop().success());
    assert!(data.join("audit").join("audit.jsonl").exists());
    // The same CA on the next start: users need not trust it again.
    let second = DevAgent::start(&["--data-dir", d]).unwrap();
    assert_eq!(second.field("fingerprint"), fp);
}

/// The README's quick start, as a new user runs it: `hoop-agent dev` with
/// no flags, `hoop login` (the URL it prints opened by a "browser"),
/// `hoop connections`, `hoop connect echo`.
#[tokio::test(flavor = "multi_thread")]
async fn quick_start_login_and_connect_to_the_builtin_echo() {
    let dev = DevAgent::start(&[]).unwrap();
    assert_eq!(dev.connections.len(), 1, "{:?}", dev.connections);
    assert!(dev.connections[0].starts_with("echo tcp 127.0.0.1:"));
    let laptop = TempDir::new("hoop-quickstart");
    let hoop = || {
        let mut c = Command::new(bin("hoop"));
        c.env("HOOP_CONFIG_DIR", laptop.path())
            .env_remove("HOOP_AGENT")
            .env_remove("HOOP_AGENT_FINGERPRINT")
            .env_remove("HOOP_TOKEN")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env("HOOP_TOKEN_STORE", "file")
            .stdin(Stdio::null());
        c
    };
    let mut login = hoop()
        .args([
            "login",
            "--agent",
            dev.field("agent"),
            "--fingerprint",
            dev.field("fingerprint"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = login.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let url = rx
        .iter()
        .find(|l| l.starts_with("http"))
        .expect("login prints the URL to open");
    // The "browser": the dev IdP approves at once and redirects to hoop.
    let resp = dev.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let callback = resp.headers()["location"].to_str().unwrap().to_string();
    let page = dev.http.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("You can close this tab")
    );
    let out = login.wait_with_output().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(out.status.success(), "{rest:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("as dev@example.com"));

    let list = hoop().args(["connections", "-o", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "echo");
    let connect = hoop_tests::harness::Connect::start_cmd(hoop(), "echo").unwrap();
    let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"hello hoop").await.unwrap();
    let mut b = [0u8; 10];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hello hoop");
}
