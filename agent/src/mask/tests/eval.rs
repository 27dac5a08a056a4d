//! Precision and recall per detector on the labelled set made by
//! `scripts/mask_eval.py` (`tests/data/mask/eval.jsonl`, committed).
//!
//! `cargo test -p hoop-agent mask::tests::eval -- --nocapture` prints the
//! table. The checksum-backed detectors must reach recall 0.99 and
//! precision 0.98; the others are reported.
//!
//! - recall: labelled values with a finding of the same detector over them.
//!   Values marked `bare` (digits only, no context in column or sentence)
//!   are outside what the engine promises and are counted apart.
//! - masked: labelled values whose every byte is inside some finding.
//! - precision: findings that lie on a value labelled with their detector.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Record {
    column: String,
    text: String,
    kind: String,
    entities: Vec<Entity>,
}

#[derive(Deserialize)]
struct Entity {
    label: String,
    start: usize,
    end: usize,
    bare: bool,
}

#[derive(Default)]
struct Score {
    labelled: usize,
    recalled: usize,
    masked: usize,
    bare: usize,
    bare_recalled: usize,
    findings: usize,
    correct: usize,
    misses: Vec<String>,
    false_positives: Vec<String>,
}

const GATED: [&str; 7] = ["card", "iban", "cpf", "aadhaar", "nhs", "dni", "ssn"];

fn overlaps(a: &std::ops::Range<usize>, s: usize, e: usize) -> bool {
    a.start < e && s < a.end
}

#[test]
fn precision_and_recall_per_detector() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/mask/eval.jsonl");
    let data = std::fs::read_to_string(path).expect("tests/data/mask/eval.jsonl");
    let m = all();
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut lookalike_fp = 0;
    let mut records = 0;
    for line in data.lines() {
        let r: Record = serde_json::from_str(line).unwrap();
        records += 1;
        let f = m.findings(r.text.as_bytes(), &ColumnContext::named(&r.column));
        for e in &r.entities {
            let s = scores.entry(e.label.clone()).or_default();
            let hit = f
                .iter()
                .any(|x| x.detector == e.label && overlaps(&x.range, e.start, e.end));
            let covered = (e.start..e.end).all(|b| f.iter().any(|x| x.range.contains(&b)));
            if e.bare {
                s.bare += 1;
                s.bare_recalled += usize::from(hit);
                continue;
            }
            s.labelled += 1;
            s.recalled += usize::from(hit);
            s.masked += usize::from(covered);
            if !hit && s.misses.len() < 6 {
                let found: Vec<_> = f
                    .iter()
                    .map(|x| (x.detector, &r.text[x.range.clone()]))
                    .collect();
                s.misses.push(format!(
                    "{}: {:?} found {found:?}",
                    r.column,
                    &r.text[e.start..e.end]
                ));
            }
        }
        for x in &f {
            let s = scores.entry(x.detector.to_string()).or_default();
            s.findings += 1;
            let ok = r
                .entities
                .iter()
                .any(|e| e.label == x.detector && overlaps(&x.range, e.start, e.end));
            if ok {
                s.correct += 1;
            } else {
                lookalike_fp += usize::from(r.kind != "positive");
                if s.false_positives.len() < 6 {
                    s.false_positives
                        .push(format!("{} in {:?}", &r.text[x.range.clone()], r.text));
                }
            }
        }
    }

    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    println!("mask eval: {records} cells from scripts/mask_eval.py");
    println!(
        "{:<9} {:>6} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "detector", "values", "recall", "masked", "bare", "found", "precision"
    );
    let mut failures = Vec::new();
    for (label, s) in &scores {
        let recall = ratio(s.recalled, s.labelled);
        let precision = ratio(s.correct, s.findings);
        let bare = if s.bare == 0 {
            "-".to_string()
        } else {
            format!("{}/{}", s.bare_recalled, s.bare)
        };
        println!(
            "{label:<9} {:>6} {recall:>8.4} {:>8.4} {bare:>9} {:>8} {precision:>10.4}",
            s.labelled,
            ratio(s.masked, s.labelled),
            s.findings,
        );
        for miss in &s.misses {
            println!("    missed {miss}");
        }
        for fp in &s.false_positives {
            println!("    false positive {fp}");
        }
        if GATED.contains(&label.as_str()) && (recall < 0.99 || precision < 0.98) {
            failures.push(format!(
                "{label}: recall {recall:.4}, precision {precision:.4}"
            ));
        }
    }
    println!("findings on lookalike and filler cells: {lookalike_fp}");
    for g in GATED {
        assert!(
            scores.get(g).is_some_and(|s| s.labelled >= 100),
            "too few {g} values"
        );
    }
    assert!(
        failures.is_empty(),
        "below recall 0.99 / precision 0.98: {failures:?}"
    );
}
