//! A digest of what the engine finds and writes, to compare before and
//! after a change meant only to make it faster:
//!
//! ```text
//! cargo test -p hoop-agent --release --lib findings_digest -- --ignored --nocapture
//! ```
//!
//! It hashes every finding (range and detector) and the masked output,
//! under the partial and the redact strategies, of the labelled evaluation
//! set, the engine benchmark's cells and half a million generated
//! near-misses: fragments of every detector's shapes (digit runs of every
//! length, separators, `+` and parentheses, IBAN and NIE letters, keywords,
//! `@` and domains, secret prefixes, IP pieces, bytes that are not ASCII)
//! glued together at random, in columns whose names give context or none.
//! The same digest before and after means the same findings and output on
//! all of them. Ignored: it prints a value and asserts nothing about it.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::*;

const PIECES: &[&str] = &[
    " ",
    " ",
    " ",
    "-",
    "-",
    ".",
    ".",
    "/",
    "(",
    ")",
    "+",
    "+44 ",
    "+1 ",
    "(0)",
    ", ",
    ": ",
    "=",
    "@",
    "@",
    "%40",
    ".com",
    "example.com",
    "mail.example.org",
    "co.uk",
    "a.b",
    "x",
    "ext. ",
    "T",
    "Z",
    "X",
    "Y",
    "GB",
    "DE",
    "ES",
    "FR",
    "AKIA",
    "ASIA",
    "eyJ",
    "Bearer ",
    "bearer ",
    "password=",
    "api_key: ",
    "token=",
    "-----BEGIN ",
    "PRIVATE KEY",
    "-----",
    "::",
    "fe80::",
    "1.2.3.4",
    "10.0.0.",
    "tel ",
    "phone ",
    "call ",
    "ssn ",
    "cpf ",
    "nhs ",
    "aadhaar ",
    "dni ",
    "iban ",
    "order ",
    "invoice ",
    "tracking ",
    "ref ",
    "version ",
    "v",
    "ORD-",
    "INV ",
    "$",
    "€",
    "é",
    "\u{a0}",
    "kg",
    "x2",
    "_",
    "'",
    "\"",
    "//",
];

/// A digit run of 1 to 20 digits, sometimes one that passes Luhn.
fn digits(r: &mut Rng, out: &mut String) {
    let n = 1 + r.below(20);
    let start = out.len();
    for _ in 0..n {
        out.push(char::from(b'0' + r.below(10) as u8));
    }
    if r.below(4) == 0 && n >= 2 {
        // Fix the last digit so the run passes Luhn.
        let d: Vec<u32> = out[start..].bytes().map(|b| u32::from(b - b'0')).collect();
        let mut sum = 0;
        for (k, &x) in d[..n - 1].iter().rev().enumerate() {
            sum += if k % 2 == 0 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            };
        }
        out.pop();
        out.push(char::from(b'0' + ((10 - sum % 10) % 10) as u8));
    }
}

fn near_miss(r: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + r.below(10) {
        match r.below(3) {
            0 => digits(r, &mut s),
            1 => s.push_str(PIECES[r.below(PIECES.len())]),
            _ => {
                for _ in 0..1 + r.below(8) {
                    s.push(char::from(b'a' + r.below(26) as u8));
                }
            }
        }
    }
    s
}

const COLUMNS: &[&str] = &[
    "notes",
    "phone",
    "ssn",
    "reference",
    "email",
    "tracking_number",
    "cpf",
    "iban",
    "order_id",
    "nhs_number",
];

fn fold(
    h: &mut DefaultHasher,
    seen: &mut BTreeMap<String, usize>,
    maskers: &[Masker],
    column: &str,
    text: &str,
) {
    let col = ColumnContext::named(column);
    for (k, m) in maskers.iter().enumerate() {
        for f in m.findings(text.as_bytes(), &col) {
            (f.range.start, f.range.end, f.detector).hash(h);
            if k == 0 {
                *seen.entry(f.detector.to_string()).or_default() += 1;
            }
        }
        m.mask(text.as_bytes(), &col).as_bytes().hash(h);
    }
}

#[test]
#[ignore = "a digest to compare before and after a change to the engine"]
fn findings_digest() {
    let maskers = [masker_with(Strategy::Partial), all()];
    let mut h = DefaultHasher::new();
    let mut seen = BTreeMap::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/mask/");
    let mut inputs = 0;
    let eval = std::fs::read_to_string(format!("{root}eval.jsonl")).expect("eval.jsonl");
    for line in eval.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        fold(
            &mut h,
            &mut seen,
            &maskers,
            v["column"].as_str().unwrap(),
            v["text"].as_str().unwrap(),
        );
        inputs += 1;
    }
    let bench = std::fs::read_to_string(format!("{root}bench.jsonl")).expect("bench.jsonl");
    for line in bench.lines() {
        let (column, text): (String, String) = serde_json::from_str(line).unwrap();
        fold(&mut h, &mut seen, &maskers, &column, &text);
        inputs += 1;
    }
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for k in 0..500_000 {
        let text = near_miss(&mut r);
        fold(
            &mut h,
            &mut seen,
            &maskers,
            COLUMNS[k % COLUMNS.len()],
            &text,
        );
        inputs += 1;
    }
    println!("findings digest: {:016x} over {inputs} inputs", h.finish());
    println!("findings per detector (partial strategy): {seen:?}");
}
