//! Detectors that start at a digit: cards, SSN, CPF, NHS, Aadhaar, DNI/NIE,
//! IBAN, phone numbers and IPv4.
//!
//! At the first digit of a run the scanner collects a *group*: digit runs
//! joined by short separators (space, `-`, `.`, `/`, parentheses), with a
//! `+` or `(` just before it. Candidate windows are the group's leading
//! runs, longest first; a window must be isolated (not glued to letters,
//! not one piece of a longer run of same-shaped digit groups such as a
//! 22-digit tracking number) and must have a shape and check digits that
//! fit a detector. Numbers that are only digits without separators (a
//! bare 9-digit SSN, 10-digit NHS number, 11-digit CPF, 12-digit Aadhaar,
//! a phone without `+` or separators) are accepted only with context: the
//! column name or a keyword just before the number (see `context`).

use super::checksum as ck;
use super::context::{self, Hints};
use super::scan::{Scan, is_alnum, is_upper};
use super::swar::{LOW7, word_at};
use crate::config::mask::Detector;

/// Most runs in a candidate window: `+44 (0) 20 7946 0958` has five.
const MAX_RUNS: usize = 7;
/// Most digits read into a window: E.164 plus an `00` prefix.
const MAX_DIGITS: usize = 19;

#[derive(Clone, Copy, Default)]
struct Run {
    s: usize,
    e: usize,
}

/// The end of the ASCII digits from `i`: eight bytes a step, since this
/// is the innermost loop of every number.
fn digits_end(v: &[u8], mut i: usize) -> usize {
    while let Some(c) = v.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let non = non_digits(u64::from_le_bytes(*c));
        if non != 0 {
            return i + (non.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    // Fewer than eight bytes left (a zip code, the last run of a
    // reference): the value's last eight, shifted so that byte `i` comes
    // first and zeros, which are not digits, follow the end.
    let left = v.len() - i;
    if let Some(c) = v.last_chunk::<8>().filter(|_| left > 0) {
        let non = non_digits(u64::from_le_bytes(*c) >> (8 * (8 - left)));
        return i + (non.trailing_zeros() / 8) as usize;
    }
    while i < v.len() && v[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// The high bit of each byte of `x` that is not an ASCII digit. Per byte
/// `a = b ^ b'0'` is 0-9 for a digit; `(a & 0x7f) + 0x76` sets the high
/// bit for 10 and up without carrying into the next byte, and `| a` adds
/// the bytes at 0x80 and up.
fn non_digits(x: u64) -> u64 {
    let a = x ^ 0x3030_3030_3030_3030;
    (((a & LOW7) + 0x7676_7676_7676_7676) | a) & !LOW7
}

fn is_joiner(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'/' | b'_')
}

/// Parses a separator between two digit runs at `k`; returns its end when
/// a digit follows it.
fn separator(v: &[u8], k: usize) -> Option<usize> {
    let n = v.len();
    let b0 = *v.get(k)?;
    let single = matches!(b0, b' ' | b'-' | b'.' | b'/' | b'(' | b')');
    if !single {
        return None;
    }
    if k + 1 < n && v[k + 1].is_ascii_digit() {
        return Some(k + 1);
    }
    // Two-character separators need a parenthesis: `) `, ` (`, `)-`.
    let b1 = *v.get(k + 1)?;
    let pair = matches!((b0, b1), (b')', b' ' | b'-' | b'.') | (b' ' | b'-', b'('));
    if pair && k + 2 < n && v[k + 2].is_ascii_digit() {
        return Some(k + 2);
    }
    None
}

/// True when the byte at `e` may end a detected number.
fn right_ok(v: &[u8], e: usize) -> bool {
    match v.get(e) {
        None => true,
        Some(&c) if is_alnum(c) => false,
        Some(&c) if is_joiner(c) => !v.get(e + 1).is_some_and(|&d| is_alnum(d)),
        Some(_) => true,
    }
}

/// `x123`, `ext. 123` right after a phone number: where the extension
/// ends, if there is one.
fn extension(v: &[u8], e: usize) -> Option<usize> {
    let e = if v.get(e) == Some(&b' ') { e + 1 } else { e };
    let mut p = match v.get(e)? {
        b'x' | b'X' => e + 1,
        b'e' | b'E' if v.get(e..e + 3)?.eq_ignore_ascii_case(b"ext") => e + 3,
        _ => return None,
    };
    if v.get(p) == Some(&b'.') {
        p += 1;
    }
    if v.get(p) == Some(&b' ') {
        p += 1;
    }
    let end = digits_end(v, p);
    (end > p && right_ok(v, end)).then_some(end)
}

/// Called at a digit `i` whose previous byte is not a digit. Returns where
/// scanning resumes (always past `i`).
#[inline]
pub(super) fn at_digit(sc: &mut Scan<'_>, i: usize) -> usize {
    let v = sc.v;
    let run0_end = digits_end(v, i);
    // A lone run of fewer than seven digits, no separator and digit after
    // it (a house number, a zip code, a count, an hour, digits glued to a
    // name): the commonest digits in text, settled first. It is a small
    // group, so this is what the paths below return for it: glued to a
    // word it is skipped with the word (`glued_end` lets through only the
    // words an IBAN or NIE can end in, and a small group is no NIE), and
    // otherwise only an IBAN can start at it.
    if run0_end - i < 7 && separator(v, run0_end).is_none() {
        return iban_at(sc, i).unwrap_or_else(|| word_end(v, run0_end));
    }
    group_at(sc, i, run0_end)
}

/// `at_digit` past its first fast path, where the run from `i` to
/// `run0_end` is joined to more runs or has seven digits or more. Kept
/// out of the scan loop that the fast path is inlined into.
#[inline(never)]
fn group_at(sc: &mut Scan<'_>, i: usize, run0_end: usize) -> usize {
    let v = sc.v;
    if let Some(end) = glued_end(v, i, run0_end) {
        return end;
    }
    // Timestamps match no detector: skipped whole before the group is
    // collected.
    if run0_end - i == 4 && (i == 0 || !matches!(v[i - 1], b'+' | b'(')) {
        if let Some(end) = datetime_end(v, run0_end) {
            return end;
        }
    }
    let prev = if i > 0 { v[i - 1] } else { b' ' };

    if let Some(end) = iban_at(sc, i) {
        return end;
    }
    if sc.en.dni {
        let nie_start = if matches!(prev, b'X' | b'Y' | b'Z' | b'x' | b'y' | b'z') {
            Some(i - 1)
        } else if prev == b'-'
            && i >= 2
            && matches!(v[i - 2], b'X' | b'Y' | b'Z' | b'x' | b'y' | b'z')
        {
            Some(i - 2)
        } else {
            None
        };
        if let Some(s) = nie_start.filter(|&s| boundary_before(v, s)) {
            if let Some(end) = nie(v, s, i) {
                sc.push(s, end, Detector::Dni);
                return end;
            }
        }
    }

    // The group: this run and the ones joined to it by separators.
    let mut runs = [Run::default(); MAX_RUNS + 1];
    runs[0] = Run { s: i, e: run0_end };
    let mut m = 1;
    let mut total = run0_end - i;
    // The last run's end, kept in a register rather than read back from
    // `runs` each turn.
    let mut e = run0_end;
    while m <= MAX_RUNS {
        let Some(next) = separator(v, e) else {
            break;
        };
        e = digits_end(v, next);
        runs[m] = Run { s: next, e };
        total += e - next;
        m += 1;
    }
    // Too few digits for any detector (a dotted quad needs four runs):
    // skip the whole group. Small groups of one run were settled at the
    // top; prices and versions (`12.99`, `2.3.1`) end here, after the
    // IBAN check and a NIE check that cannot match (it needs seven digits
    // in a row). Their runs are collected once here, as are those of the
    // larger groups that start with a short run (`(415) 555-...`, `9400
    // 1000 ...`), which a small-group test up front collected twice. Done
    // before the checks below since no later run of a group this small
    // can start a number either: its runs are a suffix of these (the
    // group ended before MAX_RUNS), with fewer digits and runs still.
    if total < 4 || (total < 7 && m < 4) {
        return word_end(v, runs[m - 1].e);
    }

    // A `+` or `(` just before the digits belongs to a phone number.
    let (lead, plus, paren) = match prev {
        b'+' if i >= 1 => (i - 1, true, false),
        b'(' if i >= 2 && v[i - 2] == b'+' => (i - 2, true, true),
        b'(' if i >= 1 => (i - 1, false, true),
        _ => (i, false, false),
    };
    // Glued to a word (`ORD-2024`, `user_4242`, `abc123`, `a+1`): an
    // identifier. A `(` is a separator whatever precedes it.
    let paren_only = paren && !plus;
    if lead > 0 && !paren_only {
        let b = v[lead - 1];
        if is_alnum(b) || (is_joiner(b) && lead >= 2 && is_alnum(v[lead - 2])) {
            return word_end(v, run0_end);
        }
    }
    // The previous digit run, when only a space or parenthesis separates
    // us from it: used to refuse windows inside longer digit sequences.
    let left_run = left_neighbour(v, lead);

    if sc.en.dni && !plus {
        if let Some(end) = dni(v, &runs[..m]) {
            sc.push(i, end, Detector::Dni);
            return end;
        }
    }

    // Cheap refusals before a window is built (`classify` checks the
    // same): too many digits or too few, or (for two runs or more) glued
    // by the same separator to a run of three digits or more on the left
    // (every window here has the same first separator).
    let left_blocked =
        m >= 2 && left_run.is_some_and(|(sep, len)| len >= 3 && v[runs[0].e..runs[1].s] == [sep]);
    // "Not personal" context (`tracking 9400 ...`, `INV 20240315-...`,
    // a `sku` column) is settled once, before any window: with it, a
    // window that fits anything but a multi-run SSN or CPF gives up on
    // the whole group, which is also what finding nothing does when no
    // later run can restart. So unless the group starts in an SSN or CPF
    // shape, or a later run can restart, no window needs classifying.
    let mut not_personal = None;
    if !may_be_distinctive(&runs[..m])
        && not_personal_at(sc, &mut not_personal, lead)
        && restart_run(v, &runs[..m]).is_none()
    {
        return word_end(v, runs[m - 1].e);
    }
    let at = Lead {
        i,
        lead,
        left_run,
        plus,
        paren,
        left_blocked,
    };
    windows(sc, &runs[..m], at, not_personal)
}

/// Where a group starts, as `group_at` found it, for `windows`.
#[derive(Clone, Copy)]
struct Lead {
    /// The first digit.
    i: usize,
    /// The `+` or `(` before it, or `i`.
    lead: usize,
    left_run: Option<(u8, usize)>,
    plus: bool,
    paren: bool,
    left_blocked: bool,
}

/// The windows of the group `runs` (as collected, maybe one past
/// `MAX_RUNS`), longest first: what `group_at` returns once its cheap
/// refusals are past. Out of line, so that the groups `group_at` settles
/// early (tracking numbers, invoices, prices) do not pay for this one's
/// registers and stack.
#[inline(never)]
fn windows(sc: &mut Scan<'_>, runs: &[Run], at: Lead, mut not_personal: Option<bool>) -> usize {
    let v = sc.v;
    let m = runs.len();
    let Lead {
        i,
        lead,
        left_run,
        plus,
        paren,
        left_blocked,
    } = at;
    // One run past MAX_RUNS is kept only as the right neighbour.
    let usable = m.min(MAX_RUNS);
    let mut nd: usize = runs[..usable].iter().map(|r| r.e - r.s).sum();
    let mut ctx: Option<Hints> = None;
    for b in (1..=usable).rev() {
        let digits = nd;
        nd -= runs[b - 1].e - runs[b - 1].s;
        if digits > MAX_DIGITS || (digits < 7 && b != 4) || (b >= 2 && left_blocked) {
            continue;
        }
        let w = Window {
            v,
            runs: &runs[..b],
            next: (b < m).then(|| runs[b]),
            left_run,
            plus,
            paren,
        };
        if let Some((det, end)) = w.classify(sc, &mut ctx, lead, digits) {
            let distinctive = matches!(det, Detector::Ssn | Detector::Cpf) && b > 1;
            if !distinctive && not_personal_at(sc, &mut not_personal, lead) {
                return word_end(v, runs[m - 1].e);
            }
            let start = if det == Detector::Phone { lead } else { i };
            sc.push(start, end, det);
            return end;
        }
    }
    restart_run(v, runs).map_or_else(|| word_end(v, runs[m - 1].e), |k| runs[k].s)
}

/// Whether "not personal" context (the column, or the word before `lead`)
/// overrules the number at `lead`: worked out once per group, as a card
/// or phone number found in a window asks again what the check before
/// the windows asked (~90 instructions each time).
fn not_personal_at(sc: &Scan<'_>, known: &mut Option<bool>, lead: usize) -> bool {
    *known
        .get_or_insert_with(|| sc.column.get().not_personal() || context::not_personal(sc.v, lead))
}

/// Where `at_digit` resumes when no window of the group `runs` (as
/// collected, maybe one past `MAX_RUNS`) fits a detector: the index of
/// the first later run that can start a number, or `None` to skip the
/// whole group.
#[inline(always)]
fn restart_run(v: &[u8], runs: &[Run]) -> Option<usize> {
    // One run, or two joined by a joiner (`INV 20240315-12345`): no later
    // run follows a space or parenthesis, so none can restart. Settled
    // inline, without the call.
    match runs {
        [_] => None,
        [a, b] if !spaced(v, *a, *b) => None,
        _ => restart_run_slow(v, runs),
    }
}

/// `restart_run` for the groups it does not settle inline.
#[inline(never)]
fn restart_run_slow(v: &[u8], runs: &[Run]) -> Option<usize> {
    let m = runs.len();
    // The tracking number's shape, every run a fruitless restart (see
    // below), checked first in one tight pass: its 195 instructions here
    // become 120. (`INV 20240315-12345`, which it cost 14 more, is
    // settled in `restart_run` without coming here.)
    if m <= MAX_RUNS
        && runs
            .windows(2)
            .all(|w| one_space(v, w[0], w[1]) && w[0].e - w[0].s >= 3 && w[1].e - w[1].s < 7)
    {
        return None;
    }
    // A later run can start a number only after a space or parenthesis
    // (after a joiner it is glued to this one), so resume at the first
    // such run.
    let mut k = (1..m).find(|&k| spaced(v, runs[k - 1], runs[k]))?;
    // Digits in groups of four or so (`9400 1000 1234 5678 9012 00`, a
    // tracking number) would restart here at every run to find nothing
    // each time: skip the restarts that cannot find anything.
    if m <= MAX_RUNS {
        while fruitless_restart(v, runs, k) {
            k += 1;
            if k == m {
                return None;
            }
        }
    }
    Some(k)
}

/// Whether the separator between the runs `a` and `b` of a group holds a
/// space or parenthesis. A separator of two bytes always holds a
/// parenthesis (see `separator`), so only one byte needs looking at.
fn spaced(v: &[u8], a: Run, b: Run) -> bool {
    b.s - a.e == 2 || matches!(v[a.e], b' ' | b'(' | b')')
}

/// Whether the runs `a` and `b` of a group are separated by one space.
fn one_space(v: &[u8], a: Run, b: Run) -> bool {
    b.s - a.e == 1 && v[a.e] == b' '
}

/// Whether a window of the group `runs` can be an SSN or CPF of more
/// than one run (the numbers that "not personal" context does not
/// overrule): the group starts with runs of 3, 2 and 4 digits, 3, 3, 3
/// and 2, or 9 and 2. Shape only; `classify` checks the rest.
fn may_be_distinctive(runs: &[Run]) -> bool {
    let len = |k: usize| runs.get(k).map_or(0, |r: &Run| r.e - r.s);
    let (a, b, c, d) = (len(0), len(1), len(2), len(3));
    (a == 3 && b == 2 && c == 4) || (a == 3 && b == 3 && c == 3 && d == 2) || (a == 9 && b == 2)
}

/// Digits glued to a word (`smith338@`, `ORD-2024`, `v2.3`), settled
/// without the rest of `at_digit`: where it resumes, or `None` when the
/// word before could start an IBAN (two capitals) or an NIE (`X`, `Y`,
/// `Z`, maybe with a `-`). A date is skipped whole, as `at_digit` does;
/// otherwise the word, which no detector may start inside (the `+`/`(`
/// lead and DNI checks come after its glued-to-a-word refusal), and the
/// digit runs a joiner glues on after it. The rest of a group (a run
/// after a space or parenthesis) is left to the scan: a smaller group
/// still. Inlined by hand: behind `at_digit`'s first fast path the
/// compiler stopped doing it, which cost the glued identifiers a call.
#[inline(always)]
fn glued_end(v: &[u8], i: usize, run0_end: usize) -> Option<usize> {
    let prev = *v.get(i.checked_sub(1)?)?;
    let letter = prev.is_ascii_alphabetic();
    let joined = is_joiner(prev) && i >= 2 && is_alnum(v[i - 2]);
    if !(letter || joined) {
        return None;
    }
    let nie = |b: u8| matches!(b, b'X' | b'Y' | b'Z' | b'x' | b'y' | b'z');
    if letter && (nie(prev) || (i >= 2 && is_upper(prev) && is_upper(v[i - 2]))) {
        return None;
    }
    if prev == b'-' && nie(v[i - 2]) {
        return None;
    }
    let mut end = glued_run_end(v, i, run0_end);
    // The runs glued on by a joiner (`ORD-2024-0001234`, `v2.3`): the
    // scan would reach each next (the joiner is no trigger, or a `-` that
    // starts no PEM header) and skip it the same way, as it is glued to
    // the digit before it, which leaves it this way out only. (A short
    // run without separator takes the first fast path instead, to the
    // same end: no IBAN starts after a joiner, and no date lacks a
    // separator.) Here they cost one look at the bytes after each glued
    // identifier instead of a turn of the scan loop and an `at_digit`
    // each: `ORD-2024-0001234` 443 instructions down to 337.
    while let [sep, d, ..] = v[end..] {
        if !(is_joiner(sep) && d.is_ascii_digit() && v[end - 1].is_ascii_digit()) {
            break;
        }
        end = glued_run_end(v, end + 1, digits_end(v, end + 1));
    }
    Some(end)
}

/// Where a run of digits from `i` to `run0_end` glued to a word ends:
/// the end of a date that starts with it, or of the word.
#[inline(always)]
fn glued_run_end(v: &[u8], i: usize, run0_end: usize) -> usize {
    if run0_end - i == 4 {
        if let Some(end) = datetime_end(v, run0_end) {
            return end;
        }
    }
    word_end(v, run0_end)
}

/// Whether `at_digit` at run `k` of the whole group `runs` (not cut at
/// `MAX_RUNS`) can only give up and resume at run `k + 1` (or past the
/// group when `k` is its last run). It can when one space joins run
/// `k` to a run of three digits or more on its left and the same single
/// space joins it to the next run: every window of two runs or more is
/// then glued to its left neighbour (see `Window::isolated`), and run `k`
/// alone has fewer than seven digits, too few for any detector (DNI needs
/// eight, or `NN.NNN.NNN`; a date needs `-`, `/` or `.` after its year).
/// There is no letter just before it, so no IBAN or NIE starts there.
fn fruitless_restart(v: &[u8], runs: &[Run], k: usize) -> bool {
    let len = |r: Run| r.e - r.s;
    one_space(v, runs[k - 1], runs[k])
        && len(runs[k - 1]) >= 3
        && len(runs[k]) < 7
        && (k + 1 == runs.len() || one_space(v, runs[k], runs[k + 1]))
}

/// An IBAN whose check digits start at `i`: pushed, and its end. The
/// two-letter test is inlined; the rest is rare.
#[inline(always)]
fn iban_at(sc: &mut Scan<'_>, i: usize) -> Option<usize> {
    let v = sc.v;
    if i >= 2 && is_upper(v[i - 1]) && is_upper(v[i - 2]) {
        iban_after_letters(sc, i)
    } else {
        None
    }
}

#[cold]
fn iban_after_letters(sc: &mut Scan<'_>, i: usize) -> Option<usize> {
    let v = sc.v;
    if sc.en.iban && boundary_before(v, i - 2) {
        let end = iban(v, i - 2)?;
        sc.push(i - 2, end, Detector::Iban);
        return Some(end);
    }
    None
}

/// Timestamps are the most common digits in a row and match no
/// detector: `YYYY-MM-DD` (or with `/` or `.`), then optionally `T` or a
/// space and `HH:MM[:SS[.ffffff]]`, are skipped whole. (No window that
/// starts with runs of 4, 2 and 2 digits fits a detector's shape.) `at`
/// is the end of the four-digit year. The separator found again three
/// bytes on is tested inline: most four-digit runs fail there
/// (`ORD-2024-0001234`, `9400 1000 ...`) without a call.
#[inline(always)]
fn datetime_end(v: &[u8], at: usize) -> Option<usize> {
    match (v.get(at), v.get(at + 3)) {
        (Some(a), Some(b)) if a == b => datetime_rest(v, at),
        _ => None,
    }
}

fn datetime_rest(v: &[u8], at: usize) -> Option<usize> {
    let two = |p: usize| {
        v.get(p..p + 2)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && !v.get(p + 2).is_some_and(u8::is_ascii_digit)
    };
    let sep = *v.get(at)?;
    if !matches!(sep, b'-' | b'/' | b'.')
        || !two(at + 1)
        || v.get(at + 3) != Some(&sep)
        || !two(at + 4)
    {
        return None;
    }
    let mut e = at + 6;
    if matches!(v.get(e), Some(b'T' | b' '))
        && two(e + 1)
        && v.get(e + 3) == Some(&b':')
        && two(e + 4)
    {
        e += 6;
        if v.get(e) == Some(&b':') && two(e + 1) {
            e += 3;
            if v.get(e) == Some(&b'.') {
                e = digits_end(v, e + 1);
            }
        }
    }
    Some(e)
}

/// End of the letters and digits from `i`. Nothing can start inside a
/// word: digits there are glued to it, and the detectors that start at a
/// letter (AWS key ids, JWTs, `Bearer`, IBAN, NIE) each need a word
/// boundary before them. So a scan that gives up on a word skips the rest
/// of it, which keeps hex strings and identifiers cheap.
fn word_end(v: &[u8], mut i: usize) -> usize {
    while i < v.len() && is_alnum(v[i]) {
        i += 1;
    }
    i
}

fn boundary_before(v: &[u8], s: usize) -> bool {
    s == 0 || !is_alnum(v[s - 1])
}

/// Length of the digit run ending just before a one-byte space or
/// parenthesis separator at `lead - 1`.
fn left_neighbour(v: &[u8], lead: usize) -> Option<(u8, usize)> {
    if lead < 2 || !matches!(v[lead - 1], b' ' | b'(' | b')') || !v[lead - 2].is_ascii_digit() {
        return None;
    }
    // Only "three or more" matters: look at most four digits back.
    let mut s = lead - 2;
    while s > 0 && v[s - 1].is_ascii_digit() && lead - 1 - s < 4 {
        s -= 1;
    }
    Some((v[lead - 1], lead - 1 - s))
}

struct Window<'a> {
    v: &'a [u8],
    runs: &'a [Run],
    next: Option<Run>,
    left_run: Option<(u8, usize)>,
    plus: bool,
    paren: bool,
}

impl Window<'_> {
    fn len(&self, k: usize) -> usize {
        self.runs[k].e - self.runs[k].s
    }
    fn lens_are(&self, want: &[usize]) -> bool {
        self.runs.len() == want.len() && (0..want.len()).all(|k| self.len(k) == want[k])
    }
    fn sep(&self, k: usize) -> &[u8] {
        &self.v[self.runs[k].e..self.runs[k + 1].s]
    }
    /// All separators are the same single byte, one of `allowed`.
    fn uniform_sep(&self, allowed: &[u8]) -> bool {
        let [a, b, ..] = self.runs else {
            return true;
        };
        // Byte compares, not slice compares of one-byte separators.
        let c = self.v[a.e];
        b.s - a.e == 1
            && allowed.contains(&c)
            && self.runs[1..]
                .windows(2)
                .all(|w| w[1].s - w[0].e == 1 && self.v[w[0].e] == c)
    }
    fn end(&self) -> usize {
        self.runs[self.runs.len() - 1].e
    }

    /// Isolation from neighbouring digit runs: a window made of groups
    /// joined by a space must not continue, with the same separator, into
    /// a run of three or more digits on either side.
    fn isolated(&self) -> bool {
        let inner = (self.runs.len() > 1).then(|| self.sep(0));
        if let (Some((sep, len)), Some(inner)) = (self.left_run, inner) {
            if len >= 3 && inner == [sep] {
                return false;
            }
        }
        if let Some(next) = self.next {
            let after = &self.v[self.end()..next.s];
            if !after.iter().any(|&b| matches!(b, b' ' | b'(' | b')')) {
                return false;
            }
            if inner == Some(after) && next.e - next.s >= 3 {
                return false;
            }
        }
        true
    }

    /// The detector this window fits, and where its finding ends. `nd`
    /// is the window's digit count, which `windows` keeps as it goes.
    fn classify(
        &self,
        sc: &Scan<'_>,
        ctx: &mut Option<Hints>,
        lead: usize,
        nd: usize,
    ) -> Option<(Detector, usize)> {
        let v = self.v;
        debug_assert_eq!(nd, (0..self.runs.len()).map(|k| self.len(k)).sum::<usize>());
        // Below seven digits only a dotted quad can match.
        if nd > MAX_DIGITS || (nd < 7 && self.runs.len() != 4) || !self.isolated() {
            return None;
        }
        let end = self.end();
        let ext = if self.next.is_none() {
            extension(v, end)
        } else {
            None
        };
        if self.next.is_none() && !right_ok(v, end) && ext.is_none() {
            return None;
        }
        // The digits without separators, eight bytes a step: a run's last
        // step may copy bytes past it, which the next run's digits
        // overwrite or `nd` cuts off (the slack holds the last step). Not a
        // `memcpy` call per run, which cost a card or phone number ~60.
        let mut buf = [0u8; MAX_DIGITS + 8];
        let mut k = 0;
        for r in self.runs {
            let mut p = r.s;
            while p < r.e {
                buf[k + p - r.s..][..8].copy_from_slice(&word_at(v, p).to_le_bytes());
                p += 8;
            }
            k += r.e - r.s;
        }
        let d = &buf[..nd];
        let en = &sc.en;
        let nr = self.runs.len();
        // A `(` before the digits only matters to phone numbers.
        let plain = !self.plus && ext.is_none();

        if plain && en.ip && nr == 4 && self.uniform_sep(b".") && ipv4_runs(self) {
            return Some((Detector::Ip, end));
        }
        let mut hints = || *ctx.get_or_insert_with(|| sc.column.get() | context::before(v, lead));
        let dash_or_space = self.uniform_sep(b" -");
        // Twelve digits grouped 4-4-4 is how Aadhaar is printed; a 12-digit
        // Maestro card is rare, so Aadhaar is tried first.
        if plain
            && en.aadhaar
            && nd == 12
            && ((dash_or_space && self.lens_are(&[4, 4, 4])) || (nr == 1 && hints().aadhaar()))
            && ck::aadhaar(d)
        {
            return Some((Detector::Aadhaar, end));
        }
        if plain && nd >= 12 {
            let grouped =
                nr == 1 || (dash_or_space && self.len(0) >= 4 && (1..nr).all(|k| self.len(k) >= 3));
            if en.card && grouped && ck::card_iin(d) && ck::luhn(d) {
                return Some((Detector::Card, end));
            }
        }
        if plain {
            if en.ssn && dash_or_space && self.lens_are(&[3, 2, 4]) && ck::ssn(d) {
                return Some((Detector::Ssn, end));
            }
            if en.cpf
                && ((self.lens_are(&[3, 3, 3, 2])
                    && self.sep(0) == b"."
                    && self.sep(1) == b"."
                    && self.sep(2) == b"-")
                    || (self.lens_are(&[9, 2]) && self.sep(0) == b"-"))
                && ck::cpf(d)
            {
                return Some((Detector::Cpf, end));
            }
            if en.nhs && dash_or_space && self.lens_are(&[3, 3, 4]) && ck::nhs(d) {
                return Some((Detector::Nhs, end));
            }
        }
        // Bare digits: only with context.
        if plain && nr == 1 && (9..=11).contains(&nd) {
            let h = hints();
            let found = match nd {
                9 if en.ssn && h.ssn() && ck::ssn(d) => Some(Detector::Ssn),
                10 if en.nhs && h.nhs() && ck::nhs(d) => Some(Detector::Nhs),
                11 if en.cpf && h.cpf() && ck::cpf(d) => Some(Detector::Cpf),
                _ => None,
            };
            if let Some(det) = found {
                return Some((det, end));
            }
        }
        if en.phone && (self.phone_shape(d, nd) || (self.phone_in_context(nd) && hints().phone())) {
            return Some((Detector::Phone, ext.unwrap_or(end)));
        }
        None
    }

    /// Whether context alone may make this a phone number: 7 to 15
    /// digits ending in a run of at least three (not a date or a time).
    fn phone_in_context(&self, nd: usize) -> bool {
        let nr = self.runs.len();
        (7..=15).contains(&nd)
            && self.len(nr - 1) >= 3
            && (0..nr - 1).all(|k| {
                self.sep(k)
                    .iter()
                    .all(|b| matches!(b, b' ' | b'-' | b'(' | b')'))
            })
    }

    fn phone_shape(&self, d: &[u8], nd: usize) -> bool {
        let nr = self.runs.len();
        if self.plus {
            return (8..=15).contains(&nd);
        }
        if nr >= 2 && self.len(0) >= 3 && d.starts_with(b"00") && self.len(0) <= 4 {
            return (10..=17).contains(&nd);
        }
        // `(555)123-4567`, `(0113) 496 0123`: an area code in parentheses.
        if self.paren && nr >= 2 && self.sep(0).contains(&b')') {
            return (9..=12).contains(&nd);
        }
        if nr < 2 || !(9..=12).contains(&nd) {
            return false;
        }
        // Separators inside a phone number are one character (or a
        // parenthesis pair), never a mixture with dots and dashes that
        // reads like a date or version.
        if (0..nr - 1).any(|k| self.sep(k).len() != 1) {
            return false;
        }
        let lens: [usize; MAX_RUNS] = std::array::from_fn(|k| if k < nr { self.len(k) } else { 0 });
        let trunk = d[0] == b'0';
        let nxx = |k: usize| (b'2'..=b'9').contains(&d[k]);
        match &lens[..nr] {
            // NANP: NXX-XXX-XXXX or NXX.XXX.XXXX, optionally with a
            // leading 1. (The exchange is NXX too, but `555-123-4567` is
            // how people write example numbers, and they are meant as
            // phone numbers.) With spaces, `NNN NNN NNNN` is as often a
            // member or NHS-like number: it needs context.
            [3, 3, 4] => (nxx(0) && self.uniform_sep(b"-.")) || trunk,
            [1, 3, 3, 4] => d[0] == b'1' && nxx(1) && self.uniform_sep(b"-."),
            // Brazil: DD NNNN-NNNN (landline) and DD 9NNNN-NNNN (mobile).
            [2, 4, 4] | [2, 5, 4] => d[0] != b'0' && d[1] != b'0' && self.sep(1) == b"-",
            // Spain: 9NN NNN NNN, 9NN NN NN NN (and 6/7/8).
            [3, 3, 3] | [3, 2, 2, 2] => (b'6'..=b'9').contains(&d[0]),
            // India mobile: NNNNN NNNNN.
            [5, 5] => trunk || (b'6'..=b'9').contains(&d[0]),
            // UK, Germany, France and others with a trunk prefix 0.
            [3, 4, 4]
            | [4, 3, 4]
            | [5, 6]
            | [5, 3, 3]
            | [3, 7]
            | [3, 8]
            | [4, 6]
            | [4, 7]
            | [2, 2, 2, 2, 2] => trunk,
            _ => false,
        }
    }
}

fn ipv4_runs(w: &Window<'_>) -> bool {
    (0..4).all(|k| {
        let r = w.runs[k];
        let s = &w.v[r.s..r.e];
        s.len() <= 3
            && (s.len() == 1 || s[0] != b'0')
            && s.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0')) <= 255
    })
}

/// IBAN starting with its country code at `s`, compact or printed in
/// groups of four.
fn iban(v: &[u8], s: usize) -> Option<usize> {
    let len = ck::iban_length([v[s], v[s + 1]])?;
    let mut buf = [0u8; 34];
    buf[0] = v[s];
    buf[1] = v[s + 1];
    let (mut k, mut j) = (2, s + 2);
    while k < len && j < v.len() {
        let c = v[j];
        if c.is_ascii_digit() || c.is_ascii_uppercase() {
            buf[k] = c;
            k += 1;
            j += 1;
        } else if c == b' '
            && k % 4 == 0
            && v.get(j + 1)
                .is_some_and(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            j += 1;
        } else {
            break;
        }
    }
    let ok = k == len
        && buf[2].is_ascii_digit()
        && buf[3].is_ascii_digit()
        && v.get(j).is_none_or(|&b| !is_alnum(b))
        && ck::iban_mod97(&buf[..len]);
    ok.then_some(j)
}

/// NIE: `X`/`Y`/`Z` at `s`, 7 digits from `i`, an optional `-` or space,
/// and the check letter.
fn nie(v: &[u8], s: usize, i: usize) -> Option<usize> {
    let digits = v.get(i..i + 7)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut p = i + 7;
    if matches!(v.get(p), Some(b'-' | b' ')) {
        p += 1;
    }
    let letter = *v.get(p)?;
    let ok = letter.is_ascii_alphabetic()
        && v.get(p + 1).is_none_or(|&b| !is_alnum(b))
        && ck::dni_letter_ok(Some(v[s]), digits, letter);
    ok.then_some(p + 1)
}

/// DNI: 8 digits (or `12.345.678`), an optional `-` or space, and the
/// check letter.
fn dni(v: &[u8], runs: &[Run]) -> Option<usize> {
    let mut digits = [0u8; 8];
    match runs {
        [r] if r.e - r.s == 8 => digits.copy_from_slice(&v[r.s..r.e]),
        [a, b, c] if a.e - a.s == 2 && b.e - b.s == 3 && c.e - c.s == 3 => {
            if v[a.e..b.s] != *b"." || v[b.e..c.s] != *b"." {
                return None;
            }
            digits[..2].copy_from_slice(&v[a.s..a.e]);
            digits[2..5].copy_from_slice(&v[b.s..b.e]);
            digits[5..].copy_from_slice(&v[c.s..c.e]);
        }
        _ => return None,
    }
    let mut p = runs[runs.len() - 1].e;
    if matches!(v.get(p), Some(b'-' | b' ')) {
        p += 1;
    }
    let letter = *v.get(p)?;
    let ok = letter.is_ascii_alphabetic()
        && v.get(p + 1).is_none_or(|&b| !is_alnum(b))
        && ck::dni_letter_ok(None, &digits, letter);
    ok.then_some(p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_end_agrees_with_a_byte_loop() {
        for b in 0..=255u8 {
            let want = b.is_ascii_digit();
            let x = u64::from_le_bytes([b'5', b'5', b, b'5', b'5', b'5', b'5', b'5']);
            assert_eq!(non_digits(x) & 0xff_0000 != 0, !want, "{b:#x}");
            assert_eq!(non_digits(x) & !0xff_0000, 0);
        }
        let all = b"12345678901234567x0123456789\xb0";
        for n in 0..=all.len() {
            let v = &all[..n];
            for i in 0..=n {
                let mut e = i;
                while e < n && v[e].is_ascii_digit() {
                    e += 1;
                }
                assert_eq!(digits_end(v, i), e, "{n} {i}");
            }
        }
    }
}
