//! `ssh` connections: the agent ends the caller's SSH on the tunnel
//! stream (any client authentication is accepted: who the caller is was
//! settled on the tunnel) and relays each session channel to its own SSH
//! connection to the host, logged in with the stored key. Exec commands
//! are audited and checked against `deny`; terminals are recorded.

mod backend;
mod channel;
pub mod recording;
pub mod sessions;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{RecvStream, SendStream};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};

use crate::audit::{AuditLog, Event, Who};
use crate::config::ConnectionConfig;

/// Who is on the other end, and where events and recordings go.
pub struct Caller {
    pub session: String,
    pub who: Who,
    pub audit: AuditLog,
    pub data_dir: PathBuf,
    pub host_key: Arc<russh::keys::PrivateKey>,
}

pub use super::Outcome;

/// What every channel of one SSH connection shares.
struct Ctx {
    cfg: ConnectionConfig,
    caller: Caller,
    deny: Vec<(regex::Regex, String, String)>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    recordings: AtomicU32,
}

impl Ctx {
    /// A new recording's path: `<session>.cast`, then `<session>-N.cast`.
    fn recording_path(&self) -> PathBuf {
        let n = self.recordings.fetch_add(1, Ordering::Relaxed);
        let name = if n == 0 {
            format!("{}.cast", self.caller.session)
        } else {
            format!("{}-{}.cast", self.caller.session, n + 1)
        };
        self.caller.data_dir.join("recordings").join(name)
    }

    fn refused(
        &self,
        channel: ChannelId,
        request: &str,
        command: Option<String>,
        rule: &str,
        message: &str,
    ) {
        self.caller.audit.record(Event::SshRequest {
            session: self.caller.session.clone(),
            who: self.caller.who.clone(),
            connection: self.cfg.name.clone(),
            channel: u32::from(channel),
            request: request.into(),
            command,
            outcome: "refused".into(),
            rule: Some(rule.into()),
            message: Some(message.into()),
            recording: None,
        });
    }
}

/// The ciphers offered to the caller's ssh. In SSH the client's order
/// decides, and OpenSSH lists chacha20-poly1305 first, then the CTR modes,
/// then AES-GCM: whatever the agent offers of those first is what every
/// session uses. Where the CPU has AES instructions the agent offers only
/// AES-GCM, which costs it a fraction of ChaCha20-Poly1305 per byte (scp
/// through hoop was CPU-bound on the agent, chacha20-poly1305 on the
/// caller's leg 37 % of its time); every OpenSSH since 6.2 (2013) and
/// PuTTY since 0.76 speak it. Without AES instructions ChaCha20 is the
/// faster one and leads.
fn caller_ciphers(aes_hardware: bool) -> &'static [russh::cipher::Name] {
    use russh::cipher::{
        AES_128_CTR, AES_128_GCM, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305,
    };
    if aes_hardware {
        &[AES_128_GCM, AES_256_GCM]
    } else {
        &[
            CHACHA20_POLY1305,
            AES_256_GCM,
            AES_128_GCM,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    }
}

/// Whether this CPU runs AES-GCM in hardware (AES rounds and carry-less
/// multiplication for GHASH).
fn aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Serves one tunnel stream as an SSH server.
pub async fn serve(
    cfg: &ConnectionConfig,
    caller: Caller,
    send: SendStream,
    recv: RecvStream,
) -> Outcome {
    let deny = cfg
        .deny
        .iter()
        .filter_map(|r| {
            regex::Regex::new(&r.pattern)
                .ok()
                .map(|re| (re, r.pattern.clone(), r.message.clone()))
        })
        .collect();
    let backend = backend::connect(cfg, &caller.data_dir).await;
    if let Err(e) = &backend {
        tracing::warn!(connection = %cfg.name, error = %e, "ssh backend login failed");
    }
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::None);
    methods.push(MethodKind::PublicKey);
    methods.push(MethodKind::Password);
    let config = Arc::new(server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-hoop_agent".into()),
        methods,
        auth_rejection_time: Duration::from_millis(0),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        keys: vec![(*caller.host_key).clone()],
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(60)),
        window_size: 8 * 1024 * 1024,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(caller_ciphers(aes_hardware())),
            ..Default::default()
        },
        ..Default::default()
    });
    let ctx = Arc::new(Ctx {
        cfg: cfg.clone(),
        caller,
        deny,
        bytes_up: AtomicU64::new(0),
        bytes_down: AtomicU64::new(0),
        recordings: AtomicU32::new(0),
    });
    let error = backend.as_ref().err().cloned();
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let handler = Front {
        ctx: ctx.clone(),
        backend: backend.ok().map(Arc::new),
        error: error.clone(),
        tasks: tasks.clone(),
    };
    let stream = tokio::io::join(recv, send);
    let result = match server::run_stream(config, stream, handler).await {
        Ok(running) => running.await.err().and_then(session_error),
        Err(e) => session_error(e),
    };
    // Let the channels write their end records (the caller is gone, so
    // their reads end at once); a stuck one is cut off.
    let pending: Vec<_> = tasks
        .lock()
        .map(|mut t| t.drain(..).collect())
        .unwrap_or_default();
    for t in pending {
        let abort = t.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    Outcome {
        bytes_up: ctx.bytes_up.load(Ordering::Relaxed),
        bytes_down: ctx.bytes_down.load(Ordering::Relaxed),
        error: error.or(result),
        ..Default::default()
    }
}

/// What the end record says about how the caller's SSH ended: the caller
/// hanging up (a disconnect, or the tunnel stream closing once `ssh`
/// exits) is a normal end.
fn session_error(e: russh::Error) -> Option<String> {
    match e {
        russh::Error::Disconnect | russh::Error::HUP | russh::Error::IO(_) => None,
        other => Some(other.to_string()),
    }
}

/// The SSH server side of one caller's connection.
struct Front {
    ctx: Arc<Ctx>,
    backend: Option<Arc<backend::Backend>>,
    /// Why the host could not be reached; told to the caller at login.
    error: Option<String>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// Environment variables a caller may pass to the host (`SendEnv`).
pub fn env_allowed(name: &str) -> bool {
    name == "TERM" || name == "LANG" || name == "COLORTERM" || name.starts_with("LC_")
}

impl server::Handler for Front {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        // Any method is accepted below: the caller was identified on the
        // tunnel. Say who, and that the session is recorded.
        Ok(Some(format!(
            "hoop: {} on {}, signed in through the tunnel; this session is audited and recorded\r\n",
            self.ctx.caller.who.user, self.ctx.cfg.name
        )))
    }

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: &russh::keys::PublicKey,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let Some(e) = &self.error {
            session.disconnect(
                russh::Disconnect::ByApplication,
                &format!("hoop: {e}"),
                "en",
            )?;
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(backend) = &self.backend else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        match backend.channel_open_session().await {
            Ok(b) => {
                reply.accept().await;
                let t = channel::spawn_session(self.ctx.clone(), channel, b, session.handle());
                if let Ok(mut v) = self.tasks.lock() {
                    v.push(t);
                }
            }
            Err(e) => {
                tracing::warn!(connection = %self.ctx.cfg.name, error = %e, "host refused a session channel");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let target = format!("{host}:{port}");
        let Some(backend) = &self.backend else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        if !self.ctx.cfg.allow_port_forwarding {
            self.ctx.refused(
                channel.id(),
                "direct-tcpip",
                Some(target),
                "allow_port_forwarding",
                "port forwarding is off for this connection",
            );
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        match backend
            .channel_open_direct_tcpip(host, port, originator_address, originator_port)
            .await
        {
            Ok(b) => {
                reply.accept().await;
                let t = channel::spawn_forward(self.ctx.clone(), channel, b, target);
                if let Ok(mut v) = self.tasks.lock() {
                    v.push(t);
                }
            }
            Err(e) => {
                tracing::info!(connection = %self.ctx.cfg.name, %target, error = %e, "host refused a forward");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    // Requests are answered at once, in order (the library keeps one
    // "wants reply" flag per channel); the channel task forwards them,
    // and ends the channel with a message when the host refuses one.
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if env_allowed(name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A denied command is accepted here and answered with exit status
        // 1 and the rule's message, as a shell would.
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _proto: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.ctx
            .refused(channel, "x11", None, "x11", "X11 forwarding is not offered");
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.ctx.refused(
            channel,
            "auth-agent",
            None,
            "agent-forwarding",
            "agent forwarding is refused: the agent logs in to the host itself",
        );
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::info!(connection = %self.ctx.cfg.name, %address, port = *port, "refused a remote forward");
        Ok(false)
    }
}
