//! `pods/NAME/portforward`, both ways kubectl 1.31+ speaks it:
//!
//! - WebSocket, subprotocol `SPDY/3.1+portforward.k8s.io`: SPDY frames
//!   carried in binary messages (kubectl's default; a byte stream, any
//!   message may hold part of a frame or several);
//! - a plain `Upgrade: SPDY/3.1` (`X-Stream-Protocol-Version:
//!   portforward.k8s.io`), then SPDY frames on the connection: kubectl's
//!   fallback when the WebSocket upgrade fails, and its only way with
//!   `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`.
//!
//! [`super::KubeApi::refuse_websocket_port_forward`] makes the WebSocket
//! upgrade fail with `400`, as on an API server before 1.30.
//!
//! Per forwarded connection kubectl opens an `error` stream, then a `data`
//! stream, both with headers `port` and `requestid`. The "pod" listens on
//! port 80 only: an echo server the stand-in owns, which echoes until its
//! caller closes, then closes too. Any other port gets the kubelet's kind
//! of message on the error stream. What each port-forward carried is kept
//! in a [`PortForwardSeen`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::exec::{frame, read_frame, ws_accept};
use super::spdy::{self, Deflater, Frame, Inflater};
use super::{Body, State, full, status};

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket.
const WS_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The port-forward protocol version (`X-Stream-Protocol-Version`).
const PF_PROTOCOL: &str = "portforward.k8s.io";
/// The one port the pod listens on.
pub const POD_PORT: u16 = 80;
/// Largest DATA frame sent.
const CHUNK: usize = 32 << 10;

/// What one port-forward (one upgraded connection) carried.
#[derive(Debug, Clone, Default)]
pub struct PortForwardSeen {
    /// `websocket` or `spdy`.
    pub transport: &'static str,
    /// The `port` header of each data stream.
    pub ports: Vec<u16>,
    /// Bytes from the caller to the pod, and back.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Data streams the caller ended with FIN.
    pub finished: u32,
    /// PINGs echoed.
    pub pings: u32,
}

/// The pod's port 80: echoes each connection until its caller closes.
pub(super) async fn echo_server() -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok((addr, task))
}

fn bad(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub(super) fn portforward(
    st: &State,
    mut req: Request<Incoming>,
    ns: &str,
    name: &str,
) -> Response<Body> {
    if let Some(missing) = super::exec::pod_missing(st, ns, name) {
        return missing;
    }
    let h = req.headers();
    let upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let offers = |name: &str, want: &str| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == want)
    };
    let mut r = Response::new(full(Vec::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let transport = match upgrade.as_str() {
        "websocket" => {
            if st.refuse_ws_portforward.load(Ordering::Relaxed) {
                return bad("unable to upgrade: missing upgrade headers in request");
            }
            if !offers("sec-websocket-protocol", WS_PROTOCOL) {
                return bad("no supported subprotocol");
            }
            let Some(key) = h
                .get(header::SEC_WEBSOCKET_KEY)
                .and_then(|v| v.to_str().ok())
            else {
                return bad("no Sec-WebSocket-Key");
            };
            let rh = r.headers_mut();
            rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(v) = HeaderValue::from_str(&ws_accept(key)) {
                rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
            rh.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(WS_PROTOCOL),
            );
            "websocket"
        }
        "spdy/3.1" => {
            if !offers("x-stream-protocol-version", PF_PROTOCOL) {
                return bad("no supported X-Stream-Protocol-Version");
            }
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            "spdy"
        }
        _ => return bad("Upgrade request required"),
    };
    let rh = r.headers_mut();
    rh.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    rh.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PF_PROTOCOL),
    );
    let seen = Arc::new(Mutex::new(PortForwardSeen {
        transport,
        ..PortForwardSeen::default()
    }));
    if let Ok(mut all) = st.portforwards.lock() {
        all.push(seen.clone());
    }
    let pod = Pod {
        name: name.into(),
        port80: st.pod_port,
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else {
            return;
        };
        let io = TokioIo::new(up);
        if transport == "websocket" {
            let (ours, theirs) = tokio::io::duplex(256 << 10);
            tokio::spawn(unwrap_websocket(io, theirs));
            let _ = session(ours, pod, seen).await;
        } else {
            let _ = session(io, pod, seen).await;
        }
    });
    r
}

/// Carries the bytes of binary (and continuation) messages between the
/// WebSocket `ws` and `inner`, each write from `inner` as one binary
/// message; answers pings, ends on a close.
async fn unwrap_websocket<W, I>(ws: W, inner: I)
where
    W: AsyncRead + AsyncWrite + Send + 'static,
    I: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut ws_r, ws_w) = tokio::io::split(ws);
    let (mut in_r, mut in_w) = tokio::io::split(inner);
    let ws_w = Arc::new(tokio::sync::Mutex::new(ws_w));
    let w = ws_w.clone();
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK + 64];
        loop {
            let n = match in_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if w.lock()
                .await
                .write_all(&frame(2, &buf[..n]))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut w = w.lock().await;
        let _ = w.write_all(&frame(8, &1000u16.to_be_bytes())).await;
        let _ = w.shutdown().await;
    });
    while let Ok(Some((op, payload))) = read_frame(&mut ws_r).await {
        match op {
            // Data goes on in the guard; a failed write ends the loop.
            0 | 2 if in_w.write_all(&payload).await.is_err() => break,
            9 => {
                let _ = ws_w.lock().await.write_all(&frame(10, &payload)).await;
            }
            8 => break,
            _ => {}
        }
    }
    let _ = in_w.shutdown().await;
    let _ = down.await;
}

/// The pod being forwarded to.
#[derive(Clone)]
struct Pod {
    name: Arc<str>,
    /// What listens on its port 80.
    port80: SocketAddr,
}

/// Where one request id stands.
#[derive(Default)]
struct PendingRequest {
    error_stream: Option<u32>,
}

/// A data stream: its bytes go to the pod through `to_pod`.
struct DataStream {
    to_pod: mpsc::Sender<Option<Vec<u8>>>,
}

/// Serves one SPDY connection until the caller leaves.
async fn session<S>(io: S, pod: Pod, seen: Arc<Mutex<PortForwardSeen>>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            if w.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut inflater = Inflater::default();
    let mut deflater = Deflater::default();
    let mut requests: HashMap<String, PendingRequest> = HashMap::new();
    let mut streams: HashMap<u32, DataStream> = HashMap::new();
    let mut relays = tokio::task::JoinSet::new();
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    'read: loop {
        loop {
            let (f, used) = match spdy::decode(&buf, &mut inflater) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    let _ = out_tx.send(spdy::goaway(0)).await;
                    eprintln!("kube stand-in: port-forward: {e}");
                    break 'read;
                }
            };
            buf.drain(..used);
            match f {
                Frame::SynStream { id, headers, .. } => {
                    let get = |k: &str| {
                        headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(k))
                            .map(|(_, v)| v.as_str())
                    };
                    let (Some(kind), Some(port), Some(rid)) =
                        (get("streamtype"), get("port"), get("requestid"))
                    else {
                        let _ = out_tx
                            .send(spdy::rst_stream(id, spdy::RST_PROTOCOL_ERROR))
                            .await;
                        continue;
                    };
                    let _ = out_tx.send(spdy::syn_reply(id, &mut deflater)).await;
                    let port: u16 = port.parse().unwrap_or(0);
                    let req = requests.entry(rid.to_string()).or_default();
                    match kind {
                        "error" => req.error_stream = Some(id),
                        "data" => {
                            seen.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .ports
                                .push(port);
                            let (to_pod, from_caller) = mpsc::channel(16);
                            streams.insert(id, DataStream { to_pod });
                            relays.spawn(relay(
                                id,
                                req.error_stream,
                                port,
                                pod.clone(),
                                from_caller,
                                out_tx.clone(),
                                seen.clone(),
                            ));
                        }
                        _ => {
                            let _ = out_tx
                                .send(spdy::rst_stream(id, spdy::RST_PROTOCOL_ERROR))
                                .await;
                        }
                    }
                }
                Frame::Data { id, fin, data } => {
                    let Some(s) = streams.get(&id) else {
                        continue;
                    };
                    if !data.is_empty() {
                        seen.lock().unwrap_or_else(|e| e.into_inner()).bytes_in +=
                            data.len() as u64;
                        let _ = s.to_pod.send(Some(data)).await;
                    }
                    if fin {
                        let _ = s.to_pod.send(None).await;
                        seen.lock().unwrap_or_else(|e| e.into_inner()).finished += 1;
                        streams.remove(&id);
                    }
                }
                Frame::RstStream { id, .. } => {
                    streams.remove(&id);
                }
                Frame::Ping(n) => {
                    seen.lock().unwrap_or_else(|e| e.into_inner()).pings += 1;
                    let _ = out_tx.send(spdy::ping(n)).await;
                }
                Frame::GoAway { .. } => break 'read,
                Frame::SynReply { .. }
                | Frame::Settings
                | Frame::Headers { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown(_) => {}
            }
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    // The caller is gone: nothing more to carry.
    relays.abort_all();
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

/// One forwarded connection: data stream `id` to the pod's `port` and
/// back; then FIN on the data stream and on its error stream.
async fn relay(
    id: u32,
    error_stream: Option<u32>,
    port: u16,
    pod: Pod,
    mut from_caller: mpsc::Receiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Vec<u8>>,
    seen: Arc<Mutex<PortForwardSeen>>,
) {
    let close_error = |message: Option<String>| {
        let out = out.clone();
        async move {
            if let Some(e) = error_stream {
                if let Some(m) = message {
                    let _ = out.send(spdy::data(e, false, m.as_bytes())).await;
                }
                let _ = out.send(spdy::data(e, true, &[])).await;
            }
        }
    };
    let tcp = if port == POD_PORT {
        TcpStream::connect(pod.port80).await
    } else {
        Err(std::io::ErrorKind::ConnectionRefused.into())
    };
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            let _ = out.send(spdy::data(id, true, &[])).await;
            close_error(Some(format!(
                "error forwarding port {port} to pod {}, uid : failed to connect to localhost:{port} inside namespace: {e}",
                pod.name
            )))
            .await;
            return;
        }
    };
    let (mut pr, mut pw) = tcp.into_split();
    let up = tokio::spawn(async move {
        while let Some(Some(data)) = from_caller.recv().await {
            if pw.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = pw.shutdown().await;
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match pr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.lock().unwrap_or_else(|e| e.into_inner()).bytes_out += n as u64;
        if out.send(spdy::data(id, false, &buf[..n])).await.is_err() {
            up.abort();
            return;
        }
    }
    let _ = out.send(spdy::data(id, true, &[])).await;
    close_error(None).await;
    up.abort();
}
