//! One caller channel relayed to one host channel: a task per direction,
//! so a full window one way never stalls the other.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client, server};

use super::Ctx;
use super::recording::{Header, Recorder};
use crate::audit::Event;

/// What both directions of a session channel know.
#[derive(Default)]
struct State {
    recorder: Option<Recorder>,
    request: Option<String>,
    command: Option<String>,
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    /// Terminal type and size from `pty-req`.
    pty: Option<(String, u32, u32)>,
    /// Requests sent to the host with want-reply, oldest first.
    pending: VecDeque<&'static str>,
    recording: Option<String>,
}

type Shared = Arc<Mutex<State>>;

/// Records with `f` (when the channel is recorded) under one lock;
/// `false` when the recording has stopped working: the session is ended
/// rather than relayed unrecorded.
fn record(s: &Shared, f: impl FnOnce(&mut Recorder)) -> bool {
    let mut st = lock(s);
    let Some(r) = st.recorder.as_mut() else {
        return true;
    };
    f(r);
    if r.failed() {
        tracing::error!("the session's recording failed; ending the session");
        return false;
    }
    true
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panicked holder leaves consistent enough state for a recording.
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Relays a session channel (shell, exec, subsystem).
pub(super) fn spawn_session(
    ctx: Arc<Ctx>,
    front: Channel<server::Msg>,
    back: Channel<client::Msg>,
    handle: server::Handle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let id = front.id();
        let (front_r, front_w) = front.split();
        let (back_r, back_w) = back.split();
        let front_w = Arc::new(front_w);
        let back_w = Arc::new(back_w);
        let state: Shared = Arc::default();
        let started = Instant::now();
        let up = tokio::spawn(caller_to_host(
            ctx.clone(),
            front_r,
            front_w.clone(),
            back_w.clone(),
            state.clone(),
        ));
        let down = tokio::spawn(host_to_caller(
            ctx.clone(),
            back_r,
            front_w,
            handle,
            id,
            state.clone(),
        ));
        let (a, b) = tokio::join!(up, down);
        let (bytes_up, bytes_down) = (a.unwrap_or(0), b.unwrap_or(0));
        let mut st = lock(&state);
        st.recorder = None;
        ctx.caller.audit.record(Event::SshChannelEnd {
            session: ctx.caller.session.clone(),
            who: ctx.caller.who.clone(),
            connection: ctx.cfg.name.clone(),
            channel: u32::from(id),
            request: st.request.take(),
            command: st.command.take(),
            exit_status: st.exit_status,
            exit_signal: st.exit_signal.take(),
            bytes_up,
            bytes_down,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            recording: st.recording.take(),
        });
    })
}

/// Exec commands that carry a file-transfer protocol (legacy `scp -t`,
/// `rsync --server`, git) rather than a terminal: audited, not recorded.
fn is_file_transfer(command: &str) -> bool {
    let program = command
        .split_whitespace()
        .next()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("");
    matches!(
        program,
        "scp"
            | "rsync"
            | "sftp-server"
            | "git-upload-pack"
            | "git-receive-pack"
            | "git-upload-archive"
    )
}

/// Starts the recording of a shell or exec channel.
fn start_recording(ctx: &Ctx, st: &mut State, command: Option<&str>) {
    let path = ctx.recording_path();
    let (term, cols, rows) = st
        .pty
        .clone()
        .map_or((None, 80, 24), |(t, c, r)| (Some(t), c, r));
    let title = format!(
        "{} {} {}",
        ctx.cfg.name, ctx.caller.who.user, ctx.caller.session
    );
    let header = Header {
        width: cols,
        height: rows,
        term: term.as_deref(),
        title: &title,
        command,
    };
    match Recorder::create(&path, &header) {
        Ok(r) => {
            let meta = super::sessions::Meta {
                recording: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                session: ctx.caller.session.clone(),
                connection: ctx.cfg.name.clone(),
                user: ctx.caller.who.user.clone(),
                started_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                request: if command.is_some() { "exec" } else { "shell" }.into(),
                command: command.map(String::from),
            };
            if let Err(e) = super::sessions::write_meta(&path, &meta) {
                tracing::warn!(path = %path.display(), error = %e, "cannot index a recording");
            }
            st.recording = Some(
                path.strip_prefix(&ctx.caller.data_dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
            st.recorder = Some(r);
        }
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot start a recording"),
    }
}

fn record_request(
    ctx: &Ctx,
    id: russh::ChannelId,
    st: &State,
    request: &str,
    command: Option<String>,
) {
    ctx.caller.audit.record(Event::SshRequest {
        session: ctx.caller.session.clone(),
        who: ctx.caller.who.clone(),
        connection: ctx.cfg.name.clone(),
        channel: u32::from(id),
        request: request.into(),
        command,
        outcome: "ok".into(),
        rule: None,
        message: None,
        recording: st.recording.clone(),
    });
}

/// Ends a channel the caller asked for something refused.
async fn refuse(front_w: &ChannelWriteHalf<server::Msg>, message: &str) {
    let _ = front_w
        .extended_data_bytes(1, Bytes::from(format!("hoop: {message}\r\n")))
        .await;
    let _ = front_w.exit_status(1).await;
    let _ = front_w.eof().await;
    let _ = front_w.close().await;
}

async fn caller_to_host(
    ctx: Arc<Ctx>,
    mut front_r: ChannelReadHalf,
    front_w: Arc<ChannelWriteHalf<server::Msg>>,
    back_w: Arc<ChannelWriteHalf<client::Msg>>,
    state: Shared,
) -> u64 {
    let id = front_w.id();
    let mut bytes = 0u64;
    while let Some(msg) = front_r.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                bytes += data.len() as u64;
                ctx.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
                let record_input = ctx.cfg.record_input;
                if !record(&state, |r| {
                    if record_input {
                        r.input(&data);
                    }
                }) {
                    let _ = front_w.close().await;
                    break;
                }
                back_w.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => back_w.extended_data_bytes(ext, data).await,
            ChannelMsg::Eof => back_w.eof().await,
            ChannelMsg::Close => break,
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                lock(&state).pty = Some((term.clone(), col_width, row_height));
                lock(&state).pending.push_back("pty-req");
                // The library hands over its whole mode table, padded with
                // TTY_OP_END, and counts the padding when encoding: drop it.
                let terminal_modes: Vec<_> = terminal_modes
                    .iter()
                    .copied()
                    .filter(|(code, _)| *code != russh::Pty::TTY_OP_END)
                    .collect();
                back_w
                    .request_pty(
                        true,
                        &term,
                        col_width,
                        row_height,
                        pix_width,
                        pix_height,
                        &terminal_modes,
                    )
                    .await
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(r) = lock(&state).recorder.as_mut() {
                    r.resize(col_width, row_height);
                }
                back_w
                    .window_change(col_width, row_height, pix_width, pix_height)
                    .await
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => {
                if super::env_allowed(&variable_name) {
                    back_w.set_env(false, variable_name, variable_value).await
                } else {
                    Ok(())
                }
            }
            ChannelMsg::RequestShell { .. } => {
                {
                    let mut st = lock(&state);
                    start_recording(&ctx, &mut st, None);
                    st.request = Some("shell".into());
                    record_request(&ctx, id, &st, "shell", None);
                    st.pending.push_back("shell");
                }
                back_w.request_shell(true).await
            }
            ChannelMsg::Exec { command, .. } => {
                let text = String::from_utf8_lossy(&command).into_owned();
                if let Some((_, pattern, message)) =
                    ctx.deny.iter().find(|(re, _, _)| re.is_match(&text))
                {
                    ctx.refused(id, "exec", Some(text.clone()), pattern, message);
                    {
                        let mut st = lock(&state);
                        st.request = Some("exec".into());
                        st.command = Some(text);
                        st.exit_status = Some(1);
                    }
                    refuse(&front_w, message).await;
                    let _ = back_w.close().await;
                    break;
                }
                {
                    let mut st = lock(&state);
                    if !is_file_transfer(&text) {
                        start_recording(&ctx, &mut st, Some(&text));
                    }
                    st.request = Some("exec".into());
                    st.command = Some(text.clone());
                    record_request(&ctx, id, &st, "exec", Some(text));
                    st.pending.push_back("exec");
                }
                back_w.exec(true, command).await
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                {
                    let mut st = lock(&state);
                    st.request = Some("subsystem".into());
                    st.command = Some(name.clone());
                    record_request(&ctx, id, &st, "subsystem", Some(name.clone()));
                    st.pending.push_back("subsystem");
                }
                back_w.request_subsystem(true, name).await
            }
            ChannelMsg::Signal { signal } => back_w.signal(signal).await,
            // Refused by the handler (and audited there).
            ChannelMsg::AgentForward { .. } | ChannelMsg::RequestX11 { .. } => Ok(()),
            other => {
                tracing::debug!(?other, "ignored a caller channel message");
                Ok(())
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = back_w.eof().await;
    let _ = back_w.close().await;
    bytes
}

async fn host_to_caller(
    ctx: Arc<Ctx>,
    mut back_r: ChannelReadHalf,
    front_w: Arc<ChannelWriteHalf<server::Msg>>,
    handle: server::Handle,
    id: russh::ChannelId,
    state: Shared,
) -> u64 {
    let mut bytes = 0u64;
    while let Some(msg) = back_r.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                bytes += data.len() as u64;
                ctx.bytes_down
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if !record(&state, |r| r.output(&data)) {
                    break;
                }
                front_w.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                bytes += data.len() as u64;
                ctx.bytes_down
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if !record(&state, |r| r.output(&data)) {
                    break;
                }
                front_w.extended_data_bytes(ext, data).await
            }
            ChannelMsg::Eof => front_w.eof().await,
            ChannelMsg::Close => break,
            ChannelMsg::ExitStatus { exit_status } => {
                lock(&state).exit_status = Some(exit_status);
                front_w.exit_status(exit_status).await
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                lock(&state).exit_signal = Some(format!("{signal_name:?}"));
                handle
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await
                    .map_err(|()| russh::Error::SendError)
            }
            ChannelMsg::Success => {
                lock(&state).pending.pop_front();
                Ok(())
            }
            ChannelMsg::Failure => {
                let what = lock(&state).pending.pop_front();
                match what {
                    Some(req @ ("exec" | "shell" | "subsystem")) => {
                        refuse(&front_w, &format!("the host refused the {req} request")).await;
                        break;
                    }
                    other => {
                        tracing::info!(request = ?other, "the host refused a request");
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
        .map_err(|_| ());
        if sent.is_err() {
            break;
        }
    }
    let _ = front_w.close().await;
    bytes
}

/// Relays a `direct-tcpip` channel (`ssh -L`).
pub(super) fn spawn_forward(
    ctx: Arc<Ctx>,
    front: Channel<server::Msg>,
    back: Channel<client::Msg>,
    target: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let id = front.id();
        ctx.caller.audit.record(Event::SshRequest {
            session: ctx.caller.session.clone(),
            who: ctx.caller.who.clone(),
            connection: ctx.cfg.name.clone(),
            channel: u32::from(id),
            request: "direct-tcpip".into(),
            command: Some(target.clone()),
            outcome: "ok".into(),
            rule: None,
            message: None,
            recording: None,
        });
        let started = Instant::now();
        let (mut front_r, front_w) = front.split();
        let (mut back_r, back_w) = back.split();
        let c2 = ctx.clone();
        let up = async move {
            let mut n = 0u64;
            while let Some(msg) = front_r.wait().await {
                let r = match msg {
                    ChannelMsg::Data { data } => {
                        n += data.len() as u64;
                        c2.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
                        back_w.data_bytes(data).await
                    }
                    ChannelMsg::Eof => back_w.eof().await,
                    ChannelMsg::Close => break,
                    _ => Ok(()),
                };
                if r.is_err() {
                    break;
                }
            }
            let _ = back_w.close().await;
            n
        };
        let c3 = ctx.clone();
        let down = async move {
            let mut n = 0u64;
            while let Some(msg) = back_r.wait().await {
                let r = match msg {
                    ChannelMsg::Data { data } => {
                        n += data.len() as u64;
                        c3.bytes_down
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        front_w.data_bytes(data).await
                    }
                    ChannelMsg::Eof => front_w.eof().await,
                    ChannelMsg::Close => break,
                    _ => Ok(()),
                };
                if r.is_err() {
                    break;
                }
            }
            let _ = front_w.close().await;
            n
        };
        let (bytes_up, bytes_down) = tokio::join!(up, down);
        ctx.caller.audit.record(Event::SshChannelEnd {
            session: ctx.caller.session.clone(),
            who: ctx.caller.who.clone(),
            connection: ctx.cfg.name.clone(),
            channel: u32::from(id),
            request: Some("direct-tcpip".into()),
            command: Some(target),
            exit_status: None,
            exit_signal: None,
            bytes_up,
            bytes_down,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            recording: None,
        });
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_transfers_are_not_recorded() {
        assert!(super::is_file_transfer("scp -t /tmp/x"));
        assert!(super::is_file_transfer(
            "/usr/bin/rsync --server -vlogDtpre.iLsfxC . /tmp"
        ));
        assert!(!super::is_file_transfer("cat /etc/passwd"));
        assert!(!super::is_file_transfer(""));
    }
}
