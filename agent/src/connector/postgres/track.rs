//! Bookkeeping shared by the two directions of a PostgreSQL session:
//! which sync points are outstanding, which statements await their
//! results (for the audit log), and which refusals wait to be delivered
//! in their proper place in the response stream.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

/// Where an injected response goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Right before the n-th ReadyForQuery of the session (an error inside
    /// an extended-protocol batch that was partly forwarded).
    BeforeRfq(u64),
    /// Once n ReadyForQuery messages have been delivered; followed by a
    /// ReadyForQuery of our own.
    AfterRfq(u64),
}

/// A refusal to deliver to the client.
#[derive(Debug)]
pub struct Injection {
    pub when: When,
    pub error: Bytes,
}

/// What a pending statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Query,
    Execute { statement: String },
    FunctionCall { oid: u32 },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Execute { .. } => "execute",
            Kind::FunctionCall { .. } => "function_call",
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
}

/// State shared by both directions.
#[derive(Debug)]
pub struct Track {
    /// Query and Sync messages forwarded (each earns a ReadyForQuery).
    pub sent_syncs: u64,
    /// ReadyForQuery messages delivered to the client.
    pub seen_rfq: u64,
    /// Transaction status byte of the last ReadyForQuery.
    pub status: u8,
    pub injections: VecDeque<Injection>,
    pub pending: VecDeque<Pending>,
    /// The client sent Terminate or closed its side.
    pub client_done: bool,
}

impl Track {
    pub fn new(status: u8) -> Track {
        Track {
            sent_syncs: 0,
            seen_rfq: 0,
            status,
            injections: VecDeque::new(),
            pending: VecDeque::new(),
            client_done: false,
        }
    }

    /// Injections due before ReadyForQuery number `n`.
    pub fn take_before(&mut self, n: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.injections.retain(|i| {
            if i.when == When::BeforeRfq(n) {
                out.push(i.error.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// Injections due now that `seen_rfq` ReadyForQuery messages went out.
    pub fn take_after(&mut self) -> Vec<Bytes> {
        let seen = self.seen_rfq;
        let mut out = Vec::new();
        self.injections.retain(|i| match i.when {
            When::AfterRfq(at) if at <= seen => {
                out.push(i.error.clone());
                false
            }
            _ => true,
        });
        out
    }

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
