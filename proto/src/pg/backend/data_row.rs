//! DataRow (`D`), backend → frontend: one row of a result, decoded
//! without copying. A row with nothing to mask is forwarded as its
//! [`crate::pg::RawMessage`]; a masked row is rebuilt with
//! [`encode_data_row`], which recomputes the length.

use std::ops::Range;

use bytes::{BufMut, Bytes};

use crate::pg::wire::{HEADER_LEN, Reader, count16, nullable_len, put_header, put_nullable};
use crate::pg::{DecodeError, EncodeError, RawMessage};

/// A row whose values are ranges into the message it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow {
    /// The whole message (tag and length word included); cloning a
    /// `Bytes` shares the memory.
    pub storage: Bytes,
    /// Per column: where its value lies in `storage`, `None` for NULL.
    pub values: Vec<Option<Range<usize>>>,
}

impl DataRow {
    /// Decodes a `D` message. The column count must match the values
    /// present exactly, and value lengths must be -1 (NULL) or fit in what
    /// is left of the message.
    pub fn decode(msg: &RawMessage) -> Result<Self, DecodeError> {
        let mut r = Reader::body(msg, b'D')?;
        let n = r.count16(4)?;
        let values = (0..n)
            .map(|_| r.nullable_range())
            .collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(DataRow {
            storage: msg.bytes.clone(),
            values,
        })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Column `index`: `None` past the last column, `Some(None)` for NULL.
    pub fn get(&self, index: usize) -> Option<Option<&[u8]>> {
        let value = self.values.get(index)?;
        Some(value.as_ref().and_then(|r| self.storage.get(r.clone())))
    }

    /// Column `index` as a `Bytes` sharing the row's memory.
    pub fn get_bytes(&self, index: usize) -> Option<Option<Bytes>> {
        let value = self.values.get(index)?;
        Some(value.as_ref().and_then(|r| {
            (r.start <= r.end && r.end <= self.storage.len()).then(|| self.storage.slice(r.clone()))
        }))
    }

    /// The values in column order; `None` is NULL.
    pub fn iter(&self) -> impl Iterator<Item = Option<&[u8]>> + '_ {
        self.values
            .iter()
            .map(|v| v.as_ref().and_then(|r| self.storage.get(r.clone())))
    }

    /// Encodes the row's current values as a new message.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), EncodeError> {
        let values: Vec<Option<&[u8]>> = self.iter().collect();
        encode_data_row(&values, out)
    }
}

/// Decodes the value ranges of a whole `D` message held in `msg` (tag and
/// length word included) into `out`, without copying: the ranges index
/// `msg`. The same checks as [`DataRow::decode`]; `out` is cleared first
/// and can be reused from row to row.
pub fn data_row_ranges(msg: &[u8], out: &mut Vec<Option<Range<usize>>>) -> Result<(), DecodeError> {
    out.clear();
    walk(msg, |r| out.push(r)).map(|_| ())
}

/// Checks a whole `D` message held in `msg` (tag and length word
/// included) as [`data_row_ranges`] does, without storing anything, and
/// returns its values in column order: [`RowValues`]. Inline across the
/// crate boundary (~30 instructions a row less than a call, measured).
#[inline]
pub fn data_row_values(msg: &[u8]) -> Result<RowValues<'_>, DecodeError> {
    let count = walk(msg, |_| {})?;
    Ok(RowValues {
        msg,
        pos: HEADER_LEN + 2,
        left: count,
    })
}

/// Reads `msg`'s values, handing `each` every value's range in turn; the
/// number of values. The checks and errors of [`Reader`] (as
/// [`DataRow::decode`] makes them), in a loop lean enough to run on every
/// row of a masked result.
#[inline]
fn walk(msg: &[u8], mut each: impl FnMut(Option<Range<usize>>)) -> Result<usize, DecodeError> {
    let (n, rest) = header(msg)?;
    let mut pos = msg.len() - rest.len();
    for _ in 0..n {
        // Where the value starts, past its length word.
        let at = pos + 4;
        each(next_value(msg, &mut pos)?.map(|v| at..at + v.len()));
    }
    if pos != msg.len() {
        return Err(invalid("trailing bytes after the last field"));
    }
    Ok(n)
}

/// A `D` message read one value at a time, each checked as it is read:
/// the checks of [`data_row_values`] in the same order, so a message
/// gives the same error either way. A caller that acts on a value before
/// the row is read to its end calls [`RowReader::check_rest`] first.
#[derive(Debug, Clone)]
pub struct RowReader<'a> {
    cursor: RowCursor<'a>,
    /// Values not read yet.
    left: usize,
}

/// Checks the tag, the header and the column count against the length of
/// a whole `D` message held in `msg` (tag and length word included), and
/// returns a [`RowReader`] for its values. Inline across the crate
/// boundary, like [`data_row_values`]: the masking row loop calls it once
/// a row.
#[inline]
pub fn data_row_reader(msg: &[u8]) -> Result<RowReader<'_>, DecodeError> {
    let (left, rest) = header(msg)?;
    Ok(RowReader {
        cursor: RowCursor {
            msg,
            pos: msg.len() - rest.len(),
        },
        left,
    })
}

/// The tag, the header and the column count of a whole `D` message
/// checked: the count, and the bytes after it.
#[inline]
fn header(msg: &[u8]) -> Result<(usize, &[u8]), DecodeError> {
    if msg.first() != Some(&b'D') {
        return Err(DecodeError::UnexpectedTag(
            msg.first().copied().unwrap_or(0),
        ));
    }
    let (count, rest) = msg
        .get(HEADER_LEN..)
        .and_then(<[u8]>::split_first_chunk::<2>)
        .ok_or_else(short)?;
    let n = usize::from(u16::from_be_bytes(*count));
    if n.saturating_mul(4) > rest.len() {
        return Err(invalid("count larger than the message"));
    }
    Ok((n, rest))
}

impl<'a> RowReader<'a> {
    /// Values not read yet: the column count before the first read.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Where the next value's length word starts in the message (after
    /// the last value, its end if nothing trails).
    #[inline]
    pub fn pos(&self) -> usize {
        self.cursor.pos()
    }

    /// The next value, `None` for NULL; an error past the last one.
    #[inline]
    pub fn next_value(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        self.left = self
            .left
            .checked_sub(1)
            .ok_or_else(|| invalid("read past the last field"))?;
        self.cursor.next_value()
    }

    /// Checks the values not read yet and that nothing follows them,
    /// without reading them: after the last value, only the end.
    #[inline]
    pub fn check_rest(&self) -> Result<(), DecodeError> {
        self.cursor.check_rest(self.left)
    }
}

/// A [`RowReader`] that leaves counting the values to its caller: for a
/// row loop that has checked the column count against its own and reads
/// one value per column, so that it carries one count (its own), not
/// two. The same checks and errors otherwise; made by
/// [`RowReader::into_cursor`].
#[derive(Debug, Clone)]
pub struct RowCursor<'a> {
    msg: &'a [u8],
    /// Where the values not read yet start in `msg`. An index rather
    /// than the slice after it: in a row loop the message stays put and
    /// only this moves, one register to carry (or spill) instead of two.
    pos: usize,
}

impl<'a> RowReader<'a> {
    /// This reader as a [`RowCursor`], its caller counting the values
    /// (`left()` of them).
    #[inline]
    pub fn into_cursor(self) -> RowCursor<'a> {
        self.cursor
    }
}

impl<'a> RowCursor<'a> {
    /// Where the next value's length word starts in the message.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The next value, `None` for NULL. Only as many as the row has
    /// values: past the last, what follows it would be read as a value.
    #[inline]
    pub fn next_value(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        next_value(self.msg, &mut self.pos)
    }

    /// [`RowReader::check_rest`] with `left` values not read yet.
    #[inline]
    pub fn check_rest(&self, left: usize) -> Result<(), DecodeError> {
        if left == 0 && self.pos == self.msg.len() {
            return Ok(());
        }
        check_rest(self.msg, self.pos, left)
    }
}

/// [`RowReader::check_rest`] past its fast path, given the reader's parts
/// (in registers: the reader can stay in them too).
#[inline(never)]
fn check_rest(msg: &[u8], mut pos: usize, left: usize) -> Result<(), DecodeError> {
    for _ in 0..left {
        next_value(msg, &mut pos)?;
    }
    if pos != msg.len() {
        return Err(invalid("trailing bytes after the last field"));
    }
    Ok(())
}

fn invalid(reason: &'static str) -> DecodeError {
    DecodeError::Invalid { tag: b'D', reason }
}

fn short() -> DecodeError {
    invalid("message ends inside a field")
}

/// The value whose length word starts at `msg[*pos]`, `*pos` moved past
/// it; the errors of [`walk`]. `*pos` never passes the end of `msg`.
#[inline]
fn next_value<'a>(msg: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, DecodeError> {
    let at = *pos + 4;
    let word = msg.get(*pos..at).ok_or_else(short)?;
    let word: [u8; 4] = word.try_into().map_err(|_| short())?;
    match i32::from_be_bytes(word) {
        -1 => {
            *pos = at;
            Ok(None)
        }
        len if len < 0 => Err(invalid("negative value length other than -1")),
        len => {
            let end = at + len as usize;
            let value = msg.get(at..end).ok_or_else(short)?;
            *pos = end;
            Ok(Some(value))
        }
    }
}

/// One value of a checked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowValue<'a> {
    /// Where the value lies in the message with its length word.
    pub span: Range<usize>,
    /// The bytes; `None` for NULL.
    pub value: Option<&'a [u8]>,
}

/// The values of a row checked by [`data_row_values`], in column order,
/// read as they are iterated (nothing is stored).
#[derive(Debug, Clone)]
pub struct RowValues<'a> {
    msg: &'a [u8],
    pos: usize,
    left: usize,
}

impl RowValues<'_> {
    /// The row's column count.
    pub fn columns(&self) -> usize {
        self.left
    }
}

impl<'a> Iterator for RowValues<'a> {
    type Item = RowValue<'a>;

    #[inline]
    fn next(&mut self) -> Option<RowValue<'a>> {
        // The layout was checked: the `None`s below are not reached, and
        // would end the values early rather than panic.
        self.left = self.left.checked_sub(1)?;
        let start = self.pos;
        let word = self.msg.get(start..start + 4)?;
        let len = i32::from_be_bytes(word.try_into().ok()?);
        let at = start + 4;
        let (end, value) = match usize::try_from(len) {
            Ok(len) => (at + len, Some(self.msg.get(at..at + len)?)),
            Err(_) => (at, None),
        };
        self.pos = end;
        Some(RowValue {
            span: start..end,
            value,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Encodes a DataRow from values (`None` is NULL): any byte containers,
/// e.g. `&[u8]` for untouched columns and `Vec<u8>` for masked ones via
/// `Cow<[u8]>`.
pub fn encode_data_row<T: AsRef<[u8]>>(
    values: &[Option<T>],
    out: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let count = count16(values.len(), "columns")?;
    let mut len = 2usize;
    for v in values {
        len = len.saturating_add(nullable_len(v.as_ref().map(AsRef::as_ref))?);
    }
    put_header(out, b'D', len)?;
    out.put_u16(count);
    for v in values {
        put_nullable(out, v.as_ref().map(AsRef::as_ref));
    }
    Ok(())
}
