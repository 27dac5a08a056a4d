//! Bookkeeping shared by the two directions of a PostgreSQL session:
//! which sync points are outstanding and which statements await their
//! results (for the audit log).

use std::collections::VecDeque;
use std::time::Instant;

use crate::mask::MaskSummary;

/// What a pending statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Query,
    Execute {
        statement: String,
    },
    FunctionCall {
        oid: u32,
    },
    /// A refused statement, replaced by a stand-in that fails on the
    /// backend (so the backend's transaction state stays true); its error
    /// is rewritten into this refusal on the way back.
    Refused {
        message: String,
        rule: String,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Execute { .. } => "execute",
            Kind::FunctionCall { .. } => "function_call",
            Kind::Refused { .. } => "refused",
        }
    }
}

/// A statement sent to the backend whose outcome is not known yet.
#[derive(Debug)]
pub struct Pending {
    pub kind: Kind,
    pub text: String,
    pub params: Option<Vec<Option<String>>>,
    pub started: Instant,
    /// The ReadyForQuery that ends its batch.
    pub sync_no: u64,
    pub rows: u64,
    pub commands: Vec<String>,
    pub sqlstate: Option<String>,
    pub error: Option<String>,
    /// What masking did to its results.
    pub masked: MaskSummary,
}

/// A client message that the backend will answer, in order; kept only
/// on masked connections, so the backend → client side knows which
/// columns each row has (see `masking`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A simple Query (or FunctionCall): results until ReadyForQuery.
    Query,
    /// Parse of a statement name: ParseComplete.
    Parse(String),
    /// Bind: BindComplete; the portal's columns are the statement's, with
    /// these result formats.
    Bind {
        portal: String,
        statement: String,
        formats: Vec<i16>,
    },
    /// Describe of a statement: ParameterDescription, then RowDescription
    /// or NoData.
    DescribeStatement(String),
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal(String),
    /// Execute of a portal: rows, then CommandComplete, PortalSuspended or
    /// EmptyQueryResponse.
    Execute(String),
    /// Close: CloseComplete.
    Close,
    /// Sync: ReadyForQuery.
    Sync,
}

/// State shared by both directions.
#[derive(Debug, Default)]
pub struct Track {
    /// Query, Sync and FunctionCall messages forwarded (each earns a
    /// ReadyForQuery).
    pub sent_syncs: u64,
    /// ReadyForQuery messages seen from the backend.
    pub seen_rfq: u64,
    pub pending: VecDeque<Pending>,
    /// Answers the backend owes, oldest first (masked connections only).
    pub expect: VecDeque<Expect>,
    /// The client sent Terminate or closed its side.
    pub client_done: bool,
}

impl Track {
    /// Statements whose batch ended with ReadyForQuery number `n`.
    pub fn finish_batch(&mut self, n: u64) -> Vec<Pending> {
        let mut done = Vec::new();
        while self.pending.front().is_some_and(|p| p.sync_no <= n) {
            if let Some(p) = self.pending.pop_front() {
                done.push(p);
            }
        }
        done
    }
}
