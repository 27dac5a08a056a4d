//! Detectors that start at a letter or punctuation: e-mail (at `@`),
//! secrets (AWS key ids at `A`, JWTs at the `J` of `eyJ`, PEM private keys
//! at `-----BEGIN`, `Bearer` tokens, `password=`-style pairs and URL
//! passwords at `=` and `:`) and IPv6 (at `:`).
//!
//! Each function is called at its trigger byte and returns where scanning
//! resumes, always past the trigger.

use std::net::Ipv6Addr;

use super::scan::{Scan, is_alnum};
use super::swar::{HIGH, LOW7, at_least, bytes_equal, lanes16, letters, splat, word_at};
use crate::config::mask::Detector;

/// Bytes of a local part and of a domain label, one table look-up each
/// (these walks are most of what an address costs).
const LOCAL: u8 = 1;
const LABEL: u8 = 2;
static EMAIL_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c >= 0x80 || c == b'-' {
            t[b] = LOCAL | LABEL;
        } else if matches!(c, b'.' | b'_' | b'%' | b'+' | b'\'') {
            t[b] = LOCAL;
        }
        b += 1;
    }
    t
};

fn is_local(b: u8) -> bool {
    EMAIL_CLASS[usize::from(b)] & LOCAL != 0
}

fn is_label(b: u8) -> bool {
    EMAIL_CLASS[usize::from(b)] & LABEL != 0
}

/// Whether the last `n` bytes of `head` are one of `NOT_TLDS`, in any
/// case. Inlined into `email`, where every address goes through it.
#[inline(always)]
fn file_extension(head: &[u8], n: usize) -> bool {
    // Every entry is 2 to 4 letters long, read as a `u32` with zeros
    // after it.
    if !(2..=4).contains(&n) || head.len() < n {
        return false;
    }
    let w = match head.last_chunk::<4>() {
        Some(c) => u32::from_le_bytes(*c) >> (8 * (4 - n)),
        None => {
            let mut w = [0; 4];
            w[..n].copy_from_slice(&head[head.len() - n..]);
            u32::from_le_bytes(w)
        }
    };
    // `| 0x20` lowercases a letter, and only a letter (upper or lower
    // case) becomes a lowercase letter by it: exact for letter-only keys,
    // and never zero, so lengths do not mix (and no key is an empty slot).
    let key = (w | 0x2020_2020) & (u32::MAX >> (8 * (4 - n)));
    FILE_EXTENSIONS[ext_slot(key)] == key
}

/// `NOT_TLDS` by a perfect hash of their `file_extension` keys.
const EXT_HASH: u32 = 0x4eac_98d7;
const fn ext_slot(key: u32) -> usize {
    (key.wrapping_mul(EXT_HASH) >> 27) as usize
}
static FILE_EXTENSIONS: [u32; 32] = {
    let mut t = [0u32; 32];
    let mut i = 0;
    while i < NOT_TLDS.len() {
        let e = NOT_TLDS[i];
        let mut w = [0u8; 4];
        let mut k = 0;
        while k < e.len() {
            w[k] = e[k];
            k += 1;
        }
        let key = u32::from_le_bytes(w);
        let slot = ext_slot(key);
        assert!(t[slot] == 0, "EXT_HASH is no perfect hash of the list");
        t[slot] = key;
        i += 1;
    }
    t
};

const _: () = {
    let mut i = 0;
    while i < NOT_TLDS.len() {
        let t = NOT_TLDS[i];
        assert!(
            t.len() >= 2 && t.len() <= 4,
            "file_extension compares 2 to 4 bytes"
        );
        let mut k = 0;
        while k < t.len() {
            assert!(
                t[k].is_ascii_lowercase(),
                "file_extension lowercases letters only"
            );
            k += 1;
        }
        i += 1;
    }
};

/// Top-level "domains" that are really file extensions (`icon@2x.png`):
/// what `file_extension` matches.
const NOT_TLDS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp", b"css", b"js", b"ts",
    b"json", b"txt", b"pdf", b"html", b"xml", b"yaml", b"yml", b"toml", b"lock",
];

/// Where the domain starts after the `@` at `at`, or after the `%40` whose
/// `%` is at `at`.
#[inline]
fn domain_start(v: &[u8], at: usize) -> Option<usize> {
    if v[at] != b'%' {
        return Some(at + 1);
    }
    (v.get(at + 1..at + 3) == Some(b"40")).then_some(at + 3)
}

/// At `@`, or at the `%` of a URL-encoded `%40`: an address
/// `local@domain.tld`. Returns the span.
pub(super) fn email(v: &[u8], at: usize) -> Option<(usize, usize)> {
    let domain = domain_start(v, at)?;
    let s = match local_common(v, at) {
        Local::Start(s) => s,
        Local::NotAddress => return None,
        Local::Unsure => local_start(v, at)?,
    };
    // `scheme://user@host` names a user, not a mailbox.
    if s >= 2 && &v[s - 2..s] == b"//" {
        return None;
    }
    let found = match domain_short(v, domain) {
        Domain::Unsure => domain_letters(v, domain),
        found => found,
    };
    let (tld, end) = match found {
        Domain::Alpha(tld, end) => (tld, end),
        Domain::NotAddress => return None,
        Domain::Unsure => {
            let (tld, end) = domain_bytewise(v, at, domain)?;
            let alpha = v[tld..end]
                .iter()
                .all(|&b| b.is_ascii_alphabetic() || b >= 0x80);
            if !alpha {
                return None;
            }
            (tld, end)
        }
    };
    (end - tld >= 2 && !file_extension(&v[..end], end - tld)).then_some((s, end))
}

/// What `local_common` made of the bytes before an `@`.
enum Local {
    /// The local part starts here (it ends at the `@`).
    Start(usize),
    /// Not an address: no local part, or a dot last in it.
    NotAddress,
    /// Anything else (a rarer local byte, a leading dot, `..`, 32 bytes
    /// or more, a value under seventeen bytes): `local_start` decides.
    Unsure,
}

/// The local part before the `@` at `at`, sixteen bytes a step (at most
/// two), for the commonest shape: letters, digits, non-ASCII bytes and
/// single dots, not starting with a dot, under 32 bytes. Such a run of
/// `common_local` bytes needs no stripping, and a byte before it that is
/// no local byte at all ends the local part there. About 95 instructions
/// for `olivia.smith123456`, against about 170 for the eight-byte walk
/// of `local_start`.
#[inline(always)]
fn local_common(v: &[u8], at: usize) -> Local {
    // The run of common bytes before `at`: sixteen bytes a step from the
    // top, where fewer than sixteen (at the start of the value) are its
    // first sixteen shifted up, with zeros (no common byte) below.
    let run = if at >= 16 {
        // `v[at]` is the `@` or `%`: the next byte of `at - 1` is there.
        // All sixteen common (the usual case) is one compare, not a count.
        let hi = common_run(v, at - 16);
        if hi != u128::MAX {
            (!hi).leading_zeros() as usize / 8
        } else if at >= 32 {
            match (!common_run(v, at - 32)).leading_zeros() as usize / 8 {
                16 => return Local::Unsure,
                lo => 16 + lo,
            }
        } else if at > 16 {
            // At least seventeen bytes, as `at` is in `v`.
            16 + (!(common_run(v, 0) << (8 * (32 - at)))).leading_zeros() as usize / 8
        } else {
            16
        }
    } else if at == 0 {
        return Local::NotAddress;
    } else if v.len() > 16 {
        (!(common_run(v, 0) << (8 * (16 - at)))).leading_zeros() as usize / 8
    } else {
        return Local::Unsure;
    };
    let s = at - run;
    // The byte before the run, if any, must be no local byte at all: a
    // rarer local byte, or the first dot of a `..`, is `local_start`'s.
    if s > 0 && is_local(v[s - 1]) {
        return Local::Unsure;
    }
    if run == 0 {
        return Local::NotAddress;
    }
    if v[s] == b'.' {
        // A leading dot is stripped.
        return Local::Unsure;
    }
    if v[at - 1] == b'.' {
        return Local::NotAddress;
    }
    Local::Start(s)
}

/// Per byte of `v[p..p + 16]`, 0xff when it is a letter, a digit, a dot
/// or non-ASCII (`common_local`) but not a dot followed by a dot, else
/// 0: SSE2 compares on all sixteen at once (`lanes16`), the answer read
/// by `leading_zeros`.
#[inline(always)]
fn common_run(v: &[u8], p: usize) -> u128 {
    // Seventeen bytes: each of the sixteen and the byte after it.
    let w: &[u8; 17] = v[p..].first_chunk().expect("seventeen bytes from p");
    lanes16(|k| {
        let x = w[k];
        let dot = x == b'.';
        let common =
            ((x | 0x20).wrapping_sub(b'a') < 26) | (x.wrapping_sub(b'0') < 10) | (x >= 0x80) | dot;
        common & !(dot & (w[k + 1] == b'.'))
    })
}

/// The start of the local part before the `@` at `at`, for any shape.
#[inline(never)]
fn local_start(v: &[u8], at: usize) -> Option<usize> {
    // Walks are bounded (a local part is at most 64 bytes, a domain 255)
    // so hostile values cannot make a scan quadratic: the run of local
    // bytes before `at` is looked at for 71 bytes at most (`lo`), and a
    // longer one is no address.
    let lo = at.saturating_sub(71);
    let mut s = at;
    // Eight bytes a step, the bytes before `s`, while all are letters,
    // digits, dots or non-ASCII (`common_local`), noting `..` on the way;
    // one of the rarer bytes (`_ % + ' -`) goes on a byte at a time below.
    let mut pairs = 0;
    let mut above = 0;
    let (mut stop, mut p) = (0, 0);
    while s > lo {
        let Some(c) = v.get(..s).and_then(<[u8]>::last_chunk::<8>) else {
            break;
        };
        let dot;
        (stop, dot) = common_local(u64::from_le_bytes(*c));
        // Pairs of dots, the top byte with the bottom byte of the word
        // above.
        p = dot & ((dot >> 8) | (above << 56));
        if stop != 0 {
            break;
        }
        pairs |= p;
        above = dot;
        s -= 8;
    }
    let mut pair = pairs != 0;
    if stop == 0 && s > lo {
        // Fewer than eight before `s`: they come last, after zeros (which
        // end the run).
        match v.first_chunk::<8>() {
            Some(c) => {
                let dot;
                (stop, dot) = common_local(u64::from_le_bytes(*c) << (8 * (8 - s)));
                p = dot & ((dot >> 8) | (above << 56));
            }
            // `double_dot` looks at the local part below.
            None => pair = true,
        }
    }
    if stop != 0 {
        s -= stop.leading_zeros() as usize / 8;
        // Only pairs above the highest stop byte are in the run (the stop
        // byte is no dot, so comparing the masks tells).
        pair |= p > stop;
    }
    if s < lo {
        return None;
    }
    let pair = if s > 0 && is_local(v[s - 1]) {
        while s > lo && is_local(v[s - 1]) {
            s -= 1;
        }
        if s > 0 && is_local(v[s - 1]) {
            return None;
        }
        true
    } else {
        pair
    };
    // Quotes and dots may surround the address in prose; they are not
    // part of it.
    while s < at && matches!(v[s], b'.' | b'\'' | b'-' | b'+') {
        s += 1;
    }
    let local = &v[s..at];
    // A `..` in the stripped bytes does not count: `double_dot` decides
    // when the walk saw one (or did not look at every byte).
    if local.is_empty() || local.len() > 64 || local.ends_with(b".") || (pair && double_dot(local))
    {
        return None;
    }
    Some(s)
}

/// Per byte of `x`, the high bit when the byte is not a letter, a digit,
/// a dot or non-ASCII (every byte of a local part but `_ % + ' -`); and
/// the dots, with the non-ASCII bytes whose low seven bits are a dot.
#[inline]
fn common_local(x: u64) -> (u64, u64) {
    let low = x & LOW7;
    let lower = low | splat(0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'z' + 1);
    let digit = at_least(low, b'0') & !at_least(low, b'9' + 1);
    // `low ^ '.'` is zero, and adding LOW7 leaves the high bit clear,
    // only at a dot.
    let dot = !((low ^ splat(b'.')) + LOW7) & HIGH;
    (!(letter | digit | dot | x) & HIGH, dot)
}

/// Whether `local` has two dots in a row: eight bytes a step, the last
/// step overlapping the one before (about half the instructions of a
/// byte-pair loop over a 20-byte local part).
fn double_dot(local: &[u8]) -> bool {
    let Some(last) = local.last_chunk::<8>() else {
        return local
            .iter()
            .zip(local.iter().skip(1))
            .any(|(&a, &b)| a == b'.' && b == b'.');
    };
    // Pairs inside a word, and across two: the top byte of one and the
    // bottom byte of the next.
    let dots = |c: &[u8; 8]| bytes_equal(u64::from_le_bytes(*c), b'.');
    let (mut rest, mut top) = (local, 0);
    while let Some((c, tail)) = rest.split_first_chunk::<8>() {
        let d = dots(c);
        if d & ((d << 8) | top) != 0 {
            return true;
        }
        top = d >> 56;
        rest = tail;
    }
    let d = dots(last);
    d & (d << 8) != 0
}

/// What `domain_letters` made of the bytes after an `@`.
enum Domain {
    /// An address ends at `.1`; its last label, from `.0`, is letters.
    Alpha(usize, usize),
    /// Not an address: one label only.
    NotAddress,
    /// Anything else (a digit, `-` or non-ASCII byte, an empty label, 32
    /// bytes or more, ...): `domain_bytewise` decides.
    Unsure,
}

/// The domain from `d` sixteen bytes at once, for the commonest shape of
/// `domain_letters` up to sixteen bytes: labels of ASCII letters joined
/// by single dots. Letters and dots that follow a letter are classed by
/// SSE2 compares LLVM makes of plain code (`letter_run`); about half the
/// instructions of `domain_letters`.
#[inline(always)]
fn domain_short(v: &[u8], d: usize) -> Domain {
    // The sixteen bytes from `d`; fewer at the end of the value are its
    // last sixteen shifted down, with zeros (no letter) above.
    let run = if v.len() >= d + 16 {
        letter_run(v, d)
    } else if v.len() > 16 && d < v.len() {
        letter_run(v, v.len() - 16) >> (8 * (d - (v.len() - 16)))
    } else {
        return Domain::Unsure;
    };
    // The run ends at a byte that is no letter nor a dot after one: a
    // dot after a dot or after the `@`, or a label byte (a digit, `-`,
    // non-ASCII) leaves the domain to `domain_letters`, and so does a
    // dot last (the address may end before it).
    let end = d + (!run).trailing_zeros() as usize / 8;
    if v.get(end).is_some_and(|&b| b == b'.' || is_label(b)) {
        return Domain::Unsure;
    }
    if end == d {
        return Domain::NotAddress;
    }
    if v[end - 1] == b'.' {
        return Domain::Unsure;
    }
    // The last label, after the last dot: looked for in the eight bytes
    // before `end` (the domain's only), with no loop and so no branch to
    // mispredict on the top-level domain's length (a byte loop was
    // fewer instructions but slower).
    let len = end - d;
    if let Some(w) = v[..end].last_chunk::<8>() {
        let mut dots = bytes_equal(u64::from_le_bytes(*w), b'.');
        if len < 8 {
            dots &= u64::MAX << (8 * (8 - len));
        }
        if dots != 0 {
            let q = end - 8 + (63 - dots.leading_zeros() as usize) / 8;
            return Domain::Alpha(q + 1, end);
        }
    }
    match v[d..end].iter().rposition(|&b| b == b'.') {
        Some(q) => Domain::Alpha(d + q + 1, end),
        // One label: not an address.
        None => Domain::NotAddress,
    }
}

/// Per byte of `v[p..p + 16]`, 0xff when it is an ASCII letter, or a dot
/// after one, else 0 (`lanes16`, read whole, as `common_run`).
#[inline(always)]
fn letter_run(v: &[u8], p: usize) -> u128 {
    // Seventeen bytes: each of the sixteen and the byte before it.
    let w: &[u8; 17] = v[p - 1..]
        .first_chunk()
        .expect("seventeen bytes from p - 1");
    let letter = |b: u8| (b | 0x20).wrapping_sub(b'a') < 26;
    lanes16(|k| {
        let x = w[k + 1];
        letter(x) | ((x == b'.') & letter(w[k]))
    })
}

/// The domain from `d` eight bytes a step, for the commonest shape:
/// labels of ASCII letters joined by single dots, under 32 bytes. Such a
/// domain is the run of letters and dots from `d`, ended by a byte that
/// is not in `LABEL`, and every dot of it separates two labels: what
/// `domain_bytewise` finds label by label, at about twice the
/// instructions (~100 against ~200 for `mail.example.org`, its label
/// loop and the letter check of the last label).
fn domain_letters(v: &[u8], d: usize) -> Domain {
    // A dot next to a dot or to an end of the run (which count as dots)
    // makes an empty label.
    let mut dot_before: u64 = 1 << 63;
    let mut empty = 0;
    // The last word with a dot in the run: where it starts, its dots.
    let (mut last_at, mut last) = (0, 0);
    let mut p = d;
    while p < d + 32 {
        if p >= v.len() {
            // The run reached the end of the value, after a dot?
            empty |= dot_before & 1 << 63;
            return domain_end(v, p, empty, last_at, last);
        }
        let x = word_at(v, p);
        let dot = !(((x & LOW7) ^ splat(b'.')) + LOW7);
        // Letters and dots, ASCII only.
        let run = letters(x) | (dot & !x & HIGH);
        let mut dot = dot & run;
        let ends = run ^ HIGH;
        // The byte that ends the run, if any, counts as a dot.
        let t = ends & ends.wrapping_neg();
        dot &= t.wrapping_sub(1);
        let edges = dot | t;
        empty |= edges & ((edges << 8) | (dot_before >> 56));
        if dot != 0 {
            (last_at, last) = (p, dot);
        }
        if t == 0 {
            dot_before = dot;
            p += 8;
            continue;
        }
        let end = p + t.trailing_zeros() as usize / 8;
        return domain_end(v, end, empty, last_at, last);
    }
    Domain::Unsure
}

/// `domain_letters` at the end of the run: `last` holds the dots of the
/// word from `last_at`, the last word with a dot.
#[inline]
fn domain_end(v: &[u8], end: usize, empty: u64, last_at: usize, last: u64) -> Domain {
    // A byte of a label that is not a letter (a digit, `-`, non-ASCII)
    // may continue the last one.
    if empty != 0 || v.get(end).is_some_and(|&b| is_label(b)) {
        return Domain::Unsure;
    }
    if last == 0 {
        return Domain::NotAddress;
    }
    let q = last_at + (63 - last.leading_zeros() as usize) / 8;
    Domain::Alpha(q + 1, end)
}

/// The domain from `d` label by label, for any shape: its last label,
/// when it has two labels or more.
fn domain_bytewise(v: &[u8], at: usize, d: usize) -> Option<(usize, usize)> {
    // Labels left to right, one byte loop each. A label is looked at for
    // at most 64 bytes: one that long is too long (over 63) and ends the
    // address at the label before it.
    let mut ls = d;
    let mut labels = 0;
    let mut last = (0, 0);
    loop {
        let hi = v.len().min(ls + 64);
        let mut e = ls;
        while e < hi && is_label(v[e]) {
            e += 1;
        }
        if e - at > 255 {
            return None;
        }
        if e == ls || e - ls > 63 || v[ls] == b'-' || v[e - 1] == b'-' {
            // A trailing dot (end of a sentence) is not part of it: the
            // address ends at the last whole label.
            break;
        }
        labels += 1;
        last = (ls, e);
        match v.get(e..e + 2) {
            Some(&[b'.', n]) if is_label(n) => ls = e + 1,
            _ => break,
        }
    }
    // The address ends where a label ended: at the end of `v`, at a byte
    // outside `LABEL` (so not a letter or digit) or at a dot, so nothing
    // alphanumeric is glued on and needs no check.
    (labels >= 2).then_some(last)
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    find(h, n).is_some()
}

/// Naive search; used only after a rare trigger.
pub(super) fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w == n)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Length of an AWS access key id.
pub(super) const AWS_KEY_LEN: usize = 20;
/// Shortest JWT: two segments of `JWT_SEGMENT` and two dots.
pub(super) const JWT_MIN_LEN: usize = 2 * JWT_SEGMENT + 2;
const JWT_SEGMENT: usize = 10;
/// Shortest `PEM` match: `-----BEGIN `, a label holding `PRIVATE KEY`,
/// `-----`.
pub(super) const PEM_MIN_LEN: usize = PEM_BEGIN.len() + PEM_LABEL.len() + 5;
const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_LABEL: &[u8] = b"PRIVATE KEY";
/// Shortest `Bearer` match: the word, a space, a token of
/// `BEARER_TOKEN_MIN`.
pub(super) const BEARER_MIN_LEN: usize = 6 + 1 + BEARER_TOKEN_MIN;
const BEARER_TOKEN_MIN: usize = 8;

/// At `A`: an AWS access key id, `AKIA` or `ASIA` and 16 of `[A-Z0-9]`.
pub(super) fn aws_key(v: &[u8], i: usize) -> Option<(usize, usize)> {
    let head = v.get(i..i + 4)?;
    if head != b"AKIA" && head != b"ASIA" {
        return None;
    }
    if i > 0 && is_alnum(v[i - 1]) {
        return None;
    }
    let body = v.get(i + 4..i + AWS_KEY_LEN)?;
    let ok = body
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && v.get(i + AWS_KEY_LEN).is_none_or(|&b| !is_alnum(b));
    ok.then_some((i, i + AWS_KEY_LEN))
}

/// At the `J` of `eyJ`: a JWT, three base64url segments joined by dots
/// (the signature may be empty).
pub(super) fn jwt(v: &[u8], j: usize) -> Option<(usize, usize)> {
    if j < 2 || v[j - 2] != b'e' || v[j - 1] != b'y' {
        return None;
    }
    let s = j - 2;
    if s > 0 && is_b64url(v[s - 1]) {
        return None;
    }
    let seg = |from: usize| {
        let mut e = from;
        while e < v.len() && is_b64url(v[e]) {
            e += 1;
        }
        e
    };
    let h = seg(s);
    if h - s < JWT_SEGMENT || v.get(h) != Some(&b'.') {
        return None;
    }
    let p = seg(h + 1);
    if p - (h + 1) < JWT_SEGMENT || v.get(p) != Some(&b'.') {
        return None;
    }
    let sig = seg(p + 1);
    Some((s, sig))
}

/// At `-`: a PEM private key block, through its END line. A block with no
/// END line runs to the end of the value (fail closed).
pub(super) fn pem(v: &[u8], i: usize) -> Option<(usize, usize)> {
    let rest = &v[i..];
    if !rest.starts_with(PEM_BEGIN) {
        return None;
    }
    let line_end = find(&rest[PEM_BEGIN.len()..], b"-----")? + PEM_BEGIN.len();
    if line_end > 80 || !contains(&rest[PEM_BEGIN.len()..line_end], PEM_LABEL) {
        return None;
    }
    let after = line_end + 5;
    let end = match find(&rest[after..], b"-----END ") {
        Some(e) => {
            let from = after + e + 9;
            find(&rest[from..], b"-----").map_or(v.len(), |x| i + from + x + 5)
        }
        None => v.len(),
    };
    Some((i, end))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
}

/// At `B`/`b`: `Bearer <token>`; the span is the token. A token is at
/// least 8 characters with a digit, or at least 16 (so `bearer
/// authentication` in prose is left alone).
pub(super) fn bearer(v: &[u8], i: usize) -> Option<(usize, usize)> {
    let word = v.get(i..i + 6)?;
    // `| 0x20` lowercases a letter, and only a letter becomes a lowercase
    // letter by it: four bytes at once turn most `B`s away.
    let head = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) | 0x2020_2020;
    if head != u32::from_le_bytes(*b"bear")
        || !word.eq_ignore_ascii_case(b"bearer")
        || (i > 0 && is_alnum(v[i - 1]))
    {
        return None;
    }
    let mut s = i + 6;
    if !matches!(v.get(s), Some(b' ' | b'\t')) {
        return None;
    }
    while matches!(v.get(s), Some(b' ' | b'\t')) {
        s += 1;
    }
    let mut e = s;
    while e < v.len() && is_token(v[e]) {
        e += 1;
    }
    let tok = &v[s..e];
    let ok =
        tok.len() >= 16 || (tok.len() >= BEARER_TOKEN_MIN && tok.iter().any(u8::is_ascii_digit));
    ok.then_some((s, e))
}

/// Keys whose value is a secret, matched as a suffix of the key (after
/// lowercasing and reading `-` as `_`): `db_password`, `PGPASSWORD`,
/// `client-secret`, `X-Api-Key`.
const SECRET_KEYS: &[&[u8]] = &[
    b"password",
    b"passwd",
    b"passphrase",
    b"secret",
    b"api_key",
    b"apikey",
    b"access_key",
    b"secret_key",
    b"private_key",
    b"signing_key",
    b"token",
    b"credential",
    b"credentials",
];
/// Short keys, matched only as the whole key or after `_`.
const SHORT_KEYS: &[&[u8]] = &[b"pwd", b"pass", b"pw"];

fn is_key(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn secret_key(key: &[u8]) -> bool {
    if key.len() < 2 || key.len() > 64 {
        return false;
    }
    // Every key ends in one of these letter pairs (in any case: `| 0x20`
    // makes a lowercase letter of a letter only); most keys (`file:`) are
    // refused here.
    let tail = [key[key.len() - 2] | 0x20, key[key.len() - 1] | 0x20];
    if !matches!(
        &tail,
        b"rd" | b"wd" | b"se" | b"et" | b"ey" | b"en" | b"al" | b"ls" | b"ss" | b"pw"
    ) {
        return false;
    }
    let mut low = [0u8; 64];
    for (d, &b) in low.iter_mut().zip(key) {
        *d = if b == b'-' {
            b'_'
        } else {
            b.to_ascii_lowercase()
        };
    }
    let low = &low[..key.len()];
    SECRET_KEYS.iter().any(|k| low.ends_with(k))
        || SHORT_KEYS.iter().any(|k| {
            low == *k || (low.ends_with(k) && matches!(low[low.len() - k.len() - 1], b'_' | b'.'))
        })
}

/// At `=` or `:`: the value of a `password=`-style pair. The key may be
/// quoted (JSON) and spaced (`password = 'x'`, `"secret": "x"`). The span
/// is the value, inside its quotes when quoted; an unclosed quote runs to
/// the end of the value (fail closed).
pub(super) fn pair(v: &[u8], sep: usize) -> Option<(usize, usize)> {
    let mut k = sep;
    while k > 0 && v[k - 1] == b' ' && sep - k < 8 {
        k -= 1;
    }
    if k > 0 && matches!(v[k - 1], b'"' | b'\'') {
        k -= 1;
    }
    // Every key ends in one of these letters; most `:` and `=` (times,
    // `id=5`) are refused here.
    if k == 0
        || !matches!(
            v[k - 1] | 0x20,
            b'd' | b'e' | b't' | b'y' | b'n' | b'l' | b's' | b'w'
        )
    {
        return None;
    }
    let key_end = k;
    while k > 0 && is_key(v[k - 1]) && key_end - k <= 64 {
        k -= 1;
    }
    if !secret_key(&v[k..key_end]) {
        return None;
    }
    let mut s = sep + 1;
    if v.get(s) == Some(&b'=') {
        // `==` is a comparison, not an assignment.
        return None;
    }
    while matches!(v.get(s), Some(b' ' | b'\t')) {
        s += 1;
    }
    let (s, e) = match v.get(s) {
        Some(&q @ (b'"' | b'\'')) => {
            let mut e = s + 1;
            while e < v.len() && v[e] != q {
                e += if v[e] == b'\\' { 2 } else { 1 };
            }
            (s + 1, e.min(v.len()))
        }
        _ => {
            // Unquoted: to whitespace or a quote, or to a `&`, `;` or `,`
            // that starts the next `key=` (query strings, connection
            // strings). Passwords often hold `&` or `)`, so anything else
            // stays inside: masking a stray `)` beats leaking a suffix.
            let mut e = s;
            while e < v.len() {
                match v[e] {
                    b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' => break,
                    b'&' | b';' | b',' if next_key(v, e + 1) => break,
                    _ => e += 1,
                }
            }
            (s, e)
        }
    };
    let val = &v[s..e];
    let trivial = val.is_empty()
        || [
            &b"null"[..],
            b"true",
            b"false",
            b"none",
            b"***",
            b"********",
        ]
        .iter()
        .any(|t| val.eq_ignore_ascii_case(t))
        || val.starts_with(b"//");
    (!trivial).then_some((s, e))
}

/// Whether `key=` (or `key:` after `,`) starts at `i`.
fn next_key(v: &[u8], i: usize) -> bool {
    let mut e = i;
    while e < v.len() && v[e] == b' ' {
        e += 1;
    }
    let k = e;
    while e < v.len() && is_key(v[e]) {
        e += 1;
    }
    e > k && e - k <= 64 && matches!(v.get(e), Some(b'=' | b':'))
}

/// At the `:` of `scheme://user:password@host`: the password.
pub(super) fn url_password(v: &[u8], colon: usize) -> Option<(usize, usize)> {
    if v.get(colon + 1..colon + 3) != Some(b"//")
        || colon == 0
        || !v[colon - 1].is_ascii_alphabetic()
    {
        return None;
    }
    let start = colon + 3;
    let mut e = start;
    let mut pw = None;
    while e < v.len()
        && !matches!(
            v[e],
            b'/' | b'@' | b'?' | b'#' | b' ' | b'\t' | b'\n' | b'"'
        )
    {
        if v[e] == b':' && pw.is_none() {
            pw = Some(e + 1);
        }
        e += 1;
    }
    let pw = pw?;
    (v.get(e) == Some(&b'@') && e > pw).then_some((pw, e))
}

fn is_v6(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// Why `ipv6` found nothing.
pub(super) enum NoV6 {
    /// Nothing here, but another colon of the same run might.
    Here,
    /// No colon before this byte in the same run can start an address.
    Until(usize),
}

/// At `:`: an IPv6 address around it.
pub(super) fn ipv6(v: &[u8], colon: usize) -> Result<(usize, usize), NoV6> {
    let word = |b: u8| is_alnum(b) || b == b'_';
    // An address is at most 45 characters: walks stop there, so a long
    // run of colons and hex digits costs linear time, not quadratic.
    let mut s = colon;
    while s > 0 && (v[s - 1].is_ascii_hexdigit() || v[s - 1] == b':') && colon - s < 46 {
        s -= 1;
    }
    let mut e = colon + 1;
    while e < v.len() && is_v6(v[e]) && e - colon < 46 {
        e += 1;
    }
    while e > colon + 1 && v[e - 1] == b'.' {
        e -= 1;
    }
    // Hex letters that are the end or start of a longer word belong to
    // the word (`std::vec`, `cafe:`, `::2:AG`): cut at the colon.
    if s > 0 && word(v[s - 1]) {
        while s < colon && v[s] != b':' {
            s += 1;
        }
    }
    if e < v.len() && word(v[e]) {
        while e > colon + 1 && v[e - 1] != b':' {
            e -= 1;
        }
    }
    // A single colon at either end is punctuation (`host:`, `ip:fe80::1`);
    // `::` belongs to the address.
    if e >= colon + 2 && v[e - 1] == b':' && (v[e - 2] != b':' || (e >= 3 && v[e - 3] == b':')) {
        e -= 1;
    }
    if s < e && v[s] == b':' && (v.get(s + 1) != Some(&b':') || v.get(s + 2) == Some(&b':')) {
        s += 1;
    }
    if e <= s {
        return Err(NoV6::Here);
    }
    let cand = &v[s..e];
    // Quick refusal for times and ratios (`10:30:45`): an address, or a
    // part of one glued to a word, has `::` or at least six colons.
    let colons = cand.iter().filter(|&&b| b == b':').count();
    let compressed = cand.windows(2).any(|w| w == b"::");
    if colons < 2 || cand.len() > 45 || !(compressed || colons >= 6) {
        // Every other colon of this run sees the same run, unless a walk
        // stopped at its length cap.
        let whole = colon.saturating_sub(s) < 46 && e.saturating_sub(colon) < 46;
        return Err(if whole { NoV6::Until(e) } else { NoV6::Here });
    }
    // `::`, `::1` and two-letter pairs such as `a::b` (C++ and Rust paths)
    // are not personal data: a compressed address needs three hex digits.
    let address = |c: &[u8]| {
        // Cheap shape checks first: an address has `::`, or seven colons
        // (six before a dotted IPv4 tail). Times (`10:30:45`) stop here.
        let colons = c.iter().filter(|&&b| b == b':').count();
        let compressed = find(c, b"::").is_some();
        let dotted = c.contains(&b'.');
        if !(compressed || colons == 7 || (colons == 6 && dotted)) {
            return false;
        }
        let hex = c.iter().filter(|b| b.is_ascii_hexdigit()).count();
        (hex >= 3 || !compressed)
            && std::str::from_utf8(c)
                .ok()
                .and_then(|t| t.parse::<Ipv6Addr>().ok())
                .is_some_and(|ip| !ip.is_unspecified() && !ip.is_loopback())
    };
    if address(cand) {
        return Ok((s, e));
    }
    // A hex word and a colon glued to an address (`cafe:2001:db8::1`,
    // `a:::2`): masked whole when the rest is an address.
    let first = cand.iter().position(|&b| b == b':').unwrap_or(0);
    let last = cand.iter().rposition(|&b| b == b':').unwrap_or(0);
    let glued = address(&cand[first + 1..])
        || address(&cand[..last])
        || find(cand, b":::").is_some_and(|t| address(&cand[..t + 2]));
    if glued { Ok((s, e)) } else { Err(NoV6::Here) }
}

/// Whether the colon at `i` is the only one in its run of hex digits,
/// colons and dots (`14:05`), so no address holds it: a few bytes each
/// way, before `ipv6`'s walks. A longer run is left to `ipv6`.
fn lone_colon(v: &[u8], i: usize) -> bool {
    let mut s = i;
    while s > 0 && v[s - 1].is_ascii_hexdigit() {
        if i - s == 4 {
            return false;
        }
        s -= 1;
    }
    if s > 0 && v[s - 1] == b':' {
        return false;
    }
    let mut e = i + 1;
    while e < v.len() && (v[e].is_ascii_hexdigit() || v[e] == b'.') {
        if e - i == 8 {
            return false;
        }
        e += 1;
    }
    v.get(e) != Some(&b':')
}

/// Dispatch for a `:` trigger.
pub(super) fn at_colon(sc: &mut Scan<'_>, i: usize) -> usize {
    let after = at_colon_no_v6(sc, i);
    if after != i + 1 || !sc.en.ip || lone_colon(sc.v, i) {
        return after;
    }
    match ipv6(sc.v, i) {
        Ok((s, e)) => {
            sc.push(s, e, Detector::Ip);
            e
        }
        Err(NoV6::Until(e)) => {
            sc.v6_clear_until = e;
            i + 1
        }
        Err(NoV6::Here) => i + 1,
    }
}

/// A `:` trigger without the IPv6 check. On failure scanning resumes
/// right after the colon: digits after it (`Card:4242 ...`) still go
/// through the numeric detectors.
pub(super) fn at_colon_no_v6(sc: &mut Scan<'_>, i: usize) -> usize {
    let v = sc.v;
    if sc.en.secret {
        if let Some((s, e)) = url_password(v, i) {
            sc.push(s, e, Detector::Secret);
            // Resume after `@` so the host is not read as an e-mail.
            return e + 1;
        }
        if let Some((s, e)) = pair(v, i) {
            sc.push(s, e, Detector::Secret);
            return e;
        }
    }
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `email` as it was before its eight-byte steps: one byte loop per
    /// label, the reference the fast paths are checked against.
    fn email_reference(v: &[u8], at: usize) -> Option<(usize, usize)> {
        let domain = domain_start(v, at)?;
        let lo = at.saturating_sub(71);
        let mut s = at;
        while s > lo && is_local(v[s - 1]) {
            s -= 1;
        }
        if s > 0 && is_local(v[s - 1]) {
            return None;
        }
        while s < at && matches!(v[s], b'.' | b'\'' | b'-' | b'+') {
            s += 1;
        }
        let local = &v[s..at];
        if local.is_empty()
            || local.len() > 64
            || local.ends_with(b".")
            || local.windows(2).any(|w| w == b"..")
        {
            return None;
        }
        if s >= 2 && &v[s - 2..s] == b"//" {
            return None;
        }
        // The label walk is `domain_bytewise`, the former code unchanged.
        let last = domain_bytewise(v, at, domain)?;
        let tld = &v[last.0..last.1];
        let tld_ok = tld.len() >= 2
            && tld.iter().all(|&b| b.is_ascii_alphabetic() || b >= 0x80)
            && NOT_TLDS
                .iter()
                .all(|e| e.len() != tld.len() || e.iter().zip(tld).any(|(&a, &b)| a != b | 0x20));
        tld_ok.then_some((s, last.1))
    }

    /// xorshift64*: the same cases on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
        fn pick<'a>(&mut self, from: &[&'a [u8]]) -> &'a [u8] {
            from[self.below(from.len())]
        }
    }

    /// Addresses and near misses: runs of letters, digits and the bytes
    /// that end or split local parts and labels, with label and local
    /// part lengths around every limit.
    fn address_like(r: &mut Rng) -> Vec<u8> {
        const PARTS: &[&[u8]] = &[
            b"a",
            b"Z",
            b"x",
            b"mail",
            b"example",
            b"0",
            b"42",
            b"@",
            b"@",
            b".",
            b".",
            b"..",
            b"-",
            b"_",
            b"+",
            b"%",
            b"%40",
            b"'",
            b" ",
            b"//",
            b"com",
            b"png",
            b"JPEG",
            b"uk",
            b"\xc3\xa9",
            b"\xff",
            b"\"",
            b":",
            b"xn--",
            b"-a",
            b"a-",
            b"\t",
            b"/",
            b",",
        ];
        const BYTES: &[u8] = b"abcXYZ0189._%+'-@ /\x80\xc3";
        let mut v = Vec::new();
        if r.below(2) == 0 {
            // An address, perturbed by the parts around and inside it.
            let local: &[&[u8]] = &[b"olivia.smith123456", b"a", b"x.y", b"billing7", b"O'Neil"];
            let domain: &[&[u8]] = &[
                b"example.com",
                b"mail.example.org",
                b"corp.example.net",
                b"a.b.c.d.e.f.g.h.i.j.k.l.io",
                b"example.co.uk",
                b"x.io",
            ];
            v.extend_from_slice(r.pick(local));
            v.push(b'@');
            v.extend_from_slice(r.pick(domain));
        }
        for _ in 0..r.below(8) {
            match r.below(4) {
                0 => v.extend_from_slice(r.pick(PARTS)),
                1 => {
                    // A run of one kind of byte, its length near a limit.
                    let n = [
                        1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 71, 72,
                    ][r.below(18)];
                    let b = BYTES[r.below(BYTES.len())];
                    let run = std::iter::repeat_n(b, n);
                    if r.below(2) == 0 {
                        v.splice(0..0, run);
                    } else {
                        v.extend(run);
                    }
                }
                _ => {
                    // Labels of letters joined by dots.
                    for k in 0..1 + r.below(5) {
                        if k > 0 {
                            v.push(b'.');
                        }
                        for _ in 0..1 + r.below(12) {
                            v.push(b"abcdefghijklmnopqrstuvwxyzQ"[r.below(27)]);
                        }
                    }
                }
            }
        }
        v
    }

    #[test]
    fn email_agrees_with_the_bytewise_reference() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut found = 0;
        for _ in 0..200_000 {
            let v = address_like(&mut r);
            for at in 0..v.len() {
                if matches!(v[at], b'@' | b'%') {
                    let got = email(&v, at);
                    assert_eq!(
                        got,
                        email_reference(&v, at),
                        "{:?} at {at}",
                        v.escape_ascii().to_string()
                    );
                    found += usize::from(got.is_some());
                    // The sixteen-byte paths on their own, where they
                    // decide, against the walks they stand in for.
                    let walk = local_start(&v, at);
                    match local_common(&v, at) {
                        Local::Start(s) => assert_eq!(walk, Some(s), "{v:?} at {at}"),
                        Local::NotAddress => assert_eq!(walk, None, "{v:?} at {at}"),
                        Local::Unsure => {}
                    }
                    if let Some(d) = domain_start(&v, at) {
                        let letters = match domain_letters(&v, d) {
                            Domain::Unsure => None,
                            Domain::Alpha(t, e) => Some(Some((t, e))),
                            Domain::NotAddress => Some(None),
                        };
                        let short = match domain_short(&v, d) {
                            Domain::Unsure => None,
                            Domain::Alpha(t, e) => Some(Some((t, e))),
                            Domain::NotAddress => Some(None),
                        };
                        if let Some(short) = short {
                            let slow = letters.unwrap_or_else(|| domain_bytewise(&v, at, d));
                            assert_eq!(short, slow, "{v:?} at {at}");
                        }
                    }
                }
            }
        }
        assert!(
            found > 10_000,
            "{found} addresses: the cases miss the fast paths"
        );
    }

    #[test]
    fn every_secret_key_ends_in_a_listed_pair() {
        for k in SECRET_KEYS.iter().chain(SHORT_KEYS) {
            let k = k.to_ascii_uppercase();
            assert!(secret_key(&k), "{k:?}");
            assert!(secret_key(&[b"X-".as_slice(), &k].concat()), "{k:?}");
        }
    }

    #[test]
    fn a_lone_colon_holds_no_address() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        const PARTS: &[&[u8]] = &[
            b":", b":", b"::", b".", b"14", b"05", b"fe80", b"2001", b"db8", b"1", b"ffff", b"a",
            b"g", b"_", b" ", b"1.2.3.4", b"abcdef", b"x", b"0",
        ];
        let mut lone = 0;
        for _ in 0..200_000 {
            let v: Vec<u8> = (0..1 + r.below(10))
                .flat_map(|_| r.pick(PARTS))
                .copied()
                .collect();
            for i in 0..v.len() {
                if v[i] == b':' && lone_colon(&v, i) {
                    lone += 1;
                    assert!(
                        ipv6(&v, i).is_err(),
                        "{:?} at {i}",
                        v.escape_ascii().to_string()
                    );
                }
            }
        }
        assert!(lone > 10_000, "{lone} lone colons");
    }

    #[test]
    fn file_extensions_are_found_in_any_case() {
        for t in NOT_TLDS {
            assert!(file_extension(t, t.len()), "{t:?}");
            assert!(file_extension(&t.to_ascii_uppercase(), t.len()), "{t:?}");
            // After other bytes, as `email` reads it.
            let after = [b"xy.".as_slice(), t].concat();
            assert!(file_extension(&after, t.len()), "{t:?}");
        }
        // Every four-byte-or-shorter string of letters is found exactly
        // when it is listed.
        let abc = b"abcdefghijklmnopqrstuvwxyz";
        for n in 2..=4u32 {
            for k in 0..26usize.pow(n) {
                let t: Vec<u8> = (0..n).map(|p| abc[k / 26usize.pow(p) % 26]).collect();
                let want = NOT_TLDS.contains(&&t[..]);
                assert_eq!(file_extension(&t, t.len()), want, "{t:?}");
                let after = [b"a.b@c.".as_slice(), &t].concat();
                assert_eq!(file_extension(&after, t.len()), want, "{t:?}");
            }
        }
        for t in [
            &b"com"[..],
            b"io",
            b"pngx",
            b"jso",
            b"p",
            b"",
            b"json1",
            b"pn\x07",
            b"P\x0eG",
            b"js\x00",
        ] {
            assert!(!file_extension(t, t.len()), "{t:?}");
        }
    }
}
