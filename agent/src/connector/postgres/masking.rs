//! Masking of PostgreSQL results on their way to the client.
//!
//! The backend → client side keeps the columns of the rows now flowing:
//! from the RowDescription of a simple query, or, in the extended
//! protocol, from the Describe of the statement (with the result formats
//! its Bind asked for) or of the portal. Which answer belongs to which
//! request is read off [`Expect`], the queue the client → backend side
//! fills (answers arrive in request order).
//!
//! What is rewritten:
//! - DataRow values in text format; in binary format, the text-like types
//!   (`text`, `varchar`, `bpchar`, `name`, `json`, `jsonb`, `xml`,
//!   `unknown`, domains over them (described as their base type), and,
//!   read from `pg_type` at login, `citext` and enums) and arrays of them. Binary numbers (`int2/4/8`,
//!   `float4/8`, `numeric`, their domains and arrays) are read as their
//!   decimal text: one that holds something to mask (a card number stored
//!   as `bigint`) cannot be rewritten in its format and is sent as NULL.
//!   So is a binary value a column rule matches, an `inet`/`cidr` when the
//!   `ip` detector is on, and any value of a type the agent cannot read
//!   (records, composites, extension types other than `citext`, types
//!   created after the session logged in): withheld rather than passed
//!   unscanned. The audit event names every column withheld. See
//!   [`super::types`].
//! - COPY TO STDOUT rows in text and CSV format, with the content
//!   detectors (a COPY names no columns). With column rules configured, or
//!   in binary format, COPY TO is refused: the agent cannot tell which
//!   field holds the column a rule hides.
//! - The message, detail, hint, context and internal query of
//!   ErrorResponse and NoticeResponse (`Key (email)=(...) already exists`),
//!   and NOTIFY payloads.
//!
//! It fails closed: a row whose columns are not known, a message that
//! does not decode, or an answer the queue did not expect ends the session
//! with an error; nothing is forwarded unmasked.
//!
//! Column rules follow a column's real name and table: with column
//! rules configured, the session looks up at login (with its types) the
//! columns whose own name a rule may match, by table OID and column
//! number, which is what RowDescription reports. So `ssn AS x` stays
//! under a rule on `ssn`, and `users.email` leaves `orders.email` alone.
//! A column of a table created after login, or an expression, is matched
//! by the name the result shows and any table: more is masked, never less
//! (see `mask::column`).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hoop_proto::pg::backend::{
    self, CopyResponse, ErrorFields, FieldDescription, NotificationResponse, RowDescription,
    Severity, field,
};
use hoop_proto::pg::frontend::encode_copy_data;
use hoop_proto::pg::{Format, RawMessage};

use super::track::{Expect, Track};
use super::types::{self, Catalog, Class, Num};
use crate::config::mask::Detector;
use crate::mask::{ColumnContext, ColumnPlan, MaskResult, MaskSummary, Masker, Scratch, TypeHint};

/// Statements and portals whose columns are remembered per session.
const MAX_NAMES: usize = 10_000;
/// Deepest array rewritten (PostgreSQL's own limit is 6).
const MAX_ARRAY_DIMS: i32 = 6;

/// Type OIDs the masker treats specially (from `pg_type.dat`).
mod oid {
    pub const NAME: u32 = 19;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const JSON_ARRAY: u32 = 199;
    pub const UNKNOWN: u32 = 705;
    #[cfg(test)]
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const JSONB: u32 = 3802;
    pub const JSONB_ARRAY: u32 = 3807;
}

/// What the elements of a binary array are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Text,
    Jsonb,
    Number(Num),
}

/// How a column's values are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Text format, or a binary text-like type: the bytes are the text.
    Text,
    /// Binary `jsonb`: a version byte, then the text.
    Jsonb,
    /// Binary array of a text-like or numeric type.
    Array(Elem),
    /// Binary number: scanned as its decimal text, withheld on a match.
    Number(Num),
    /// Binary, holding no text a detector looks for: only a column rule
    /// applies (NULL).
    Opaque,
    /// Binary of a type the agent cannot read: always NULL.
    Withheld,
}

/// One result column, planned once per result.
#[derive(Debug)]
pub struct Col {
    name: String,
    plan: ColumnPlan,
    how: How,
    /// `how == How::Text`: one byte for the row loop to test.
    text: bool,
}

fn type_hint(type_oid: u32) -> TypeHint {
    match type_oid {
        oid::JSON | oid::JSONB | oid::JSON_ARRAY | oid::JSONB_ARRAY => TypeHint::Json,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::XML | oid::UNKNOWN => {
            TypeHint::Text
        }
        _ => TypeHint::Other,
    }
}

/// How binary values of type `oid` are handled.
fn binary_how(masker: &Masker, types: &Catalog, oid: u32) -> How {
    let address = if masker.detects_ip() {
        How::Withheld
    } else {
        How::Opaque
    };
    match types.class(oid) {
        Some(Class::Text) => How::Text,
        Some(Class::Jsonb) => How::Jsonb,
        Some(Class::Number(n)) => How::Number(n),
        Some(Class::Address) => address,
        Some(Class::Opaque) => How::Opaque,
        Some(Class::Array(elem)) => match types.class(elem) {
            Some(Class::Text) => How::Array(Elem::Text),
            Some(Class::Jsonb) => How::Array(Elem::Jsonb),
            Some(Class::Number(n)) => How::Array(Elem::Number(n)),
            Some(Class::Address) => address,
            Some(Class::Opaque) => How::Opaque,
            Some(Class::Array(_)) | None => How::Withheld,
        },
        None => How::Withheld,
    }
}

/// Plans the columns of a result. `formats` are the result formats a
/// Bind asked for (a statement's RowDescription says text for all); with
/// `None` each field's own format is used.
pub fn columns(
    masker: &Masker,
    types: &Catalog,
    fields: &[FieldDescription],
    formats: Option<&[i16]>,
) -> Vec<Col> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let format = match formats {
                // An unknown code is refused by the backend at Bind; scan
                // as text meanwhile.
                Some(codes) => Format::for_index(codes, i).unwrap_or(Format::Text),
                None => f.format,
            };
            let how = match format {
                Format::Text => How::Text,
                Format::Binary => binary_how(masker, types, f.type_oid),
            };
            let shown = ColumnContext {
                name: &f.name,
                table: None,
                type_hint: type_hint(f.type_oid),
            };
            // A column of a table looked up at login: rules and hints
            // follow its real name and table, whatever the query called
            // it. Any other: the name the result shows, any table.
            let plan = match types.column(f.table_oid, f.column_id) {
                Some(real) => masker.plan_aliased(
                    &ColumnContext {
                        name: &real.name,
                        table: real.table.as_deref(),
                        ..shown
                    },
                    &ColumnContext {
                        table: real.table.as_deref(),
                        ..shown
                    },
                ),
                None => masker.plan(&shown),
            };
            Col {
                name: f.name.clone(),
                plan,
                text: how == How::Text,
                how,
            }
        })
        .collect()
}

/// A rewritten value.
enum Out {
    Same,
    Value(Vec<u8>),
    Null,
}

fn record(tally: &mut MaskSummary, column: &str, r: &MaskResult<'_>) {
    tally.record(
        column,
        r.hits().iter().map(|h| (h.detector.as_ref(), h.count)),
    );
}

/// Masks one text value of `col`; `None` when nothing changed.
fn text(masker: &Masker, col: &Col, v: &[u8], tally: &mut MaskSummary) -> Option<Vec<u8>> {
    let r = masker.mask_planned(v, &col.plan);
    if !r.is_masked() {
        return None;
    }
    record(tally, &col.name, &r);
    match r {
        MaskResult::Masked { value, .. } => Some(value),
        MaskResult::Unchanged(_) => None,
    }
}

fn jsonb(
    masker: &Masker,
    col: &Col,
    v: &[u8],
    tally: &mut MaskSummary,
) -> Result<Option<Vec<u8>>, ()> {
    match v.split_first() {
        Some((1, body)) => Ok(text(masker, col, body, tally).map(|m| {
            let mut out = Vec::with_capacity(m.len() + 1);
            out.push(1);
            out.extend_from_slice(&m);
            out
        })),
        _ => Err(()),
    }
}

fn be_i32(v: &[u8], at: usize) -> Result<i32, ()> {
    v.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
        .ok_or(())
}

/// Masks the elements of a binary array (`array_send` layout: dimensions,
/// flags, element type, sizes and lower bounds, then each element as a
/// length word and bytes, -1 for NULL). `Err` if the layout is not that.
fn array(
    masker: &Masker,
    col: &Col,
    v: &[u8],
    elems: Elem,
    tally: &mut MaskSummary,
) -> Result<Option<Vec<u8>>, ()> {
    let ndim = be_i32(v, 0)?;
    if !(0..=MAX_ARRAY_DIMS).contains(&ndim) {
        return Err(());
    }
    let mut pos = 12usize;
    let mut count = usize::from(ndim > 0);
    for _ in 0..ndim {
        let dim = usize::try_from(be_i32(v, pos)?).map_err(|_| ())?;
        count = count.checked_mul(dim).ok_or(())?;
        pos += 8;
    }
    let header = pos;
    if pos > v.len() || count > (v.len() - pos) / 4 {
        return Err(());
    }
    let mut changed: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    for _ in 0..count {
        let len = be_i32(v, pos)?;
        pos += 4;
        if len == -1 {
            continue;
        }
        let len = usize::try_from(len).map_err(|_| ())?;
        let elem = v.get(pos..pos + len).ok_or(())?;
        let new = match elems {
            Elem::Jsonb => jsonb(masker, col, elem, tally)?,
            Elem::Text => text(masker, col, elem, tally),
            // A number that matches cannot be rewritten in its format: the
            // whole array is withheld.
            Elem::Number(n) if number_matches(masker, col, n, elem, tally)? => return Err(()),
            Elem::Number(_) => None,
        };
        if let Some(n) = new {
            changed.push((pos..pos + len, n));
        }
        pos += len;
    }
    if pos != v.len() {
        return Err(());
    }
    if changed.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(v.len() + 32 * changed.len());
    out.extend_from_slice(&v[..header]);
    let mut at = header;
    for (range, new) in changed {
        // Copy up to this element's length word, then the new element.
        out.extend_from_slice(&v[at..range.start - 4]);
        let len = i32::try_from(new.len()).map_err(|_| ())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&new);
        at = range.end;
    }
    out.extend_from_slice(&v[at..]);
    Ok(Some(out))
}

/// Whether binary number `v` of `col`, read as decimal text, holds
/// something to mask (counted in `tally`). `Err` if it is not a number
/// of that type.
fn number_matches(
    masker: &Masker,
    col: &Col,
    num: Num,
    v: &[u8],
    tally: &mut MaskSummary,
) -> Result<bool, ()> {
    // One buffer per thread: a binary result can hold a number in every
    // row, and this runs for each.
    thread_local! {
        static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    TEXT.with_borrow_mut(|s| {
        if !types::render(num, v, s)? {
            return Ok(false);
        }
        let r = masker.mask_planned(s.as_bytes(), &col.plan);
        if r.is_masked() {
            record(tally, &col.name, &r);
        }
        Ok(r.is_masked())
    })
}

fn value(masker: &Masker, col: &Col, v: &[u8], tally: &mut MaskSummary) -> Out {
    let nulled = |tally: &mut MaskSummary| {
        tally.nulled.insert(col.name.clone());
        Out::Null
    };
    let done = |r: Option<Vec<u8>>| r.map_or(Out::Same, Out::Value);
    match col.how {
        How::Text => done(text(masker, col, v, tally)),
        How::Opaque | How::Number(_) if col.plan.whole_value() => nulled(tally),
        How::Opaque => Out::Same,
        // A layout the agent does not know cannot be scanned: withheld.
        How::Withheld => nulled(tally),
        How::Number(n) => match number_matches(masker, col, n, v, tally) {
            Ok(false) => Out::Same,
            Ok(true) | Err(()) => nulled(tally),
        },
        How::Jsonb => jsonb(masker, col, v, tally).map_or_else(|()| nulled(tally), done),
        How::Array(elems) => {
            array(masker, col, v, elems, tally).map_or_else(|()| nulled(tally), done)
        }
    }
}

/// Counts kept while a result's rows stream, folded into a
/// [`MaskSummary`] when the result ends (cheaper than a map per value).
#[derive(Debug, Default)]
struct Counts {
    /// Values masked per column of the current result.
    per_column: Vec<u64>,
    /// Matches per built-in detector, by `Detector as usize`: counted
    /// without comparing names.
    builtin: [u64; Detector::ALL.len()],
    /// Matches per custom detector, word list or rule name.
    detectors: Vec<(String, u64)>,
}

impl Counts {
    fn reset(&mut self, columns: usize) {
        self.per_column.clear();
        self.per_column.resize(columns, 0);
    }

    #[inline]
    fn hit(&mut self, builtin: Option<Detector>, detector: &str) {
        match builtin {
            Some(d) => self.builtin[d as usize] += 1,
            None => self.hit_named(detector),
        }
    }

    /// Takes back one [`Counts::hit`].
    fn unhit(&mut self, builtin: Option<Detector>, detector: &str) {
        match builtin {
            Some(d) => self.builtin[d as usize] -= 1,
            None => {
                if let Some((_, n)) = self.detectors.iter_mut().find(|(d, _)| d == detector) {
                    *n -= 1;
                }
            }
        }
    }

    /// A custom detector, word list or column rule, counted by name.
    fn hit_named(&mut self, detector: &str) {
        match self.detectors.iter_mut().find(|(d, _)| d == detector) {
            Some((_, n)) => *n += 1,
            None => self.detectors.push((detector.to_string(), 1)),
        }
    }

    /// Moves the counts into `tally`, naming the columns from `cols`.
    fn fold(&mut self, cols: Option<&[Col]>, tally: &mut MaskSummary) {
        if let Some(cols) = cols {
            for (c, n) in cols.iter().zip(&mut self.per_column) {
                if *n > 0 {
                    tally.values += *n;
                    if !tally.columns.contains(&c.name) {
                        tally.columns.insert(c.name.clone());
                    }
                    *n = 0;
                }
            }
        }
        for d in Detector::ALL {
            let n = std::mem::take(&mut self.builtin[d as usize]);
            if n > 0 {
                *tally.detectors.entry(d.as_str().to_string()).or_default() += n;
            }
        }
        for (d, n) in self.detectors.drain(..) {
            *tally.detectors.entry(d).or_default() += n;
        }
    }
}

/// What [`write_row`] works with besides the row.
struct RowCtx<'a> {
    masker: &'a Masker,
    cols: &'a [Col],
    scratch: &'a mut Scratch,
    counts: &'a mut Counts,
    /// For the rarer types, counted straight into the summary.
    tally: &'a mut MaskSummary,
}

/// Appends DataRow `msg` (the whole message) to `out`, masked; returns
/// whether anything changed (if not, `out` got `msg` byte for byte). Text
/// values are masked straight into `out`: no allocation per row.
///
/// The values are read, checked and masked in one walk: unchanged values
/// are copied in runs (a row with nothing to mask in one copy), and each
/// changed value is written with its new length word. A row that turns
/// out not to decode leaves nothing behind: what it wrote is cut off and
/// what it counted taken back ([`uncount`]); the rest of the row is
/// checked before a value of another kind is masked (those count into
/// the summary straight away).
fn write_row(mut c: RowCtx<'_>, msg: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
    let row = backend::data_row_reader(msg).map_err(|e| e.to_string())?;
    if row.left() != c.cols.len() {
        return Err(column_mismatch(msg, c.cols.len()));
    }
    let start = out.len();
    rewrite(&mut c, msg, row, out).map_err(|(why, counted)| {
        out.truncate(start);
        uncount(&mut c, msg, counted);
        why
    })
}

/// A row whose column count is not its result's: the row's own layout
/// error if it has one (as for any row), else the mismatch.
#[cold]
#[inline(never)]
fn column_mismatch(msg: &[u8], columns: usize) -> String {
    match backend::data_row_reader(msg).and_then(|row| row.check_rest().map(|()| row.left())) {
        Err(e) => e.to_string(),
        Ok(values) => format!("a row has {values} values but its result has {columns} columns"),
    }
}

/// [`write_row`] once the row's header and column count are known good.
/// An error comes with the number of columns whose text values may have
/// been counted.
fn rewrite(
    c: &mut RowCtx<'_>,
    msg: &[u8],
    row: backend::RowReader<'_>,
    out: &mut Vec<u8>,
) -> Result<bool, (String, usize)> {
    // One value per column, their number checked: the loop's index
    // counts them, not the reader too.
    let mut row = row.into_cursor();
    let all = c.cols.len();
    let start = out.len();
    // `msg[..copied]` is in `out` already (as it was, or rewritten);
    // zero while nothing changed.
    let mut copied = 0;
    // Whether the rest of the row was checked.
    let mut checked = false;
    // By index, the column found from it: one counter through the loop
    // (`enumerate` carried a pointer, an index and a count of columns
    // left, spilled around the scan's call).
    for i in 0..all {
        let col = &c.cols[i];
        let Some(v) = row.next_value().map_err(|e| (e.to_string(), i))? else {
            continue;
        };
        let new = match col.text {
            true => {
                let Some(spans) = c.masker.find(v, &col.plan, c.scratch) else {
                    continue;
                };
                // The run of unchanged bytes goes out with the value's
                // old length word, overwritten below: one copy, no
                // placeholder written on its own.
                let at = row.pos() - v.len();
                copy_run(out, msg, copied, at);
                let len_at = out.len() - 4;
                let counts = &mut *c.counts;
                // The value's unchanged end, `v[kept..]`, is left for the
                // next run's copy.
                let kept = spans.write_head(out, |d, label| counts.hit(d, label));
                counts.per_column[i] += 1;
                let n = i32::try_from(out.len() - len_at - 4 + (v.len() - kept))
                    .map_err(|_| ("a masked value is too long".to_string(), i + 1))?;
                out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
                copied = at + kept;
                continue;
            }
            false => {
                if !checked {
                    check_after(&row, i, all)?;
                    checked = true;
                }
                value(c.masker, col, v, c.tally)
            }
        };
        let new = match new {
            Out::Same => continue,
            Out::Value(n) => Some(n),
            Out::Null => None,
        };
        let end = row.pos();
        out.extend_from_slice(&msg[copied..end - v.len() - 4]);
        match new {
            Some(n) => {
                let len = i32::try_from(n.len())
                    .map_err(|_| ("a masked value is too long".to_string(), i))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&n);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        copied = end;
    }
    if !checked {
        // Anything after the last value.
        row.check_rest(0).map_err(|e| (e.to_string(), all))?;
    }
    if copied == 0 {
        out.extend_from_slice(msg);
        return Ok(false);
    }
    out.extend_from_slice(&msg[copied..]);
    let len = u32::try_from(out.len() - start - 1)
        .ok()
        .filter(|l| *l as usize <= hoop_proto::pg::MAX_MESSAGE_LEN)
        .ok_or_else(|| ("a masked row is too long".to_string(), all))?;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    Ok(true)
}

/// Appends `msg[from..to]` to `out`. A run of up to 32 bytes (the row's
/// header and a short value before the first masked one, say) is one
/// fixed-size copy of the 32 bytes from `from`, cut back after: no
/// `memcpy` call, which costs ~20 instructions for a few bytes.
#[inline(always)]
fn copy_run(out: &mut Vec<u8>, msg: &[u8], from: usize, to: usize) {
    let len = out.len();
    let n = to - from;
    if n <= 32 {
        if let Some(chunk) = msg.get(from..).and_then(<[u8]>::first_chunk::<32>) {
            out.extend_from_slice(chunk);
            out.truncate(len + n);
            return;
        }
    }
    out.extend_from_slice(&msg[from..to]);
}

/// Checks what `row` holds after column `i` of `all`, for [`rewrite`].
/// Out of line: the count of values left is worked out here, not carried
/// through the row loop as one more counter.
#[inline(never)]
fn check_after(row: &backend::RowCursor<'_>, i: usize, all: usize) -> Result<(), (String, usize)> {
    row.check_rest(all - i - 1).map_err(|e| (e.to_string(), i))
}

/// Takes back what [`rewrite`] counted for the text values of a row's
/// first `columns` columns, the row having failed: the same values masked
/// again (into a buffer thrown away), each match uncounted.
#[cold]
#[inline(never)]
fn uncount(c: &mut RowCtx<'_>, msg: &[u8], columns: usize) {
    let Ok(mut row) = backend::data_row_reader(msg) else {
        return;
    };
    let mut sink = Vec::new();
    for (i, col) in c.cols.iter().enumerate().take(columns) {
        let Ok(Some(v)) = row.next_value() else {
            continue;
        };
        if col.how != How::Text {
            continue;
        }
        if let Some(spans) = c.masker.find(v, &col.plan, c.scratch) {
            let counts = &mut *c.counts;
            spans.write(&mut sink, |d, label| counts.unhit(d, label));
            counts.per_column[i] -= 1;
            sink.clear();
        }
    }
    // A name counted only by this row goes, as if never counted.
    c.counts.detectors.retain(|(_, n)| *n > 0);
}

/// Masks one DataRow on its own: `Ok(None)` when nothing changed.
#[cfg(test)]
pub fn row(
    masker: &Masker,
    cols: &[Col],
    msg: &[u8],
    tally: &mut MaskSummary,
) -> Result<Option<Vec<u8>>, String> {
    let mut counts = Counts::default();
    counts.reset(cols.len());
    let mut out = Vec::new();
    let changed = write_row(
        RowCtx {
            masker,
            cols,
            scratch: &mut Scratch::default(),
            counts: &mut counts,
            tally,
        },
        msg,
        &mut out,
    )?;
    counts.fold(Some(cols), tally);
    Ok(changed.then_some(out))
}

/// Masks a free-text field with the content detectors, `column` naming
/// where it came from in the audit event.
fn free_text(
    masker: &Masker,
    s: &str,
    hint: &str,
    column: &str,
    tally: &mut MaskSummary,
) -> Option<String> {
    let r = masker.mask(s.as_bytes(), &ColumnContext::named(hint));
    if !r.is_masked() {
        return None;
    }
    record(tally, column, &r);
    Some(String::from_utf8_lossy(r.as_bytes()).into_owned())
}

/// A constraint error's detail, `Key (a, b)=(x, y) already exists.`: the
/// values are masked as the key's column (its column rule, or its name as
/// context for the detectors).
fn key_detail(masker: &Masker, detail: &str, tally: &mut MaskSummary) -> Option<Option<String>> {
    let rest = detail.strip_prefix("Key (")?;
    let (cols, after) = rest.split_once(")=(")?;
    let close = after.rfind(')')?;
    let values = &after[..close];
    let names: Vec<&str> = cols.split(", ").map(|c| c.trim_matches('"')).collect();
    let ruled = names
        .iter()
        .find(|c| masker.plan(&ColumnContext::named(c)).whole_value());
    let hint = ruled.or(names.first()).copied().unwrap_or("");
    let r = masker.mask(values.as_bytes(), &ColumnContext::named(hint));
    if !r.is_masked() {
        return Some(None);
    }
    record(tally, "(error)", &r);
    Some(Some(format!(
        "Key ({cols})=({}{}",
        String::from_utf8_lossy(r.as_bytes()),
        &after[close..]
    )))
}

/// Masks the free-text fields of an ErrorResponse or NoticeResponse in
/// place; `true` if any changed.
pub fn error_fields(
    masker: &Masker,
    f: &mut ErrorFields,
    notice: bool,
    tally: &mut MaskSummary,
) -> bool {
    let column = if notice { "(notice)" } else { "(error)" };
    let mut changed = false;
    for code in [
        field::MESSAGE,
        field::DETAIL,
        field::HINT,
        field::WHERE,
        field::INTERNAL_QUERY,
    ] {
        let Some(text) = f.get(code) else { continue };
        let new = if code == field::DETAIL {
            match key_detail(masker, text, tally) {
                Some(n) => n,
                None => free_text(masker, text, "", column, tally),
            }
        } else {
            free_text(masker, text, "", column, tally)
        };
        if let Some(n) = new {
            f.set(code, n);
            changed = true;
        }
    }
    changed
}

/// What a COPY TO in progress does with its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copy {
    None,
    /// Text or CSV rows: masked with the content detectors.
    Text,
    /// Refused: the rows, CopyDone and the CommandComplete are dropped.
    Refused,
}

/// The masking side of one session's backend → client relay.
pub struct MaskState {
    masker: Arc<Masker>,
    /// The session's types, for binary values.
    types: Arc<Catalog>,
    /// Described statements: their fields (formats not known yet).
    statements: HashMap<String, Arc<[FieldDescription]>>,
    /// Portals: their columns, when known.
    portals: HashMap<String, Option<Arc<[Col]>>>,
    /// Columns of the rows now flowing.
    current: Option<Arc<[Col]>>,
    copy: Copy,
    scratch: Scratch,
    counts: Counts,
    /// Counts since the last statement end, for its audit event.
    tally: MaskSummary,
}

fn fatal(e: impl std::fmt::Display) -> String {
    format!("masking: {e}; the session was ended so that nothing leaves unmasked")
}

impl MaskState {
    pub fn new(masker: Arc<Masker>, types: Arc<Catalog>) -> Self {
        MaskState {
            masker,
            types,
            statements: HashMap::new(),
            portals: HashMap::new(),
            current: None,
            copy: Copy::None,
            scratch: Scratch::default(),
            counts: Counts::default(),
            tally: MaskSummary::default(),
        }
    }

    /// Makes `cols` the columns of the rows now flowing.
    fn set_current(&mut self, cols: Option<Arc<[Col]>>) {
        self.counts.fold(self.current.as_deref(), &mut self.tally);
        self.counts.reset(cols.as_ref().map_or(0, |c| c.len()));
        self.current = cols;
    }

    /// What was masked since the last call, for a statement's audit event.
    pub fn take_summary(&mut self) -> MaskSummary {
        self.counts.fold(self.current.as_deref(), &mut self.tally);
        std::mem::take(&mut self.tally)
    }

    /// A DataRow: appended to `out`, masked where needed.
    pub fn row(
        &mut self,
        track: &Mutex<Track>,
        msg: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if self.current.is_none() {
            let cols = {
                let t = track.lock().map_err(|_| fatal("state lock poisoned"))?;
                match t.expect.front() {
                    Some(Expect::Execute(portal)) => self.portals.get(portal).cloned().flatten(),
                    _ => None,
                }
            };
            self.set_current(cols);
        }
        let Some(cols) = self.current.as_deref() else {
            return Err(fatal(
                "rows arrived for a result whose columns the agent does not know (the client executed a statement it never described)",
            ));
        };
        write_row(
            RowCtx {
                masker: &self.masker,
                cols,
                scratch: &mut self.scratch,
                counts: &mut self.counts,
                tally: &mut self.tally,
            },
            msg,
            out,
        )
        .map(|_| ())
        .map_err(fatal)
    }

    /// CopyData from the backend: masked, dropped (`Some(empty)`) or
    /// passed (`None`).
    pub fn copy_data(&mut self, msg: &[u8]) -> Result<Option<Bytes>, String> {
        match self.copy {
            Copy::Refused => Ok(Some(Bytes::new())),
            Copy::Text => {
                let data = msg.get(5..).unwrap_or(&[]);
                let r = self.masker.mask(data, &ColumnContext::named(""));
                if !r.is_masked() {
                    return Ok(None);
                }
                record(&mut self.tally, "(copy)", &r);
                let mut out = Vec::with_capacity(r.as_bytes().len() + 5);
                encode_copy_data(r.as_bytes(), &mut out).map_err(fatal)?;
                Ok(Some(Bytes::from(out)))
            }
            Copy::None => Err(fatal("CopyData outside a COPY")),
        }
    }

    /// Any other backend message, with the session state locked:
    /// bookkeeping, and a replacement when the message itself is masked.
    /// `Ok(Some(empty))` drops it.
    pub fn message(&mut self, t: &mut Track, tag: u8, msg: &[u8]) -> Result<Option<Bytes>, String> {
        let raw = || RawMessage {
            tag,
            bytes: Bytes::copy_from_slice(msg),
        };
        match tag {
            b'T' => {
                let rd = RowDescription::decode(&raw()).map_err(fatal)?;
                match t.expect.front() {
                    Some(Expect::Query) => {
                        let cols = columns(&self.masker, &self.types, &rd.fields, None);
                        self.set_current(Some(cols.into()));
                    }
                    Some(Expect::DescribeStatement(name)) => {
                        let name = name.clone();
                        self.bound(|s| &mut s.statements);
                        self.statements.insert(name, rd.fields.into());
                        t.expect.pop_front();
                    }
                    Some(Expect::DescribePortal(name)) => {
                        let name = name.clone();
                        self.bound(|s| &mut s.portals);
                        let cols = columns(&self.masker, &self.types, &rd.fields, None);
                        self.portals.insert(name, Some(cols.into()));
                        t.expect.pop_front();
                    }
                    other => {
                        return Err(fatal(format!(
                            "a RowDescription arrived where {other:?} was expected"
                        )));
                    }
                }
            }
            b'n' => match t.expect.pop_front() {
                Some(Expect::DescribeStatement(name)) => {
                    self.statements.insert(name, Arc::from(Vec::new()));
                }
                Some(Expect::DescribePortal(name)) => {
                    self.portals.insert(name, Some(Arc::from(Vec::new())));
                }
                other => {
                    return Err(fatal(format!(
                        "NoData arrived where {other:?} was expected"
                    )));
                }
            },
            b'1' => match t.expect.pop_front() {
                Some(Expect::Parse(name)) => {
                    self.statements.remove(&name);
                }
                other => {
                    return Err(fatal(format!(
                        "ParseComplete arrived where {other:?} was expected"
                    )));
                }
            },
            b'2' => match t.expect.pop_front() {
                Some(Expect::Bind {
                    portal,
                    statement,
                    formats,
                }) => {
                    let cols = self
                        .statements
                        .get(&statement)
                        .map(|f| Arc::from(columns(&self.masker, &self.types, f, Some(&formats))));
                    self.bound(|s| &mut s.portals);
                    self.portals.insert(portal, cols);
                }
                other => {
                    return Err(fatal(format!(
                        "BindComplete arrived where {other:?} was expected"
                    )));
                }
            },
            b'3' => match t.expect.pop_front() {
                Some(Expect::Close) => {}
                _ => return Err(fatal("CloseComplete arrived out of order")),
            },
            b'C' | b's' | b'I' => {
                self.set_current(None);
                if self.copy == Copy::Refused {
                    // The refused COPY's CommandComplete.
                    self.copy = Copy::None;
                    if tag == b'C' {
                        self.pop_execute(t);
                        return Ok(Some(Bytes::new()));
                    }
                }
                self.copy = Copy::None;
                self.pop_execute(t);
            }
            b'H' => {
                let (_, resp) = CopyResponse::decode(&raw()).map_err(fatal)?;
                if resp.format == Format::Binary || self.masker.has_column_rules() {
                    let extended = !matches!(t.expect.front(), Some(Expect::Query));
                    if extended {
                        return Err(fatal(
                            "COPY TO cannot be masked on this connection (binary format, or column rules that a COPY's rows cannot be matched to)",
                        ));
                    }
                    self.copy = Copy::Refused;
                    let message = "hoop: COPY TO is not available on this connection: its masking rules name columns, and COPY rows carry no column names";
                    if let Some(p) = t.pending.front_mut() {
                        p.sqlstate = Some("42501".into());
                        p.error = Some(message.into());
                    }
                    let mut f = ErrorFields::new(Severity::Error, "42501", message, None);
                    f.set(
                        field::HINT,
                        "run it as a SELECT: the agent masks a SELECT's columns",
                    );
                    let mut out = Vec::new();
                    f.encode_error(&mut out).map_err(fatal)?;
                    return Ok(Some(Bytes::from(out)));
                }
                self.copy = Copy::Text;
            }
            b'c' if self.copy == Copy::Refused => return Ok(Some(Bytes::new())),
            b'E' => {
                self.set_current(None);
                self.copy = Copy::None;
                // The backend skips the rest of an extended batch up to
                // its Sync; a simple query ends at its ReadyForQuery.
                while let Some(e) = t.expect.front() {
                    if matches!(e, Expect::Sync | Expect::Query) {
                        break;
                    }
                    t.expect.pop_front();
                }
            }
            b'Z' => {
                self.set_current(None);
                self.copy = Copy::None;
                while let Some(e) = t.expect.pop_front() {
                    if matches!(e, Expect::Sync | Expect::Query) {
                        break;
                    }
                }
            }
            b'N' => {
                let mut f = ErrorFields::decode(&raw()).map_err(fatal)?;
                if error_fields(&self.masker, &mut f, true, &mut self.tally) {
                    let mut out = Vec::new();
                    f.encode_notice(&mut out).map_err(fatal)?;
                    return Ok(Some(Bytes::from(out)));
                }
            }
            b'A' => {
                let mut n = NotificationResponse::decode(&raw()).map_err(fatal)?;
                if let Some(p) = free_text(
                    &self.masker,
                    &n.payload,
                    "",
                    "(notification)",
                    &mut self.tally,
                ) {
                    n.payload = p;
                    let mut out = Vec::new();
                    n.encode(&mut out).map_err(fatal)?;
                    return Ok(Some(Bytes::from(out)));
                }
            }
            // CopyBothResponse: replication streams cannot be masked.
            b'W' => return Err(fatal("replication (CopyBoth) cannot be masked")),
            _ => {}
        }
        Ok(None)
    }

    /// Masks an ErrorResponse's fields: the replacement, or `None`.
    pub fn error(&mut self, f: &mut ErrorFields) -> Result<Option<Bytes>, String> {
        if !error_fields(&self.masker, f, false, &mut self.tally) {
            return Ok(None);
        }
        let mut out = Vec::new();
        f.encode_error(&mut out).map_err(fatal)?;
        Ok(Some(Bytes::from(out)))
    }

    fn pop_execute(&mut self, t: &mut Track) {
        if matches!(t.expect.front(), Some(Expect::Execute(_))) {
            t.expect.pop_front();
        }
    }

    /// Keeps a name map within bounds.
    fn bound<V>(&mut self, map: impl FnOnce(&mut Self) -> &mut HashMap<String, V>) {
        let m = map(self);
        if m.len() >= MAX_NAMES {
            m.clear();
        }
    }
}

#[cfg(test)]
mod row_digest;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mask::{ColumnRule, DetectorSet, MaskConfig, Strategy};

    pub(super) fn masker() -> Masker {
        let cfg = MaskConfig {
            detectors: DetectorSet::all(),
            strategy: Strategy::Partial,
            columns: vec![ColumnRule {
                pattern: "*ssn*".into(),
                strategy: Some(Strategy::Redact),
                keep: None,
                name: None,
            }],
            ..MaskConfig::default()
        };
        Masker::new(&cfg, [9; 32]).unwrap()
    }

    pub(super) fn field(name: &str, type_oid: u32, format: Format) -> FieldDescription {
        FieldDescription {
            name: name.into(),
            table_oid: 0,
            column_id: 0,
            type_oid,
            type_len: -1,
            type_modifier: -1,
            format,
        }
    }

    pub(super) fn text_array(elems: &[Option<&str>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&i32::from(elems.iter().any(Option::is_none)).to_be_bytes());
        v.extend_from_slice(&(oid::TEXT as i32).to_be_bytes());
        v.extend_from_slice(&(elems.len() as i32).to_be_bytes());
        v.extend_from_slice(&1i32.to_be_bytes());
        for e in elems {
            match e {
                Some(s) => {
                    v.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    v.extend_from_slice(s.as_bytes());
                }
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        v
    }

    pub(super) fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        backend::encode_data_row(values, &mut out).unwrap();
        out
    }

    #[test]
    fn binary_arrays_are_rebuilt_with_new_lengths() {
        let m = masker();
        let cols = columns(
            &m,
            &Catalog::default(),
            &[field("tags", oid::TEXT_ARRAY, Format::Binary)],
            None,
        );
        let arr = text_array(&[Some("x"), None, Some("mail zoe@example.com"), Some("y")]);
        let mut tally = MaskSummary::default();
        let out = array(&m, &cols[0], &arr, Elem::Text, &mut tally)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            text_array(&[Some("x"), None, Some("mail z****@example.com"), Some("y")])
        );
        assert_eq!(tally.values, 1);
        // Nothing to mask: no copy.
        let plain = text_array(&[Some("a"), Some("b")]);
        assert_eq!(
            array(&m, &cols[0], &plain, Elem::Text, &mut tally),
            Ok(None)
        );
        // Truncated or lying layouts are errors (the value is withheld).
        assert!(array(&m, &cols[0], &arr[..arr.len() - 1], Elem::Text, &mut tally).is_err());
        let mut huge = arr.clone();
        huge[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(array(&m, &cols[0], &huge, Elem::Text, &mut tally).is_err());
    }

    #[test]
    fn rows_change_only_where_values_do() {
        let m = masker();
        let cols = columns(
            &m,
            &Catalog::default(),
            &[
                field("id", 23, Format::Binary),
                field("email", oid::TEXT, Format::Text),
                field("ssn_num", 20, Format::Binary),
                field("doc", oid::JSONB, Format::Binary),
            ],
            None,
        );
        let mut tally = MaskSummary::default();
        let plain = data_row(&[Some(&[0, 0, 0, 1]), Some(b"none"), None, Some(b"\x01{}")]);
        assert_eq!(row(&m, &cols, &plain, &mut tally), Ok(None));
        assert!(tally.is_empty());

        let secret = data_row(&[
            Some(&[0, 0, 0, 1]),
            Some(b"zoe@example.com"),
            Some(&[0, 0, 0, 0, 7, 91, 205, 21]),
            Some(b"\x01{\"a\": \"zoe@example.com\"}"),
        ]);
        let out = row(&m, &cols, &secret, &mut tally).unwrap().unwrap();
        let want = data_row(&[
            Some(&[0, 0, 0, 1]),
            Some(b"z****@example.com"),
            None,
            Some(b"\x01{\"a\": \"z****@example.com\"}"),
        ]);
        assert_eq!(out, want);
        assert_eq!(tally.values, 2);
        assert!(tally.nulled.contains("ssn_num"));
        // A row that does not match its description fails.
        assert!(row(&m, &cols[..2], &secret, &mut tally).is_err());
    }

    #[test]
    fn bind_formats_apply_to_described_statements() {
        let m = masker();
        let fields = [
            field("ssn", oid::TEXT, Format::Text),
            field("n", 23, Format::Text),
        ];
        let cols = columns(&m, &Catalog::default(), &fields, Some(&[1]));
        assert_eq!(cols[0].how, How::Text);
        assert_eq!(cols[1].how, How::Number(Num::I4));
        let cols = columns(&m, &Catalog::default(), &fields, Some(&[]));
        assert_eq!(cols[1].how, How::Text);
    }

    #[test]
    fn constraint_details_are_masked_by_their_key_column() {
        let m = masker();
        let mut tally = MaskSummary::default();
        let d = key_detail(
            &m,
            "Key (email)=(zoe@example.com) already exists.",
            &mut tally,
        );
        assert_eq!(
            d,
            Some(Some(
                "Key (email)=(z****@example.com) already exists.".into()
            ))
        );
        // The column rule hides a value that looks like nothing.
        let d = key_detail(&m, "Key (ssn)=(abc) already exists.", &mut tally)
            .unwrap()
            .unwrap();
        assert!(!d.contains("abc"), "{d}");
        assert!(d.ends_with(") already exists."), "{d}");
        assert_eq!(key_detail(&m, "something else", &mut tally), None);
    }

    /// Cost of the row path on rows shaped like `scripts/bench-mask.sh`'s:
    /// `cargo test -p hoop-agent --release --lib row_path_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn row_path_speed() {
        let cfg = MaskConfig {
            detectors: DetectorSet::all(),
            strategy: Strategy::Partial,
            columns: vec![ColumnRule {
                pattern: "*name*".into(),
                strategy: Some(Strategy::Hash),
                keep: None,
                name: None,
            }],
            ..MaskConfig::default()
        };
        let m = Masker::new(&cfg, [9; 32]).unwrap();
        let fields = bench_fields();
        let cols = columns(&m, &Catalog::default(), &fields, None);
        let rows: Vec<Vec<u8>> = (0..1000)
            .map(|i| {
                let name = format!("Maria Garcia {i}");
                let email = format!("maria.garcia{i}@example.com");
                let note = if i % 20 == 0 {
                    format!("call +1 415 555 {:04} after 5pm", i % 10000)
                } else {
                    format!(
                        "Delivered on 2024-03-{:02}, total {}.99 EUR, 3 items",
                        i % 28 + 1,
                        i % 90
                    )
                };
                let address = format!("{} Main Street, Springfield", i % 300);
                let reference = format!("ORD-2024-{i:06}");
                data_row(&[
                    Some(name.as_bytes()),
                    Some(email.as_bytes()),
                    Some(note.as_bytes()),
                    Some(address.as_bytes()),
                    Some(reference.as_bytes()),
                ])
            })
            .collect();
        let bytes: usize = rows.iter().map(Vec::len).sum();
        let mut tally = MaskSummary::default();
        let rounds = 300;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for r in &rows {
                let out = row(&m, &cols, r, &mut tally).unwrap();
                std::hint::black_box(out);
            }
        }
        let el = start.elapsed();
        let n = (rounds * rows.len()) as f64;
        println!(
            "row path: {:.2} us/row, {:.1} MB/s of rows ({} values masked)",
            el.as_secs_f64() * 1e6 / n,
            (rounds * bytes) as f64 / el.as_secs_f64() / 1e6,
            tally.values
        );
    }

    #[test]
    fn counts_fold_builtin_and_named_hits_together() {
        let mut counts = Counts::default();
        counts.reset(2);
        counts.hit(Some(Detector::Email), "email");
        counts.hit(Some(Detector::Email), "email");
        counts.hit(Some(Detector::Card), "card");
        // A column rule or custom detector may share a built-in's name.
        counts.hit(None, "email");
        counts.hit(None, "employee_ids");
        let mut tally = MaskSummary::default();
        counts.fold(None, &mut tally);
        let got: Vec<_> = tally
            .detectors
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(got, [("card", 1), ("email", 3), ("employee_ids", 1)]);
        // Folded counts start again from zero.
        counts.hit(Some(Detector::Card), "card");
        counts.fold(None, &mut tally);
        assert_eq!(tally.detectors["card"], 2);
        assert_eq!(tally.detectors["email"], 3);
    }

    /// Rows as `scripts/bench-mask.sh` generates them (same parts, same
    /// modular picks), for the row path as the relay runs it: one reused
    /// output buffer. `cargo test -p hoop-agent --release --lib
    /// bench_rows_speed -- --ignored --nocapture`; `HOOP_HASH_RULE=1`
    /// adds the benchmark's hash rule.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn bench_rows_speed() {
        let mut cfg = MaskConfig {
            detectors: DetectorSet::all(),
            strategy: Strategy::Partial,
            ..MaskConfig::default()
        };
        // HOOP_ONLY=email,card,...: a subset of the detectors, to see what
        // each costs.
        if let Ok(only) = std::env::var("HOOP_ONLY") {
            cfg.detectors = DetectorSet(
                crate::config::mask::Detector::ALL
                    .iter()
                    .copied()
                    .filter(|d| only.split(',').any(|o| o == d.as_str()))
                    .collect(),
            );
        }
        if std::env::var_os("HOOP_HASH_RULE").is_some() {
            cfg.columns = vec![ColumnRule {
                pattern: "*name*".into(),
                strategy: Some(Strategy::Hash),
                keep: None,
                name: None,
            }];
        }
        let m = Masker::new(&cfg, [9; 32]).unwrap();
        let fields = bench_fields();
        let cols = columns(&m, &Catalog::default(), &fields, None);
        // HOOP_ROWS / HOOP_ROUNDS: fewer rows for callgrind, which counts
        // instructions whatever else the machine runs.
        let env = |k: &str, d: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        // HOOP_STRIDE=337: rows 1, 338, 675 ... so that a short run spans
        // the 1M-row table's range of numbers (337 is prime to every modulus
        // the generator picks parts by).
        let stride = env("HOOP_STRIDE", 1);
        let mut rows: Vec<Vec<u8>> = (0..env("HOOP_ROWS", 20_000))
            .map(|k| bench_row(1 + k * stride))
            .collect();
        // HOOP_COL=k (0-4): only column k's values, the others NULL, to see
        // what each column costs.
        if let Ok(k) = std::env::var("HOOP_COL").map(|k| k.parse::<usize>().unwrap()) {
            for r in &mut rows {
                let mut ranges = Vec::new();
                backend::data_row_ranges(r, &mut ranges).unwrap();
                let values: Vec<Option<&[u8]>> = ranges
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x.clone().filter(|_| i == k).map(|x| &r[x]))
                    .collect();
                *r = data_row(&values);
            }
        }
        let bytes: usize = rows.iter().map(Vec::len).sum();
        let mut scratch = Scratch::default();
        let mut counts = Counts::default();
        counts.reset(cols.len());
        let mut tally = MaskSummary::default();
        let mut out = Vec::with_capacity(1 << 20);
        let rounds = env("HOOP_ROUNDS", 25);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for r in &rows {
                if out.len() > (1 << 20) - 4096 {
                    out.clear();
                }
                let ctx = RowCtx {
                    masker: &m,
                    cols: &cols,
                    scratch: &mut scratch,
                    counts: &mut counts,
                    tally: &mut tally,
                };
                write_row(ctx, r, &mut out).unwrap();
            }
        }
        let el = start.elapsed();
        let n = (rounds * rows.len()) as f64;
        println!(
            "bench rows: {:.3} us/row, {:.1} MB/s of rows",
            el.as_secs_f64() * 1e6 / n,
            (rounds * bytes) as f64 / el.as_secs_f64() / 1e6,
        );
    }

    /// The benchmark's rows through `MaskState::row`, as the relay calls
    /// it (for what it adds to `write_row`): `HOOP_ROWS` rows at stride
    /// `HOOP_STRIDE`, for callgrind with `--toggle-collect='*MaskState*row*'`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn bench_state_rows() {
        let env = |k: &str, d: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let cfg = MaskConfig {
            detectors: DetectorSet::all(),
            strategy: Strategy::Partial,
            ..MaskConfig::default()
        };
        let mut state = MaskState::new(
            Arc::new(Masker::new(&cfg, [9; 32]).unwrap()),
            Arc::new(Catalog::default()),
        );
        let fields = bench_fields();
        let mut desc = Vec::new();
        backend::encode_row_description(&fields, &mut desc).unwrap();
        let track = Mutex::new(Track::default());
        {
            let mut t = track.lock().unwrap();
            t.expect.push_back(Expect::Query);
            state.message(&mut t, b'T', &desc).unwrap();
        }
        let stride = env("HOOP_STRIDE", 337);
        let rows: Vec<Vec<u8>> = (0..env("HOOP_ROWS", 3000))
            .map(|k| bench_row(1 + k * stride))
            .collect();
        let mut out = Vec::with_capacity(1 << 20);
        for r in &rows {
            if out.len() > (1 << 20) - 4096 {
                out.clear();
            }
            state.row(&track, r, &mut out).unwrap();
        }
        assert!(state.take_summary().values > 0);
    }

    /// The columns of `scripts/bench-mask.sh`'s table, all text.
    pub(super) fn bench_fields() -> Vec<FieldDescription> {
        ["full_name", "email", "note", "address", "reference"]
            .iter()
            .map(|n| field(n, oid::TEXT, Format::Text))
            .collect()
    }

    /// Row `g` of `scripts/bench-mask.sh`'s table.
    pub(super) fn bench_row(g: usize) -> Vec<u8> {
        const FIRST: [&str; 31] = [
            "Olivia",
            "Liam",
            "Emma",
            "Noah",
            "Amelia",
            "Oliver",
            "Sophia",
            "Elijah",
            "Mia",
            "James",
            "Charlotte",
            "Lucas",
            "Ava",
            "Mateo",
            "Isabella",
            "Hiroshi",
            "Priya",
            "Joao",
            "Fatima",
            "Chen",
            "Anna",
            "Pierre",
            "Ingrid",
            "Kwame",
            "Sofia",
            "Dmitri",
            "Lucia",
            "Ahmed",
            "Mei",
            "Carlos",
            "Zara",
        ];
        const LAST: [&str; 37] = [
            "Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Martinez", "Lopez",
            "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Walker", "Silva",
            "Santos", "Kumar", "Sato", "Muller", "Rossi", "Dubois", "Nowak", "Hansen", "Okafor",
            "Ivanova", "Kim", "Nguyen", "Cohen", "Haddad", "Larsen", "Costa", "Novak", "Schmidt",
            "Fischer", "Jensen",
        ];
        const DOMAIN: [&str; 5] = [
            "example.com",
            "mail.example.org",
            "corp.example.net",
            "inbox.example.io",
            "example.co.uk",
        ];
        const STREET: [&str; 9] = [
            "Oak Street",
            "Maple Avenue",
            "Cedar Lane",
            "Pine Road",
            "Elm Street",
            "Washington Blvd",
            "Lake Drive",
            "Hill Road",
            "Station Road",
        ];
        const CITY: [&str; 11] = [
            "Springfield",
            "Riverside",
            "Fairview",
            "Madison",
            "Georgetown",
            "Salem",
            "Franklin",
            "Greenville",
            "Bristol",
            "Clinton",
            "Ashland",
        ];
        let (f, l, d) = (FIRST[g % 31], LAST[g / 31 % 37], DOMAIN[g % 5]);
        let name = format!("{f} {l}");
        let email =
            (g % 20 != 0).then(|| format!("{}.{}{g}@{d}", f.to_lowercase(), l.to_lowercase()));
        let day = |g: usize| format!("2024-{:02}-{:02}", 1 + g % 365 / 31, 1 + g % 28);
        let note = match g % 100 {
            0..5 => format!(
                "{}{}{}",
                [
                    "Call me back on ",
                    "Customer prefers a call at ",
                    "Driver could not reach "
                ][g % 3],
                [
                    format!("(415) 555-{:04}", g % 10000),
                    format!("+44 20 7946 {:04}", g % 10000),
                    format!("+1 212-555-{:04}", g % 10000),
                    format!("+49 30 901820{:02}", g % 100),
                ][g % 4],
                [" after 6pm.", ", no answer yesterday.", " before delivery."][g % 3]
            ),
            5..10 => format!(
                "{}{}{}",
                ["Paid with card ", "Card on file: ", "Refund to "][g % 3],
                [
                    "4242 4242 4242 4242",
                    "4111-1111-1111-1111",
                    "5555 5555 5555 4444",
                    "378282246310005",
                    "6011 1111 1111 1117"
                ][g % 5],
                [", receipt sent.", " (expires 04/27).", " as requested."][g % 3]
            ),
            10..15 => format!(
                "{}billing{g}@{d}{}",
                [
                    "Send the invoice to ",
                    "Copy ",
                    "Forward tracking updates to "
                ][g % 3],
                [" please.", " on every order.", " as well."][g % 3]
            ),
            _ => [
                "Please leave the parcel at the back door.".to_string(),
                "Customer asked for gift wrap and a handwritten card.".to_string(),
                format!("Delivered on {}, signed by reception.", day(g)),
                format!("Refund of ${}.99 approved after review.", g % 200),
                format!("Second attempt, nobody home at 14:{:02}.", g % 60),
                format!(
                    "Item {} of 4 was out of stock, shipped separately.",
                    1 + g % 4
                ),
                format!("Upgraded to express shipping, label v2.{}.", g % 10),
                "Returned in original packaging; restocking fee waived.".to_string(),
                format!("Order {g} split into two boxes of {} kg.", 1 + g % 9),
            ][g % 9]
                .clone(),
        };
        let address = format!(
            "{} {}, {} {:05}",
            1 + g % 9973,
            STREET[g % 9],
            CITY[g % 11],
            10000 + g % 89999
        );
        let reference = match g % 3 {
            0 => format!("ORD-2024-{g:07}"),
            1 => format!("INV {}-{:05}", day(g).replace('-', ""), g % 100_000),
            _ => format!(
                "tracking 9400 1000 {:04} {:04} {:04} 00",
                g % 10000,
                g * 7 % 10000,
                g * 13 % 10000
            ),
        };
        data_row(&[
            Some(name.as_bytes()),
            email.as_deref().map(str::as_bytes),
            Some(note.as_bytes()),
            Some(address.as_bytes()),
            Some(reference.as_bytes()),
        ])
    }

    proptest::proptest! {
        /// Hostile backend bytes never panic the row and array paths, and
        /// whatever they return is a well-formed row.
        #[test]
        fn hostile_rows_and_arrays_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cols in 0usize..4,
        ) {
            let m = masker();
            let fields: Vec<_> = [
                field("tags", oid::TEXT_ARRAY, Format::Binary),
                field("doc", oid::JSONB, Format::Binary),
                field("email", oid::TEXT, Format::Text),
                field("ssn", 20, Format::Binary),
            ][..cols]
                .to_vec();
            let planned = columns(&m, &Catalog::default(), &fields, None);
            let mut tally = MaskSummary::default();
            let arr_col = columns(&m, &Catalog::default(), &[field("t", oid::TEXT_ARRAY, Format::Binary)], None);
            let _ = array(&m, &arr_col[0], &body, Elem::Text, &mut tally);
            let mut msg = vec![b'D'];
            msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
            msg.extend_from_slice(&body);
            if let Ok(Some(out)) = row(&m, &planned, &msg, &mut tally) {
                let mut ranges = Vec::new();
                backend::data_row_ranges(&out, &mut ranges).unwrap();
                proptest::prop_assert_eq!(ranges.len(), planned.len());
            }
        }

        /// Well-formed rows with arbitrary values: an e-mail address put
        /// anywhere in a text or text-array value never comes out.
        #[test]
        fn emails_never_leave_text_or_array_values(
            before in "[ -~]{0,20}",
            after in "[ -~]{0,20}",
            user in "[a-z]{1,8}",
            in_array in proptest::prelude::any::<bool>(),
        ) {
            let m = masker();
            let email = format!("{user}@example.com");
            let cell = format!("{before} {email} {after}");
            let (fields, value) = if in_array {
                (vec![field("v", oid::TEXT_ARRAY, Format::Binary)], text_array(&[Some("x"), Some(&cell)]))
            } else {
                (vec![field("v", oid::TEXT, Format::Text)], cell.clone().into_bytes())
            };
            let planned = columns(&m, &Catalog::default(), &fields, None);
            let msg = data_row(&[Some(&value[..])]);
            let mut ranges = Vec::new();
            let mut tally = MaskSummary::default();
            let out = row(&m, &planned, &msg, &mut tally).unwrap().unwrap();
            let text = String::from_utf8_lossy(&out);
            proptest::prop_assert!(!text.contains(&email), "{}", text);
            backend::data_row_ranges(&out, &mut ranges).unwrap();
            proptest::prop_assert_eq!(ranges.len(), 1);
        }
    }
}
