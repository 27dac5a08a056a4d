//! The single pass of the built-in detectors over a value.
//!
//! A 256-entry table marks the few bytes that can start a detection
//! (digits, `@`, `%`, `=`, `:`, `-`, `A`, `J`, `B`, `b`); every other byte is
//! skipped with one table look-up, so text with nothing sensitive costs
//! about one cycle a byte and returns with no findings and no allocation.
//! Detectors match ASCII only, so the bytes are scanned as they are: in a
//! value that is not valid UTF-8 the invalid bytes simply act as
//! separators, exactly like the valid runs around them would be scanned.

use std::cell::Cell;

use super::context::{self, Hints};
use super::{numeric, text};
use crate::config::mask::Detector;

/// What a detection is, before it becomes a marker or an audit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Builtin(Detector),
    Custom(u16),
    Words(u16),
}

/// One span to rewrite, `[start, end)` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
    /// For an e-mail address found at its `@`: where the `@` is from
    /// `start` (the span holds no other); else `NO_AT` (look for it).
    pub at: u8,
}

/// `Found::at` when the `@` is not known.
pub(crate) const NO_AT: u8 = u8::MAX;

/// Which built-in detectors run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Enabled {
    pub email: bool,
    pub card: bool,
    pub ssn: bool,
    pub phone: bool,
    pub iban: bool,
    pub ip: bool,
    pub secret: bool,
    pub cpf: bool,
    pub aadhaar: bool,
    pub nhs: bool,
    pub dni: bool,
    /// Whether any of the above is on, and any that starts at a digit:
    /// kept up to date by `set`, asked once per value.
    any: bool,
    digits: bool,
}

impl Enabled {
    pub fn set(&mut self, d: Detector) {
        let f = match d {
            Detector::Email => &mut self.email,
            Detector::Card => &mut self.card,
            Detector::Ssn => &mut self.ssn,
            Detector::Phone => &mut self.phone,
            Detector::Iban => &mut self.iban,
            Detector::Ip => &mut self.ip,
            Detector::Secret => &mut self.secret,
            Detector::Cpf => &mut self.cpf,
            Detector::Aadhaar => &mut self.aadhaar,
            Detector::Nhs => &mut self.nhs,
            Detector::Dni => &mut self.dni,
        };
        *f = true;
        self.any = true;
        self.digits = self.card
            || self.ssn
            || self.phone
            || self.iban
            || self.ip
            || self.cpf
            || self.aadhaar
            || self.nhs
            || self.dni;
    }
    pub fn any(&self) -> bool {
        self.any
    }
    #[cfg(test)]
    fn any_slow(&self) -> bool {
        self.email
            || self.card
            || self.ssn
            || self.phone
            || self.iban
            || self.ip
            || self.secret
            || self.cpf
            || self.aadhaar
            || self.nhs
            || self.dni
    }
    fn digits(&self) -> bool {
        self.digits
    }
    #[cfg(test)]
    fn digits_slow(&self) -> bool {
        self.card
            || self.ssn
            || self.phone
            || self.iban
            || self.ip
            || self.cpf
            || self.aadhaar
            || self.nhs
            || self.dni
    }
}

/// ASCII letters and digits. Bytes of other scripts count as separators,
/// so `Tel:\u{a0}555-123-4567` (no-break space) is still a number on its
/// own.
pub(crate) fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

pub(crate) fn is_upper(b: u8) -> bool {
    b.is_ascii_uppercase()
}

const T_NONE: u8 = 0;
const T_DIGIT: u8 = 1;
const T_AT: u8 = 2;
const T_EQ: u8 = 3;
const T_COLON: u8 = 4;
const T_DASH: u8 = 5;
const T_A: u8 = 6;
const T_J: u8 = 7;
const T_B: u8 = 8;
const T_PCT: u8 = 9;

/// The trigger table, with the triggers of the detectors that start at a
/// letter or `-` dropped from shorter values (see `classes`).
const fn class_table(letters: &[u8]) -> [u8; 256] {
    let mut t = [T_NONE; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = T_DIGIT;
        d += 1;
    }
    t[b'@' as usize] = T_AT;
    t[b'=' as usize] = T_EQ;
    t[b':' as usize] = T_COLON;
    t[b'%' as usize] = T_PCT;
    let mut k = 0;
    while k < letters.len() {
        let b = letters[k];
        t[b as usize] = match b {
            b'-' => T_DASH,
            b'A' => T_A,
            b'J' => T_J,
            _ => T_B,
        };
        k += 1;
    }
    t
}

/// Trigger tables by the shortest value each letter trigger can match
/// in, so a value too short for a secret is not stopped at every `A`,
/// `J`, `B`, `b` or `-` (names, short codes): `Bearer` and a token of 8
/// (15 bytes), an AWS key id (20), a JWT (`eyJ`, two segments of 10 and
/// two dots: 22), a PEM header (`-----BEGIN `, `PRIVATE KEY`, `-----`:
/// 27). A trigger that cannot match only costs time: dropping it changes
/// no finding (a failed letter trigger resumes at the next byte).
static CLASSES: [(usize, [u8; 256]); 5] = [
    (text::PEM_MIN_LEN, class_table(b"BbAJ-")),
    (text::JWT_MIN_LEN, class_table(b"BbAJ")),
    (text::AWS_KEY_LEN, class_table(b"BbA")),
    (text::BEARER_MIN_LEN, class_table(b"Bb")),
    (0, class_table(b"")),
];

// The tables are tried longest minimum first.
const _: () = assert!(
    text::PEM_MIN_LEN >= text::JWT_MIN_LEN
        && text::JWT_MIN_LEN >= text::AWS_KEY_LEN
        && text::AWS_KEY_LEN >= text::BEARER_MIN_LEN
);

/// The trigger table for a value of `len` bytes.
#[inline]
fn classes(len: usize, secret: bool) -> &'static [u8; 256] {
    if !secret {
        return &CLASSES[4].1;
    }
    let mut k = 0;
    while len < CLASSES[k].0 {
        k += 1;
    }
    &CLASSES[k].1
}

/// The first trigger byte at or after `i`, and its class. Eight bytes a
/// step while there is none: one OR of eight table look-ups and one
/// branch, not eight branches.
#[inline]
fn next_trigger(class: &[u8; 256], v: &[u8], mut i: usize) -> Option<(usize, u8)> {
    let fold = |h: &[u8]| h.iter().fold(T_NONE, |a, &b| a | class[usize::from(b)]);
    while let Some(c) = v[i..].first_chunk::<8>() {
        // Folded by halves: a trigger in the second half (none in the
        // first) is looked for from there, not byte by byte from `i`.
        let (lo, hi) = (fold(&c[..4]), fold(&c[4..]));
        if lo | hi != T_NONE {
            if lo == T_NONE {
                i += 4;
            }
            break;
        }
        i += 8;
    }
    v[i..].iter().enumerate().find_map(|(p, &b)| {
        let c = class[usize::from(b)];
        (c != T_NONE).then_some((i + p, c))
    })
}

/// Hints from a column name, or the name to work them out from. Two
/// scalars (the hints, and a pointer to the name or null), so that it is
/// passed in two registers: a `Result<Hints, &str>` (16 bytes too, but
/// not a scalar pair) went through memory, stored by each caller of
/// `Masker::collect` and loaded back in it (~7 instructions a row less
/// this way, measured).
#[derive(Clone, Copy)]
pub(crate) struct ColumnHints<'c> {
    hints: Hints,
    /// The column's name, when `hints` are still to be worked out.
    name: Option<&'c &'c str>,
}

const _: () = assert!(std::mem::size_of::<ColumnHints<'_>>() == 16);

impl<'c> ColumnHints<'c> {
    pub fn known(hints: Hints) -> Self {
        ColumnHints { hints, name: None }
    }
    pub fn lazy(name: &'c &'c str) -> Self {
        ColumnHints {
            hints: Hints::default(),
            name: Some(name),
        }
    }
}

/// [`ColumnHints`] worked out on first use: most values never need them.
pub(crate) struct HintsOnce<'c>(Cell<ColumnHints<'c>>);

impl<'c> HintsOnce<'c> {
    pub fn new(h: ColumnHints<'c>) -> Self {
        HintsOnce(Cell::new(h))
    }
    pub fn get(&self) -> Hints {
        let h = self.0.get();
        match h.name {
            None => h.hints,
            Some(name) => {
                let hints = context::column(name);
                self.0.set(ColumnHints::known(hints));
                hints
            }
        }
    }
}

/// State of one pass over one value.
pub(crate) struct Scan<'v> {
    pub v: &'v [u8],
    pub en: &'v Enabled,
    /// Hints from the column name.
    pub column: HintsOnce<'v>,
    pub out: &'v mut Vec<Found>,
    /// Colons before this byte are inside a run already known to hold no
    /// IPv6 address.
    pub v6_clear_until: usize,
}

impl Scan<'_> {
    #[inline]
    pub fn push(&mut self, start: usize, end: usize, d: Detector) {
        if end > start {
            self.out.push(Found {
                start,
                end,
                kind: Kind::Builtin(d),
                at: NO_AT,
            });
        }
    }

    /// An address `[start, end)` found at `i`, an `@` (`sign`) or the `%`
    /// of `%40`. Its local part (`start..i`) and domain hold no `@` and
    /// are at most 64 bytes.
    #[inline]
    fn push_email(&mut self, start: usize, end: usize, i: usize, sign: bool) {
        // `text::email` keeps local parts to 64 bytes; were one longer,
        // the `@` is looked for again rather than a wrong place kept.
        let at = if sign && i - start < usize::from(NO_AT) {
            (i - start) as u8
        } else {
            NO_AT
        };
        self.out.push(Found {
            start,
            end,
            kind: Kind::Builtin(Detector::Email),
            at,
        });
    }

    /// Runs every enabled built-in detector over the value.
    #[inline]
    pub fn run(&mut self) {
        let v = self.v;
        let n = v.len();
        let digits = self.en.digits();
        let class = classes(n, self.en.secret);
        let mut i = 0;
        while i < n {
            // Skip to the next trigger in a loop of its own: one load and
            // one well-predicted branch a byte. (Folded into the dispatch
            // below, it became an indirect jump per byte.)
            // The class comes back with the position: not looked up twice.
            let mut c = match next_trigger(class, v, i) {
                Some((t, c)) => {
                    i = t;
                    c
                }
                None => break,
            };
            // Digits are the common trigger: a plain branch for them
            // predicts better than the jump table below.
            if c == T_DIGIT {
                i = if digits {
                    numeric::at_digit(self, i)
                } else {
                    i + 1
                };
                // Digits end many local parts (`smith123@`): an `@` right
                // after them is the next trigger, taken here rather than
                // looked for again.
                if v.get(i) != Some(&b'@') {
                    continue;
                }
                c = T_AT;
            }
            i = match c {
                T_AT | T_PCT if self.en.email => match text::email(v, i) {
                    Some((s, e)) => {
                        self.push_email(s, e, i, c == T_AT);
                        e
                    }
                    None => i + 1,
                },
                T_EQ if self.en.secret => match text::pair(v, i) {
                    Some((s, e)) => {
                        self.push(s, e, Detector::Secret);
                        e.max(i + 1)
                    }
                    None => i + 1,
                },
                T_COLON if i < self.v6_clear_until => text::at_colon_no_v6(self, i),
                T_COLON => text::at_colon(self, i),
                T_DASH if self.en.secret => self.secret(text::pem(v, i), i),
                T_A if self.en.secret => self.secret(text::aws_key(v, i), i),
                T_J if self.en.secret => self.secret(text::jwt(v, i), i),
                T_B if self.en.secret => self.secret(text::bearer(v, i), i),
                _ => i + 1,
            };
        }
    }

    fn secret(&mut self, found: Option<(usize, usize)>, i: usize) -> usize {
        match found {
            Some((s, e)) => {
                self.push(s, e, Detector::Secret);
                e.max(i + 1)
            }
            None => i + 1,
        }
    }
}

/// Sorts findings and merges overlapping ones; a merged span keeps the
/// kind of its longest part.
#[inline]
pub(crate) fn merge(found: &mut Vec<Found>) {
    if found.len() >= 2 {
        merge_slow(found);
    }
}

fn merge_slow(found: &mut Vec<Found>) {
    if !found.windows(2).all(|w| w[0].start <= w[1].start) {
        found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    }
    let mut w = 0;
    for r in 1..found.len() {
        let f = found[r];
        let last = &mut found[w];
        if f.start < last.end {
            if f.end - f.start > last.end - last.start {
                last.kind = f.kind;
            }
            last.end = last.end.max(f.end);
            // The span grew: its `@` is looked for again.
            last.at = NO_AT;
        } else {
            w += 1;
            found[w] = f;
        }
    }
    found.truncate(w + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_caches_agree() {
        for mask in 0u32..(1 << Detector::ALL.len()) {
            let mut en = Enabled::default();
            for (k, &d) in Detector::ALL.iter().enumerate() {
                if mask & (1 << k) != 0 {
                    en.set(d);
                }
            }
            assert_eq!(en.any(), en.any_slow());
            assert_eq!(en.digits(), en.digits_slow());
        }
    }

    /// An e-mail finding's `at`, where known, is where `last_at` finds
    /// the `@` in its span.
    #[test]
    fn email_at_is_the_last_at() {
        const PARTS: &[&[u8]] = &[
            b"a",
            b"Zed",
            b"mail",
            b"example",
            b"42",
            b"@",
            b"@",
            b"%40",
            b"%4",
            b".",
            b"..",
            b"-",
            b"_",
            b"+",
            b"'",
            b" ",
            b"com",
            b".org",
            b"\xc3\xa9",
            b"\xff",
            b"x@y.io",
        ];
        // Through `collect`, as rows are: a second caller of `run` would
        // take it out of line in the benchmark.
        let m = crate::mask::tests::all();
        let mut r = crate::mask::tests::Rng(0x2545_f491_4f6c_dd1d);
        let mut known = 0;
        for _ in 0..100_000 {
            let mut v = Vec::new();
            for _ in 0..r.below(24) {
                v.extend_from_slice(PARTS[r.below(PARTS.len())]);
            }
            if r.below(8) == 0 {
                v.splice(0..0, std::iter::repeat_n(b'a', 60 + r.below(10)));
            }
            let mut out = Vec::new();
            m.collect(&v, ColumnHints::known(Hints::default()), &mut out);
            for f in &out {
                if f.at != NO_AT {
                    known += 1;
                    assert_eq!(f.kind, Kind::Builtin(Detector::Email));
                    assert_eq!(
                        Some(usize::from(f.at)),
                        super::super::strategy::last_at(&v[f.start..f.end]),
                        "{v:?}"
                    );
                }
            }
        }
        assert!(known > 1000, "{known}");
    }
}
