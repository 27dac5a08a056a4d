//! The CLI's side of the tunnel: one authenticated QUIC connection to the
//! agent, reopened transparently when the agent restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hoop_proto::tunnel::{
    ConnectionInfo, Identity, LoginSettings, PROTOCOL_VERSION, RecordedSession, Request, Response,
    Token, WireError, close,
};
use hoop_tunnel::frame::{self, ReadFrameError};
use hoop_tunnel::pin::PinFailure;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::sync::Mutex;

use crate::session::{SessionError, TokenSource};
use crate::settings::Target;

/// How long the CLI waits for the agent's QUIC handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the CLI waits for an answer to a header.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve agent address {address}: {reason}")]
    Resolve { address: String, reason: String },
    #[error("no answer from the agent at {address} over UDP within {}s; is UDP {port} open?", HANDSHAKE_TIMEOUT.as_secs())]
    NoAnswer { address: String, port: u16 },
    #[error("{0}")]
    Pin(String),
    #[error("TLS handshake with the agent at {address} failed: {reason}")]
    Handshake { address: String, reason: String },
    #[error("{0}")]
    Refused(WireError),
    #[error("the tunnel to the agent broke: {0}")]
    Transport(String),
    #[error("the agent did not answer within {}s", REPLY_TIMEOUT.as_secs())]
    Timeout,
    #[error("unexpected answer from the agent: {0}")]
    Protocol(String),
    #[error("cannot set up QUIC: {0}")]
    Setup(String),
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl ClientError {
    /// The agent's typed refusal, if that is what this is.
    pub fn refusal(&self) -> Option<&WireError> {
        match self {
            ClientError::Refused(w) => Some(w),
            _ => None,
        }
    }

    /// True when retrying on a new tunnel may help.
    fn is_transport(&self) -> bool {
        matches!(self, ClientError::Transport(_) | ClientError::Timeout)
    }
}

struct Live {
    conn: Connection,
    control: Mutex<(SendStream, RecvStream)>,
    identity: std::sync::Mutex<Identity>,
}

/// A client for one agent.
pub struct AgentClient {
    target: Target,
    tokens: Option<Arc<TokenSource>>,
    endpoint: Endpoint,
    config: quinn::ClientConfig,
    pin_failure: PinFailure,
    live: Mutex<Option<Arc<Live>>>,
}

impl AgentClient {
    pub fn new(target: Target, tokens: Option<Arc<TokenSource>>) -> Result<Self, ClientError> {
        let (config, pin_failure) = hoop_tunnel::tls::client_config(&target.pin)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let bind: SocketAddr = ([0, 0, 0, 0, 0, 0, 0, 0], 0).into();
        let (endpoint, _) = hoop_tunnel::transport::endpoint(bind, None)
            .or_else(|_| hoop_tunnel::transport::endpoint(([0, 0, 0, 0], 0).into(), None))
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(AgentClient {
            target,
            tokens,
            endpoint,
            config,
            pin_failure,
            live: Mutex::new(None),
        })
    }

    async fn resolve(&self) -> Result<(SocketAddr, String), ClientError> {
        let address = &self.target.address;
        let err = |reason: String| ClientError::Resolve {
            address: address.clone(),
            reason,
        };
        let (host, _) = address
            .rsplit_once(':')
            .ok_or_else(|| err("expected HOST:PORT".into()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut addrs = tokio::net::lookup_host(address.as_str())
            .await
            .map_err(|e| err(e.to_string()))?;
        let addr = addrs.next().ok_or_else(|| err("no addresses".into()))?;
        Ok((addr, host))
    }

    /// Opens a QUIC connection and its control stream.
    async fn handshake(&self) -> Result<(Connection, SendStream, RecvStream), ClientError> {
        let (addr, host) = self.resolve().await?;
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), addr, &host)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Err(_) => {
                return Err(ClientError::NoAnswer {
                    address: self.target.address.clone(),
                    port: addr.port(),
                });
            }
            Ok(Err(e)) => {
                if let Some(msg) = self.pin_failure.take() {
                    return Err(ClientError::Pin(format!(
                        "refusing the agent at {}: {msg}",
                        self.target.address
                    )));
                }
                return Err(ClientError::Handshake {
                    address: self.target.address.clone(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(c)) => c,
        };
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok((conn, send, recv))
    }

    /// Asks the agent for its login settings; needs no token.
    pub async fn discover(&self) -> Result<LoginSettings, ClientError> {
        let (conn, mut send, mut recv) = self.handshake().await?;
        let resp = request(
            &mut send,
            &mut recv,
            &Request::Discover {
                version: PROTOCOL_VERSION,
            },
        )
        .await?;
        conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
        match resp {
            Response::Discovery(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// The authenticated tunnel, made or remade as needed.
    async fn live(&self) -> Result<Arc<Live>, ClientError> {
        let mut guard = self.live.lock().await;
        if let Some(l) = guard.as_ref() {
            if l.conn.close_reason().is_none() {
                return Ok(l.clone());
            }
        }
        let token = match &self.tokens {
            Some(src) => src.fresh().await?,
            None => {
                return Err(SessionError::NotSignedIn {
                    agent: self.target.address.clone(),
                }
                .into());
            }
        };
        let (conn, mut send, mut recv) = self.handshake().await?;
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            token,
            client: concat!("hoop ", env!("CARGO_PKG_VERSION")).to_string(),
        };
        let identity = match request(&mut send, &mut recv, &hello).await? {
            Response::Welcome { identity, .. } => identity,
            other => return Err(unexpected(other)),
        };
        let live = Arc::new(Live {
            conn,
            control: Mutex::new((send, recv)),
            identity: std::sync::Mutex::new(identity),
        });
        // Tell the user when the agent ends the tunnel for a reason of its
        // own (an expired token), rather than letting connections just fail.
        let watched = live.conn.clone();
        tokio::spawn(async move {
            if let quinn::ConnectionError::ApplicationClosed(c) = watched.closed().await {
                if c.error_code == quinn::VarInt::from_u32(close::TOKEN_EXPIRED) {
                    eprintln!("hoop: {}", String::from_utf8_lossy(&c.reason));
                }
            }
        });
        *guard = Some(live.clone());
        Ok(live)
    }

    /// Sends a fresh token to the agent for the open tunnel, if any. The
    /// next tunnel presents the fresh token on its own.
    pub async fn push_token(&self, token: Token) -> Result<Option<Identity>, ClientError> {
        let live = {
            let guard = self.live.lock().await;
            match guard.as_ref() {
                Some(l) if l.conn.close_reason().is_none() => l.clone(),
                _ => return Ok(None),
            }
        };
        let mut control = live.control.lock().await;
        let (send, recv) = &mut *control;
        match request(send, recv, &Request::Refresh { token }).await? {
            Response::Refreshed { identity } => {
                if let Ok(mut id) = live.identity.lock() {
                    *id = identity.clone();
                }
                Ok(Some(identity))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Closes the tunnel politely so the agent does not keep it until the
    /// idle timeout. Call before the process exits.
    pub async fn shutdown(&self) {
        if let Some(live) = self.live.lock().await.take() {
            live.conn.close(quinn::VarInt::from_u32(close::OK), b"done");
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }

    /// The token source, for background refresh.
    pub fn tokens(&self) -> Option<&Arc<TokenSource>> {
        self.tokens.as_ref()
    }

    async fn forget(&self, dead: &Arc<Live>) {
        let mut guard = self.live.lock().await;
        if guard.as_ref().is_some_and(|l| Arc::ptr_eq(l, dead)) {
            *guard = None;
        }
    }

    /// Runs `f` on the live tunnel, retrying once on a fresh tunnel when the
    /// old one turns out to be dead (e.g. the agent restarted).
    async fn with_retry<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(Arc<Live>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let live = self.live().await?;
        match f(live.clone()).await {
            Err(e) if e.is_transport() => {
                tracing::debug!(error = %e, "tunnel is gone; reconnecting");
                live.conn.close(0u32.into(), b"stale");
                self.forget(&live).await;
                f(self.live().await?).await
            }
            other => other,
        }
    }

    /// The identity the agent verified.
    pub async fn identity(&self) -> Result<Identity, ClientError> {
        let live = self.live().await?;
        let id = live
            .identity
            .lock()
            .map_err(|_| ClientError::Protocol("identity lock poisoned".into()))?
            .clone();
        Ok(id)
    }

    /// Connections the caller may open.
    pub async fn list_connections(&self) -> Result<Vec<ConnectionInfo>, ClientError> {
        self.with_retry(|live| async move {
            let mut control = live.control.lock().await;
            let (send, recv) = &mut *control;
            match request(send, recv, &Request::ListConnections).await? {
                Response::Connections { connections } => Ok(connections),
                other => Err(unexpected(other)),
            }
        })
        .await
    }

    /// Recorded sessions the caller may see.
    pub async fn list_sessions(&self) -> Result<Vec<RecordedSession>, ClientError> {
        self.with_retry(|live| async move {
            let mut control = live.control.lock().await;
            let (send, recv) = &mut *control;
            match request(send, recv, &Request::ListSessions).await? {
                Response::Sessions { sessions } => Ok(sessions),
                other => Err(unexpected(other)),
            }
        })
        .await
    }

    /// Fetches one recording: its name and a stream of `size` bytes.
    pub async fn fetch_recording(
        &self,
        recording: &str,
    ) -> Result<(String, u64, RecvStream), ClientError> {
        let req = Request::FetchRecording {
            recording: recording.to_string(),
        };
        self.with_retry(|live| {
            let req = req.clone();
            async move {
                let (mut send, mut recv) = live
                    .conn
                    .open_bi()
                    .await
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                let resp = request(&mut send, &mut recv, &req).await?;
                let _ = send.finish();
                match resp {
                    Response::Recording { recording, size } => Ok((recording, size, recv)),
                    other => Err(unexpected(other)),
                }
            }
        })
        .await
    }

    /// Opens a forwarded stream to `connection`; bytes may flow on return.
    pub async fn open(
        &self,
        connection: &str,
        client_addr: Option<SocketAddr>,
    ) -> Result<(SendStream, RecvStream, String), ClientError> {
        let open = Request::Open {
            connection: connection.to_string(),
            client_addr: client_addr.map(|a| a.to_string()),
        };
        self.with_retry(|live| {
            let open = open.clone();
            async move {
                let (mut send, mut recv) = live
                    .conn
                    .open_bi()
                    .await
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                match request(&mut send, &mut recv, &open).await? {
                    Response::Opened { session } => Ok((send, recv, session)),
                    other => Err(unexpected(other)),
                }
            }
        })
        .await
    }
}

fn unexpected(resp: Response) -> ClientError {
    match resp {
        Response::Error(w) => ClientError::Refused(w),
        other => ClientError::Protocol(format!("{other:?}")),
    }
}

async fn request(
    send: &mut SendStream,
    recv: &mut RecvStream,
    req: &Request,
) -> Result<Response, ClientError> {
    frame::write(send, req)
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    match tokio::time::timeout(REPLY_TIMEOUT, frame::read::<Response>(recv)).await {
        Err(_) => Err(ClientError::Timeout),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(ReadFrameError::Unrecognised { detail, .. })) => {
            Err(ClientError::Protocol(format!(
                "the agent sent a message this hoop does not understand ({detail}); hoop and hoop-agent versions may differ"
            )))
        }
        Ok(Err(e)) => Err(ClientError::Transport(e.to_string())),
    }
}
