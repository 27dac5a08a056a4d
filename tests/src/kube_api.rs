//! A stand-in Kubernetes API server for the tests and the benchmark. No
//! real kube-apiserver can run on the test machines (it needs etcd and
//! cannot be installed here), so this serves just enough of the API, over
//! HTTPS with a CA made by rcgen, for the real `kubectl` to work:
//!
//! - `/version`, `/api`, `/api/v1`, `/apis` (legacy discovery: kubectl
//!   falls back to it when the aggregated form is not offered);
//! - `pods` and `configmaps` in namespaces: list (JSON, or the `Table`
//!   kubectl asks for with `Accept: ...;as=Table`), get, create, patch
//!   (a JSON merge patch, which covers what `kubectl apply` sends for
//!   these kinds), update and delete, `fieldSelector=metadata.name=`;
//! - `watch=true` streams (JSON lines, or `Table` rows) that stay open;
//! - `pods/NAME/log` (`follow=true` keeps sending a line every 100 ms);
//! - `pods/NAME/exec` over WebSocket `v5.channel.k8s.io` (or v4), see
//!   [`exec`]: a tiny shell with `-it`, `cat` with `-i`, a few commands
//!   without; the exit code goes on the status channel;
//! - `pods/NAME/portforward` over SPDY/3.1, tunnelled in WebSocket or
//!   plain (see [`portforward`]), to an echo server standing in for the
//!   pod's port 80.
//!
//! Every API request needs `Authorization: Bearer TOKEN` (else `401`);
//! [`KubeApi::served`] counts those that had it, and
//! [`KubeApi::headers_seen`] keeps the headers of every request and
//! [`KubeApi::execs`] what each exec received and
//! [`KubeApi::portforwards`] what each port-forward carried, so tests can
//! check what reached the API server. `GET /__stats` answers the counters
//! without a token, for the benchmark script.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::harness::TempDir;
use crate::pg::TestCerts;

pub mod exec;
pub mod portforward;
pub mod spdy;

pub use exec::ExecSeen;
pub use portforward::PortForwardSeen;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running stand-in; stops when dropped.
pub struct KubeApi {
    pub addr: SocketAddr,
    /// The CA the server's certificate chains to (PEM file).
    pub ca_path: PathBuf,
    pub token: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    echo: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

struct State {
    token: String,
    served: AtomicU64,
    unauthorized: AtomicU64,
    /// `METHOD path?query` of every authorized request.
    log: Mutex<Vec<String>>,
    /// The headers (lowercase name, value) of every request but `/__stats`.
    headers: Mutex<Vec<Vec<(String, String)>>>,
    objects: Mutex<BTreeMap<(String, String, String), Value>>,
    /// Every exec, in the order they came.
    execs: Mutex<Vec<Arc<Mutex<ExecSeen>>>>,
    /// Every port-forward, in the order they came.
    portforwards: Mutex<Vec<Arc<Mutex<PortForwardSeen>>>>,
    /// The echo server behind every pod's port 80.
    pod_port: SocketAddr,
    /// Answer port-forward's WebSocket upgrade with `400`, as an API
    /// server before 1.30 does.
    refuse_ws_portforward: AtomicBool,
    version: AtomicU64,
    events: broadcast::Sender<(String, String, Value)>,
}

impl KubeApi {
    /// Starts on a free loopback port, requiring `token`.
    pub async fn start(token: &str) -> anyhow::Result<KubeApi> {
        Self::start_on("127.0.0.1:0".parse()?, token).await
    }

    /// Starts on `addr`, requiring `token`.
    pub async fn start_on(addr: SocketAddr, token: &str) -> anyhow::Result<KubeApi> {
        let certs = TestCerts::generate("hoop kube stand-in CA")?;
        let dir = TempDir::new("hoop-kube-api");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &certs.ca_pem)?;
        let chain = rustls_pemfile_certs(&certs.cert_pem)?;
        use rustls::pki_types::pem::PemObject as _;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes())
            .context("server key")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (pod_port, echo) = portforward::echo_server().await?;
        let state = Arc::new(State {
            token: token.to_string(),
            served: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            log: Mutex::default(),
            headers: Mutex::default(),
            objects: Mutex::default(),
            execs: Mutex::default(),
            portforwards: Mutex::default(),
            pod_port,
            refuse_ws_portforward: false.into(),
            version: AtomicU64::new(100),
            events: broadcast::channel(256).0,
        });
        state.put(
            "pods",
            "default",
            json!({
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
                "status": {"phase": "Running"},
            }),
        );
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                // As a real API server (Go) does: without it, a response
                // written in two parts waits out the client's delayed ACK
                // (40 ms) now and then.
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(KubeApi {
            addr,
            ca_path,
            token: token.to_string(),
            state,
            task,
            echo,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// API requests served with the right token.
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Requests refused for a missing or wrong token.
    pub fn unauthorized(&self) -> u64 {
        self.state.unauthorized.load(Ordering::Relaxed)
    }

    /// `METHOD path?query` of each authorized request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The headers of each request so far (authorized or not), names
    /// lowercase.
    pub fn headers_seen(&self) -> Vec<Vec<(String, String)>> {
        self.state
            .headers
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// What each exec so far asked for and received (the last one may
    /// still be running).
    pub fn execs(&self) -> Vec<ExecSeen> {
        snapshot(&self.state.execs)
    }

    /// What each port-forward so far carried (the last ones may still be
    /// running).
    pub fn portforwards(&self) -> Vec<PortForwardSeen> {
        snapshot(&self.state.portforwards)
    }

    /// From now on, answers port-forward's WebSocket upgrade with `400`
    /// (as an API server before 1.30 does), so kubectl falls back to
    /// plain SPDY.
    pub fn refuse_websocket_port_forward(&self) {
        self.state
            .refuse_ws_portforward
            .store(true, Ordering::Relaxed);
    }

    /// Whether an object exists.
    pub fn has(&self, resource: &str, namespace: &str, name: &str) -> bool {
        self.state
            .objects
            .lock()
            .map(|o| o.contains_key(&(resource.into(), namespace.into(), name.into())))
            .unwrap_or(false)
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.task.abort();
        self.echo.abort();
    }
}

fn rustls_pemfile_certs(
    pem: &str,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("server certificate")
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "configmaps" => "ConfigMap",
        _ => "Namespace",
    }
}

impl State {
    fn next_version(&self) -> String {
        (self.version.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }

    /// Stores `obj`, filling in its metadata; returns it and tells watchers.
    fn put(&self, resource: &str, ns: &str, mut obj: Value) -> Value {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let rv = self.next_version();
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let key = (resource.to_string(), ns.to_string(), name.clone());
        let event = if objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let old_meta = objects.get(&key).map(|o| o["metadata"].clone());
        obj["kind"] = kind_of(resource).into();
        obj["apiVersion"] = "v1".into();
        let meta = &mut obj["metadata"];
        meta["namespace"] = ns.into();
        meta["resourceVersion"] = rv.into();
        meta["uid"] = old_meta
            .as_ref()
            .map(|m| m["uid"].clone())
            .unwrap_or_else(|| format!("uid-{resource}-{ns}-{name}").into());
        meta["creationTimestamp"] = old_meta
            .as_ref()
            .map(|m| m["creationTimestamp"].clone())
            .unwrap_or_else(|| "2025-01-01T00:00:00Z".into());
        objects.insert(key, obj.clone());
        let _ = self
            .events
            .send((event.into(), resource.to_string(), obj.clone()));
        obj
    }

    fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .lock()
            .ok()?
            .get(&(resource.into(), ns.into(), name.into()))
            .cloned()
    }

    fn delete(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let obj = self
            .objects
            .lock()
            .ok()?
            .remove(&(resource.into(), ns.into(), name.into()))?;
        let _ = self
            .events
            .send(("DELETED".into(), resource.to_string(), obj.clone()));
        Some(obj)
    }

    fn list(&self, resource: &str, ns: &str, name: Option<&str>) -> Vec<Value> {
        self.objects
            .lock()
            .map(|o| {
                o.iter()
                    .filter(|((r, n, nm), _)| {
                        r == resource && n == ns && name.is_none_or(|x| x == nm)
                    })
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn full(v: impl Into<Bytes>) -> Body {
    Full::new(v.into()).boxed()
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": if code.is_success() { "Success" } else { "Failure" },
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

fn query_map(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/__stats" {
        return json_response(
            StatusCode::OK,
            &json!({"served": st.served.load(Ordering::Relaxed), "unauthorized": st.unauthorized.load(Ordering::Relaxed)}),
        );
    }
    if let Ok(mut seen) = st.headers.lock() {
        seen.push(
            req.headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        );
    }
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == st.token);
    if !authorized {
        st.unauthorized.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    st.served.fetch_add(1, Ordering::Relaxed);
    let line = match req.uri().query() {
        Some(q) => format!("{} {path}?{q}", req.method()),
        None => format!("{} {path}", req.method()),
    };
    if let Ok(mut l) = st.log.lock() {
        l.push(line);
    }
    let parts: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-hoop-standin",
                    "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                    "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ),
        ["apis"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ["api", "v1"] => json_response(StatusCode::OK, &resource_list()),
        ["openapi", "v3"] => json_response(
            StatusCode::OK,
            &json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=standin"}}}),
        ),
        ["openapi", "v3", "api", "v1"] => json_response(StatusCode::OK, &openapi_v1()),
        ["api", "v1", "namespaces", ns, res, rest @ ..]
            if matches!(*res, "pods" | "configmaps") =>
        {
            let ns = ns.to_string();
            let res = res.to_string();
            match rest {
                [] => collection(st, req, &res, &ns).await,
                [name] => object(st, req, &res, &ns, name).await,
                [name, "log"] if res == "pods" => logs(&st, &req, &ns, name),
                [name, "exec"] if res == "pods" => exec::exec(&st, req, &ns, name),
                [name, "portforward"] if res == "pods" => {
                    portforward::portforward(&st, req, &ns, name)
                }
                _ => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            }
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn resource_list() -> Value {
    let res = |name: &str, kind: &str, short: &[&str], verbs: &[&str]| {
        json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind,
               "verbs": verbs, "shortNames": short})
    };
    let all = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        res("pods", "Pod", &["po"], &all),
        {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
        res("configmaps", "ConfigMap", &["cm"], &all),
        // Discovered, not served: for deny rules that refuse them first.
        res("secrets", "Secret", &[], &all),
        {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
         "verbs": ["get", "list"], "shortNames": ["ns"]},
    ]})
}

/// Just enough OpenAPI v3 for kubectl to see that the server validates
/// fields itself (`fieldValidation` on PATCH), so it sends
/// `fieldValidation=Strict` instead of validating against a full schema.
fn openapi_v1() -> Value {
    let mut paths = serde_json::Map::new();
    for (res, kind) in [("pods", "Pod"), ("configmaps", "ConfigMap")] {
        let gvk = json!({"group": "", "version": "v1", "kind": kind});
        let op = json!({"parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                        "x-kubernetes-group-version-kind": gvk, "responses": {}});
        paths.insert(
            format!("/api/v1/namespaces/{{namespace}}/{res}/{{name}}"),
            json!({"get": op, "patch": op, "put": op}),
        );
        paths.insert(
            format!("/api/v1/namespaces/{{namespace}}/{res}"),
            json!({"post": op}),
        );
    }
    json!({"openapi": "3.0.0", "info": {"title": "stand-in", "version": "v1.32.0"}, "paths": paths,
           "components": {"schemas": {}}})
}

fn wants_table(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn table(objects: &[Value], rv: &str) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let status = o["status"]["phase"].as_str().unwrap_or("-");
            json!({"cells": [o["metadata"]["name"], status, "1m"], "object": o})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
           "columnDefinitions": [
               {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
               {"name": "Status", "type": "string", "format": "", "description": "", "priority": 0},
               {"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}],
           "rows": rows})
}

async fn collection(st: Arc<State>, req: Request<Incoming>, res: &str, ns: &str) -> Response<Body> {
    let q = query_map(req.uri().query());
    let by_name = param(&q, "fieldSelector").and_then(|f| f.strip_prefix("metadata.name="));
    match *req.method() {
        Method::GET => {
            let rv = st.version.load(Ordering::Relaxed).to_string();
            let watch = param(&q, "watch").is_some_and(|w| w == "true" || w == "1");
            if watch {
                let since = param(&q, "resourceVersion").filter(|v| !v.is_empty() && *v != "0");
                let initial = if since.is_some() {
                    Vec::new()
                } else {
                    st.list(res, ns, by_name)
                };
                return watch_stream(&st, res, ns, by_name, initial, wants_table(&req));
            }
            let items = st.list(res, ns, by_name);
            if wants_table(&req) {
                return json_response(StatusCode::OK, &table(&items, &rv));
            }
            json_response(
                StatusCode::OK,
                &json!({"kind": format!("{}List", kind_of(res)), "apiVersion": "v1",
                        "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        Method::POST => {
            let Some(body) = read_json(req).await else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON",
                );
            };
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            if name.is_empty() {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name: Required value",
                );
            }
            if st.get(res, ns, &name).is_some() {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{res} {name:?} already exists"),
                );
            }
            json_response(StatusCode::CREATED, &st.put(res, ns, body))
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported by the stand-in",
        ),
    }
}

async fn object(
    st: Arc<State>,
    req: Request<Incoming>,
    res: &str,
    ns: &str,
    name: &str,
) -> Response<Body> {
    let not_found = || {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{res} \"{name}\" not found"),
        )
    };
    match *req.method() {
        Method::GET => match st.get(res, ns, name) {
            Some(o) if wants_table(&req) => json_response(
                StatusCode::OK,
                &table(&[o], &st.version.load(Ordering::Relaxed).to_string()),
            ),
            Some(o) => json_response(StatusCode::OK, &o),
            None => not_found(),
        },
        Method::DELETE => match st.delete(res, ns, name) {
            Some(o) => json_response(StatusCode::OK, &o),
            None => not_found(),
        },
        Method::PUT => match read_json(req).await {
            Some(body) => json_response(StatusCode::OK, &st.put(res, ns, body)),
            None => status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the body is not JSON",
            ),
        },
        Method::PATCH => {
            let Some(mut cur) = st.get(res, ns, name) else {
                return not_found();
            };
            let Some(patch) = read_json(req).await else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON",
                );
            };
            merge_patch(&mut cur, &patch);
            json_response(StatusCode::OK, &st.put(res, ns, cur))
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported by the stand-in",
        ),
    }
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in p {
        if v.is_null() {
            if let Some(t) = target.as_object_mut() {
                t.remove(k);
            }
        } else {
            merge_patch(&mut target[k.as_str()], v);
        }
    }
}

async fn read_json(req: Request<Incoming>) -> Option<Value> {
    let bytes = req.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// A body fed from a channel; ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn streaming(content_type: &'static str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel(16);
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (tx, r)
}

fn watch_stream(
    st: &State,
    res: &str,
    ns: &str,
    by_name: Option<&str>,
    initial: Vec<Value>,
    as_table: bool,
) -> Response<Body> {
    let (tx, resp) = streaming("application/json");
    let mut events = st.events.subscribe();
    let (res, ns, by_name) = (res.to_string(), ns.to_string(), by_name.map(String::from));
    tokio::spawn(async move {
        let line = |kind: &str, obj: &Value| {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("1")
                .to_string();
            let object = if as_table {
                table(std::slice::from_ref(obj), &rv)
            } else {
                obj.clone()
            };
            Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
        };
        for o in &initial {
            if tx.send(line("ADDED", o)).await.is_err() {
                return;
            }
        }
        loop {
            let (kind, r, obj) = tokio::select! {
                e = events.recv() => match e {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                () = tx.closed() => return,
            };
            let matches = r == res
                && obj["metadata"]["namespace"] == ns.as_str()
                && by_name
                    .as_deref()
                    .is_none_or(|n| obj["metadata"]["name"] == n);
            if matches && tx.send(line(&kind, &obj)).await.is_err() {
                return;
            }
        }
    });
    resp
}

fn logs(st: &State, req: &Request<Incoming>, ns: &str, name: &str) -> Response<Body> {
    if st.get("pods", ns, name).is_none() {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
        );
    }
    let q = query_map(req.uri().query());
    let follow = param(&q, "follow") == Some("true");
    let (tx, resp) = streaming("text/plain");
    let name = name.to_string();
    tokio::spawn(async move {
        for i in 1.. {
            if tx
                .send(Bytes::from(format!("{name} log line {i}\n")))
                .await
                .is_err()
            {
                return;
            }
            if !follow && i == 3 {
                return;
            }
            if follow {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    resp
}

/// Copies of what each recorded upgrade saw so far (a poisoned lock still
/// gives its data: a test wants to see what was there).
fn snapshot<T: Clone>(list: &Mutex<Vec<Arc<Mutex<T>>>>) -> Vec<T> {
    list.lock()
        .map(|e| {
            e.iter()
                .map(|x| x.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect()
        })
        .unwrap_or_default()
}
