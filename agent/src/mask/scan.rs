//! The single pass of the built-in detectors over a value.
//!
//! A 256-entry table marks the few bytes that can start a detection
//! (digits, `@`, `%`, `=`, `:`, `-`, `A`, `J`, `B`, `b`); on x86-64 the
//! same bytes are looked for sixteen at a time with SSE2 compares, so
//! text with nothing sensitive costs well under a cycle a byte and
//! returns with no findings and no allocation.
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
static CLASSES: [Triggers; 5] = [
    Triggers::new(text::PEM_MIN_LEN, b"BbAJ-"),
    Triggers::new(text::JWT_MIN_LEN, b"BbAJ"),
    Triggers::new(text::AWS_KEY_LEN, b"BbA"),
    Triggers::new(text::BEARER_MIN_LEN, b"Bb"),
    Triggers::new(0, b""),
];

// The tables are tried longest minimum first.
const _: () = assert!(
    text::PEM_MIN_LEN >= text::JWT_MIN_LEN
        && text::JWT_MIN_LEN >= text::AWS_KEY_LEN
        && text::AWS_KEY_LEN >= text::BEARER_MIN_LEN
);

/// One set of trigger bytes: the table, and the same triggers as
/// vectors to compare sixteen bytes at a time (see `hits`).
pub(crate) struct Triggers {
    /// The shortest value this set is for.
    min_len: usize,
    class: [u8; 256],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    lanes: Lanes,
}

/// The operands of the compares in `hits` that differ from set to set,
/// each byte sixteen times (a vector ready to use, not one built at
/// each call): byte `x` is a trigger when `x | or == is` for one of the
/// pairs `[pct_or, pct_is]`, `[at_or, at_is]`, `[0x20, bb_is]`,
/// `[0, j_is]`. A `|` makes two bytes one: `% -` (`| 0x08`), `@ A`
/// (`| 0x01`), `B b` (`| 0x20`, always triggers together); without
/// them, `pct` and `at` are plain `%` and `@`, `bb_is` 0 (which no
/// byte `| 0x20` is), `j_is` `@` (a trigger anyway).
#[repr(align(16))]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Lanes([[u8; 16]; 6]);

impl Triggers {
    const fn new(min_len: usize, letters: &[u8]) -> Self {
        const fn has_in(letters: &[u8], b: u8) -> bool {
            let mut k = 0;
            while k < letters.len() {
                if letters[k] == b {
                    return true;
                }
                k += 1;
            }
            false
        }
        const fn pick(on: bool, yes: u8, no: u8) -> u8 {
            if on { yes } else { no }
        }
        let has = [
            has_in(letters, b'-'),
            has_in(letters, b'A'),
            has_in(letters, b'B'),
            has_in(letters, b'J'),
        ];
        assert!(has[2] == has_in(letters, b'b'));
        Triggers {
            min_len,
            class: class_table(letters),
            lanes: Lanes([
                [pick(has[0], 0x08, 0); 16],
                [pick(has[0], b'-', b'%'); 16],
                [pick(has[1], 0x01, 0); 16],
                [pick(has[1], b'A', b'@'); 16],
                [pick(has[2], b'b', 0); 16],
                [pick(has[3], b'J', b'@'); 16],
            ]),
        }
    }
}

/// The trigger table for a value of `len` bytes.
#[inline]
fn classes(len: usize, secret: bool) -> &'static Triggers {
    if !secret {
        return &CLASSES[4];
    }
    let mut k = 0;
    while len < CLASSES[k].min_len {
        k += 1;
    }
    &CLASSES[k]
}

/// Per byte of `c`, 0xff when it is a trigger of `t`, else 0: with no
/// branch and no table, SSE2 compares on the sixteen bytes at once. The
/// loop of `swar::lanes16` written out: through it (a closure indexing
/// the six lanes) LLVM kept less of this in vectors, ~300 instructions a
/// row more (measured).
#[cfg(target_arch = "x86_64")]
#[inline]
fn hits(c: [u8; 16], t: &Triggers) -> u128 {
    let [pct_or, pct_is, at_or, at_is, bb_is, j_is] = &t.lanes.0;
    let mut h = [0; 16];
    for k in 0..16 {
        let x = c[k];
        // Digits and `:` are `0..=:`.
        let hit = (x.wrapping_sub(b'0') <= b':' - b'0')
            | (x == b'=')
            | (x | pct_or[k] == pct_is[k])
            | (x | at_or[k] == at_is[k])
            | (x | 0x20 == bb_is[k])
            | (x == j_is[k]);
        h[k] = u8::from(hit).wrapping_neg();
    }
    u128::from_le_bytes(h)
}

/// The first byte of sixteen `hits` marks, if any. By halves, as the
/// first half holds most.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first(m: u128) -> Option<usize> {
    let (lo, hi) = (m as u64, (m >> 64) as u64);
    if lo != 0 {
        Some(lo.trailing_zeros() as usize / 8)
    } else if hi != 0 {
        Some(8 + hi.trailing_zeros() as usize / 8)
    } else {
        None
    }
}

/// The first trigger byte at or after `i`, and its class. Sixteen bytes a
/// step (see `hits`), where the table costs a look-up a byte.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn next_trigger(t: &Triggers, v: &[u8], mut i: usize) -> Option<(usize, u8)> {
    let n = v.len();
    // The byte at `i` first, by the table: about one call in seven (on
    // the benchmark rows) stops there, for a few instructions rather
    // than a window of sixteen.
    if let Some(&b) = v.get(i) {
        let c = t.class[usize::from(b)];
        if c != T_NONE {
            return Some((i, c));
        }
    }
    let p = loop {
        if let Some(&c) = v[i..].first_chunk::<16>() {
            if let Some(b) = first(hits(c, t)) {
                break i + b;
            }
            // The rest by a slice, not an index: fewer instructions a
            // step; a hit is at `n` less what is left, and its class is
            // read from the sixteen bytes at hand (`b & 15` needs no
            // bounds check).
            let mut s = &v[i + 16..];
            while let Some((c, r)) = s.split_first_chunk::<16>() {
                if let Some(b) = first(hits(*c, t)) {
                    return Some((n - s.len() + b, t.class[usize::from(c[b & 15])]));
                }
                s = r;
            }
            i = n - s.len();
        } else if i == n {
            return None;
        } else if let Some(&c) = v.last_chunk::<16>() {
            // Fewer than sixteen left of a longer value: its last sixteen,
            // the `d` bytes before `i` masked off.
            let base = n - 16;
            let d = i - base;
            break base + first(hits(c, t) & (u128::MAX << (8 * d)))?;
        } else if let (Some(lo), Some(hi)) = (v[i..].first_chunk::<8>(), v.last_chunk::<8>()) {
            // Eight to fifteen left of a value under sixteen bytes: the
            // first eight and the last eight, overlapping; a hit at byte
            // `b` of the second word is at `n - 8 + (b - 8)` (written so,
            // as `n - 16` would go below zero).
            let mut c = [0; 16];
            c[..8].copy_from_slice(lo);
            c[8..].copy_from_slice(hi);
            let b = first(hits(c, t))?;
            break if b < 8 { i + b } else { n - 8 + (b - 8) };
        } else {
            return next_trigger_table(&t.class, v, i);
        }
    };
    Some((p, t.class[usize::from(v[p])]))
}

/// The first trigger byte at or after `i`, and its class. Eight bytes a
/// step while there is none: one OR of eight table look-ups and one
/// branch, not eight branches.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn next_trigger(t: &Triggers, v: &[u8], i: usize) -> Option<(usize, u8)> {
    next_trigger_table(&t.class, v, i)
}

/// `next_trigger` by the table alone.
#[inline]
fn next_trigger_table(class: &[u8; 256], v: &[u8], mut i: usize) -> Option<(usize, u8)> {
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

    /// The SIMD search finds exactly the triggers of the table `classes`
    /// picks, at every length and start: random bytes, half of them from
    /// the triggers and their neighbours.
    #[test]
    fn next_trigger_agrees_with_the_table() {
        const NEAR: &[u8] =
            b"0123456789/:;<=>?@ABCIJKab`c%$&,-.\x00\x20\x7f\x80\xb0\xba\xc0\xc1\xc2\xe2";
        let mut r = crate::mask::tests::Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            for n in 0..64 {
                let v: Vec<u8> = (0..n)
                    .map(|_| match r.below(4) {
                        0 => r.next() as u8,
                        1 => b'x',
                        _ => NEAR[r.below(NEAR.len())],
                    })
                    .collect();
                for secret in [false, true] {
                    let t = classes(n, secret);
                    for i in 0..n {
                        assert_eq!(
                            next_trigger(t, &v, i),
                            next_trigger_table(&t.class, &v, i),
                            "{v:?} from {i}"
                        );
                    }
                }
            }
        }
        // Every byte, in every lane, against every table.
        for t in &CLASSES {
            for b in 0..=255u8 {
                let mut v = [b'x'; 16];
                for k in 0..16 {
                    v[k] = b;
                    let want =
                        (t.class[usize::from(b)] != T_NONE).then_some((k, t.class[usize::from(b)]));
                    assert_eq!(next_trigger(t, &v, 0), want, "{b:#x} at {k}");
                    v[k] = b'x';
                }
            }
        }
        // Every table, whatever the length it is for.
        for t in &CLASSES {
            for _ in 0..20_000 {
                let n = r.below(64);
                let v: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
                for i in 0..n {
                    assert_eq!(next_trigger(t, &v, i), next_trigger_table(&t.class, &v, i));
                }
            }
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
