//! CommandComplete (`C`), backend → frontend: a statement finished, with
//! its command tag (`SELECT 5`, `INSERT 0 3`, `CREATE TABLE`, ...).

use bytes::BufMut;

use crate::pg::wire::{Reader, cstr_len, put_cstr, put_header};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// A completed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandComplete {
    pub tag: String,
}

impl CommandComplete {
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'C')?;
        let tag = r.cstr()?.to_owned();
        r.finish()?;
        Ok(CommandComplete { tag })
    }

    /// The command word(s), e.g. `SELECT`, `INSERT`, `CREATE TABLE`.
    pub fn command(&self) -> &str {
        match self.rows() {
            Some(_) => self.tag.split(' ').next().unwrap_or_default(),
            None => &self.tag,
        }
    }

    /// Rows affected or returned, for the commands whose tag carries a
    /// count: `SELECT n`, `INSERT oid n`, `UPDATE n`, `DELETE n`,
    /// `MERGE n`, `FETCH n`, `MOVE n`, `COPY n`; `None` otherwise.
    pub fn rows(&self) -> Option<u64> {
        rows(&self.tag)
    }

    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        encode_command_complete(&self.tag, out)
    }
}

/// The row count in a command tag; see [`CommandComplete::rows`].
pub fn rows(tag: &str) -> Option<u64> {
    let mut words = tag.split(' ');
    let command = words.next()?;
    let expected_numbers = match command {
        "INSERT" => 2,
        "SELECT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY" => 1,
        _ => return None,
    };
    let numbers: Vec<&str> = words.collect();
    if numbers.len() != expected_numbers
        || !numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    numbers.last()?.parse().ok()
}

/// Encodes a CommandComplete message with `tag`.
pub fn encode_command_complete(tag: &str, out: &mut impl BufMut) -> Result<(), EncodeError> {
    put_header(out, b'C', cstr_len(tag.as_bytes(), "command tag")?)?;
    put_cstr(out, tag.as_bytes());
    Ok(())
}
