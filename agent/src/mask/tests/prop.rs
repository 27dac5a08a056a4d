//! Property tests: whatever surrounds a generated sensitive value in a
//! cell, the masked output never contains it.
//!
//! The surroundings are random text (letters, punctuation, spaces, other
//! scripts, emoji) with one separator between it and the value. Two
//! things are outside the promise and so are not generated: digits in the
//! surrounding text (`123 4242 4242 4242 4242` is one long number, see
//! `numeric`), and a value glued to a word or joined by `-`, `.`, `_`,
//! `/` (`ORD-4242...` is an identifier). A surrounding word that marks a
//! number as not personal (`tracking`, `order`, see
//! `context::not_personal`) is skipped.

use proptest::prelude::{
    Just, ProptestConfig, Strategy, TestCaseError, any, prop_assert, prop_assume, prop_oneof,
    proptest,
};

use super::{ColumnContext, Masker, all, masker_with};
use crate::config::mask::Strategy as Rewrite;
use crate::mask::checksum;

fn luhn_complete(mut d: Vec<u8>) -> String {
    d.push(b'0');
    for c in b'0'..=b'9' {
        *d.last_mut().unwrap() = c;
        if checksum::luhn(&d) {
            break;
        }
    }
    String::from_utf8(d).unwrap()
}

fn digits(n: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(b'0'..=b'9', n)
}

fn group(d: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut k = 0;
    for &n in sizes {
        out.push(&d[k..k + n]);
        k += n;
    }
    out.join(sep)
}

fn sep() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("-")]
}

fn card() -> impl Strategy<Value = String> {
    let prefixes = prop_oneof![
        Just(("4", 16)),
        Just(("51", 16)),
        Just(("55", 16)),
        Just(("2221", 16)),
        Just(("34", 15)),
        Just(("37", 15)),
        Just(("6011", 16)),
        Just(("65", 16)),
        Just(("3530", 16)),
        Just(("4", 19)),
    ];
    (prefixes, digits(18), sep()).prop_map(|((p, len), body, sep)| {
        let mut d = p.as_bytes().to_vec();
        d.extend_from_slice(&body[..len - 1 - p.len()]);
        let d = luhn_complete(d);
        let sizes: &[usize] = match len {
            15 => &[4, 6, 5],
            19 => &[4, 4, 4, 4, 3],
            _ => &[4, 4, 4, 4],
        };
        if sep.is_empty() {
            d
        } else {
            group(&d, sizes, sep)
        }
    })
}

fn ssn() -> impl Strategy<Value = String> {
    (
        1u32..900,
        1u32..100,
        1u32..10000,
        prop_oneof![Just('-'), Just(' ')],
    )
        .prop_filter("666", |(a, ..)| *a != 666)
        .prop_map(|(a, g, s, sep)| format!("{a:03}{sep}{g:02}{sep}{s:04}"))
}

fn email() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,8}([._+][a-z0-9]{1,5})?@[a-z][a-z0-9-]{0,8}[a-z0-9]\\.(com|org|co\\.uk|de|com\\.br|in|es|io)"
}

fn iban() -> impl Strategy<Value = String> {
    (digits(18), any::<bool>()).prop_map(|(bban, spaced)| {
        let bban = String::from_utf8(bban).unwrap();
        // DE = 13 14, check digits 00 while computing.
        let num = format!("{bban}131400");
        let r = num
            .bytes()
            .fold(0u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
        let s = format!("DE{:02}{bban}", 98 - r);
        if spaced {
            s.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            s
        }
    })
}

fn cpf() -> impl Strategy<Value = String> {
    digits(9)
        .prop_filter("all same", |d| d.iter().any(|&b| b != d[0]))
        .prop_map(|mut d| {
            for n in [9u32, 10] {
                let sum: u32 = d
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| u32::from(b - b'0') * (n + 1 - i as u32))
                    .sum();
                d.push(b'0' + ((sum * 10) % 11 % 10) as u8);
            }
            let s = String::from_utf8(d).unwrap();
            format!("{}.{}.{}-{}", &s[..3], &s[3..6], &s[6..9], &s[9..])
        })
}

fn aadhaar() -> impl Strategy<Value = String> {
    (b'2'..=b'9', digits(10), sep()).prop_map(|(first, rest, sep)| {
        let mut d = vec![first];
        d.extend(rest);
        d.push(b'0');
        for c in b'0'..=b'9' {
            *d.last_mut().unwrap() = c;
            if checksum::aadhaar(&d) {
                break;
            }
        }
        let s = String::from_utf8(d).unwrap();
        group(&s, &[4, 4, 4], if sep.is_empty() { " " } else { sep })
    })
}

fn nhs() -> impl Strategy<Value = String> {
    (400u32..500, digits(6), prop_oneof![Just(' '), Just('-')]).prop_filter_map(
        "check digit 10",
        |(head, body, sep)| {
            let mut d = head.to_string().into_bytes();
            d.extend(body);
            for c in b'0'..=b'9' {
                d.push(c);
                if checksum::nhs(&d) {
                    let s = String::from_utf8(d).unwrap();
                    return Some(format!("{}{sep}{}{sep}{}", &s[..3], &s[3..6], &s[6..]));
                }
                d.pop();
            }
            None
        },
    )
}

fn dni() -> impl Strategy<Value = String> {
    const L: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    prop_oneof![
        (0u32..100_000_000).prop_map(|n| format!("{n:08}{}", L[(n % 23) as usize] as char)),
        (0u32..3, 0u32..10_000_000).prop_map(|(p, n)| {
            let full = p * 10_000_000 + n;
            format!(
                "{}{n:07}{}",
                ['X', 'Y', 'Z'][p as usize],
                L[(full % 23) as usize] as char
            )
        }),
    ]
}

fn phone() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..99, 100u32..999, 1_000_000u32..9_999_999)
            .prop_map(|(cc, a, b)| format!("+{cc} {a} {b}")),
        (200u32..999, 200u32..999, 0u32..9999).prop_map(|(a, b, c)| format!("{a}-{b}-{c:04}")),
        (200u32..999, 200u32..999, 0u32..9999).prop_map(|(a, b, c)| format!("({a}) {b}-{c:04}")),
        (1000u32..9999, 100_000u32..999_999).prop_map(|(a, b)| format!("0{a} {b}")),
    ]
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "AKIA[A-Z2-7]{16}",
        "eyJ[A-Za-z0-9_-]{10,30}\\.eyJ[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,43}",
    ]
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u8..224, any::<u8>(), any::<u8>(), 1u8..255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        // Global unicast and link-local, as they appear in logs.
        (
            prop_oneof![0x2000u16..0x4000, Just(0xfe80)],
            any::<[u16; 7]>()
        )
            .prop_map(|(first, rest)| {
                let mut g = [first; 8];
                g[1..].copy_from_slice(&rest);
                std::net::Ipv6Addr::from(g).to_string()
            }),
    ]
}

fn sensitive() -> impl Strategy<Value = String> {
    prop_oneof![
        card(),
        ssn(),
        email(),
        iban(),
        cpf(),
        aadhaar(),
        nhs(),
        dni(),
        phone(),
        secret(),
        ip()
    ]
}

const BOUNDARY: &[&str] = &[
    " ", "\t", "\n", ",", ";", "(", ")", "\"", "'", ":", "=", "[", "]", "<", ">", "!", "?", "*",
    "|", "\u{a0}", "é", "—", "中", "🙂",
];

fn around() -> impl Strategy<Value = (String, String)> {
    let text = "[a-zA-Z ,;!?()\"'éüßñ中文🙂\t\n]{0,24}";
    (
        text,
        proptest::sample::select(BOUNDARY),
        proptest::sample::select(BOUNDARY),
        text,
    )
        .prop_map(|(a, b1, b2, z)| (format!("{a}{b1}"), format!("{b2}{z}")))
}

fn check(m: &Masker, prefix: &str, value: &str, suffix: &str) -> Result<(), TestCaseError> {
    let cell = format!("{prefix}{value}{suffix}");
    prop_assume!(!crate::mask::context::not_personal(
        cell.as_bytes(),
        prefix.len()
    ));
    let out = m.mask(cell.as_bytes(), &ColumnContext::named("notes"));
    let out = String::from_utf8_lossy(out.as_bytes()).into_owned();
    prop_assert!(
        !out.contains(value),
        "{value:?} survives in {out:?} (cell {cell:?})"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sensitive_values_never_survive(value in sensitive(), (prefix, suffix) in around()) {
        check(&all(), &prefix, &value, &suffix)?;
    }

    #[test]
    fn nor_with_partial_or_hash(value in sensitive(), (prefix, suffix) in around(), hash in any::<bool>()) {
        let m = masker_with(if hash { Rewrite::Hash } else { Rewrite::Partial });
        check(&m, &prefix, &value, &suffix)?;
    }

    #[test]
    fn prose_is_unchanged(text in "[a-z ,.!?'éü]{0,300}") {
        let m = all();
        prop_assert!(!m.mask(text.as_bytes(), &ColumnContext::named("notes")).is_masked());
    }

    #[test]
    fn number_soup_is_safe(text in "[0-9 ().+/:@=AJBbx-]{0,120}") {
        let m = all();
        let _ = m.mask(text.as_bytes(), &ColumnContext::named("phone"));
        let _ = m.mask(text.as_bytes(), &ColumnContext::named("notes"));
    }

    #[test]
    fn valid_utf8_stays_valid(
        value in sensitive(),
        (prefix, suffix) in around(),
        strategy in proptest::sample::select(&[Rewrite::Redact, Rewrite::Partial, Rewrite::Hash][..]),
        utf8_email in "[a-zé中]{1,6}@[a-zü]{1,6}\\.(com|de)",
    ) {
        let m = masker_with(strategy);
        for cell in [format!("{prefix}{value}{suffix}"), format!("{prefix}{utf8_email}{suffix}")] {
            let out = m.mask(cell.as_bytes(), &ColumnContext::named("notes"));
            prop_assert!(std::str::from_utf8(out.as_bytes()).is_ok(), "{cell:?} -> {:?}", out.as_bytes());
        }
    }

    #[test]
    fn any_bytes_are_safe(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let m = all();
        let f = m.findings(&bytes, &ColumnContext::named("notes"));
        let mut last = 0;
        for x in &f {
            prop_assert!(x.range.start >= last && x.range.end <= bytes.len() && x.range.start < x.range.end);
            last = x.range.end;
        }
        let _ = m.mask(&bytes, &ColumnContext::named("notes"));
    }
}
