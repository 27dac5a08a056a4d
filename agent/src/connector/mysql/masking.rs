//! Masking of MySQL result rows and error messages, with the same engine
//! and per-connection rules as PostgreSQL.
//!
//! Column definitions name the real table (`schema.org_table`), so rules
//! like `users.email` match here exactly. In text rows every value is
//! text and is scanned; in binary rows (prepared statements) the string,
//! JSON, ENUM and SET columns are, and a column of another type that a
//! column rule matches is sent as NULL (the audit event names it). Byte
//! strings (the `binary` character set: BLOB, VARBINARY) are only
//! rewritten by column rules: scanning raw bytes for text could corrupt
//! them.

use std::borrow::Cow;

use bytes::Bytes;
use hoop_proto::mysql::column::{MYSQL_TYPE_JSON, is_text_like};
use hoop_proto::mysql::flags::BINARY;
use hoop_proto::mysql::{BinaryRow, ColumnDefinition, TextRow, encode_binary_row, encode_text_row};

use crate::mask::{ColumnContext, ColumnPlan, MaskResult, MaskSummary, Masker, TypeHint};

/// How a column's values are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Scanned by the detectors, and whole under a column rule.
    Text,
    /// Bytes or a binary number/date: only a column rule applies.
    Opaque,
}

#[derive(Debug)]
struct Col {
    name: String,
    plan: ColumnPlan,
    how: How,
    /// A string type (the marker can replace its value); else NULL.
    stringy: bool,
}

/// The columns of one result set, planned once.
#[derive(Debug)]
pub struct Cols {
    cols: Vec<Col>,
    types: Vec<u8>,
    binary: bool,
}

impl Cols {
    /// Plans `defs` for rows in the binary protocol or the text one.
    pub fn new(masker: &Masker, defs: &[ColumnDefinition], binary: bool) -> Cols {
        let cols = defs
            .iter()
            .map(|d| {
                let name = d.name_lossy().into_owned();
                let table = (!d.org_table.is_empty()).then(|| {
                    let t = String::from_utf8_lossy(&d.org_table);
                    if d.schema.is_empty() {
                        t.into_owned()
                    } else {
                        format!("{}.{t}", String::from_utf8_lossy(&d.schema))
                    }
                });
                let text_like = is_text_like(d.column_type);
                let bytes = text_like && d.charset == BINARY && d.column_type != MYSQL_TYPE_JSON;
                let type_hint = match d.column_type {
                    MYSQL_TYPE_JSON => TypeHint::Json,
                    _ if text_like => TypeHint::Text,
                    _ => TypeHint::Other,
                };
                let plan = masker.plan(&ColumnContext {
                    name: &name,
                    table: table.as_deref(),
                    type_hint,
                });
                let how = if bytes || (binary && !text_like) {
                    How::Opaque
                } else {
                    How::Text
                };
                Col {
                    name,
                    plan,
                    how,
                    stringy: !binary || text_like,
                }
            })
            .collect();
        Cols {
            cols,
            types: defs.iter().map(|d| d.column_type).collect(),
            binary,
        }
    }

    /// A row's masked payload, or `None` to send it as it came.
    pub fn row(
        &self,
        masker: &Masker,
        payload: &Bytes,
        tally: &mut MaskSummary,
    ) -> Result<Option<Vec<u8>>, String> {
        let values = if self.binary {
            BinaryRow::decode(payload, &self.types)
                .map_err(|e| e.to_string())?
                .values
        } else {
            TextRow::decode(payload, self.cols.len())
                .map_err(|e| e.to_string())?
                .values
        };
        let mut new: Option<Vec<Option<Cow<'_, [u8]>>>> = None;
        for (i, (r, col)) in values.iter().zip(&self.cols).enumerate() {
            let changed: Option<Option<Vec<u8>>> = match r {
                None => None,
                Some(r) => {
                    let v = &payload[r.clone()];
                    match col.how {
                        How::Opaque if !col.plan.whole_value() => None,
                        How::Opaque if !col.stringy => {
                            tally.nulled.insert(col.name.clone());
                            Some(None)
                        }
                        _ => match masker.mask_planned(v, &col.plan) {
                            MaskResult::Unchanged(_) => None,
                            MaskResult::Masked { value, hits } => {
                                tally.record(
                                    &col.name,
                                    hits.iter().map(|h| (h.detector.as_ref(), h.count)),
                                );
                                Some(Some(value))
                            }
                        },
                    }
                }
            };
            match changed {
                None => {
                    if let Some(n) = &mut new {
                        n.push(r.as_ref().map(|r| Cow::Borrowed(&payload[r.clone()])));
                    }
                }
                Some(v) => {
                    let n = new.get_or_insert_with(|| {
                        values[..i]
                            .iter()
                            .map(|r| r.as_ref().map(|r| Cow::Borrowed(&payload[r.clone()])))
                            .collect()
                    });
                    n.push(v.map(Cow::Owned));
                }
            }
        }
        let Some(values) = new else { return Ok(None) };
        let mut out = Vec::with_capacity(payload.len() + 64);
        if self.binary {
            encode_binary_row(&self.types, &values, &mut out)
        } else {
            encode_text_row(&values, &mut out)
        }
        .map_err(|e| e.to_string())?;
        Ok(Some(out))
    }
}

/// Masks an error message; a duplicate-key error's value is masked as the
/// key's column (`Duplicate entry 'x' for key 'email'`).
pub fn error_message(masker: &Masker, message: &str, tally: &mut MaskSummary) -> Option<String> {
    if let Some(rest) = message.strip_prefix("Duplicate entry '") {
        if let Some((value, key)) = rest.rsplit_once("' for key '") {
            let key = key.trim_end_matches('\'');
            // `table.key` on MySQL 8.
            let column = key.rsplit('.').next().unwrap_or(key);
            let r = masker.mask(value.as_bytes(), &ColumnContext::named(column));
            if !r.is_masked() {
                return None;
            }
            tally.record(
                "(error)",
                r.hits().iter().map(|h| (h.detector.as_ref(), h.count)),
            );
            return Some(format!(
                "Duplicate entry '{}' for key '{key}'",
                String::from_utf8_lossy(r.as_bytes())
            ));
        }
    }
    let r = masker.mask(message.as_bytes(), &ColumnContext::named(""));
    if !r.is_masked() {
        return None;
    }
    tally.record(
        "(error)",
        r.hits().iter().map(|h| (h.detector.as_ref(), h.count)),
    );
    Some(String::from_utf8_lossy(r.as_bytes()).into_owned())
}
