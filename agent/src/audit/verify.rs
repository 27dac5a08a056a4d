//! `hoop-agent audit verify`: walks the whole chain and names the first
//! line that breaks it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{GENESIS, line_hash};

/// A chain that checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub lines: u64,
    /// Hash of the last line: note it somewhere safe to detect a rewrite of
    /// the whole file later.
    pub head: String,
}

/// Where the chain breaks.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Broken {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// Checks every line of the log at `path`.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let io = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut prev = GENESIS.to_string();
    let mut n = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if read == 0 {
            break;
        }
        n += 1;
        let broken = |reason: String| VerifyError::Broken {
            path: path.to_owned(),
            line: n,
            reason,
        };
        if buf.last() != Some(&b'\n') {
            return Err(broken(
                "torn line without a newline (the agent cuts it at its next start)".into(),
            ));
        }
        let line = &buf[..buf.len() - 1];
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| broken(format!("not a JSON event: {e}")))?;
        let seq = v
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| broken("no seq".into()))?;
        if seq != n {
            return Err(broken(format!(
                "seq is {seq}, expected {n} (a line was removed, added or moved)"
            )));
        }
        let p = v
            .get("prev")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| broken("no prev".into()))?;
        if p != prev {
            return Err(broken(
                "prev does not match the hash of the line before (the previous line was altered)"
                    .into(),
            ));
        }
        if v.get("ts").and_then(serde_json::Value::as_str).is_none() {
            return Err(broken("no ts".into()));
        }
        if v.get("event").and_then(serde_json::Value::as_str).is_none() {
            return Err(broken("no event".into()));
        }
        prev = line_hash(line);
    }
    Ok(VerifyReport {
        lines: n,
        head: prev,
    })
}
