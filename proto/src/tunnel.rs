//! Tunnel headers between `hoop` (client) and `hoop-agent` (server).
//!
//! Every message is a 4-byte big-endian length followed by that many bytes
//! of JSON. The first bidirectional stream of a QUIC connection is the
//! control stream (`Hello`/`Discover`, then `Refresh` and `ListConnections`);
//! every further bidirectional stream starts with `Open`, is answered with
//! `Opened` or an error, and then carries raw bytes.

use std::fmt;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

/// Version of the tunnel protocol spoken by this build. Bumped on any
/// incompatible change to the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

/// ALPN identifier negotiated in the QUIC handshake.
pub const ALPN: &[u8] = b"hoop/1";

/// Largest header body accepted, in bytes. Headers are small (a token is
/// a few KiB); anything larger is hostile or broken.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Length of the frame prefix, in bytes.
pub const PREFIX_LEN: usize = 4;

/// QUIC application close codes the agent uses; the close reason carries a
/// message for the user.
pub mod close {
    /// Normal shutdown (agent stopping, client done).
    pub const OK: u32 = 0;
    /// Authentication or protocol failure.
    pub const REFUSED: u32 = 1;
    /// The tunnel's token expired and was not refreshed within the grace period.
    pub const TOKEN_EXPIRED: u32 = 2;
}

/// A bearer token. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// The raw token, for the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Messages sent by the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// First message on the control stream: authenticate the connection.
    Hello {
        version: u32,
        token: Token,
        /// Free-form client description, e.g. `hoop 0.1.0`.
        #[serde(default)]
        client: String,
    },
    /// Unauthenticated request for the agent's login settings.
    Discover { version: u32 },
    /// Replace the connection's token before it expires.
    Refresh { token: Token },
    /// List the connections the caller may open.
    ListConnections,
    /// List recorded sessions: the caller's own, or all of them for a
    /// member of the agent's `auditor_group`. Control stream; agents
    /// before it answer `bad_request`.
    ListSessions,
    /// First message on a stream of its own: send one recording (by the
    /// name `ListSessions` gave, or a session id); answered `Recording`,
    /// then the file's bytes, then the stream finishes.
    FetchRecording { recording: String },
    /// First message on a data stream: forward this stream to a connection.
    Open {
        connection: String,
        /// Address of the local client that made the TCP connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_addr: Option<String>,
    },
}

/// Messages sent by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// `Hello` accepted.
    Welcome {
        version: u32,
        identity: Identity,
        /// Free-form agent description, e.g. `hoop-agent 0.1.0`.
        agent: String,
    },
    /// Answer to `Discover`.
    Discovery(LoginSettings),
    /// Answer to `Refresh`.
    Refreshed { identity: Identity },
    /// Answer to `ListConnections`.
    Connections { connections: Vec<ConnectionInfo> },
    /// Answer to `ListSessions`, oldest first.
    Sessions { sessions: Vec<RecordedSession> },
    /// Answer to `FetchRecording`: `size` bytes of asciicast v2 follow.
    Recording { recording: String, size: u64 },
    /// Answer to `Open`: bytes may flow now.
    Opened { session: String },
    /// The request failed; the stream or connection ends after this.
    Error(WireError),
}

/// The caller as the agent verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub issuer: String,
    /// Token expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// One connection the caller may open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub name: String,
    /// `tcp`, `postgres`, `mysql`, `ssh`, `http` or `kubernetes`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Local port `hoop connect` listens on unless told otherwise.
    pub default_port: u16,
    /// `ssh` connections: the agent's SSH host key (`ssh-ed25519 AAAA...`),
    /// which `hoop connect` writes to the known-hosts file it manages.
    /// Absent from older agents and other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_key: Option<String>,
    /// `kubernetes` connections: the namespace `hoop connect` makes
    /// kubectl's default. Absent from older agents and other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One recorded terminal (a shell or exec channel of an `ssh` session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSession {
    /// Name for `FetchRecording` (`<session>` or `<session>-N`).
    pub recording: String,
    /// The tunnel session it belongs to (as in the audit log).
    pub session: String,
    pub connection: String,
    pub user: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// `shell` or `exec`.
    pub request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Size of the recording, in bytes.
    pub size: u64,
}

/// What `hoop login` needs to sign in against this agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSettings {
    pub issuer: String,
    pub client_id: String,
    pub audience: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An error the agent reports to the CLI; the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

/// Kinds of failure, so the CLI can react (re-login, reconnect, give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The two sides speak different tunnel protocol versions.
    VersionMismatch,
    /// A message the agent could not parse, or out of order.
    BadRequest,
    /// No token, or a request that needs authentication before `Hello`.
    Unauthenticated,
    /// The token has expired.
    TokenExpired,
    /// The token's `nbf` lies in the future.
    TokenNotYetValid,
    /// The token is malformed, badly signed or for another audience.
    TokenInvalid,
    /// The token's issuer is not one the agent trusts.
    UntrustedIssuer,
    /// No connection with that name exists.
    UnknownConnection,
    /// The caller may not use that connection.
    Forbidden,
    /// The agent could not reach the backend.
    BackendUnreachable,
    /// Something failed inside the agent.
    Internal,
    /// A code from a newer agent.
    #[serde(other)]
    Unknown,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes are needed; `needed` is the total frame size when known.
    #[error("incomplete frame: need {needed} bytes")]
    Incomplete { needed: usize },
    /// The announced length exceeds [`MAX_HEADER_LEN`].
    #[error("header of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// The body is not a message of the expected kind.
    #[error("malformed header: {0}")]
    Invalid(String),
}

/// Checks a 4-byte length prefix and returns the body length.
pub fn body_len(prefix: [u8; PREFIX_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_HEADER_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_HEADER_LEN,
        });
    }
    Ok(len)
}

/// Decodes a message body (without prefix).
pub fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Invalid(e.to_string()))
}

/// Decodes one frame from the front of `buf`, returning the message and
/// the number of bytes it used. Tells an incomplete frame from an invalid
/// one, and rejects an oversized length before looking at the body.
pub fn decode<T: for<'de> Deserialize<'de>>(buf: &[u8]) -> Result<(T, usize), FrameError> {
    let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
        return Err(FrameError::Incomplete { needed: PREFIX_LEN });
    };
    let len = body_len(*prefix)?;
    let total = PREFIX_LEN + len;
    let Some(body) = buf.get(PREFIX_LEN..total) else {
        return Err(FrameError::Incomplete { needed: total });
    };
    Ok((decode_body(body)?, total))
}

/// Encodes `msg` as one frame onto `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut impl BufMut) -> Result<(), FrameError> {
    let body = serde_json::to_vec(msg).map_err(|e| FrameError::Invalid(e.to_string()))?;
    if body.len() > MAX_HEADER_LEN {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_HEADER_LEN,
        });
    }
    // Cannot truncate: MAX_HEADER_LEN fits in u32.
    out.put_u32(body.len() as u32);
    out.put_slice(&body);
    Ok(())
}

/// Reads the `version` field of a message that failed to decode, so a
/// peer from another protocol version gets a version error rather than a
/// parse error.
pub fn probe_version(body: &[u8]) -> Option<u32> {
    #[derive(Deserialize)]
    struct Probe {
        version: u32,
    }
    serde_json::from_slice::<Probe>(body)
        .ok()
        .map(|p| p.version)
}

#[cfg(test)]
mod tests;
