//! Audit events. Each line of the log is one event, with `seq`, `ts` and
//! `prev` (the hash chain) added by the writer.

use serde::Serialize;

use crate::mask::MaskSummary;

/// Who, as the agent verified it.
#[derive(Debug, Clone, Serialize)]
pub struct Who {
    pub user: String,
    pub groups: Vec<String>,
    pub issuer: String,
}

impl From<&hoop_proto::tunnel::Identity> for Who {
    fn from(id: &hoop_proto::tunnel::Identity) -> Self {
        Who {
            user: id.user.clone(),
            groups: id.groups.clone(),
            issuer: id.issuer.clone(),
        }
    }
}

/// A Kubernetes API request, as its path names it (see
/// `connector::kubernetes::path`). Non-resource requests (`/version`,
/// discovery) have a verb only.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KubeRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `exec`, `attach`, `portforward`, `log`, ...
    pub verb: String,
    /// The API group; absent for the core group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `exec` and `attach`: the exit code the API server reported on the
    /// status channel (0 for `Success`, N for a `Failure` whose cause is
    /// `ExitCode` N); absent when it sent none or another failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

/// Everything the agent records.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent started serving.
    AgentStart { version: String, listen: String },
    /// The agent stopped cleanly.
    AgentStop,
    /// A torn or unreadable tail was cut from the log at start-up.
    AuditRecovered { dropped_bytes: u64, reason: String },
    /// A caller presented a token that was refused.
    AuthFailed {
        peer: String,
        code: String,
        reason: String,
    },
    /// A caller authenticated.
    Login {
        peer: String,
        #[serde(flatten)]
        who: Who,
    },
    /// A tunnel's token expired without a refresh; the agent closed it.
    TunnelExpired {
        peer: String,
        #[serde(flatten)]
        who: Who,
        expired_at: u64,
    },
    /// A caller replaced its tunnel's token before it expired.
    TokenRefreshed {
        peer: String,
        #[serde(flatten)]
        who: Who,
        expires_at: u64,
    },
    /// An attempt to open a connection was refused before it started.
    Refused {
        peer: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        client_addr: Option<String>,
        code: String,
        reason: String,
    },
    /// A statement ran on a database backend (simple query, execution of
    /// a prepared statement, or a function call), with its outcome.
    Statement {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        /// `query`, `execute` or `function_call`.
        kind: String,
        /// Prepared statement name, for `execute`.
        #[serde(skip_serializing_if = "Option::is_none")]
        statement: Option<String>,
        text: String,
        /// Bound parameters, only when the connection enables it.
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<Vec<Option<String>>>,
        duration_us: u64,
        rows: u64,
        /// Command tags, e.g. `SELECT 5`, `INSERT 0 1`.
        commands: Vec<String>,
        /// `ok`, `error`, or `skipped` (not run after an earlier error).
        outcome: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        sqlstate: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// What masking changed in the results; absent when nothing.
        #[serde(skip_serializing_if = "Option::is_none")]
        masked: Option<MaskSummary>,
    },
    /// A statement was prepared (extended protocol Parse).
    StatementPrepared {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        statement: String,
        text: String,
    },
    /// A guardrail refused a statement before it reached the backend.
    StatementRefused {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        kind: String,
        text: String,
        rule: String,
        message: String,
    },
    /// One request on an `http` connection, recorded when its response
    /// has been sent (or the exchange failed). Injected header values and
    /// query values are never recorded.
    HttpRequest {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        method: String,
        /// The path the caller asked for, without the query string.
        path: String,
        /// Names of the query parameters, without their values.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        query: Vec<String>,
        /// The protocol asked for with `Upgrade` (`websocket`, `SPDY/3.1`).
        #[serde(skip_serializing_if = "Option::is_none")]
        upgrade: Option<String>,
        /// Status the caller got: the backend's, or the agent's own
        /// (403 refused, 502 failed).
        status: u16,
        /// Body bytes from the caller (after an upgrade: all bytes).
        bytes_up: u64,
        /// Body bytes to the caller, after masking.
        bytes_down: u64,
        duration_us: u64,
        /// `ok`, `refused` (by policy, never sent to the backend) or
        /// `error` (the agent could not complete the exchange).
        outcome: String,
        /// The rule that refused it: a deny pattern, `read_only`, ...
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// What masking changed in the response; absent when nothing.
        #[serde(skip_serializing_if = "Option::is_none")]
        masked: Option<MaskSummary>,
        /// `kubernetes` connections: what the API path names.
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        kube: Option<KubeRequest>,
        /// A recorded `exec` or `attach`: its file under the data dir.
        #[serde(skip_serializing_if = "Option::is_none")]
        recording: Option<String>,
    },
    /// A request on an `ssh` session channel: `exec` (with its command
    /// line), `shell`, `subsystem` (with its name), `direct-tcpip` (with
    /// `host:port`), or a refused `auth-agent`/`x11` request.
    SshRequest {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        /// The caller's channel number within the SSH connection.
        channel: u32,
        request: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        /// `ok` (forwarded to the host) or `refused`.
        outcome: String,
        /// The deny pattern or setting that refused it.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// The asciicast v2 file recording this channel's terminal, under
        /// the agent's data dir.
        #[serde(skip_serializing_if = "Option::is_none")]
        recording: Option<String>,
    },
    /// A caller fetched a recording (`hoop replay`).
    RecordingFetched {
        peer: String,
        #[serde(flatten)]
        who: Who,
        recording: String,
        /// The session it belongs to, when found.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// `ok` or `refused`.
        outcome: String,
    },
    /// An `ssh` session channel closed.
    SshChannelEnd {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        channel: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_status: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_signal: Option<String>,
        bytes_up: u64,
        bytes_down: u64,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        recording: Option<String>,
    },
    /// A forwarded connection began.
    SessionStart {
        session: String,
        peer: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        connection_type: String,
        client_addr: Option<String>,
    },
    /// A forwarded connection ended.
    SessionEnd {
        session: String,
        #[serde(flatten)]
        who: Who,
        connection: String,
        /// From the caller to the backend.
        bytes_up: u64,
        /// From the backend to the caller.
        bytes_down: u64,
        duration_ms: u64,
        /// `ok` or `error`.
        outcome: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Database sessions: the user name the client gave (the backend
        /// login is the connection's own) and the database.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_user: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        database: Option<String>,
    },
}
