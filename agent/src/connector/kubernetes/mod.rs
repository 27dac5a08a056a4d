//! The `kubernetes` connector: the `http` connector (see
//! [`crate::connector::http`]) with what a cluster needs on top:
//!
//! - the service-account token injected as `Authorization: Bearer`, the
//!   API server verified against the connection's `ca` (set up by
//!   [`crate::connector::http::Backend`]);
//! - each request's audit event names its verb, API group, version,
//!   resource, subresource, namespace and name ([`path`]);
//! - requests the API server could read differently from the agent are
//!   refused before any rule: empty path segments (`//`), `\`, encoded
//!   `/` or `\`, a `;` in the query, a method the API does not use; so
//!   are `Impersonate-*` headers, which would make the API server act as
//!   someone else with the agent's token ([`request_refusal`]);
//! - `deny` patterns match `"VERB /path"` with the lowercase Kubernetes
//!   verb and the canonical path of [`ApiRequest::path`], e.g.
//!   `^delete `, `^exec `, `^\w+ /api/v1/(namespaces/[^/]+/)?secrets(/|$)`;
//!   `read_only` lets only `get`, `list`, `watch` and `log` (and
//!   non-resource `GET`s) through;
//! - `exec` and `attach` over WebSocket (`v5.channel.k8s.io`,
//!   `v4.channel.k8s.io`, kubectl 1.30 and later) are recorded like SSH
//!   sessions ([`exec`]); over SPDY, which the agent cannot read, they
//!   are refused; `pods/portforward` passes through unrecorded; every
//!   other upgrade (`nodes/proxy`, a service proxy, an aggregated API's
//!   console) is refused, as it would pass unrecorded;
//! - the agent's own answers are Kubernetes `Status` objects, so kubectl
//!   prints their message.

mod exec;
pub mod path;
pub mod ws;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use exec::{RECORDED_PROTOCOLS, TerminalInfo};
pub use exec::{Terminal, splice};
pub use path::ApiRequest;

use crate::audit::KubeRequest;
use crate::config::ConnectionConfig;
use crate::connector::http::{Body, full};

/// What a kubernetes connection adds to one caller connection.
pub struct Kube {
    record_input: bool,
    data_dir: PathBuf,
    /// Recordings made so far on this caller connection.
    recordings: AtomicU32,
}

/// How an upgrade request is handled.
pub enum UpgradePlan {
    /// Spliced unread: `pods/portforward` only.
    Pass,
    /// `exec`/`attach` over WebSocket: the subprotocols to offer the API
    /// server (only those the agent records), and the recording.
    Record {
        protocols: HeaderValue,
        terminal: Box<Terminal>,
    },
}

/// The agent's refusal of a request.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub rule: &'static str,
    pub message: String,
}

impl Kube {
    pub fn new(cfg: &ConnectionConfig, data_dir: PathBuf) -> Kube {
        Kube {
            record_input: cfg.record_input,
            data_dir,
            recordings: AtomicU32::new(0),
        }
    }

    /// Parses a request; `path` is the normalized path.
    pub fn classify(&self, method: &Method, path: &str, query: Option<&str>) -> ApiRequest {
        path::parse(method, path, query)
    }

    /// Decides what to do with a request that asks to upgrade to
    /// `protocol`: record it, pass it, or refuse it.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_upgrade(
        &self,
        req: &ApiRequest,
        protocol: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        session: &str,
        connection: &str,
        user: &str,
    ) -> Result<UpgradePlan, Refusal> {
        if !req.is_terminal() {
            if req.verb == "portforward" {
                return Ok(UpgradePlan::Pass);
            }
            let what = match (&req.resource, &req.subresource) {
                (Some(r), Some(s)) => format!("{r}/{s}"),
                (Some(r), None) => r.clone(),
                _ => req.path.clone(),
            };
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                rule: "upgrade",
                message: format!(
                    "{what} asks to upgrade to {protocol}, which would pass unrecorded; \
                     this connection passes protocol upgrades only for exec and attach (recorded) and port-forward"
                ),
            });
        }
        if !protocol.eq_ignore_ascii_case("websocket") {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                rule: "recording",
                message: format!(
                    "kubectl {} over {protocol} cannot be recorded, and this connection records every {}; \
                     use kubectl 1.30 or later, which speaks WebSocket (and do not set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)",
                    req.verb, req.verb
                ),
            });
        }
        let offered: Vec<String> = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .collect();
        let kept: Vec<&str> = RECORDED_PROTOCOLS
            .iter()
            .copied()
            .filter(|p| offered.iter().any(|o| o == p))
            .collect();
        if kept.is_empty() {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                rule: "recording",
                message: format!(
                    "{} over WebSocket is recorded, which needs subprotocol {}; the client offered {:?}; use kubectl 1.30 or later",
                    req.verb,
                    RECORDED_PROTOCOLS.join(" or "),
                    offered.join(", ")
                ),
            });
        }
        let protocols = HeaderValue::from_str(&kept.join(", ")).map_err(|_| Refusal {
            status: StatusCode::BAD_REQUEST,
            rule: "recording",
            message: "bad Sec-WebSocket-Protocol".into(),
        })?;
        let (command, tty) = exec_params(query);
        let n = self.recordings.fetch_add(1, Ordering::Relaxed);
        let name = if n == 0 {
            format!("{session}.cast")
        } else {
            format!("{session}-{}.cast", n + 1)
        };
        let path = crate::connector::ssh::sessions::dir(&self.data_dir).join(name);
        let terminal = Terminal::create(TerminalInfo {
            data_dir: &self.data_dir,
            path,
            session,
            connection,
            user,
            request: &req.verb,
            command,
            tty,
            record_input: self.record_input,
        })
        .map_err(|e| {
            tracing::error!(error = %e, "cannot start a recording");
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                rule: "recording",
                message: format!(
                    "the agent cannot start the recording this {} needs, so it was not started",
                    req.verb
                ),
            }
        })?;
        Ok(UpgradePlan::Record {
            protocols,
            terminal: Box::new(terminal),
        })
    }
}

/// Methods of the Kubernetes API.
const METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Why a kubernetes connection refuses a request before its rules, if it
/// does: a method the API does not use (the verb would be the method,
/// which rules and `read_only` cannot foresee), a path or query the API
/// server could read differently from the agent's checks (kubectl sends
/// none of them), or impersonation.
pub fn request_refusal(
    method: &Method,
    raw_path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Refusal> {
    let bad = |rule, message| {
        Some(Refusal {
            status: StatusCode::BAD_REQUEST,
            rule,
            message,
        })
    };
    if !METHODS.contains(method) {
        return Some(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            rule: "method",
            message: format!("{method} is not a method of the Kubernetes API"),
        });
    }
    let lower = raw_path.to_ascii_lowercase();
    if raw_path.contains("//") {
        // The API server reads `namespaces//secrets` as secrets of every
        // namespace; the agent's checks would see `namespaces/secrets`.
        return bad(
            "path",
            format!("the path {raw_path:?} has an empty segment (//); ask for the path without it"),
        );
    }
    if raw_path.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
        return bad(
            "path",
            format!(
                "the path {raw_path:?} has a backslash or an encoded slash, which Kubernetes paths never need"
            ),
        );
    }
    if let Some(m) = path::query_problem(query) {
        return bad("query", m);
    }
    if let Some(name) = headers
        .keys()
        .find(|n| n.as_str().starts_with("impersonate-"))
    {
        return Some(Refusal {
            status: StatusCode::FORBIDDEN,
            rule: "impersonate",
            message: format!(
                "the request carries the header {name}, and this connection refuses impersonation \
                 (kubectl --as, --as-group, --as-uid): the API server would act as that user with the agent's token"
            ),
        });
    }
    None
}

/// Whether the API server's `101` chose a subprotocol the agent records.
pub fn recorded_protocol(h: &HeaderMap) -> bool {
    h.get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| RECORDED_PROTOCOLS.contains(&p.trim()))
}

/// The command line (`command=` values joined by spaces) and `tty`.
fn exec_params(query: Option<&str>) -> (Option<String>, bool) {
    let mut command = Vec::new();
    let mut tty = false;
    for (k, v) in path::query_pairs(query) {
        match &*k {
            "command" => command.push(v),
            "tty" => tty = v == "true" || v == "1",
            _ => {}
        }
    }
    let command =
        (!command.is_empty()).then(|| crate::connector::clip_statement(&command.join(" ")));
    (command, tty)
}

/// The audit fields of a request.
pub fn audit_fields(r: &ApiRequest) -> KubeRequest {
    KubeRequest {
        verb: r.verb.clone(),
        api_group: r.group.clone().filter(|g| !g.is_empty()),
        version: r.version.clone(),
        resource: r.resource.clone(),
        subresource: r.subresource.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        exit_status: None,
    }
}

/// Why a read-only connection refuses `r`, if it does.
pub fn read_only_refusal(r: &ApiRequest, upgrade: bool) -> Option<String> {
    if r.is_read() && !upgrade {
        return None;
    }
    let what = match &r.resource {
        Some(res) => format!("{} {res}", r.verb),
        None => r.verb.to_ascii_uppercase(),
    };
    Some(format!(
        "this connection is read-only: only get, list, watch and logs are allowed, not {what}"
    ))
}

/// Marks a response the agent made itself, with its message.
#[derive(Clone)]
struct AgentMade(String);

/// Whether kubectl asked for a transformed form (`as=Table`, aggregated
/// discovery): its decoders for those do not read a `Status` out of an
/// error, and show "unknown" instead, but do show a plain-text body.
pub fn wants_plain_errors(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(";as="))
}

/// For a caller that [`wants_plain_errors`]: the agent's own answer with
/// its message as plain text; other responses unchanged.
pub fn plain_error(resp: Response<Body>) -> Response<Body> {
    let Some(AgentMade(message)) = resp.extensions().get::<AgentMade>().cloned() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Response::from_parts(parts, full(message))
}

/// The agent's own answer, as a Kubernetes `Status` kubectl can print.
pub fn status_response(status: StatusCode, message: &str) -> Response<Body> {
    let reason = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalError",
    };
    let v = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("hoop: {message}"),
        "reason": reason,
        "code": status.as_u16(),
    });
    let mut resp = Response::new(full(v.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.extensions_mut()
        .insert(AgentMade(format!("hoop: {message}")));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_parameters() {
        let (cmd, tty) = exec_params(Some(
            "command=sh&command=-c&command=echo+hi&stdin=true&tty=true",
        ));
        assert_eq!(cmd.as_deref(), Some("sh -c echo hi"));
        assert!(tty);
        assert_eq!(exec_params(None), (None, false));
    }

    #[test]
    fn requests_read_differently_or_impersonating_are_refused() {
        let h = HeaderMap::new();
        let refused = |m: Method, path: &str, q: Option<&str>, h: &HeaderMap| {
            request_refusal(&m, path, q, h).map(|r| (r.status, r.rule))
        };
        assert!(
            refused(
                Method::GET,
                "/api/v1/namespaces/a/secrets",
                Some("watch=1"),
                &h
            )
            .is_none()
        );
        for path in [
            "/api/v1/namespaces//secrets",
            "//api/v1/secrets",
            "/api/v1/namespaces/a%2F/secrets",
            "/api/v1/namespaces/a\\b/secrets",
            "/api/v1/namespaces/a%5cb",
        ] {
            assert_eq!(
                refused(Method::GET, path, None, &h),
                Some((StatusCode::BAD_REQUEST, "path")),
                "{path}"
            );
        }
        assert_eq!(
            refused(
                Method::GET,
                "/api/v1/secrets",
                Some("watch=false;watch=true"),
                &h
            ),
            Some((StatusCode::BAD_REQUEST, "query"))
        );
        let lower = Method::from_bytes(b"delete").unwrap();
        assert_eq!(
            refused(lower, "/api/v1/namespaces/a/pods/p", None, &h),
            Some((StatusCode::METHOD_NOT_ALLOWED, "method"))
        );
        for name in [
            "impersonate-user",
            "Impersonate-Group",
            "impersonate-extra-scopes",
            "impersonate-uid",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
            let r = request_refusal(&Method::GET, "/api/v1/pods", None, &h).unwrap();
            assert_eq!((r.status, r.rule), (StatusCode::FORBIDDEN, "impersonate"));
            assert!(
                r.message.contains(&name.to_ascii_lowercase()),
                "{}",
                r.message
            );
        }
    }

    #[test]
    fn only_port_forward_upgrades_pass_unrecorded() {
        let k = Kube {
            record_input: true,
            data_dir: PathBuf::from("/nonexistent"),
            recordings: AtomicU32::new(0),
        };
        let plan = |path: &str| {
            let r = path::parse(&Method::GET, path, None);
            k.plan_upgrade(&r, "websocket", &HeaderMap::new(), None, "s", "c", "u")
        };
        assert!(matches!(
            plan("/api/v1/namespaces/a/pods/p/portforward"),
            Ok(UpgradePlan::Pass)
        ));
        for path in [
            "/api/v1/nodes/n/proxy/exec/a/p/c",
            "/api/v1/namespaces/a/services/s/proxy/",
            "/apis/x.io/v1/namespaces/a/consoles/c/attach",
            "/version",
        ] {
            let Err(r) = plan(path) else {
                panic!("{path} passed");
            };
            assert_eq!(
                (r.status, r.rule),
                (StatusCode::FORBIDDEN, "upgrade"),
                "{path}"
            );
            assert!(r.message.contains("unrecorded"), "{}", r.message);
        }
    }

    #[test]
    fn read_only() {
        let get = path::parse(&Method::GET, "/api/v1/namespaces/a/pods", None);
        assert_eq!(read_only_refusal(&get, false), None);
        let del = path::parse(&Method::DELETE, "/api/v1/namespaces/a/pods/p", None);
        let msg = read_only_refusal(&del, false).unwrap();
        assert!(msg.contains("not delete pods"), "{msg}");
        let pf = path::parse(
            &Method::GET,
            "/api/v1/namespaces/a/pods/p/portforward",
            None,
        );
        assert!(read_only_refusal(&pf, true).is_some());
    }
}
