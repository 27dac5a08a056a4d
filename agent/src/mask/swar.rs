//! Byte tests on eight bytes at once in a `u64` ("SIMD within a
//! register"), for the walks over short values where a table look-up per
//! byte costs more. Every result marks a byte by its high bit; the bytes
//! tested must be ASCII (below 0x80) unless a function says otherwise, so
//! that no carry crosses into the next byte.

/// The low seven bits of every byte.
pub(super) const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
/// The high bit of every byte.
pub(super) const HIGH: u64 = !LOW7;

/// `b` in every byte of a word.
#[inline]
pub(super) const fn splat(b: u8) -> u64 {
    b as u64 * 0x0101_0101_0101_0101
}

/// Per byte of `c` (each below 0x80), the high bit set when the byte is
/// at least `k`: `c + (0x80 - k)` stays below 0x100.
#[inline]
pub(super) fn at_least(c: u64, k: u8) -> u64 {
    c + splat(0x80 - k)
}

/// The high bit of each byte of `x` that is `b`, exactly, whatever the
/// bytes (no carries cross bytes).
#[inline]
pub(super) fn bytes_equal(x: u64, b: u8) -> u64 {
    let y = x ^ splat(b);
    !(((y & LOW7) + LOW7) | y | LOW7)
}

/// The high bit of each byte of `x` that is an ASCII letter, whatever
/// the bytes: `| 0x20` maps both cases to `a..=z` (and nothing else
/// there), tested on the low seven bits; a byte with its own high bit
/// set is no letter.
#[inline]
pub(super) fn letters(x: u64) -> u64 {
    let low = (x | splat(0x20)) & LOW7;
    at_least(low, b'a') & !at_least(low, b'z' + 1) & !x & HIGH
}

/// Sixteen byte tests at once: byte `k` of the answer is 0xff when
/// `test(k)` holds, else 0. With a `test` that is branch-free over a
/// `[u8; 16]` (or 17) this compiles to a few SSE2 compares on all sixteen
/// bytes (no intrinsics: they need `unsafe` to call). Read the answer
/// whole (`trailing_zeros`, `leading_zeros`, a compare): a read of one
/// bit a byte had LLVM undo the vectors (measured).
#[inline(always)]
pub(super) fn lanes16(test: impl Fn(usize) -> bool) -> u128 {
    let mut h = [0u8; 16];
    for (k, b) in h.iter_mut().enumerate() {
        *b = u8::from(test(k)).wrapping_neg();
    }
    u128::from_le_bytes(h)
}

/// The eight bytes of `v` from `p`, the first in the low byte; bytes past
/// the end of `v` read as zero.
#[inline]
pub(super) fn word_at(v: &[u8], p: usize) -> u64 {
    if let Some(c) = v.get(p..).and_then(<[u8]>::first_chunk::<8>) {
        return u64::from_le_bytes(*c);
    }
    let left = v.len().saturating_sub(p);
    match v.last_chunk::<8>() {
        // Fewer than eight left: the value's last eight, shifted so that
        // byte `p` comes first.
        Some(c) if left > 0 => u64::from_le_bytes(*c) >> (8 * (8 - left)),
        _ => {
            let mut w = [0u8; 8];
            if left > 0 {
                w[..left].copy_from_slice(&v[p..]);
            }
            u64::from_le_bytes(w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_on_its_own() {
        for x in 0..=255u8 {
            for b in 0..=255u8 {
                let w = u64::from_le_bytes([b, x, b, x, x, b, x, b]);
                let want = u64::from_le_bytes([0x80, 0, 0x80, 0, 0, 0x80, 0, 0x80]);
                let got = bytes_equal(w, b);
                assert_eq!(got, if x == b { HIGH } else { want }, "{x} {b}");
            }
        }
        for x in 0..0x80u8 {
            for k in 1..=0x80u8 {
                let w = splat(x);
                assert_eq!(at_least(w, k) & HIGH, if x >= k { HIGH } else { 0 });
            }
        }
        let v = b"0123456789";
        assert_eq!(word_at(v, 0), u64::from_le_bytes(*b"01234567"));
        assert_eq!(word_at(v, 4), u64::from_le_bytes(*b"456789\0\0"));
        assert_eq!(word_at(v, 10), 0);
        assert_eq!(word_at(b"ab", 1), u64::from(b'b'));
    }
}
