//! The row path against a plain one, and a digest of what it does with
//! many rows, benchmark-shaped and hostile: `cargo test -p hoop-agent
//! --release --lib row_digest -- --ignored --nocapture`, before and after
//! a change to the row path that must not change its output.

use std::borrow::Cow;
use std::hash::{DefaultHasher, Hasher};

use super::tests::{bench_fields, bench_row, data_row, field, masker, text_array};
use super::*;
use crate::config::mask::{ColumnRule, DetectorSet, MaskConfig, Strategy};
use crate::mask::tests::Rng;

/// Runs `rows` through `write_row` with one reused output buffer that
/// starts with a marker, hashing each result and the buffer, then the
/// folded counts.
fn digest(m: &Masker, cols: &[Col], rows: impl Iterator<Item = Vec<u8>>) -> (u64, usize, usize) {
    let mut h = DefaultHasher::new();
    let mut scratch = Scratch::default();
    let mut counts = Counts::default();
    counts.reset(cols.len());
    let mut tally = MaskSummary::default();
    let mut out = b"mark".to_vec();
    let (mut n, mut errors) = (0, 0);
    for r in rows {
        let res = write_row(
            RowCtx {
                masker: m,
                cols,
                scratch: &mut scratch,
                counts: &mut counts,
                tally: &mut tally,
            },
            &r,
            &mut out,
        );
        errors += usize::from(res.is_err());
        h.write(format!("{res:?}").as_bytes());
        h.write_usize(out.len());
        n += 1;
        if out.len() > 1 << 16 || n % 7 == 0 {
            h.write(&out);
            out.clear();
            out.extend_from_slice(b"mark");
        }
        if n % 1000 == 0 {
            counts.fold(Some(cols), &mut tally);
            h.write(format!("{tally:?}").as_bytes());
        }
    }
    h.write(&out);
    counts.fold(Some(cols), &mut tally);
    h.write(format!("{tally:?}").as_bytes());
    (h.finish(), n, errors)
}

fn bench_masker(hash_rule: bool) -> (Masker, Vec<Col>) {
    let cfg = MaskConfig {
        detectors: DetectorSet::all(),
        strategy: Strategy::Partial,
        columns: if hash_rule {
            vec![ColumnRule {
                pattern: "*name*".into(),
                strategy: Some(Strategy::Hash),
                keep: None,
                name: None,
            }]
        } else {
            Vec::new()
        },
        ..MaskConfig::default()
    };
    let m = Masker::new(&cfg, [9; 32]).unwrap();
    let fields = bench_fields();
    let cols = columns(&m, &Catalog::default(), &fields, None);
    (m, cols)
}

/// A value for a random column: text that may hold something to mask,
/// arrays, jsonb, binary numbers, odd bytes, NULL.
fn random_value(rng: &mut Rng) -> Option<Vec<u8>> {
    let texts = [
        "",
        "plain text",
        "mail zoe@example.com now",
        "card 4242 4242 4242 4242",
        "123-45-6789",
        "ssn 123456789",
        "call +1 415 555 0199 after 5pm",
        "tracking 9400 1000 0000 0000 0000 00",
        "password=hunter2&x=1",
        "zoë@exämple.com",
    ];
    Some(match rng.below(12) {
        0 => return None,
        1..=4 => texts[rng.below(texts.len())].as_bytes().to_vec(),
        5 => text_array(&[
            Some(texts[rng.below(texts.len())]),
            None,
            Some(texts[rng.below(texts.len())]),
        ]),
        6 => {
            let mut v = vec![if rng.below(8) == 0 { 2 } else { 1 }];
            v.extend_from_slice(
                format!("{{\"a\": \"{}\"}}", texts[rng.below(texts.len())]).as_bytes(),
            );
            v
        }
        7 => 4_242_424_242_424_242i64.to_be_bytes().to_vec(),
        8 => (rng.next() as i64 % 100_000).to_be_bytes().to_vec(),
        9 => (rng.next() as i32).to_be_bytes().to_vec(),
        10 => bench_row(rng.below(1_000_000))[11..30].to_vec(),
        _ => (0..rng.below(24)).map(|_| rng.next() as u8).collect(),
    })
}

/// A row of `n` random values, damaged one time in three.
fn hostile_row(rng: &mut Rng, n: usize) -> Vec<u8> {
    let values: Vec<Option<Vec<u8>>> = (0..n).map(|_| random_value(rng)).collect();
    let mut r = data_row(&values.iter().map(|v| v.as_deref()).collect::<Vec<_>>());
    match rng.below(12) {
        0 => r.truncate(rng.below(r.len() + 1)),
        1 if r.len() > 10 => {
            let at = 7 + rng.below(r.len() - 10);
            let word = [-2i32, -1, 0, 1, 3, i32::MAX, i32::MIN, rng.next() as i32][rng.below(8)];
            r[at..at + 4].copy_from_slice(&word.to_be_bytes());
        }
        2 if r.len() >= 7 => {
            let c = [0u16, 1, 2, 5, 12, 13, u16::MAX][rng.below(7)];
            r[5..7].copy_from_slice(&c.to_be_bytes());
        }
        3 => r.push(rng.next() as u8),
        4 => r[0] = b'T',
        5 => {
            let at = rng.below(r.len());
            r[at] ^= 1 << rng.below(8);
        }
        _ => {}
    }
    r
}

/// Columns of every kind the row path treats differently, for rows of
/// random layouts.
fn mixed_kinds() -> Vec<FieldDescription> {
    vec![
        field("tags", oid::TEXT_ARRAY, Format::Binary),
        field("doc", oid::JSONB, Format::Binary),
        field("email", oid::TEXT, Format::Text),
        field("ssn_num", 20, Format::Binary),
        field("n", 23, Format::Binary),
        field("b", 17, Format::Binary),
        field("x", 99_999, Format::Binary),
        field("docs", oid::JSONB_ARRAY, Format::Binary),
        field("nums", 1016, Format::Binary),
        field("ip", 869, Format::Binary),
        field("name", oid::TEXT, Format::Binary),
        field("ssn", oid::TEXT, Format::Text),
        field("note", oid::TEXT, Format::Text),
    ]
}

#[test]
#[ignore = "a digest to compare before and after a change to the row path"]
fn row_digest() {
    let mut all = DefaultHasher::new();
    // The benchmark's rows, at several strides.
    for (hash_rule, rows, stride) in [
        (false, 100_000, 1),
        (false, 50_000, 337),
        (false, 50_000, 7919),
        (true, 50_000, 13),
    ] {
        let (m, cols) = bench_masker(hash_rule);
        let d = digest(&m, &cols, (0..rows).map(|k| bench_row(1 + k * stride)));
        println!("bench hash_rule={hash_rule} stride={stride}: {d:?}");
        all.write_u64(d.0);
    }
    // Mixed and hostile rows, on columns of every kind.
    let m = masker();
    let kinds = mixed_kinds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (layout, width) in [0, 1, 2, 5, 12].into_iter().cycle().take(40).enumerate() {
        let mut fields = Vec::new();
        for _ in 0..width {
            fields.push(kinds[rng.below(kinds.len())].clone());
        }
        let cols = columns(&m, &Catalog::default(), &fields, None);
        let mut seed = Rng(layout as u64 + 1);
        let rows = (0..5_000).map(|_| {
            // Mostly this width, sometimes another (a wrong count).
            let n = if seed.below(10) == 0 {
                seed.below(14)
            } else {
                width
            };
            hostile_row(&mut seed, n)
        });
        let d = digest(&m, &cols, rows);
        println!("hostile layout {layout} width={width}: {d:?}");
        all.write_u64(d.0);
    }
    println!("row digest: {:016x}", all.finish());
}

/// The row path as it would be written plainly: decode the row whole,
/// mask each value on its own with `value` (allocating, through
/// `Masker::mask_planned`), encode a new row if any changed.
fn plain_row(
    m: &Masker,
    cols: &[Col],
    msg: &[u8],
    tally: &mut MaskSummary,
) -> Result<Option<Vec<u8>>, String> {
    let mut ranges = Vec::new();
    backend::data_row_ranges(msg, &mut ranges).map_err(|e| e.to_string())?;
    if ranges.len() != cols.len() {
        return Err(format!(
            "a row has {} values but its result has {} columns",
            ranges.len(),
            cols.len()
        ));
    }
    let mut changed = false;
    let values: Vec<Option<Cow<'_, [u8]>>> = ranges
        .iter()
        .zip(cols)
        .map(|(r, col)| {
            let v = &msg[r.clone()?];
            match value(m, col, v, tally) {
                Out::Same => Some(Cow::Borrowed(v)),
                Out::Value(n) => {
                    changed = true;
                    Some(Cow::Owned(n))
                }
                Out::Null => {
                    changed = true;
                    None
                }
            }
        })
        .collect();
    if !changed {
        return Ok(None);
    }
    let mut out = Vec::new();
    backend::encode_data_row(&values, &mut out).map_err(|e| e.to_string())?;
    Ok(Some(out))
}

/// `write_row` (masking into one buffer, copying unchanged values in
/// runs) gives what the plain path gives, row for row: the same bytes,
/// the same errors, the same counts.
#[test]
fn write_row_agrees_with_the_plain_path() {
    let m = masker();
    let kinds = mixed_kinds();
    let bench = bench_fields();
    let bench = columns(&m, &Catalog::default(), &bench, None);
    // HOOP_ROWS: more rows, to compare two versions of the row path.
    let rows = std::env::var("HOOP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut rng = Rng(7);
    let (mut masked, mut failed) = (0, 0);
    for _ in 0..rows {
        let planned;
        let (cols, msg): (&[Col], _) = if rng.below(4) == 0 {
            (&bench, bench_row(rng.below(1_000_000)))
        } else {
            let width = rng.below(6);
            let fields: Vec<_> = (0..width)
                .map(|_| kinds[rng.below(kinds.len())].clone())
                .collect();
            let n = if rng.below(10) == 0 {
                rng.below(7)
            } else {
                width
            };
            planned = columns(&m, &Catalog::default(), &fields, None);
            (&planned, hostile_row(&mut rng, n))
        };
        let mut want_tally = MaskSummary::default();
        let want = plain_row(&m, cols, &msg, &mut want_tally);
        let mut tally = MaskSummary::default();
        let got = super::row(&m, cols, &msg, &mut tally);
        assert_eq!(got, want, "{msg:?}");
        match want {
            Ok(Some(_)) => {
                masked += 1;
                assert_eq!(tally, want_tally, "{msg:?}");
            }
            Ok(None) => assert_eq!(tally, want_tally, "{msg:?}"),
            Err(_) => failed += 1,
        }
    }
    // The rows exercise both outcomes.
    assert!(masked > 300 && failed > 300, "{masked} {failed}");
}
