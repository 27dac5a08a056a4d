//! `kubernetes` connections end to end: the real agent, `hoop connect`
//! writing a kubeconfig, and the real `kubectl` (1.30 or later) on the
//! caller's side. The API server is the stand-in of
//! `hoop_tests::kube_api`: no real kube-apiserver can run on the test
//! machines, so a small HTTPS server serves the parts of the API kubectl
//! uses (discovery, pods and configmaps, watches, logs, exec over
//! WebSocket, port-forward over SPDY in WebSocket or plain) and counts
//! the requests that carried the agent's token.

#[path = "postgres_common/mod.rs"]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{HOOP_USER, Setup, Tmux, wait_for};
use hoop_tests::harness::{Conn, Connect, TempDir};
use hoop_tests::kube_api::KubeApi;
use serde_json::Value;

/// The service-account token the agent injects; must never reach the
/// caller's side.
const TOKEN: &str = "sa-token-only-the-agent-has-5c1e9b";

/// A kubernetes connection named `name` to `api`, its token from the
/// agent's environment (`KUBE_TOKEN`), with extra TOML.
fn kube_conn(name: &str, api: &KubeApi, extra: &str) -> Conn {
    Conn::kubernetes(name, &api.url()).extra(&format!(
        "token = {{ env = \"KUBE_TOKEN\" }}\nca = {:?}\n{extra}",
        api.ca_path.display().to_string()
    ))
}

/// The API stand-in, an agent with `conns` (token in its environment:
/// `agent_token`), and a signed-in caller.
async fn setup(conns: impl FnOnce(&KubeApi) -> Vec<Conn>, agent_token: &str) -> (KubeApi, Setup) {
    let api = KubeApi::start(TOKEN).await.unwrap();
    let s = Setup::start_env(&conns(&api), &[("KUBE_TOKEN", agent_token)]).await;
    (api, s)
}

/// `hoop connect NAME` and the kubeconfig it wrote.
struct Kubectl {
    connect: Connect,
    kubeconfig: PathBuf,
    /// kubectl's HOME (its discovery cache).
    home: TempDir,
}

impl Kubectl {
    fn connect(s: &Setup, name: &str) -> Kubectl {
        let connect = s.connect(name);
        let kubeconfig = s
            .agent
            .dir
            .path()
            .join("cli")
            .join("kube")
            .join(format!("{name}.kubeconfig"));
        assert!(
            kubeconfig.exists(),
            "no kubeconfig at {}",
            kubeconfig.display()
        );
        Kubectl {
            connect,
            kubeconfig,
            home: TempDir::new("hoop-kubectl-home"),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(["--request-timeout", "30s"])
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run kubectl")
    }

    /// Runs kubectl and returns its stdout, failing the test on an error.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes a ConfigMap manifest.
fn manifest(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{value}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value:?}\n"
        ),
    )
    .unwrap();
    path
}

/// Every file under `dir`, read as text.
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, text(&b)));
        }
    }
    out
}

/// The http_request audit event with `verb` (and `name`, when given).
fn kube_event(s: &Setup, verb: &str, name: Option<&str>) -> Value {
    s.wait_event("http_request", |e| {
        e["verb"] == verb && name.is_none_or(|n| e["name"] == n)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_apply_delete_and_logs_through_hoop() {
    let (api, s) = setup(
        |api| vec![kube_conn("prod-k8s", api, "namespace = \"default\"")],
        TOKEN,
    )
    .await;
    let k = Kubectl::connect(&s, "prod-k8s");

    // The kubeconfig: 0600, plain http to the local port, no credential.
    let kc = std::fs::read_to_string(&k.kubeconfig).unwrap();
    assert!(kc.contains("server: \"http://127.0.0.1:"), "{kc}");
    assert!(kc.contains("namespace: \"default\""), "{kc}");
    assert!(kc.contains("current-context: \"prod-k8s\""), "{kc}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k.kubeconfig)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let pods = k.ok(&["get", "pods"]);
    assert!(pods.contains("web") && pods.contains("Running"), "{pods}");
    assert_eq!(k.ok(&["get", "pod", "web", "-o", "name"]).trim(), "pod/web");

    let dir = TempDir::new("hoop-kube-manifests");
    let out = k.ok(&[
        "apply",
        "-f",
        manifest(dir.path(), "settings", "one").to_str().unwrap(),
    ]);
    assert!(out.contains("configmap/settings created"), "{out}");
    let out = k.ok(&[
        "apply",
        "-f",
        manifest(dir.path(), "settings", "two").to_str().unwrap(),
    ]);
    assert!(out.contains("configmap/settings configured"), "{out}");
    assert_eq!(
        k.ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.key}"]),
        "two"
    );
    let out = k.ok(&["delete", "configmap", "settings"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(!api.has("configmaps", "default", "settings"));

    // logs -f: the stream keeps coming until kubectl is stopped.
    let mut child = k
        .cmd(&["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut got = String::new();
        let mut buf = [0u8; 256];
        while !got.contains("web log line 5\n") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        got
    });
    let got = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .expect("logs -f kept streaming")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        got.contains("web log line 1\n") && got.contains("web log line 5\n"),
        "{got}"
    );

    // The audit log names each request's verb, resource, namespace, name.
    let list = kube_event(&s, "list", None);
    assert_eq!(list["resource"], "pods");
    assert_eq!(list["namespace"], "default");
    assert_eq!(list["version"], "v1");
    assert!(list.get("api_group").is_none(), "{list}");
    let created = kube_event(&s, "create", None);
    assert_eq!(created["resource"], "configmaps");
    assert_eq!(created["status"], 201);
    assert_eq!(
        kube_event(&s, "patch", Some("settings"))["resource"],
        "configmaps"
    );
    let deleted = kube_event(&s, "delete", Some("settings"));
    assert_eq!(deleted["namespace"], "default");
    assert_eq!(deleted["user"], HOOP_USER);
    let log = kube_event(&s, "log", Some("web"));
    assert_eq!(log["subresource"], "log");
    let version = s.wait_event("http_request", |e| e["path"] == "/api/v1");
    assert!(version.get("resource").is_none(), "{version}");

    // The agent's token, and only it, reached the API server; nothing on
    // the caller's side holds it (hoop's config dir with the kubeconfig,
    // kubectl's home with its caches).
    assert!(api.served() > 5, "{}", api.served());
    assert_eq!(api.unauthorized(), 0);
    assert_only_token(&api, TOKEN);
    for dir in [s.agent.dir.path().join("cli"), k.home.path().to_path_buf()] {
        for (path, body) in files_under(&dir) {
            assert!(!body.contains(TOKEN), "the token is in {}", path.display());
        }
    }
}

/// Every request the API server saw carried one `Authorization`, the
/// agent's `token`, and no `Impersonate-*` header.
fn assert_only_token(api: &KubeApi, token: &str) {
    let seen = api.headers_seen();
    assert!(!seen.is_empty());
    for headers in &seen {
        let auth: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(auth, [format!("Bearer {token}")], "{headers:?}");
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k.starts_with("impersonate-") || v.contains("caller-token")),
            "{headers:?}"
        );
    }
}

/// `curl` to the local port of `k` with extra arguments; the status
/// code and body.
fn curl(k: &Kubectl, path: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--path-as-is", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://{}{path}", k.connect.addr))
        .output()
        .expect("run curl");
    let body = text(&out.stdout);
    let (body, code) = body.rsplit_once('\n').expect("curl printed a status");
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn caller_tokens_and_impersonation_never_reach_the_api_server() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");

    // The caller's own token is dropped; the agent's is sent.
    let pods = k.ok(&["--token=caller-token", "get", "pods", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/web");
    let (code, body) = curl(
        &k,
        "/api/v1/namespaces/default/pods",
        &["-H", "Authorization: Bearer caller-token"],
    );
    assert_eq!(code, 200, "{body}");

    // Impersonation is refused before the API server, with a reason.
    let before = api.headers_seen().len();
    for args in [
        &["--token=caller-token", "--as=x", "get", "pods"][..],
        &["--as=x", "--as-group=system:masters", "get", "pods"],
        &[
            "--as=x",
            "--as-uid=1",
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
        ],
    ] {
        let out = k.run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("impersonate-"), "{args:?}: {err}");
        assert!(err.contains("refuses impersonation"), "{args:?}: {err}");
    }
    let (code, body) = curl(&k, "/api/v1/pods", &["-H", "Impersonate-Extra-Scopes: x"]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("impersonate-extra-scopes"), "{body}");
    assert_eq!(
        api.headers_seen().len(),
        before,
        "a refused request reached the API server"
    );
    let ev = s.wait_event("http_request", |e| e["rule"] == "impersonate");
    assert_eq!(ev["outcome"], "refused");
    assert_eq!(ev["status"], 403);
    assert_only_token(&api, TOKEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn example_deny_rules_match_the_canonical_request() {
    let rules = r#"
[[connection.deny]]
pattern = '^\w+ /api/v1/(namespaces/[^/]+/)?secrets(/|$)'
message = "secrets are not readable through hoop"

[[connection.deny]]
pattern = '^(create|update|patch|delete|deletecollection) /(api/v1|apis/[^/]+/[^/]+)/namespaces/kube-system(/|$)'
message = "kube-system is changed through the platform team's pipeline"

[[connection.deny]]
pattern = '^\w+ /api/v1/nodes/[^/]+/proxy(/|$)'
message = "the kubelet API is not reachable through hoop"
"#;
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, rules)], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    assert!(k.ok(&["get", "pods"]).contains("web"));
    let before = api.requests().len();
    for (args, says) in [
        (&["get", "secrets", "-A"][..], "secrets are not readable"),
        (&["get", "secrets", "-n", "x"], "secrets are not readable"),
        (
            &["get", "--raw", "/api/v1/watch/namespaces/x/secrets/y"],
            "secrets are not readable",
        ),
        (
            &["get", "--raw", "/api/v1/namespaces/x/secrets/y/?watch=true"],
            "secrets are not readable",
        ),
        (
            &["delete", "--raw", "/api/v1/namespaces/kube-system"],
            "kube-system is changed",
        ),
        (
            &[
                "delete",
                "--raw",
                "/apis/apps/v1/namespaces/kube-system/deployments/d",
            ],
            "kube-system is changed",
        ),
        (
            &["get", "--raw", "/api/v1/nodes/n1/proxy/configz"],
            "kubelet API",
        ),
    ] {
        let out = k.run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let after = api.requests();
    assert_eq!(after.len(), before, "{:?}", &after[before..]);
    let ev = s.wait_event("http_request", |e| {
        e["outcome"] == "refused" && e["verb"] == "list" && e["resource"] == "secrets"
    });
    assert!(ev.get("namespace").is_none(), "{ev}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_requests_other_hosts_and_unrecorded_upgrades_are_refused() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    let (code, body) = curl(&k, "/api/v1/namespaces/default/pods", &[]);
    assert_eq!(code, 200, "{body}");
    let before = api.headers_seen().len();

    // Empty segments: the API server would list secrets everywhere.
    let (code, body) = curl(&k, "/api/v1/namespaces//secrets", &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("empty segment"), "{body}");
    let (code, body) = curl(&k, "/api/v1/namespaces/a/pods?watch=false;x", &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("%3B"), "{body}");

    // DNS rebinding: a page's requests carry its own host name.
    for host in ["evil.example", "evil.example:8002", "10.1.2.3"] {
        let (code, body) = curl(
            &k,
            "/api/v1/namespaces/default/pods",
            &["-H", &format!("Host: {host}")],
        );
        assert_eq!(code, 403, "{host}: {body}");
        assert!(body.contains("--accept-hosts"), "{body}");
    }
    let (code, _) = curl(
        &k,
        "/api/v1/namespaces/default/pods",
        &["-H", "Host: localhost"],
    );
    assert_eq!(code, 200);

    // Upgrades other than exec, attach and port-forward.
    let ws = [
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    for path in [
        "/api/v1/nodes/n1/proxy/exec/default/web/app?command=sh",
        "/api/v1/namespaces/default/services/s/proxy/",
    ] {
        let (code, body) = curl(&k, path, &ws);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("unrecorded"), "{body}");
    }
    // A page on any site can aim a WebSocket at 127.0.0.1 (no CORS for
    // WebSocket): its Origin gives it away, and kubectl sends none.
    let mut from_page = ws.to_vec();
    from_page.extend(["-H", "Origin: https://evil.example"]);
    let exec = "/api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true&stdout=true";
    let (code, body) = curl(&k, exec, &from_page);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("web page"), "{body}");
    let (code, body) = curl(
        &k,
        "/api/v1/namespaces/default/pods",
        &["-H", "Origin: http://127.0.0.1"],
    );
    assert_eq!(code, 403, "{body}");
    // Two good requests reached the API server, nothing else did.
    assert_eq!(api.headers_seen().len(), before + 1);
    s.wait_event("http_request", |e| e["rule"] == "origin");
    let ev = s.wait_event("http_request", |e| e["rule"] == "host");
    assert_eq!(ev["outcome"], "refused");
    s.wait_event("http_request", |e| e["rule"] == "upgrade");
    s.wait_event("http_request", |e| e["rule"] == "path");
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_stream_and_two_kubectls_share_a_connection() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    let dir = TempDir::new("hoop-kube-watch");
    let mut watch = k
        .cmd(&["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The watch is open once the agent has forwarded it.
    wait_for("the watch request", || {
        api.requests()
            .iter()
            .any(|r| r.contains("configmaps?") && r.contains("watch=true"))
            .then_some(())
    })
    .unwrap();
    // Two kubectl processes at once, while the watch stays open.
    let a = k
        .cmd(&[
            "apply",
            "-f",
            manifest(dir.path(), "first", "1").to_str().unwrap(),
        ])
        .output();
    let b = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            k.run(&[
                "apply",
                "-f",
                manifest(dir.path(), "second", "2").to_str().unwrap(),
            ])
        });
        let pods = k.ok(&["get", "pods", "-o", "name"]);
        assert_eq!(pods.trim(), "pod/web");
        h.join().unwrap()
    });
    for out in [a.unwrap(), b] {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let mut stdout = watch.stdout.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        let mut got = String::new();
        let mut buf = [0u8; 256];
        while !(got.contains("first") && got.contains("second")) {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        got
    });
    let got = tokio::time::timeout(Duration::from_secs(30), seen)
        .await
        .expect("the watch showed both configmaps")
        .unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(got.contains("first") && got.contains("second"), "{got}");
    let w = kube_event(&s, "watch", None);
    assert_eq!(w["resource"], "configmaps");
}

/// The exec event whose recording's header names `command`.
fn exec_event(s: &Setup, command: &str) -> Value {
    s.wait_event("http_request", |e| {
        e["verb"] == "exec"
            && e["recording"].as_str().is_some_and(|r| {
                std::fs::read_to_string(s.agent.data_dir().join(r)).is_ok_and(|b| {
                    b.lines()
                        .next()
                        .and_then(|h| serde_json::from_str::<Value>(h).ok())
                        .is_some_and(|h| h["command"] == command)
                })
            })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_over_websocket_is_recorded_and_replays() {
    let (_api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");

    assert_eq!(
        k.ok(&["exec", "web", "--", "echo", "marker-77"]),
        "marker-77\n"
    );
    let out = k.run(&["exec", "web", "--", "false"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = k.run(&["exec", "web", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = k.run(&["exec", "web", "--", "no-such-command"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );

    let mut child = k
        .cmd(&["exec", "-i", "web", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed-input-31\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "typed-input-31\n");

    let ev = kube_event(&s, "exec", None);
    assert_eq!(ev["resource"], "pods");
    assert_eq!(ev["name"], "web");
    assert_eq!(ev["subresource"], "exec");
    assert_eq!(ev["status"], 101);
    let recording = ev["recording"].as_str().expect("a recording").to_string();
    let cast = s.agent.data_dir().join(&recording);
    let body = std::fs::read_to_string(&cast).unwrap();
    let header: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(body.contains("marker-77"), "{body}");

    // The exit status from the status channel, in each exec's event.
    for (command, code) in [("echo marker-77", 0), ("false", 1), ("sh -c exit 3", 3)] {
        let ev = exec_event(&s, command);
        assert_eq!(ev["exit_status"], code, "{command}: {ev}");
        assert_eq!(ev["outcome"], "ok", "{command}: {ev}");
    }
    // A command that never ran: no exit status, the API server's reason.
    let ev = exec_event(&s, "no-such-command");
    assert!(ev.get("exit_status").is_none(), "{ev}");
    assert_eq!(ev["outcome"], "error", "{ev}");
    assert!(
        ev["error"]
            .as_str()
            .is_some_and(|e| e.contains("executable file not found")),
        "{ev}"
    );

    // The cat session recorded its input and output.
    let cat = s.wait_event("http_request", |e| {
        e["verb"] == "exec" && e["recording"].is_string() && e["outcome"] == "ok" && {
            let p = s
                .agent
                .data_dir()
                .join(e["recording"].as_str().unwrap_or(""));
            std::fs::read_to_string(p).is_ok_and(|b| b.contains("\"i\",\"typed-input-31"))
        }
    });
    let name = Path::new(cat["recording"].as_str().unwrap())
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let out = s
        .agent
        .run_hoop(Some(&s.token), &["sessions", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recording"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in {list}"));
    assert_eq!(entry["request"], "exec");
    assert_eq!(entry["command"], "cat");
    let out = s.agent.run_hoop(
        Some(&s.token),
        &["replay", &name, "--speed", "50", "--idle-limit", "0.1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("typed-input-31"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spdy_exec_is_refused_with_a_way_forward() {
    let (_api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    let out = k
        .cmd(&["exec", "web", "--", "echo", "hi"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("kubectl 1.30 or later"), "{err}");
    let ev = s.wait_event("http_request", |e| e["verb"] == "exec");
    assert_eq!(ev["outcome"], "refused");
    assert_eq!(ev["rule"], "recording");
    assert!(ev.get("recording").is_none(), "{ev}");
    let recordings = s.agent.data_dir().join("recordings");
    assert!(
        files_under(&recordings).is_empty(),
        "nothing to record, nothing kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_deny_rules_refuse_before_the_api_server() {
    let (api, s) = setup(
        |api| {
            vec![
                kube_conn("ro", api, "read_only = true"),
                kube_conn(
                    "nodelete",
                    api,
                    "[[connection.deny]]\npattern = \"^delete \"\nmessage = \"deletes go through change review\"",
                ),
            ]
        },
        TOKEN,
    )
    .await;
    let ro = Kubectl::connect(&s, "ro");
    assert!(ro.ok(&["get", "pods"]).contains("web"));
    let out = ro.run(&["delete", "pod", "web"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    let out = ro.run(&["exec", "web", "--", "echo", "hi"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(api.has("pods", "default", "web"));
    assert!(!api.requests().iter().any(|r| r.starts_with("DELETE")));
    let ev = kube_event(&s, "delete", Some("web"));
    assert_eq!(ev["outcome"], "refused");
    assert_eq!(ev["rule"], "read_only");

    let nd = Kubectl::connect(&s, "nodelete");
    let out = nd.run(&["delete", "pod", "web"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("deletes go through change review"),
        "{}",
        text(&out.stderr)
    );
    assert!(api.has("pods", "default", "web"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_a_clear_error() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], "not-the-token").await;
    let k = Kubectl::connect(&s, "k8s");
    let out = k.run(&["get", "pods"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("refused the token"), "{err}");
    assert!(!err.contains("not-the-token"), "{err}");
    assert!(api.unauthorized() > 0);
    assert_eq!(api.served(), 0);
    // The token the API server refused was the agent's, not the caller's.
    let out = k.run(&["--token=caller-token", "get", "pods"]);
    assert!(!out.status.success());
    assert_only_token(&api, "not-the-token");
}

#[tokio::test(flavor = "multi_thread")]
async fn interactive_exec_with_a_tty_resizes_and_an_exit_status() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    let tmux = Tmux {
        socket: k.home.path().join("tmux.sock"),
        session: "kube",
    };
    // kubectl in a terminal of 100x30; its exit code shown after it.
    let mut start = tmux.cmd();
    start
        .env("KUBECONFIG", &k.kubeconfig)
        .env("HOME", k.home.path())
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .args(["new-session", "-d", "-s", "kube", "-x", "100", "-y", "30"])
        .arg("kubectl --request-timeout 30s exec -it web -- sh; echo kubectl-exit-$?; sleep 30");
    let out = start.output().unwrap();
    assert!(out.status.success(), "tmux: {}", text(&out.stderr));

    tmux.wait_for_line("standin$");
    tmux.keys(&["echo hello-tty-5", "Enter"]);
    // The stand-in echoes what is typed (kubectl put the terminal in raw
    // mode), then runs it.
    let screen = tmux.wait_for_line("hello-tty-5");
    assert!(screen.contains("standin$ echo hello-tty-5"), "{screen}");
    // kubectl sends the terminal's size as the stream starts.
    wait_for("the first resize at the stand-in", || {
        api.execs()
            .last()
            .is_some_and(|e| !e.resizes.is_empty())
            .then_some(())
    })
    .unwrap();
    tmux.keys(&["size", "Enter"]);
    tmux.wait_for_line("size 100x30");
    tmux.run(&["resize-window", "-t", "kube", "-x", "120", "-y", "40"]);
    // kubectl sends the new size on channel 4 when it sees SIGWINCH.
    wait_for("the resize at the stand-in", || {
        api.execs()
            .last()
            .is_some_and(|e| e.resizes.contains(&(120, 40)))
            .then_some(())
    })
    .unwrap();
    tmux.keys(&["size", "Enter"]);
    tmux.wait_for_line("size 120x40");
    tmux.keys(&["exit 7", "Enter"]);
    tmux.wait_for_line("kubectl-exit-7");

    let seen = api.execs();
    let seen = seen.last().unwrap();
    assert_eq!(seen.command, ["sh"]);
    assert!(seen.tty && seen.stdin, "{seen:?}");
    assert_eq!(seen.resizes.first(), Some(&(100, 30)), "{seen:?}");
    assert_eq!(seen.exit_code, Some(7));
    assert!(text(&seen.input).contains("echo hello-tty-5\r"), "{seen:?}");

    // The audit event: the exit status and the recording.
    let ev = s.wait_event("http_request", |e| {
        e["verb"] == "exec" && e["exit_status"].is_number()
    });
    assert_eq!(ev["exit_status"], 7, "{ev}");
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert_eq!(ev["status"], 101, "{ev}");
    let rel = ev["recording"].as_str().expect("a recording");
    let body = std::fs::read_to_string(s.agent.data_dir().join(rel)).unwrap();
    let mut lines = body.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["command"], "sh");
    assert_eq!(header["env"]["TERM"], "xterm", "{header}");

    let events: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let joined = |kind: &str| {
        events
            .iter()
            .filter(|e| e[1] == kind)
            .map(|e| e[2].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(joined("o").concat().contains("hello-tty-5\r\n"), "{body}");
    assert!(joined("o").concat().contains("size 120x40"), "{body}");
    assert!(joined("i").concat().contains("echo hello-tty-5"), "{body}");
    let resizes = joined("r");
    // kubectl's first size is the header's when it comes before any
    // output, else the first resize event (the stand-in's prompt races it).
    assert!(
        (header["width"] == 100 && header["height"] == 30)
            || resizes.first().is_some_and(|r| r == "100x30"),
        "{header} {body}"
    );
    assert!(resizes.iter().any(|r| r == "120x40"), "{body}");

    let name = Path::new(rel).file_stem().unwrap().to_string_lossy();
    let out = s.agent.run_hoop(
        Some(&s.token),
        &["replay", &name, "--speed", "50", "--idle-limit", "0.1"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed = text(&out.stdout);
    assert!(
        replayed.contains("standin$ echo hello-tty-5\r\nhello-tty-5\r\n"),
        "{replayed}"
    );
    assert!(replayed.contains("size 120x40"), "{replayed}");
}

/// `kubectl port-forward pod/web :80` with `cmd` (whose stdout is taken),
/// once it listens: the child and its local port.
struct PortForward {
    child: std::process::Child,
    port: u16,
    /// What kubectl printed on stderr so far.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PortForward {
    /// `websocket`: kubectl's default path, else
    /// `KUBECTL_PORT_FORWARD_WEBSOCKETS=false` (plain SPDY).
    async fn start(cmd: Command, websocket: bool) -> PortForward {
        Self::to_port(cmd, websocket, 80).await
    }

    /// As [`PortForward::start`], to the pod's port `remote`.
    async fn to_port(mut cmd: Command, websocket: bool, remote: u16) -> PortForward {
        cmd.args(["port-forward", "--address", "127.0.0.1", "pod/web"])
            .arg(format!(":{remote}"))
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if websocket { "true" } else { "false" },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl port-forward");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
                l.strip_prefix("Forwarding from 127.0.0.1:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
            });
            // Keep draining ("Handling connection for 80" per connection).
            std::thread::spawn(move || lines.for_each(drop));
            port
        });
        let port = tokio::time::timeout(Duration::from_secs(30), port)
            .await
            .expect("kubectl port-forward listened")
            .unwrap();
        let Some(port) = port else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            panic!("kubectl port-forward did not listen: {err}");
        };
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let e = err.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        PortForward {
            child,
            port,
            stderr: err,
        }
    }

    /// Sends `payload`, closes the sending side, and returns all that came
    /// back before the far end closed.
    async fn echo(&self, payload: Vec<u8>) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let round_trip = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .expect("connect to the forwarded port");
            let (mut r, mut w) = tcp.into_split();
            let send = tokio::spawn(async move {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            send.await.unwrap();
            got
        };
        tokio::time::timeout(Duration::from_secs(60), round_trip)
            .await
            .expect("echo round trip")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

/// 1 MiB that is not one byte repeated.
fn mebibyte() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// An echo, 1 MiB with a checksum, and two connections at once through
/// `pf`; returns the bytes it sent.
async fn exercise(pf: &PortForward) -> u64 {
    assert_eq!(pf.echo(b"hello pod\n".to_vec()).await, b"hello pod\n");
    let big = mebibyte();
    let back = pf.echo(big.clone()).await;
    assert_eq!(back.len(), big.len());
    assert_eq!(sha256(&back), sha256(&big));
    let (a, b) = tokio::join!(pf.echo(vec![b'a'; 70_000]), pf.echo(vec![b'b'; 50_000]));
    assert!(a.len() == 70_000 && a.iter().all(|&x| x == b'a'));
    assert!(b.len() == 50_000 && b.iter().all(|&x| x == b'b'));
    10 + (1 << 20) + 70_000 + 50_000
}

/// The stand-in's record of the port-forwards once `n` data streams have
/// each ended with FIN.
fn forwarded(api: &KubeApi, n: u32) -> Vec<hoop_tests::kube_api::PortForwardSeen> {
    tokio::task::block_in_place(|| {
        wait_for("the port-forward streams to end", || {
            let all = api.portforwards();
            (all.iter().map(|p| p.finished).sum::<u32>() >= n).then_some(all)
        })
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", api.portforwards()))
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_against_the_stand_in_over_websocket_and_spdy() {
    let api = KubeApi::start(TOKEN).await.unwrap();
    let home = TempDir::new("hoop-kubectl-home");
    let direct = || {
        let mut c = Command::new("kubectl");
        c.args([
            "--request-timeout",
            "30s",
            "--server",
            &api.url(),
            "--token",
            TOKEN,
        ])
        .arg(format!("--certificate-authority={}", api.ca_path.display()))
        .env("KUBECONFIG", home.path().join("none"))
        .env("HOME", home.path())
        .stdin(Stdio::null());
        c
    };
    for (websocket, transport) in [(true, "websocket"), (false, "spdy")] {
        let before = api.portforwards().len();
        let before_finished: u32 = api.portforwards().iter().map(|p| p.finished).sum();
        let pf = PortForward::start(direct(), websocket).await;
        let sent = exercise(&pf).await;
        let seen = forwarded(&api, before_finished + 4);
        pf.stop();
        let seen = &seen[before..];
        assert_eq!(seen.len(), 1, "one upgraded connection: {seen:?}");
        assert_eq!(seen[0].transport, transport);
        assert_eq!(seen[0].ports, [80, 80, 80, 80]);
        assert_eq!(seen[0].bytes_in, sent);
        assert_eq!(seen[0].bytes_out, sent);
    }

    // A port the pod does not listen on: the error stream says so, and
    // kubectl shows it.
    let pf = PortForward::to_port(direct(), true, 81).await;
    assert_eq!(pf.echo(b"anyone?".to_vec()).await, b"");
    tokio::task::block_in_place(|| {
        wait_for("kubectl to print the error stream", || {
            let err = pf.stderr.lock().unwrap().clone();
            err.contains("error forwarding port 81 to pod web")
                .then_some(())
        })
    })
    .unwrap_or_else(|e| panic!("{e}: {}", pf.stderr.lock().unwrap()));
    pf.stop();
    assert_eq!(api.portforwards().last().unwrap().ports, [81]);
    assert_eq!(api.unauthorized(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_through_hoop_over_websocket_and_spdy() {
    let (api, s) = setup(|api| vec![kube_conn("k8s", api, "")], TOKEN).await;
    let k = Kubectl::connect(&s, "k8s");
    // kubectl's default, then plain SPDY asked for, then plain SPDY as
    // kubectl's fallback when the WebSocket upgrade is refused.
    for (websocket, transport, refuse) in [
        (true, "websocket", false),
        (false, "spdy", false),
        (true, "spdy", true),
    ] {
        if refuse {
            api.refuse_websocket_port_forward();
        }
        let before = api.portforwards().len();
        let before_finished: u32 = api.portforwards().iter().map(|p| p.finished).sum();
        let pf = PortForward::start(k.cmd(&[]), websocket).await;
        let sent = exercise(&pf).await;
        let seen = forwarded(&api, before_finished + 4);
        pf.stop();
        let seen = &seen[before..];
        assert_eq!(seen.len(), 1, "one upgraded connection: {seen:?}");
        assert_eq!(seen[0].transport, transport);
        assert_eq!(seen[0].ports, [80, 80, 80, 80]);
        assert_eq!(seen[0].bytes_in, sent);
        assert_eq!(seen[0].bytes_out, sent);
    }

    // The agent's token, and only it, reached the API server.
    assert_eq!(api.unauthorized(), 0);
    assert_only_token(&api, TOKEN);
    let upgrades: Vec<String> = api
        .headers_seen()
        .iter()
        .filter_map(|h| {
            h.iter()
                .find(|(k, _)| k == "upgrade")
                .map(|(_, v)| v.to_ascii_lowercase())
        })
        .collect();
    assert_eq!(upgrades, ["websocket", "spdy/3.1", "websocket", "spdy/3.1"]);

    // The audit log has each port-forward request.
    let events = s.wait_audit("four portforward events", |evs| {
        let pf: Vec<Value> = evs
            .iter()
            .filter(|e| e["event"] == "http_request" && e["verb"] == "portforward")
            .cloned()
            .collect();
        (pf.len() >= 4).then_some(pf)
    });
    let statuses: Vec<&Value> = events.iter().map(|e| &e["status"]).collect();
    assert_eq!(statuses, [101, 101, 400, 101], "{events:?}");
    for ev in &events {
        assert_eq!(ev["resource"], "pods", "{ev}");
        assert_eq!(ev["subresource"], "portforward", "{ev}");
        assert_eq!(ev["namespace"], "default", "{ev}");
        assert_eq!(ev["name"], "web", "{ev}");
        assert_eq!(ev["user"], HOOP_USER, "{ev}");
    }
}
