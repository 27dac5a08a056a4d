//! `exec` and `attach` over WebSocket (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`): the bytes pass unchanged both ways while a
//! parser per direction reads the frames and writes the terminal to an
//! asciicast v2 recording, as SSH sessions are recorded: stdout and
//! stderr as output, stdin as input (unless `record_input = false`),
//! resizes. A frame either parser cannot read, or a failed write to the
//! recording, ends the session: the recording is required, so nothing
//! passes unrecorded. The exit code on the status channel goes into the
//! request's audit event.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ws::{Event, Parser, Side, WsError};
use crate::connector::http::Record;
use crate::connector::ssh::recording::{Header, Recorder};
use crate::connector::ssh::sessions;

/// Subprotocols the agent can record, best first.
pub const RECORDED_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// A recording made before the request is forwarded (so a session that
/// cannot be recorded never starts), removed again if the API server
/// does not switch protocols.
pub struct Terminal {
    recorder: Recorder,
    path: PathBuf,
    /// The path as audit events show it (under the data dir).
    pub shown: String,
    record_input: bool,
    started: bool,
    /// From the last status (channel 3) message the API server sent.
    exit_status: Option<i32>,
    /// A `Failure` status without an exit code: its message.
    failure: Option<String>,
}

/// Who and what a recording is of.
pub struct TerminalInfo<'a> {
    pub data_dir: &'a Path,
    pub path: PathBuf,
    pub session: &'a str,
    pub connection: &'a str,
    pub user: &'a str,
    /// `exec` or `attach`.
    pub request: &'a str,
    pub command: Option<String>,
    pub tty: bool,
    pub record_input: bool,
}

impl Terminal {
    /// Creates the recording and its index entry.
    pub fn create(info: TerminalInfo<'_>) -> std::io::Result<Terminal> {
        let title = format!("{} {} {}", info.connection, info.user, info.session);
        let recorder = Recorder::create(
            &info.path,
            &Header {
                width: 80,
                height: 24,
                term: info.tty.then_some("xterm"),
                title: &title,
                command: info.command.as_deref(),
            },
        )?;
        let meta = sessions::Meta {
            recording: info
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            session: info.session.to_string(),
            connection: info.connection.to_string(),
            user: info.user.to_string(),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            request: info.request.to_string(),
            command: info.command.clone(),
        };
        if let Err(e) = sessions::write_meta(&info.path, &meta) {
            let _ = std::fs::remove_file(&info.path);
            return Err(e);
        }
        Ok(Terminal {
            recorder,
            shown: info
                .path
                .strip_prefix(info.data_dir)
                .unwrap_or(&info.path)
                .display()
                .to_string(),
            path: info.path,
            record_input: info.record_input,
            started: false,
            exit_status: None,
            failure: None,
        })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if !self.started {
            // The API server refused: there was no session to record.
            let _ = std::fs::remove_file(self.path.with_extension("json"));
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Largest read from either side at once.
const CHUNK: usize = 32 << 10;

/// Joins the caller's and the API server's upgraded streams, recording
/// the terminal, until both end or a frame cannot be read.
pub async fn splice(client: OnUpgrade, backend: OnUpgrade, mut rec: Record, mut term: Terminal) {
    term.started = true;
    rec.recording = Some(term.shown.clone());
    let (c, b) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(e) => {
            rec.fail(format!("the protocol upgrade failed: {e}"));
            rec.finish();
            return;
        }
    };
    let record_input = term.record_input;
    let term = Arc::new(Mutex::new(term));
    let (cr, cw) = tokio::io::split(TokioIo::new(c));
    let (br, bw) = tokio::io::split(TokioIo::new(b));
    let recorded = |t: &Arc<Mutex<Terminal>>| {
        let t = t.clone();
        move || !lock(&t).recorder.failed()
    };
    let t_up = term.clone();
    let up = pump(cr, bw, Side::Client, recorded(&term), move |e| {
        let mut t = lock(&t_up);
        match e {
            Event::Data { channel: 0, data } if record_input => t.recorder.input(data),
            Event::Message { channel: 4, data } => {
                if let Some((w, h)) = resize(data) {
                    t.recorder.resize(w, h);
                }
            }
            _ => {}
        }
    });
    let t_down = term.clone();
    let down = pump(br, cw, Side::Server, recorded(&term), move |e| match e {
        Event::Data {
            channel: 1 | 2,
            data,
        } => lock(&t_down).recorder.output(data),
        Event::Message { channel: 3, data } => {
            let mut t = lock(&t_down);
            t.exit_status = exit_status(data);
            t.failure = t.exit_status.is_none().then(|| failure(data)).flatten();
        }
        _ => {}
    });

    // Either side's parse error ends both: dropping the other future
    // drops its halves, which closes the streams.
    let result = tokio::try_join!(up, down);
    // Known even when the stream ended badly after the status came.
    if let Some(k) = rec.kube.as_mut() {
        k.exit_status = lock(&term).exit_status;
    }
    let failure = lock(&term).failure.take();
    match result {
        Ok((u, d)) => {
            rec.up.store(u, Ordering::Relaxed);
            rec.down = d;
            // The command never ran to an exit code (no such container,
            // no such command): the API server's reason.
            if let Some(m) = failure {
                rec.fail(format!("the API server ended the session: {m}"));
            }
        }
        Err(PumpError::Parse(e)) => {
            tracing::warn!(session = %rec.session, error = %e, "exec stream unreadable; session ended");
            rec.fail(format!(
                "{e}; the session was ended because it could not be recorded"
            ));
        }
        Err(PumpError::Io(e)) => rec.fail(format!("the upgraded stream failed: {e}")),
        Err(PumpError::Recording) => {
            tracing::warn!(session = %rec.session, "exec recording write failed; session ended");
            rec.fail("the agent could not write the recording, so the session was ended");
        }
    }
    rec.finish();
}

fn lock(t: &Mutex<Terminal>) -> std::sync::MutexGuard<'_, Terminal> {
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The message of a `Failure` status, cut to 200 characters; `None`
/// for anything else.
fn failure(data: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Status {
        status: String,
        #[serde(default)]
        message: String,
    }
    let s: Status = serde_json::from_slice(data).ok()?;
    (s.status == "Failure").then(|| {
        let m = if s.message.is_empty() {
            "Failure".to_string()
        } else {
            s.message
        };
        m.chars().take(200).collect()
    })
}

/// `{"Width": W, "Height": H}`.
fn resize(data: &[u8]) -> Option<(u32, u32)> {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u32,
        #[serde(rename = "Height")]
        height: u32,
    }
    serde_json::from_slice::<Size>(data)
        .ok()
        .map(|s| (s.width, s.height))
}

/// The exit code in a status message: `{"status":"Success"}` is 0, a
/// `Failure` whose `details.causes` has `{"reason":"ExitCode",
/// "message":"N"}` is N; any other failure (the container is gone, the
/// command was not found) has none.
fn exit_status(data: &[u8]) -> Option<i32> {
    #[derive(serde::Deserialize)]
    struct Status {
        status: String,
        #[serde(default)]
        details: Details,
    }
    #[derive(Default, serde::Deserialize)]
    struct Details {
        #[serde(default)]
        causes: Vec<Cause>,
    }
    #[derive(serde::Deserialize)]
    struct Cause {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        message: String,
    }
    let s: Status = serde_json::from_slice(data).ok()?;
    match s.status.as_str() {
        "Success" => Some(0),
        "Failure" => s
            .details
            .causes
            .iter()
            .find(|c| c.reason == "ExitCode")
            .and_then(|c| c.message.parse().ok()),
        _ => None,
    }
}

#[derive(Debug)]
enum PumpError {
    Parse(WsError),
    Io(std::io::Error),
    /// A write to the recording failed.
    Recording,
}

/// Copies `from` to `to`, parsing as it goes; returns the bytes copied.
/// The other side's writer is shut down at end of stream. Stops, before
/// forwarding, once `recorded` says the recording failed.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    side: Side,
    recorded: impl Fn() -> bool + Send,
    mut on: impl FnMut(Event<'_>) + Send,
) -> Result<u64, PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut parser = Parser::new(side);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await.map_err(PumpError::Io)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(total);
        }
        // Parse first: bytes that do not parse are not forwarded.
        parser.feed(&buf[..n], &mut on).map_err(PumpError::Parse)?;
        if !recorded() {
            return Err(PumpError::Recording);
        }
        to.write_all(&buf[..n]).await.map_err(PumpError::Io)?;
        to.flush().await.map_err(PumpError::Io)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages() {
        assert_eq!(resize(br#"{"Width":120,"Height":40}"#), Some((120, 40)));
        assert_eq!(resize(b"{}"), None);
        assert_eq!(resize(b"\xff"), None);
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(
            exit_status(br#"{"metadata":{},"status":"Success"}"#),
            Some(0)
        );
        let failed = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_status(failed), Some(3));
        // A failure that is not the command's own exit.
        let gone = br#"{"metadata":{},"status":"Failure","message":"container not found","reason":"InternalError","details":{"causes":[{"message":"container not found"}]}}"#;
        assert_eq!(exit_status(gone), None);
        assert_eq!(failure(gone).as_deref(), Some("container not found"));
        assert_eq!(failure(br#"{"metadata":{},"status":"Success"}"#), None);
        assert_eq!(
            exit_status(br#"{"status":"Failure","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}"#),
            None
        );
        assert_eq!(exit_status(br#"{"status":"Failure"}"#), None);
        assert_eq!(exit_status(b"\xff"), None);
    }

    #[tokio::test]
    async fn a_frame_that_does_not_parse_ends_the_stream() {
        let (mut a, b) = tokio::io::duplex(1024);
        let (c, mut d) = tokio::io::duplex(1024);
        let good = super::super::ws::encode(2, true, b"\x00hi", Some([9, 9, 9, 9]));
        let bad = super::super::ws::encode(2, true, b"\x00no", None);
        a.write_all(&good).await.unwrap();
        a.write_all(&bad).await.unwrap();
        let mut seen = Vec::new();
        let r = pump(
            b,
            c,
            Side::Client,
            || true,
            |e| {
                if let Event::Data { data, .. } = e {
                    seen.extend_from_slice(data);
                }
            },
        )
        .await;
        assert!(
            matches!(r, Err(PumpError::Parse(WsError::Unmasked))),
            "{r:?}"
        );
        assert_eq!(seen, b"hi");
        // The bad frame never passes; the good one may, if it came alone.
        let mut got = Vec::new();
        d.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty() || got == good, "{got:?}");
    }

    #[tokio::test]
    async fn a_failed_recording_ends_the_stream_before_forwarding() {
        let (mut a, b) = tokio::io::duplex(1024);
        let (c, mut d) = tokio::io::duplex(1024);
        let frame = super::super::ws::encode(2, true, b"\x00hi", Some([9, 9, 9, 9]));
        a.write_all(&frame).await.unwrap();
        let r = pump(b, c, Side::Client, || false, |_| {}).await;
        assert!(matches!(r, Err(PumpError::Recording)), "{r:?}");
        let mut got = Vec::new();
        d.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
    }
}
