//! Masking of MySQL result rows and error messages, with the same engine
//! and per-connection rules as PostgreSQL.
//!
//! Column definitions name the real table (`schema.org_table`), so rules
//! like `users.email` match here exactly. In text rows every value is
//! text and is scanned; in binary rows (prepared statements) the string,
//! JSON, ENUM and SET columns are, numbers (integers, floats, DECIMAL)
//! are read as their decimal text and sent as NULL if that holds
//! something to mask (a card number stored as BIGINT cannot hold a
//! marker), and a column of another type that a column rule matches is
//! sent as NULL (the audit event names every such column). Byte
//! strings (the `binary` character set: BLOB, VARBINARY) are only
//! rewritten by column rules: scanning raw bytes for text could corrupt
//! them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use bytes::Bytes;
#[cfg(test)]
use hoop_proto::mysql::column::MYSQL_TYPE_DATE;
use hoop_proto::mysql::column::{
    MYSQL_TYPE_DECIMAL, MYSQL_TYPE_DOUBLE, MYSQL_TYPE_FLOAT, MYSQL_TYPE_INT24, MYSQL_TYPE_JSON,
    MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_SHORT, MYSQL_TYPE_TINY,
    MYSQL_TYPE_YEAR, is_text_like,
};
use hoop_proto::mysql::flags::{BINARY, ZEROFILL_FLAG};
use hoop_proto::mysql::{
    BinaryRow, ColumnDefinition, TextRow, encode_binary_row, encode_text_row, put_text_value,
    text_row_ranges,
};

use crate::mask::{ColumnContext, ColumnPlan, MaskResult, MaskSummary, Masker, Scratch, TypeHint};

/// How a column's values are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Scanned by the detectors, and whole under a column rule.
    Text,
    /// A number in a binary row: scanned as decimal text (left-padded
    /// with zeros to `zerofill` digits, as the text protocol shows a
    /// ZEROFILL column), NULL on a match.
    Number {
        column_type: u8,
        unsigned: bool,
        zerofill: Option<u32>,
    },
    /// Bytes or a binary date: only a column rule applies.
    Opaque,
}

/// The decimal text of binary-protocol number `v` (little-endian
/// integers and floats; DECIMAL is sent as its text). `Ok(None)`: nothing
/// to scan (NaN, infinities); `Err`: not that type's layout.
fn number_text(column_type: u8, unsigned: bool, v: &[u8]) -> Result<Option<Cow<'_, [u8]>>, ()> {
    let text = match column_type {
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => return Ok(Some(Cow::Borrowed(v))),
        MYSQL_TYPE_FLOAT => {
            let f = f32::from_le_bytes(v.try_into().map_err(|_| ())?);
            if !f.is_finite() {
                return Ok(None);
            }
            f.to_string()
        }
        MYSQL_TYPE_DOUBLE => {
            let f = f64::from_le_bytes(v.try_into().map_err(|_| ())?);
            if !f.is_finite() {
                return Ok(None);
            }
            f.to_string()
        }
        _ => {
            let n = match column_type {
                MYSQL_TYPE_TINY => 1,
                MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => 2,
                MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => 4,
                MYSQL_TYPE_LONGLONG => 8,
                _ => return Err(()),
            };
            if v.len() != n {
                return Err(());
            }
            let mut le = [0u8; 8];
            le[..n].copy_from_slice(v);
            let u = u64::from_le_bytes(le);
            if unsigned {
                u.to_string()
            } else {
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                (((u << shift) as i64) >> shift).to_string()
            }
        }
    };
    Ok(Some(Cow::Owned(text.into_bytes())))
}

/// `text` left-padded with zeros to `width` (at most 64) digits.
fn zero_pad(text: Cow<'_, [u8]>, width: Option<u32>) -> Cow<'_, [u8]> {
    let width = width.map_or(0, |w| w.min(64) as usize);
    if text.len() >= width || text.first() == Some(&b'-') {
        return text;
    }
    let mut padded = vec![b'0'; width - text.len()];
    padded.extend_from_slice(&text);
    Cow::Owned(padded)
}

fn is_number(column_type: u8) -> bool {
    matches!(
        column_type,
        MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_YEAR
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
    )
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

/// The backend's base tables, `(schema, table)`: a column definition
/// names the view a value was read through, not its table, so a table
/// rule trusts only the tables listed here.
#[derive(Debug, Default)]
pub struct BaseTables(pub HashSet<(Vec<u8>, Vec<u8>)>);

impl Cols {
    /// Plans `defs` for rows in the binary protocol or the text one; with
    /// `base` (column rules name tables), a column's table counts only if
    /// it is a base table listed there.
    pub fn new(
        masker: &Masker,
        defs: &[ColumnDefinition],
        binary: bool,
        base: Option<&BaseTables>,
    ) -> Cols {
        let cols = defs
            .iter()
            .map(|d| {
                let name = d.name_lossy().into_owned();
                let known =
                    base.is_none_or(|b| b.0.contains(&(d.schema.to_vec(), d.org_table.to_vec())));
                let table = (!d.org_table.is_empty() && known).then(|| {
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
                let shown = ColumnContext {
                    name: &name,
                    table: table.as_deref(),
                    type_hint,
                };
                // The real column name, when the value is one (not an
                // expression): rules and hints follow it, whatever the
                // query renamed it to.
                let plan = if d.org_name.is_empty() || d.org_table.is_empty() {
                    // An expression: only the name it shows.
                    masker.plan(&shown)
                } else {
                    let real = d.org_name_lossy();
                    masker.plan_aliased(
                        &ColumnContext {
                            name: &real,
                            ..shown
                        },
                        &shown,
                    )
                };
                let how = if bytes {
                    How::Opaque
                } else if binary && is_number(d.column_type) {
                    How::Number {
                        column_type: d.column_type,
                        unsigned: d.is_unsigned(),
                        zerofill: (d.flags & ZEROFILL_FLAG != 0).then_some(d.column_length),
                    }
                } else if binary && !text_like {
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

    /// Whether rows come in the binary protocol (prepared statements).
    pub fn binary(&self) -> bool {
        self.binary
    }

    /// A text row masked straight into `out` (cleared first): `true` if
    /// anything changed, else `out` is to be ignored and the row sent as
    /// it came. The same rules as [`Cols::row`] without allocating per row.
    pub fn text_row_into(
        &self,
        masker: &Masker,
        payload: &[u8],
        s: &mut RowScratch,
        out: &mut Vec<u8>,
        tally: &mut MaskSummary,
    ) -> Result<bool, String> {
        debug_assert!(!self.binary);
        text_row_ranges(payload, self.cols.len(), &mut s.ranges).map_err(|e| e.to_string())?;
        out.clear();
        let mut changed = false;
        for (r, col) in s.ranges.iter().zip(&self.cols) {
            let Some(r) = r else {
                put_text_value(out, None);
                continue;
            };
            let v = &payload[r.clone()];
            // In text rows every column is a string; byte strings only
            // under a column rule.
            let scan = col.how != How::Opaque || col.plan.whole_value();
            // Masked straight into `out` after a one-byte length, which
            // is how lengths below 251 are written; longer values (rare)
            // are moved out and written again with their wider length.
            let at = out.len();
            out.push(0);
            if scan && masker.mask_into(v, &col.plan, &mut s.mask, out, |d| tally.hit(d)) {
                tally.value_in(&col.name);
                match u8::try_from(out.len() - at - 1) {
                    Ok(n) if n < 0xFB => out[at] = n,
                    _ => {
                        s.value.clear();
                        s.value.extend_from_slice(&out[at + 1..]);
                        out.truncate(at);
                        put_text_value(out, Some(&s.value));
                    }
                }
                changed = true;
            } else {
                out.truncate(at);
                put_text_value(out, Some(v));
            }
        }
        Ok(changed)
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
                        How::Number { .. } if col.plan.whole_value() => {
                            tally.nulled.insert(col.name.clone());
                            Some(None)
                        }
                        How::Number {
                            column_type,
                            unsigned,
                            zerofill,
                        } => {
                            let text = number_text(column_type, unsigned, v)
                                .map(|t| t.map(|t| zero_pad(t, zerofill)));
                            let matched = match text {
                                Ok(Some(text)) => match masker.mask_planned(&text, &col.plan) {
                                    MaskResult::Unchanged(_) => false,
                                    MaskResult::Masked { hits, .. } => {
                                        tally.record(
                                            &col.name,
                                            hits.iter().map(|h| (h.detector.as_ref(), h.count)),
                                        );
                                        true
                                    }
                                },
                                Ok(None) => false,
                                // Not the type's layout: withheld.
                                Err(()) => true,
                            };
                            if matched {
                                tally.nulled.insert(col.name.clone());
                                Some(None)
                            } else {
                                None
                            }
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

/// What [`Cols::text_row_into`] reuses from row to row.
#[derive(Default)]
pub struct RowScratch {
    ranges: Vec<Option<Range<usize>>>,
    mask: Scratch,
    /// A masked value of 251 bytes or more, while its length is widened.
    value: Vec<u8>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mask::{ColumnRule, DetectorSet, MaskConfig, Strategy};
    use hoop_proto::mysql::column::{MYSQL_TYPE_BLOB, MYSQL_TYPE_VAR_STRING};

    fn def(name: &str, column_type: u8, charset: u16) -> ColumnDefinition {
        ColumnDefinition {
            schema: Bytes::from_static(b"shop"),
            table: Bytes::from_static(b"people"),
            org_table: Bytes::from_static(b"people"),
            name: Bytes::copy_from_slice(name.as_bytes()),
            org_name: Bytes::copy_from_slice(name.as_bytes()),
            charset,
            column_type,
            ..ColumnDefinition::default()
        }
    }

    proptest::proptest! {
        /// The allocation-free text-row path gives exactly what the
        /// general one gives, for the same audit counts.
        #[test]
        fn text_row_into_matches_row(
            cells in proptest::collection::vec(
                proptest::option::of(proptest::prop_oneof![
                    proptest::strategy::Just("zoe@example.com".to_string()),
                    proptest::strategy::Just("card 4242 4242 4242 4242 ok".to_string()),
                    proptest::strategy::Just("{\"a\": \"x@example.org\"}".to_string()),
                    "[ -~]{0,40}",
                    // Around and past 251 bytes, where a length takes
                    // more than one byte.
                    "(zoe@example\\.com [a-z ]{0,12}){8,40}",
                ]),
                5,
            ),
        ) {
            let cfg = MaskConfig {
                detectors: DetectorSet::all(),
                strategy: Strategy::Partial,
                columns: ["people.ssn", "people.doc", "people.raw"]
                    .iter()
                    .map(|p| ColumnRule {
                        pattern: p.to_string(),
                        strategy: Some(Strategy::Redact),
                        keep: None,
                        name: None,
                    })
                    .collect(),
                ..MaskConfig::default()
            };
            let m = Masker::new(&cfg, [7; 32]).unwrap();
            let defs = [
                def("email", MYSQL_TYPE_VAR_STRING, 45),
                def("ssn", MYSQL_TYPE_VAR_STRING, 45),
                def("doc", MYSQL_TYPE_JSON, 63),
                def("raw", MYSQL_TYPE_BLOB, 63),
                def("note", MYSQL_TYPE_BLOB, 45),
            ];
            let cols = Cols::new(&m, &defs, false, None);
            let values: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref().map(str::as_bytes)).collect();
            let mut payload = Vec::new();
            encode_text_row(&values, &mut payload).unwrap();
            let payload = Bytes::from(payload);
            let mut t1 = MaskSummary::default();
            let want = cols.row(&m, &payload, &mut t1).unwrap();
            let mut t2 = MaskSummary::default();
            let mut s = RowScratch::default();
            let mut out = Vec::new();
            let changed = cols.text_row_into(&m, &payload, &mut s, &mut out, &mut t2).unwrap();
            proptest::prop_assert_eq!(changed, want.is_some());
            if let Some(w) = want {
                proptest::prop_assert_eq!(out, w);
            }
            proptest::prop_assert_eq!(t1.values, t2.values);
            proptest::prop_assert_eq!(&t1.columns, &t2.columns);
            proptest::prop_assert_eq!(&t1.detectors, &t2.detectors);
        }
    }

    fn text(column_type: u8, unsigned: bool, v: &[u8]) -> Result<Option<String>, ()> {
        number_text(column_type, unsigned, v)
            .map(|t| t.map(|t| String::from_utf8(t.into_owned()).unwrap()))
    }

    #[test]
    fn binary_numbers_read_as_decimal_text() {
        let card = 4_242_424_242_424_242u64;
        assert_eq!(
            text(MYSQL_TYPE_LONGLONG, true, &card.to_le_bytes()),
            Ok(Some(card.to_string()))
        );
        assert_eq!(
            text(MYSQL_TYPE_LONGLONG, false, &(-5i64).to_le_bytes()),
            Ok(Some("-5".into()))
        );
        assert_eq!(text(MYSQL_TYPE_TINY, false, &[0xFF]), Ok(Some("-1".into())));
        assert_eq!(text(MYSQL_TYPE_TINY, true, &[0xFF]), Ok(Some("255".into())));
        assert_eq!(
            text(MYSQL_TYPE_INT24, false, &(-70_000i32).to_le_bytes()),
            Ok(Some("-70000".into()))
        );
        assert_eq!(
            text(MYSQL_TYPE_DOUBLE, false, &4_155_551_234f64.to_le_bytes()),
            Ok(Some("4155551234".into()))
        );
        assert_eq!(
            text(MYSQL_TYPE_DOUBLE, false, &f64::NAN.to_le_bytes()),
            Ok(None)
        );
        assert_eq!(
            text(MYSQL_TYPE_NEWDECIMAL, false, b"12.50"),
            Ok(Some("12.50".into()))
        );
        assert_eq!(
            &*zero_pad(Cow::Borrowed(b"12345678"), Some(9)),
            b"012345678"
        );
        assert_eq!(&*zero_pad(Cow::Borrowed(b"-5"), Some(4)), b"-5");
        assert_eq!(&*zero_pad(Cow::Borrowed(b"123"), None), b"123");
        // A length that is not the type's is not read.
        assert_eq!(text(MYSQL_TYPE_LONGLONG, false, &[1, 2, 3]), Err(()));
        assert_eq!(text(MYSQL_TYPE_DATE, false, &[1]), Err(()));
    }
}
