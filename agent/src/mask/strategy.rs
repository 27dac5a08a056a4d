//! Rewriting a detected span: `redact`, `partial` and keyed `hash`.

use aws_lc_rs::hmac;

use super::swar::{HIGH, at_least, bytes_equal, letters, splat};
use crate::config::mask::Strategy;

/// How `partial` treats a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Keep the first character of the local part and the domain.
    Email,
    /// Keep nothing: a fixed `****` (a secret's suffix or length helps an
    /// attacker).
    Secret,
    /// Letters and digits become `*` except the trailing `keep`.
    Generic,
    /// Like `Generic`; an identifier whose separators are formatting
    /// (`4242 4242 ...` and `4242-4242-...` are one card), so `hash` reads
    /// only its letters (upper-cased) and digits.
    Number,
}

/// Hex digits of the HMAC kept in a `hash:` token (64 bits: collisions
/// are negligible at table sizes while the token stays short).
pub const HASH_HEX: usize = 16;

/// Appends `span` rewritten by `strategy`. Out of line: the commonest
/// masked span, a partial e-mail, is written by `Spans::write` itself.
#[inline(never)]
pub(crate) fn render(
    out: &mut Vec<u8>,
    span: &[u8],
    label: &str,
    strategy: Strategy,
    keep: usize,
    shape: Shape,
    key: &hmac::Key,
) {
    match strategy {
        Strategy::Redact => {
            out.extend_from_slice(b"[REDACTED:");
            out.extend_from_slice(label.as_bytes());
            out.push(b']');
        }
        Strategy::Hash => match shape {
            // Addresses compare without case, identifiers without their
            // formatting, so the same person hashes the same way in every
            // table that a join or GROUP BY brings together.
            Shape::Email => hash(out, &span.to_ascii_lowercase(), key),
            Shape::Number => {
                let canon: Vec<u8> = span
                    .iter()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .map(u8::to_ascii_uppercase)
                    .collect();
                hash(out, &canon, key)
            }
            Shape::Secret | Shape::Generic => hash(out, span, key),
        },
        Strategy::Partial => match shape {
            Shape::Secret => out.extend_from_slice(b"****"),
            Shape::Email => email(out, span),
            Shape::Generic | Shape::Number => generic(out, span, keep),
        },
    }
}

fn hash(out: &mut Vec<u8>, span: &[u8], key: &hmac::Key) {
    let tag = hmac::sign(key, span);
    out.extend_from_slice(b"hash:");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in &tag.as_ref()[..HASH_HEX / 2] {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Partial e-mail: the first character, `****`, and the domain from the
/// last `@`. Inlined into `Spans::write`, where most masked values go
/// through it.
#[inline(always)]
fn email(out: &mut Vec<u8>, span: &[u8]) {
    email_at(out, span, last_at(span));
}

/// [`email`] with `last_at(span)` known.
#[inline]
pub(crate) fn email_at(out: &mut Vec<u8>, span: &[u8], at: Option<usize>) {
    let Some(at) = at else {
        return generic(out, span, 0);
    };
    email_head(out, span, at);
    out.extend_from_slice(&span[at..]);
}

/// [`email`] up to the `@` at `at`: the first character and `****`. The
/// caller copies the rest, `span[at..]`, as it is (`Spans::write` in one
/// copy with the bytes after the span).
#[inline]
pub(crate) fn email_head(out: &mut Vec<u8>, span: &[u8], at: usize) {
    match span[0] {
        // Most addresses start with an ASCII letter: one write with the
        // stars.
        b if b < 0x80 && at > 0 => out.extend_from_slice(&[b, b'*', b'*', b'*', b'*']),
        _ => email_first_char(out, span, at),
    }
}

/// The first character of an address that does not start with ASCII
/// unless it reaches the `@` (nothing for `at == 0`), then `****`.
#[cold]
fn email_first_char(out: &mut Vec<u8>, span: &[u8], at: usize) {
    let first = first_char_len(span);
    if first <= at {
        out.extend_from_slice(&span[..first]);
    }
    out.extend_from_slice(b"****");
}

/// Where the last `@` in `span` is, reading eight bytes at a time from
/// the end (the domain, most of an address, comes after it).
pub(crate) fn last_at(span: &[u8]) -> Option<usize> {
    let mut end = span.len();
    while let Some(chunk) = span[..end].last_chunk::<8>() {
        let zero = bytes_equal(u64::from_le_bytes(*chunk), b'@');
        if zero != 0 {
            // Little-endian: the highest byte is the last in the span.
            return Some(end - 8 + (63 - zero.leading_zeros() as usize) / 8);
        }
        end -= 8;
    }
    span[..end].iter().rposition(|&b| b == b'@')
}

/// Byte length of the first UTF-8 character (1 for an invalid byte).
fn first_char_len(s: &[u8]) -> usize {
    match s.first() {
        None => 0,
        Some(&b) if b < 0x80 => 1,
        Some(_) => {
            let n = s.len().min(4);
            (2..=n)
                .find(|&k| std::str::from_utf8(&s[..k]).is_ok())
                .unwrap_or(1)
        }
    }
}

/// Units that `partial` may hide: ASCII letters and digits, and each
/// character (or invalid byte) outside ASCII. ASCII punctuation and spaces
/// stay so the shape remains readable (`***-**-6789`).
fn units(span: &[u8]) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *span.get(i)?;
        let len = if b < 0x80 {
            1
        } else {
            first_char_len(&span[i..])
        };
        let item = (i, len, b >= 0x80 || b.is_ascii_alphanumeric());
        i += len;
        Some(item)
    })
}

fn generic(out: &mut Vec<u8>, span: &[u8], keep: usize) {
    if span.is_ascii() {
        return generic_ascii(out, span, keep);
    }
    let total = units(span).filter(|u| u.2).count();
    // Never reveal more than half of a value.
    let keep = keep.min(total / 2);
    let hide = total - keep;
    let mut seen = 0;
    for (i, len, maskable) in units(span) {
        if !maskable {
            out.extend_from_slice(&span[i..i + len]);
            continue;
        }
        if seen < hide {
            out.push(b'*');
        } else {
            out.extend_from_slice(&span[i..i + len]);
        }
        seen += 1;
    }
}

/// `generic` for an ASCII span (most are): the letters and digits starred
/// but for the last `keep`, eight bytes a step (a byte loop measured
/// about 380 instructions for a 19-byte card number).
fn generic_ascii(out: &mut Vec<u8>, span: &[u8], keep: usize) {
    let total = alnum_count(span);
    // Never reveal more than half of a value.
    let mut hide = total - keep.min(total / 2);
    let mut rest = span;
    while hide > 0 {
        let Some((c, tail)) = rest.split_first_chunk::<8>() else {
            break;
        };
        let w = u64::from_le_bytes(*c);
        let mut star = alnum(w);
        let n = bytes_set(star);
        if n > hide {
            // Only the first `hide` of them.
            let mut first = 0;
            for _ in 0..hide {
                let low = star & star.wrapping_neg();
                first |= low;
                star ^= low;
            }
            star = first;
        }
        hide -= n.min(hide);
        // Each starred byte's high bit, spread over the byte.
        let bytes = (star >> 7) * 0xff;
        out.extend_from_slice(&((w & !bytes) | (STARS & bytes)).to_le_bytes());
        rest = tail;
    }
    // The rest: fewer than eight bytes with some to hide, or none to hide.
    while hide > 0 {
        let Some((&b, tail)) = rest.split_first() else {
            break;
        };
        if b.is_ascii_alphanumeric() {
            out.push(b'*');
            hide -= 1;
        } else {
            out.push(b);
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
}

const STARS: u64 = splat(b'*');

/// The high bit of each byte of `w` (ASCII) that is a letter or digit.
fn alnum(w: u64) -> u64 {
    let digit = at_least(w, b'0') & !at_least(w, b'9' + 1);
    (digit & HIGH) | letters(w)
}

/// How many bytes have their high bit set in `m` (only high bits set).
fn bytes_set(m: u64) -> usize {
    ((m >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize
}

/// Letters and digits in an ASCII span.
fn alnum_count(span: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = span;
    while let Some((c, tail)) = rest.split_first_chunk::<8>() {
        n += bytes_set(alnum(u64::from_le_bytes(*c)));
        rest = tail;
    }
    match span.last_chunk::<8>() {
        // The last bytes in the top of the span's last word, zeros (not
        // letters or digits) below them.
        Some(c) if !rest.is_empty() => {
            n + bytes_set(alnum(u64::from_le_bytes(*c) >> (8 * (8 - rest.len()))))
        }
        _ => n + rest.iter().filter(|b| b.is_ascii_alphanumeric()).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32])
    }

    fn r(span: &str, s: Strategy, keep: usize, shape: Shape) -> String {
        let mut out = Vec::new();
        render(&mut out, span.as_bytes(), "card", s, keep, shape, &key());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn partial_keeps_shape() {
        assert_eq!(
            r("4242-4242-4242-4242", Strategy::Partial, 4, Shape::Generic),
            "****-****-****-4242"
        );
        assert_eq!(
            r("123-45-6789", Strategy::Partial, 4, Shape::Generic),
            "***-**-6789"
        );
        assert_eq!(r("12", Strategy::Partial, 4, Shape::Generic), "*2");
        assert_eq!(r("José", Strategy::Partial, 0, Shape::Generic), "****");
        assert_eq!(
            r("alice@example.com", Strategy::Partial, 4, Shape::Email),
            "a****@example.com"
        );
        assert_eq!(
            r("élise@example.com", Strategy::Partial, 4, Shape::Email),
            "é****@example.com"
        );
        assert_eq!(r("hunter2", Strategy::Partial, 4, Shape::Secret), "****");
        assert_eq!(
            r("x", Strategy::Redact, 4, Shape::Generic),
            "[REDACTED:card]"
        );
    }

    #[test]
    fn last_at_finds_the_last_at_sign() {
        let spans: [&[u8]; 10] = [
            b"",
            b"@",
            b"a@b",
            b"no at sign here at all",
            b"alice@example.com",
            b"a@b@c.example.org",
            b"@@@@@@@@@@@@@@@@@",
            b"x@yyyyyyyy",
            b"x@yyyyyyy",
            b"\xc0@\xff\x40\x41\xbf@\x7f\x80\x3f",
        ];
        for span in spans {
            for cut in 0..=span.len() {
                let s = &span[..cut];
                assert_eq!(last_at(s), s.iter().rposition(|&b| b == b'@'), "{s:?}");
            }
        }
        // Every byte value next to an `@`, at every offset in a chunk.
        for b in 0..=255u8 {
            for at in 0..12 {
                let mut s = vec![b; 12];
                s[at] = b'@';
                assert_eq!(last_at(&s), s.iter().rposition(|&c| c == b'@'));
            }
        }
    }

    #[test]
    fn partial_email_edges() {
        assert_eq!(
            r("@example.com", Strategy::Partial, 4, Shape::Email),
            "****@example.com"
        );
        assert_eq!(r("a@b", Strategy::Partial, 4, Shape::Email), "a****@b");
        assert_eq!(r("ab@c@d", Strategy::Partial, 4, Shape::Email), "a****@d");
        assert_eq!(r("é@x", Strategy::Partial, 4, Shape::Email), "é****@x");
        assert_eq!(r("\u{80}x", Strategy::Partial, 0, Shape::Email), "**");
    }

    #[test]
    fn ascii_partial_agrees_with_the_general_path() {
        for span in [
            "4242-4242-4242-4242",
            "+44 (0) 20 7946 0958",
            "12",
            "",
            "-",
            "a.b",
        ] {
            for keep in [0, 1, 4, 40] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                generic_ascii(&mut a, span.as_bytes(), keep);
                // The general path, as `generic` runs it for non-ASCII.
                let total = units(span.as_bytes()).filter(|u| u.2).count();
                let hide = total - keep.min(total / 2);
                let mut seen = 0;
                for (i, len, maskable) in units(span.as_bytes()) {
                    if maskable && seen < hide {
                        b.push(b'*');
                    } else {
                        b.extend_from_slice(&span.as_bytes()[i..i + len]);
                    }
                    seen += usize::from(maskable);
                }
                assert_eq!(a, b, "{span:?} keep {keep}");
            }
        }
    }

    #[test]
    fn ascii_partial_agrees_with_a_byte_loop() {
        // xorshift64*: the same spans on every run.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut below = |n: usize| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        };
        let bytes = b"0123456789 -()+./abcxyzABCXYZ_:@*\x7f\x00`{";
        for _ in 0..100_000 {
            let span: Vec<u8> = (0..below(41)).map(|_| bytes[below(bytes.len())]).collect();
            let keep = below(8);
            let mut got = b"x".to_vec();
            generic_ascii(&mut got, &span, keep);
            let total = span.iter().filter(|b| b.is_ascii_alphanumeric()).count();
            let mut hide = total - keep.min(total / 2);
            let mut want = b"x".to_vec();
            for &b in &span {
                if hide > 0 && b.is_ascii_alphanumeric() {
                    want.push(b'*');
                    hide -= 1;
                } else {
                    want.push(b);
                }
            }
            assert_eq!(
                got,
                want,
                "{:?} keep {keep}",
                span.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn hash_is_stable_and_keyed() {
        let a = r("4242424242424242", Strategy::Hash, 4, Shape::Generic);
        assert_eq!(a, r("4242424242424242", Strategy::Hash, 4, Shape::Generic));
        assert_ne!(a, r("4242424242424241", Strategy::Hash, 4, Shape::Generic));
        let n = r("4242-4242-4242-4242", Strategy::Hash, 4, Shape::Number);
        assert_eq!(
            n,
            r("4242 4242 4242 4242", Strategy::Hash, 4, Shape::Number)
        );
        assert_eq!(n, a, "a bare number hashes like its formatted form");
        assert_eq!(
            r("Alice@Example.com", Strategy::Hash, 4, Shape::Email),
            r("alice@example.com", Strategy::Hash, 4, Shape::Email)
        );
        assert!(a.starts_with("hash:") && a.len() == 5 + HASH_HEX);
        let mut other = Vec::new();
        let k2 = hmac::Key::new(hmac::HMAC_SHA256, &[8u8; 32]);
        render(
            &mut other,
            b"4242424242424242",
            "card",
            Strategy::Hash,
            4,
            Shape::Generic,
            &k2,
        );
        assert_ne!(a.as_bytes(), &other[..]);
    }
}
