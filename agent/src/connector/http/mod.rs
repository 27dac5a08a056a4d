//! The `http` connector. The agent serves HTTP/1.1 to the caller on the
//! tunnel stream (keep-alive, any number of requests) and forwards each
//! request to the connection's URL:
//!
//! - the caller's `Authorization`, `Proxy-Authorization` and hop-by-hop
//!   headers stay behind; `Host` becomes the backend's; configured
//!   headers are added with values read from secrets;
//! - bodies stream both ways as they come (uploads, chunked downloads,
//!   long polls, server-sent events), never buffered unless masked;
//! - `Upgrade` requests (WebSocket, SPDY) pass through: on `101` both
//!   upgraded streams are spliced;
//! - `deny` rules and `read_only` refuse requests with `403` before they
//!   reach the backend; an unreachable backend or a failed TLS handshake
//!   is a `502` saying why;
//! - every request is an `http_request` audit event.
//!
//! With masking on, JSON responses are buffered (up to
//! [`MAX_MASKED_BODY`]), masked and re-sent with their `Content-Length`;
//! JSON-lines streams (Kubernetes watches) are masked line by line;
//! images, audio, video and fonts pass; anything else (text, HTML,
//! server-sent events, unknown types, a body that does not parse, a
//! compressed body) is refused with `502` rather than passed unmasked,
//! and so are protocol upgrades.
//!
//! Each tunnel stream (one TCP connection of the caller) has its own
//! backend connection, opened on the first request and reopened when the
//! backend closes it, so requests on one caller connection go in order to
//! one backend connection and an upgrade takes both over.

mod backend;
mod body;
mod headers;
mod json;
mod policy;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use quinn::{RecvStream, SendStream};

pub use backend::{Backend, ForwardError};
pub use body::{Body, Record, full};
use body::{Counted, CountingIo, MaskLines, Tracked, agent_response};
use json::BodyKind;
use policy::Guard;

use crate::audit::{AuditLog, Who};
use crate::config::{ConnectionConfig, ConnectionKind};
use crate::connector::kubernetes::{self, ApiRequest, Kube, UpgradePlan};
use crate::mask::{MaskSummary, Masker};

pub use super::Outcome;

/// Largest response body buffered for masking (64 MiB); a larger one is
/// refused with `502`. Also the longest line of a masked JSON stream.
pub const MAX_MASKED_BODY: usize = 64 << 20;

/// The caller of a session, for audit.
pub struct Caller {
    pub session: String,
    pub who: Who,
    pub audit: AuditLog,
    /// The connection's masking engine, when it masks anything.
    pub masker: Option<Arc<Masker>>,
    /// The agent's data dir (`kubernetes` connections record `exec`
    /// sessions under it).
    pub data_dir: std::path::PathBuf,
}

/// Everything one caller connection's requests share.
struct Ctx {
    connection: String,
    caller: Caller,
    backend: Result<Backend, String>,
    guard: Guard,
    /// The backend connection, between requests.
    sender: Mutex<Option<SendRequest<Body>>>,
    /// What a `kubernetes` connection adds.
    kube: Option<Kube>,
}

/// Serves HTTP/1.1 on one tunnel stream until the caller closes it.
pub async fn serve(
    cfg: &ConnectionConfig,
    caller: Caller,
    send: SendStream,
    recv: RecvStream,
) -> Outcome {
    let backend = Backend::new(cfg).map_err(|e| {
        tracing::warn!(connection = %cfg.name, error = %e, "http backend unusable");
        e.to_string()
    });
    // Validation compiled these patterns already.
    let guard = Guard::new(&cfg.deny, cfg.read_only).unwrap_or_else(|e| {
        tracing::error!(connection = %cfg.name, error = %e, "bad deny pattern; refusing everything");
        Guard::new(
            &[crate::config::DenyRule {
                pattern: String::new(),
                message: "the connection's deny rules do not compile".into(),
            }],
            true,
        )
        .unwrap_or_else(|_| unreachable!("an empty pattern compiles"))
    });
    let kube =
        (cfg.kind == ConnectionKind::Kubernetes).then(|| Kube::new(cfg, caller.data_dir.clone()));
    let ctx = Arc::new(Ctx {
        kube,
        connection: cfg.name.clone(),
        caller: Caller {
            masker: caller.masker.filter(|m| m.is_active()),
            ..caller
        },
        backend,
        guard,
        sender: Mutex::new(None),
    });
    let io = CountingIo::new(tokio::io::join(recv, send));
    let (up, down) = (io.read.clone(), io.written.clone());
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move {
            let plain = ctx.kube.is_some() && kubernetes::wants_plain_errors(req.headers());
            let resp = handle(ctx, req).await;
            Ok::<_, Infallible>(if plain {
                kubernetes::plain_error(resp)
            } else {
                resp
            })
        }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
    Outcome {
        bytes_up: up.load(Ordering::Relaxed),
        bytes_down: down.load(Ordering::Relaxed),
        error: result
            .err()
            .filter(|e| !e.is_incomplete_message())
            .map(|e| format!("HTTP from the caller: {e}")),
        client_user: None,
        database: None,
    }
}

/// Answers one request.
async fn handle(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Response<Body> {
    let upgrade = headers::upgrade_protocol(req.headers());
    let path = req.uri().path().to_string();
    let query = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut rec = Record::new(
        ctx.caller.audit.clone(),
        ctx.caller.session.clone(),
        ctx.caller.who.clone(),
        ctx.connection.clone(),
        req.method().to_string(),
        path.clone(),
        query,
        upgrade.clone(),
    );
    let kreq: Option<ApiRequest> = ctx.kube.as_ref().and_then(|k| {
        let norm = policy::normalize(&path).ok()?;
        Some(k.classify(req.method(), &norm, req.uri().query()))
    });
    if ctx.kube.is_some() {
        // Also marks the agent's own answers as Kubernetes `Status`es.
        rec.kube = Some(
            kreq.as_ref()
                .map(kubernetes::audit_fields)
                .unwrap_or_else(|| crate::audit::KubeRequest {
                    verb: req.method().as_str().to_ascii_lowercase(),
                    ..Default::default()
                }),
        );
    }
    if let Err(m) = headers::loopback_host(req.uri(), req.headers()) {
        return refuse(rec, StatusCode::FORBIDDEN, &m, "host");
    }
    if let Err(m) = headers::same_machine_origin(req.headers(), ctx.kube.is_some()) {
        return refuse(rec, StatusCode::FORBIDDEN, &m, "origin");
    }
    if ctx.kube.is_some() {
        if let Some(r) =
            kubernetes::request_refusal(req.method(), &path, req.uri().query(), req.headers())
        {
            return refuse(rec, r.status, &r.message, r.rule);
        }
    }
    let checked = match &kreq {
        Some(k) => ctx
            .guard
            .check_line(&k.verb, &k.path, upgrade.as_deref(), || {
                kubernetes::read_only_refusal(k, upgrade.is_some())
            }),
        None => ctx.guard.check(req.method(), &path, upgrade.as_deref()),
    };
    if let Err(r) = checked {
        let status = if r.rule == "path" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        let msg = if r.rule == "path" {
            r.message.clone()
        } else {
            format!("refused by connection {:?}: {}", ctx.connection, r.message)
        };
        return refuse(rec, status, &msg, &r.rule);
    }
    if upgrade.is_some() && ctx.caller.masker.is_some() {
        return refuse(
            rec,
            StatusCode::FORBIDDEN,
            "masking is on for this connection, and the streams of a protocol upgrade (WebSocket, SPDY) cannot be masked",
            "mask",
        );
    }
    let mut plan = None;
    if let (Some(k), Some(kr), Some(proto)) = (&ctx.kube, &kreq, upgrade.as_deref()) {
        match k.plan_upgrade(
            kr,
            proto,
            req.headers(),
            req.uri().query(),
            &ctx.caller.session,
            &ctx.connection,
            &ctx.caller.who.user,
        ) {
            Ok(p) => plan = Some(p),
            Err(r) => return refuse(rec, r.status, &r.message, r.rule),
        }
    }
    let backend = match &ctx.backend {
        Ok(b) => b,
        Err(e) => return fail(rec, StatusCode::BAD_GATEWAY, e),
    };
    let injected = match backend.injected() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(connection = %ctx.connection, error = %e, "cannot read an injected header");
            return fail(rec, StatusCode::BAD_GATEWAY, &e.to_string());
        }
    };
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let mut h = headers::request_to_backend(
        &parts.headers,
        &backend.host,
        upgrade.as_deref(),
        &backend.injected_names(),
        ctx.caller.masker.is_some(),
    );
    for (name, value) in injected {
        h.append(name, value);
    }
    if let Some(UpgradePlan::Record { protocols, .. }) = &plan {
        // Only the subprotocols the agent can read, and no compression.
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.clone());
        h.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let target = backend.target(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()));
    let mut breq = Request::new(Counted::new(body, rec.up.clone()).boxed());
    *breq.method_mut() = parts.method.clone();
    *breq.headers_mut() = h;
    *breq.uri_mut() = match target.parse() {
        Ok(u) => u,
        Err(e) => return fail(rec, StatusCode::BAD_REQUEST, &format!("bad path: {e}")),
    };
    let mut resp = match send(&ctx, backend, breq).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(connection = %ctx.connection, error = %e, "http request failed");
            let msg = format!(
                "the agent could not complete the request to the backend of {:?}: {e}",
                ctx.connection
            );
            return fail(rec, StatusCode::BAD_GATEWAY, &msg);
        }
    };
    rec.status = resp.status().as_u16();
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return fail(
                rec,
                StatusCode::BAD_GATEWAY,
                "the backend switched protocols without being asked",
            );
        };
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        headers::response_to_client(&mut parts.headers, true);
        match plan {
            Some(UpgradePlan::Record { terminal, .. }) => {
                if !kubernetes::recorded_protocol(&parts.headers) {
                    return fail(
                        rec,
                        StatusCode::BAD_GATEWAY,
                        "the API server chose a WebSocket subprotocol the agent cannot record",
                    );
                }
                tokio::spawn(kubernetes::splice(
                    client_upgrade,
                    backend_upgrade,
                    rec,
                    *terminal,
                ));
            }
            _ => {
                tokio::spawn(splice(client_upgrade, backend_upgrade, rec));
            }
        }
        return Response::from_parts(parts, full(Vec::new()));
    }
    if ctx.kube.is_some() && resp.status() == StatusCode::UNAUTHORIZED {
        let msg = format!(
            "the API server of connection {:?} refused the token the agent sends for it (401 Unauthorized); \
             ask the agent's operator to check the connection's token",
            ctx.connection
        );
        // Not 401: the caller holds no credential it could fix (and
        // kubectl would hide the message behind "you must be logged
        // in"); 403, whose message kubectl prints.
        rec.status = StatusCode::UNAUTHORIZED.as_u16();
        rec.fail(msg.clone());
        rec.finish();
        return kubernetes::status_response(StatusCode::FORBIDDEN, &msg);
    }
    let (mut parts, body) = resp.into_parts();
    headers::response_to_client(&mut parts.headers, false);
    match &ctx.caller.masker {
        None => Response::from_parts(parts, Tracked::new(body, rec).boxed()),
        Some(m) => masked(m.clone(), head, parts, body, rec).await,
    }
}

/// Sends on this caller connection's backend connection, opening one
/// when there is none or the last one closed. A request the closed
/// connection never took is sent again on a fresh one.
async fn send(
    ctx: &Ctx,
    backend: &Backend,
    req: Request<Body>,
) -> Result<Response<Incoming>, ForwardError> {
    let mut req = req;
    let mut retried = false;
    loop {
        let cached = ctx.sender.lock().ok().and_then(|mut s| s.take());
        let mut sender = match cached {
            Some(s) if !s.is_closed() => s,
            _ => backend.connect().await?,
        };
        if sender.ready().await.is_err() {
            sender = backend.connect().await?;
            sender.ready().await.map_err(ForwardError::Exchange)?;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                if let Ok(mut s) = ctx.sender.lock() {
                    *s = Some(sender);
                }
                return Ok(resp);
            }
            Err(mut e) => match e.take_message() {
                Some(r) if !retried => {
                    retried = true;
                    req = r;
                }
                _ => return Err(ForwardError::Exchange(e.into_error())),
            },
        }
    }
}

/// The response with its body masked, or a `502` saying why it cannot be.
async fn masked(
    masker: Arc<Masker>,
    head: bool,
    mut parts: http::response::Parts,
    body: Incoming,
    rec: Record,
) -> Response<Body> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let kind = json::classify(ct.as_deref());
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.trim().eq_ignore_ascii_case("identity"))
        .map(str::to_string);
    let status = parts.status;
    if head || body.is_end_stream() || body.size_hint().exact() == Some(0) {
        if head && matches!(kind, BodyKind::Json | BodyKind::JsonLines) {
            // The length of the unmasked body, which a GET would not get.
            parts.headers.remove(header::CONTENT_LENGTH);
            strip_digests(&mut parts.headers);
        }
        return Response::from_parts(parts, Tracked::new(body, rec).boxed());
    }
    match kind {
        BodyKind::Media => Response::from_parts(parts, Tracked::new(body, rec).boxed()),
        BodyKind::Other(what) => fail(
            rec,
            StatusCode::BAD_GATEWAY,
            &format!(
                "masking is on for this connection and the backend answered {status} with {what}, which the agent cannot mask; \
                     only JSON bodies (and images, audio, video and fonts) are passed"
            ),
        ),
        _ if encoded.is_some() => fail(
            rec,
            StatusCode::BAD_GATEWAY,
            &format!(
                "masking is on for this connection and the backend sent a {} body although the agent asked for identity encoding",
                encoded.unwrap_or_default()
            ),
        ),
        BodyKind::JsonLines => {
            parts.headers.remove(header::CONTENT_LENGTH);
            strip_digests(&mut parts.headers);
            let lines = MaskLines::new(body, masker, rec.masked.clone(), MAX_MASKED_BODY);
            Response::from_parts(parts, Tracked::new(lines, rec).boxed())
        }
        BodyKind::Json => {
            if body
                .size_hint()
                .upper()
                .is_some_and(|n| n > MAX_MASKED_BODY as u64)
                || body.size_hint().lower() > MAX_MASKED_BODY as u64
            {
                return fail(rec, StatusCode::BAD_GATEWAY, &too_large());
            }
            let bytes = match Limited::new(body, MAX_MASKED_BODY).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return fail(rec, StatusCode::BAD_GATEWAY, &too_large());
                }
                Err(e) => {
                    return fail(
                        rec,
                        StatusCode::BAD_GATEWAY,
                        &format!("reading the backend's response failed: {e}"),
                    );
                }
            };
            let mut summary = MaskSummary::default();
            let out = match json::mask_document(&masker, &bytes, &mut summary) {
                Ok(Some(m)) => {
                    strip_digests(&mut parts.headers);
                    bytes::Bytes::from(m)
                }
                Ok(None) => bytes,
                Err(e) => {
                    return fail(
                        rec,
                        StatusCode::BAD_GATEWAY,
                        &format!(
                            "masking is on for this connection and the backend's {} body does not parse as JSON ({e}); it is not passed on unmasked",
                            ct.unwrap_or_default()
                        ),
                    );
                }
            };
            if let Ok(mut m) = rec.masked.lock() {
                m.absorb(&mut summary);
            }
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            Response::from_parts(parts, Tracked::new(full(out), rec).boxed())
        }
    }
}

fn too_large() -> String {
    format!(
        "masking is on for this connection and the backend's JSON body is larger than the {} MiB the agent buffers to mask",
        MAX_MASKED_BODY >> 20
    )
}

/// Headers that describe the backend's bytes, wrong once they are masked.
fn strip_digests(h: &mut http::HeaderMap) {
    for n in [
        "etag",
        "content-md5",
        "digest",
        "repr-digest",
        "content-digest",
    ] {
        h.remove(n);
    }
}

/// Answers with the agent's own refusal, recorded as `refused`.
fn refuse(mut rec: Record, status: StatusCode, message: &str, rule: &str) -> Response<Body> {
    rec.status = status.as_u16();
    rec.outcome = "refused";
    rec.rule = Some(rule.to_string());
    let kube = rec.kube.is_some();
    rec.finish();
    if kube {
        return kubernetes::status_response(status, message);
    }
    agent_response(status, message, Some(rule))
}

/// Answers with the agent's own error, recorded as `error`.
fn fail(mut rec: Record, status: StatusCode, message: &str) -> Response<Body> {
    rec.status = status.as_u16();
    rec.fail(message);
    let kube = rec.kube.is_some();
    rec.finish();
    if kube {
        return kubernetes::status_response(status, message);
    }
    agent_response(status, message, None)
}

/// Joins the caller's and the backend's upgraded streams until both end.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    mut rec: Record,
) {
    let (c, b) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(e) => {
            rec.fail(format!("the protocol upgrade failed: {e}"));
            rec.finish();
            return;
        }
    };
    let mut c = CountingIo::new(TokioIo::new(c));
    let mut b = TokioIo::new(b);
    let result = tokio::io::copy_bidirectional(&mut c, &mut b).await;
    rec.up
        .store(c.read.load(Ordering::Relaxed), Ordering::Relaxed);
    rec.down = c.written.load(Ordering::Relaxed);
    if let Err(e) = result {
        rec.fail(format!("the upgraded stream failed: {e}"));
    }
    rec.finish();
}
