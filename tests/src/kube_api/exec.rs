//! `pods/NAME/exec` over WebSocket (`v5.channel.k8s.io`, or v4): the
//! upgrade, the frames (written here rather than taken from the agent's
//! `ws` module so the stand-in stays an independent reading of the
//! protocol), and what runs in the "container":
//!
//! - with stdin and a tty (`kubectl exec -it`), a tiny shell: a
//!   `standin$ ` prompt, typed characters echoed as a terminal would,
//!   and on Enter `echo ARGS`, `size` (the last resize, `COLSxROWS`),
//!   `exit [N]` or `sh: CMD: not found`;
//! - with stdin and no tty, stdin echoed on stdout until the caller closes
//!   it (v5) or types `exit`;
//! - without stdin, `echo ARGS` prints ARGS, `false` exits 1,
//!   `sh -c 'exit N'` exits N, anything else prints `ran: COMMAND`.
//!
//! The outcome goes on the status channel (3) as a real API server sends
//! it. What each exec asked for and received (its command, tty, resizes
//! on channel 4, stdin) is kept in an [`ExecSeen`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Body, State, full, param, query_map, status};

/// What one exec asked for and what the stand-in received.
#[derive(Debug, Clone, Default)]
pub struct ExecSeen {
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
    /// Each channel 4 message, as (width, height).
    pub resizes: Vec<(u16, u16)>,
    /// Every stdin byte.
    pub input: Vec<u8>,
    /// The exit code sent on the status channel.
    pub exit_code: Option<i32>,
}

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The API server's 404 for a pod that is not there, or `None`.
pub(super) fn pod_missing(st: &State, ns: &str, name: &str) -> Option<Response<Body>> {
    st.get("pods", ns, name).is_none().then(|| {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
        )
    })
}

pub(super) fn exec(st: &State, mut req: Request<Incoming>, ns: &str, name: &str) -> Response<Body> {
    if let Some(missing) = pod_missing(st, ns, name) {
        return missing;
    }
    let h = req.headers();
    let is_ws = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_ws {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
        );
    }
    let offered: Vec<String> = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    let Some(proto) = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
    else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "no supported subprotocol",
        );
    };
    let Some(key) = h
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "no Sec-WebSocket-Key",
        );
    };
    let accept = ws_accept(key);
    let q = query_map(req.uri().query());
    let seen = Arc::new(Mutex::new(ExecSeen {
        command: q
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: param(&q, "stdin") == Some("true"),
        tty: param(&q, "tty") == Some("true"),
        ..ExecSeen::default()
    }));
    if let Ok(mut execs) = st.execs.lock() {
        execs.push(seen.clone());
    }
    let v5 = proto.starts_with("v5");
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = upgrade.await {
            let _ = run_exec(TokioIo::new(up), seen, v5).await;
        }
    });
    let mut r = Response::new(full(Vec::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).unwrap_or(HeaderValue::from_static("")),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(proto),
    );
    r
}

/// `Sec-WebSocket-Accept` for `key`.
pub(super) fn ws_accept(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{WS_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// A server frame (never masked).
pub(super) fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn channel_msg(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(data.len() + 1);
    p.push(channel);
    p.extend_from_slice(data);
    frame(2, &p)
}

/// Reads one client frame: (opcode, unmasked payload). `None` at EOF.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; 2];
    if r.read_exact(&mut h).await.is_err() {
        return Ok(None);
    }
    let len = match h[1] & 0x7f {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > 1 << 24 {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut mask = [0u8; 4];
    if h[1] & 0x80 != 0 {
        r.read_exact(&mut mask).await?;
    }
    let mut p = vec![0u8; len as usize];
    r.read_exact(&mut p).await?;
    for (i, b) in p.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some((h[0] & 0x0f, p)))
}

/// The status channel message for exit code `code`, as the kubelet
/// words it.
fn outcome(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({"metadata": {}, "status": "Failure",
           "message": format!("command terminated with non-zero exit code: exit status {code}"),
           "reason": "NonZeroExitCode",
           "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}

/// What the caller sent, one message at a time.
enum Input {
    Stdin(Vec<u8>),
    /// v5: the caller closed stdin; or a close frame; or end of stream.
    Closed,
    Other,
}

/// Reads the caller's next message, noting resizes and stdin in `seen`.
async fn next_input<R: AsyncRead + Unpin>(
    r: &mut R,
    seen: &Mutex<ExecSeen>,
    v5: bool,
) -> std::io::Result<Input> {
    let Some((op, p)) = read_frame(r).await? else {
        return Ok(Input::Closed);
    };
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    Ok(match (op, p.split_first()) {
        (8, _) => Input::Closed,
        (2, Some((0, data))) => {
            seen.input.extend_from_slice(data);
            Input::Stdin(data.to_vec())
        }
        (2, Some((4, data))) => {
            if let Ok(v) = serde_json::from_slice::<Value>(data) {
                let dim = |k: &str| v[k].as_u64().and_then(|n| u16::try_from(n).ok());
                if let (Some(w), Some(h)) = (dim("Width"), dim("Height")) {
                    seen.resizes.push((w, h));
                }
            }
            Input::Other
        }
        (2, Some((255, _))) if v5 => Input::Closed,
        _ => Input::Other,
    })
}

const PROMPT: &[u8] = b"standin$ ";

/// The tiny shell of `kubectl exec -it`: returns its exit code.
async fn shell<S>(io: &mut S, seen: &Mutex<ExecSeen>, v5: bool) -> std::io::Result<i32>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&channel_msg(1, PROMPT)).await?;
    let mut line = Vec::new();
    loop {
        let data = match next_input(io, seen, v5).await? {
            Input::Stdin(d) => d,
            Input::Closed => return Ok(0),
            Input::Other => continue,
        };
        let mut out = Vec::new();
        for b in data {
            match b {
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    let cmd = String::from_utf8_lossy(&line).trim().to_string();
                    line.clear();
                    let mut words = cmd.split_whitespace();
                    match words.next() {
                        Some("exit") => {
                            io.write_all(&channel_msg(1, &out)).await?;
                            return Ok(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                        }
                        Some("echo") => {
                            out.extend(words.collect::<Vec<_>>().join(" ").bytes());
                            out.extend_from_slice(b"\r\n");
                        }
                        Some("size") => {
                            let last = seen
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .resizes
                                .last()
                                .copied();
                            let size = last.map_or("unknown".into(), |(w, h)| format!("{w}x{h}"));
                            out.extend(format!("size {size}\r\n").bytes());
                        }
                        Some(other) => out.extend(format!("sh: {other}: not found\r\n").bytes()),
                        None => {}
                    }
                    out.extend_from_slice(PROMPT);
                }
                // Backspace, as a terminal in cooked mode erases.
                0x7f | 0x08 => {
                    if line.pop().is_some() {
                        out.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x04 if line.is_empty() => {
                    io.write_all(&channel_msg(1, &out)).await?;
                    return Ok(0);
                }
                b => {
                    line.push(b);
                    out.push(b);
                }
            }
        }
        if !out.is_empty() {
            io.write_all(&channel_msg(1, &out)).await?;
        }
    }
}

/// `cat` without a tty: stdin back on stdout until it closes or says
/// `exit`.
async fn cat<S>(io: &mut S, seen: &Mutex<ExecSeen>, v5: bool) -> std::io::Result<i32>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut typed = Vec::new();
    loop {
        let data = match next_input(io, seen, v5).await? {
            Input::Stdin(d) => d,
            Input::Closed => return Ok(0),
            Input::Other => continue,
        };
        io.write_all(&channel_msg(1, &data)).await?;
        typed.extend_from_slice(&data);
        let text = String::from_utf8_lossy(&typed);
        if text.contains("exit\r") || text.contains("exit\n") {
            return Ok(0);
        }
    }
}

/// A command without stdin: (stdout, exit code).
fn run_command(command: &[String]) -> (String, i32) {
    match command {
        [c, args @ ..] if c == "echo" => (format!("{}\n", args.join(" ")), 0),
        [c] if c == "false" => (String::new(), 1),
        [sh, c, script] if sh == "sh" && c == "-c" => {
            match script.strip_prefix("exit ").and_then(|n| n.parse().ok()) {
                Some(code) => (String::new(), code),
                None => (format!("ran: {script}\n"), 0),
            }
        }
        _ => (format!("ran: {}\n", command.join(" ")), 0),
    }
}

/// Notes the exit code and returns its status message.
fn finished(seen: &Mutex<ExecSeen>, code: i32) -> Value {
    seen.lock().unwrap_or_else(|e| e.into_inner()).exit_code = Some(code);
    outcome(code)
}

async fn run_exec<S>(mut io: S, seen: Arc<Mutex<ExecSeen>>, v5: bool) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (command, stdin, tty) = {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        (s.command.clone(), s.stdin, s.tty)
    };
    let status = match (stdin, tty) {
        // A command the container does not have never runs: the status
        // is a failure without an exit code, as the kubelet reports it.
        (false, _) if command.first().is_some_and(|c| c == "no-such-command") => {
            json!({"metadata": {}, "status": "Failure",
                   "message": "OCI runtime exec failed: exec failed: unable to start container process: exec: \"no-such-command\": executable file not found in $PATH: unknown",
                   "reason": "InternalError",
                   "details": {"causes": [{"message": "executable file not found in $PATH"}]}})
        }
        (true, true) => finished(&seen, shell(&mut io, &seen, v5).await?),
        (true, false) => finished(&seen, cat(&mut io, &seen, v5).await?),
        (false, _) => {
            let (out, code) = run_command(&command);
            if !out.is_empty() {
                io.write_all(&channel_msg(1, out.as_bytes())).await?;
            }
            finished(&seen, code)
        }
    };
    io.write_all(&channel_msg(3, status.to_string().as_bytes()))
        .await?;
    io.write_all(&frame(8, &1000u16.to_be_bytes())).await?;
    io.flush().await?;
    // Let the caller read everything before the connection goes.
    let mut rest = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(io.read(&mut rest).await, Ok(n) if n > 0) {}
    })
    .await;
    let _ = io.shutdown().await;
    Ok(())
}
