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

use common::{HOOP_USER, Setup, wait_for};
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

#[path = "kubernetes/exec.rs"]
mod exec;
#[path = "kubernetes/portforward.rs"]
mod portforward;
