//! `hoop login` against a real OpenID Connect provider (the npm package
//! `oidc-provider`, driven through its login and consent pages as a
//! browser would), then the agent accepting what it issued.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hoop_tests::harness::{Agent, Conn, Connect, TempDir, bin};
use hoop_tests::oidc::{self, OidcProvider};
use hoop_tests::servers;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A user's machine: its own config dir, pointed at `agent` only through
/// `hoop login --agent ... --fingerprint ...`.
struct Laptop {
    dir: TempDir,
    agent_addr: String,
    fingerprint: String,
}

impl Laptop {
    fn new(agent: &Agent) -> Laptop {
        Laptop {
            dir: TempDir::new("hoop-laptop"),
            agent_addr: agent.addr.to_string(),
            fingerprint: agent.fingerprint.clone(),
        }
    }

    fn hoop(&self) -> Command {
        let mut c = Command::new(bin("hoop"));
        c.env("HOOP_CONFIG_DIR", self.dir.path())
            .env_remove("HOOP_AGENT")
            .env_remove("HOOP_AGENT_FINGERPRINT")
            .env_remove("HOOP_AGENT_CA")
            .env_remove("HOOP_TOKEN")
            .env_remove("HOOP_CLIENT_ID")
            .env_remove("HOOP_CLIENT_SECRET")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null());
        c
    }

    fn login_cmd(&self, extra: &[&str]) -> Command {
        let mut c = self.hoop();
        c.args([
            "login",
            "--agent",
            &self.agent_addr,
            "--fingerprint",
            &self.fingerprint,
        ]);
        c.args(extra);
        c
    }

    fn whoami(&self) -> Result<Value, String> {
        let out = self.hoop().args(["whoami", "-o", "json"]).output().unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// A running `hoop login` whose stderr we read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Running {
            child,
            lines: rx,
            seen: vec![],
        }
    }

    /// The first stderr line for which `f` returns something.
    fn wait_for<T>(&mut self, mut f: impl FnMut(&str) -> Option<T>) -> T {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no matching line; saw: {:#?}", self.seen));
            self.seen.push(line.clone());
            if let Some(v) = f(&line) {
                return v;
            }
        }
    }

    /// Waits for exit; returns (success, stdout, all stderr).
    fn finish(mut self) -> (bool, String, String) {
        let status = self.child.wait().unwrap();
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut out);
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        (status.success(), out, self.seen.join("\n"))
    }
}

fn url_line(l: &str) -> Option<String> {
    l.starts_with("http").then(|| l.trim().to_string())
}

async fn drive(f: impl FnOnce() -> anyhow::Result<oidc::Page> + Send + 'static) -> oidc::Page {
    tokio::task::spawn_blocking(f).await.unwrap().unwrap()
}

async fn setup(ttl: u64) -> (OidcProvider, Agent) {
    let provider = OidcProvider::start(ttl).unwrap();
    let echo = servers::echo().await.unwrap();
    let agent = Agent::start_full(
        provider.url(),
        &[
            Conn::tcp("echo", echo),
            Conn::tcp("ci-only", echo).groups(&["ci"]),
        ],
        "token_grace_secs = 2",
        "leeway_secs = 0",
    )
    .unwrap();
    (provider, agent)
}

/// Browser login for `user`; returns the laptop, signed in.
async fn browser_login(agent: &Agent, user: &'static str) -> Laptop {
    let laptop = Laptop::new(agent);
    let mut run = Running::start(laptop.login_cmd(&["--no-browser"]));
    let url = run.wait_for(url_line);
    let page = drive(move || oidc::drive_login(&url, user)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("You can close this tab"),
        "{}",
        page.body
    );
    let (ok, out, err) = run.finish();
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("as {user}@example.com (groups:")),
        "{out}"
    );
    laptop
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_login_with_pkce_then_connect() {
    let (_provider, agent) = setup(600).await;
    let laptop = browser_login(&agent, "alice").await;
    // No flags needed after login: the agent and its pin were saved.
    let id = laptop.whoami().unwrap();
    assert_eq!(id["user"], "alice@example.com");
    assert_eq!(id["groups"], serde_json::json!(["eng"]));
    let connect = Connect::start_cmd(laptop.hoop(), "echo").unwrap();
    let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut b = [0u8; 2];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hi");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_keyring_falls_back_to_a_private_file_and_says_so() {
    let (_provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    let mut cmd = laptop.login_cmd(&["--no-browser"]);
    cmd.env("HOOP_TOKEN_STORE", "file");
    let mut run = Running::start(cmd);
    let url = run.wait_for(url_line);
    drive(move || oidc::drive_login(&url, "alice")).await;
    let (ok, _, err) = run.finish();
    assert!(ok, "{err}");
    assert!(
        err.contains("no OS keyring is reachable") && err.contains("tokens.json"),
        "{err}"
    );
    let file = laptop.dir.path().join("tokens.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("refresh_token")
    );
    let id = laptop.whoami().unwrap();
    assert_eq!(id["user"], "alice@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_keyring_holds_tokens_inside_a_session() {
    let (provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    // Inside `keyctl session` the kernel keyring is reachable: tokens go
    // there, no file is written, and a second command in the same session
    // finds them.
    let script = format!(
        "set -e; {hoop} login --agent {a} --fingerprint {f} --client-credentials; \
         test ! -e \"$HOOP_CONFIG_DIR/tokens.json\"; {hoop} whoami -o json",
        hoop = bin("hoop").display(),
        a = laptop.agent_addr,
        f = laptop.fingerprint
    );
    let mut cmd = Command::new("keyctl");
    cmd.args(["session", "-", "sh", "-c", &script])
        .env("HOOP_CONFIG_DIR", laptop.dir.path())
        .env("HOOP_CLIENT_ID", oidc::CI_CLIENT_ID)
        .env("HOOP_CLIENT_SECRET", provider.ci_secret())
        .env("HOOP_TOKEN_STORE", "keyring")
        .env_remove("HOOP_TOKEN");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("no OS keyring"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"user\": \"hoop-ci\""), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login() {
    let (_provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    let mut run = Running::start(laptop.login_cmd(&["--device"]));
    let (uri, code) = run.wait_for(|l| {
        let rest = l.strip_prefix("To sign in, open ")?;
        let (uri, code) = rest.split_once(" and enter the code: ")?;
        Some((uri.to_string(), code.trim().to_string()))
    });
    drive(move || oidc::drive_device(&uri, &code, "bob")).await;
    let (ok, out, err) = run.finish();
    assert!(ok, "{err}");
    assert!(out.contains("bob@example.com"), "{out}");
    // Without a terminal, progress is plain lines, not a spinner.
    assert!(
        err.contains("Waiting for the sign-in to be approved"),
        "{err}"
    );
    assert_eq!(
        laptop.whoami().unwrap()["groups"],
        serde_json::json!(["sales"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login_denied() {
    let (_provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    let mut run = Running::start(laptop.login_cmd(&["--device"]));
    let (uri, code) = run.wait_for(|l| {
        let rest = l.strip_prefix("To sign in, open ")?;
        let (uri, code) = rest.split_once(" and enter the code: ")?;
        Some((uri.to_string(), code.trim().to_string()))
    });
    drive(move || oidc::drive_device_deny(&uri, &code)).await;
    let (ok, _, err) = run.finish();
    assert!(!ok);
    assert!(err.contains("the sign-in was denied"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_for_ci_without_a_terminal() {
    let (provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    let out = laptop
        .login_cmd(&["--client-credentials"])
        .env("HOOP_CLIENT_ID", oidc::CI_CLIENT_ID)
        .env("HOOP_CLIENT_SECRET", provider.ci_secret())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = laptop.whoami().unwrap();
    assert_eq!(id["user"], "hoop-ci");
    let list = laptop
        .hoop()
        .args(["connections", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "ci-only");

    let out = laptop
        .login_cmd(&["--client-credentials"])
        .env("HOOP_CLIENT_ID", oidc::CI_CLIENT_ID)
        .env("HOOP_CLIENT_SECRET", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!err.contains("wrong"), "the secret is echoed: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hoop_token_from_the_ci_platform_still_works() {
    let (provider, agent) = setup(600).await;
    // A CI platform minted this token itself (here: client credentials by hand).
    let http = reqwest::Client::new();
    let disc: Value = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok: Value = http
        .post(disc["token_endpoint"].as_str().unwrap())
        .basic_auth(oidc::CI_CLIENT_ID, Some(provider.ci_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap();
    let out = agent.run_hoop(Some(token), &["whoami", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["user"], "hoop-ci");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_outlives_several_access_token_lifetimes() {
    // Access tokens live 4 s; the agent cuts a tunnel 2 s after expiry
    // unless refreshed. Data must keep flowing for well over 3 lifetimes.
    let (_provider, agent) = setup(4).await;
    let laptop = browser_login(&agent, "alice").await;
    let connect = Connect::start_cmd(laptop.hoop(), "echo").unwrap();
    let mut s = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut i = 0u32;
    while started.elapsed() < Duration::from_secs(15) {
        let msg = format!("ping {i:05}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "echo stalled after {:?}; stderr: {}",
                    started.elapsed(),
                    connect.stderr.all()
                )
            })
            .unwrap_or_else(|e| {
                panic!(
                    "connection cut after {:?}: {e}; stderr: {}",
                    started.elapsed(),
                    connect.stderr.all()
                )
            });
        assert_eq!(back, msg.as_bytes());
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // New connections keep working too.
    let mut s2 = tokio::net::TcpStream::connect(connect.addr).await.unwrap();
    s2.write_all(b"new").await.unwrap();
    let mut b = [0u8; 3];
    s2.read_exact(&mut b).await.unwrap();
    drop(connect);
    let mut agent = agent;
    agent.stop();
    let refreshes = agent
        .audit()
        .iter()
        .filter(|e| e["event"] == "token_refreshed")
        .count();
    assert!(
        refreshes >= 3,
        "only {refreshes} refreshes in 15 s of 4 s tokens"
    );
    assert!(!agent.audit().iter().any(|e| e["event"] == "tunnel_expired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_state_or_pkce_challenge_is_refused() {
    let (_provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);

    // A response carrying another state is refused.
    let mut run = Running::start(laptop.login_cmd(&["--no-browser"]));
    let url = run.wait_for(url_line);
    let forged = replace_param(&url, "state", "forged-state");
    let page = drive(move || oidc::drive_login(&forged, "alice")).await;
    assert_eq!(page.status, 400);
    let (ok, _, err) = run.finish();
    assert!(!ok);
    assert!(err.contains("wrong state"), "{err}");

    // A code bound to another PKCE challenge cannot be redeemed with ours.
    let mut run = Running::start(laptop.login_cmd(&["--no-browser"]));
    let url = run.wait_for(url_line);
    let forged = replace_param(
        &url,
        "code_challenge",
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    );
    drive(move || oidc::drive_login(&forged, "alice")).await;
    let (ok, _, err) = run.finish();
    assert!(!ok);
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(laptop.whoami().is_err(), "nothing may be saved");
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_denied_and_idp_down() {
    let (mut provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    let mut run = Running::start(laptop.login_cmd(&["--no-browser"]));
    let url = run.wait_for(url_line);
    drive(move || oidc::drive_abort(&url)).await;
    let (ok, _, err) = run.finish();
    assert!(!ok);
    assert!(err.contains("sign-in was denied"), "{err}");

    provider.stop();
    let out = laptop.login_cmd(&["--no-browser"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the identity provider"), "{err}");
    assert!(err.contains("check that it is reachable"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_removes_tokens_and_revokes_the_refresh_token() {
    let (_provider, agent) = setup(600).await;
    let laptop = browser_login(&agent, "alice").await;
    let store = laptop.dir.path().join("tokens.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    let tokens = saved.as_object().unwrap().values().next().unwrap().clone();
    let out = laptop.hoop().arg("logout").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("refresh token was revoked"));
    assert!(!store.exists());
    let err = laptop.whoami().unwrap_err();
    assert!(
        err.contains("not signed in") && err.contains("hoop login"),
        "{err}"
    );
    // The revoked refresh token no longer works at the provider.
    let resp = reqwest::Client::new()
        .post(tokens["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "hoop-cli"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_port_in_use_is_explained() {
    let (_provider, agent) = setup(600).await;
    let laptop = Laptop::new(&agent);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = laptop
        .login_cmd(&["--no-browser", "--redirect-port", &port])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is in use")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_refresh_says_to_log_in_again() {
    // Tokens live 4 s, so every command refreshes first; after the
    // provider forgets its grants, the refresh is refused.
    let (mut provider, agent) = setup(4).await;
    let laptop = browser_login(&agent, "alice").await;
    assert_eq!(laptop.whoami().unwrap()["user"], "alice@example.com");
    provider.restart().unwrap();
    let err = laptop.whoami().unwrap_err();
    assert!(
        err.contains("your sign-in has ended") && err.contains("hoop login"),
        "{err}"
    );
}
