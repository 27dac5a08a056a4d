//! Guardrails applied to statements before they reach a database backend:
//! `deny` rules (regular expressions with a message) and `read_only`.
//!
//! `read_only` is enforced twice: the backend session starts with
//! `default_transaction_read_only = on`, and statements that would write
//! or lift that setting are refused here first, so a refused write never
//! reaches the backend at all.

mod lexer;

use regex::Regex;

use crate::config::DenyRule;
pub use lexer::{Statement, normalize, split_statements};

/// What to do with a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse, telling the user this.
    Deny {
        rule: String,
        message: String,
    },
}

/// The guardrails of one connection.
#[derive(Debug, Clone)]
pub struct Guard {
    deny: Vec<(Regex, DenyRule)>,
    read_only: bool,
}

/// Statement keywords that only read (or manage the session harmlessly).
const READ_KEYWORDS: &[&str] = &[
    "SELECT",
    "WITH",
    "SHOW",
    "EXPLAIN",
    "VALUES",
    "TABLE",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "FETCH",
    "MOVE",
    "CLOSE",
    "DECLARE",
    "DISCARD",
    "DEALLOCATE",
    "PREPARE",
    "EXECUTE",
    "LISTEN",
    "UNLISTEN",
    "SET",
    "RESET",
    "COPY",
    "DESCRIBE",
    "DESC",
    "USE",
    "HELP",
];

/// Words that write wherever they appear (a CTE, EXPLAIN ANALYZE or
/// PREPARE can hide them after a harmless first word). Kept to words that
/// are rarely column names, so reads are not refused by accident.
const WRITE_WORDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "DROP", "CREATE", "ALTER", "GRANT",
    "REVOKE", "INTO",
];

/// Functions that write or lift read-only, refused wherever they appear.
const WRITE_FUNCTIONS: &[&str] = &[
    "SET_CONFIG",
    "NEXTVAL",
    "SETVAL",
    "DBLINK",
    "DBLINK_EXEC",
    "LO_IMPORT",
    "LO_EXPORT",
    "LO_UNLINK",
    "LO_FROM_BYTEA",
    "LO_CREATE",
    "LO_PUT",
    "PG_TERMINATE_BACKEND",
    "PG_CANCEL_BACKEND",
];

/// What SET and RESET may not touch on a read-only connection.
const FORBIDDEN_SETTINGS: &[&str] = &[
    "DEFAULT_TRANSACTION_READ_ONLY",
    "TRANSACTION_READ_ONLY",
    // MariaDB's name for it.
    "TX_READ_ONLY",
    "SESSION_AUTHORIZATION",
    "ROLE",
    "SESSION",
    "ALL",
];

impl Guard {
    /// Builds the guard; patterns were validated with the config.
    pub fn new(rules: &[DenyRule], read_only: bool) -> Result<Guard, regex::Error> {
        let deny = rules
            .iter()
            .map(|r| Ok((Regex::new(&r.pattern)?, r.clone())))
            .collect::<Result<_, regex::Error>>()?;
        Ok(Guard { deny, read_only })
    }

    /// True when the connection is read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// True when no rule can refuse anything.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && !self.read_only
    }

    /// Checks the text of one protocol message (which may hold several
    /// statements).
    pub fn check(&self, sql: &str) -> Verdict {
        let normalized = if self.deny.is_empty() {
            String::new()
        } else {
            normalize(sql)
        };
        for (re, rule) in &self.deny {
            if re.is_match(sql) || re.is_match(&normalized) {
                return Verdict::Deny {
                    rule: rule.pattern.clone(),
                    message: rule.message.clone(),
                };
            }
        }
        if self.read_only {
            for stmt in split_statements(sql) {
                if let Some(why) = write_reason(&stmt) {
                    return Verdict::Deny {
                        rule: "read_only".into(),
                        message: format!(
                            "this connection is read-only: {why} is not allowed through hoop"
                        ),
                    };
                }
            }
        }
        Verdict::Allow
    }
}

/// Why a statement would write, or `None` when it only reads.
fn write_reason(stmt: &Statement) -> Option<String> {
    let words = &stmt.words;
    let first = words.first()?;
    if !READ_KEYWORDS.contains(&first.as_str()) {
        return Some(first.clone());
    }
    if let Some(w) = words.iter().find(|w| WRITE_WORDS.contains(&w.as_str())) {
        return Some(if w == "INTO" {
            "SELECT ... INTO".into()
        } else {
            w.clone()
        });
    }
    if let Some(w) = words.iter().find(|w| WRITE_FUNCTIONS.contains(&w.as_str())) {
        return Some(format!("{}()", w.to_ascii_lowercase()));
    }
    if matches!(first.as_str(), "SET" | "RESET") {
        if let Some(w) = words
            .iter()
            .skip(1)
            .find(|w| FORBIDDEN_SETTINGS.contains(&w.as_str()))
        {
            return Some(format!("{first} {w}"));
        }
    }
    // BEGIN/START TRANSACTION READ WRITE, SET TRANSACTION READ WRITE.
    if words.windows(2).any(|p| p[0] == "READ" && p[1] == "WRITE") {
        return Some("READ WRITE".into());
    }
    if first == "COPY" && words.iter().any(|w| w == "FROM") {
        // COPY t FROM ... writes; COPY (SELECT ... FROM t) TO is a read.
        let to_pos = words.iter().position(|w| w == "TO");
        let from_pos = words.iter().rposition(|w| w == "FROM");
        if to_pos.is_none() || from_pos > to_pos {
            return Some("COPY ... FROM".into());
        }
    }
    None
}

#[cfg(test)]
mod tests;
