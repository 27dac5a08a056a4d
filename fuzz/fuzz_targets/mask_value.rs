//! The masking engine on arbitrary values: it never panics, leaves a value
//! with nothing to mask as it was, is deterministic, keeps valid UTF-8
//! valid, and a column rule always rewrites the value.

#![no_main]

use hoop_agent::config::mask::{ColumnRule, DetectorSet, MaskConfig, Strategy};
use hoop_agent::mask::{ColumnContext, MaskResult, Masker, TypeHint};
use libfuzzer_sys::fuzz_target;

fn masker(strategy: Strategy) -> Masker {
    let cfg = MaskConfig {
        detectors: DetectorSet::all(),
        strategy,
        columns: vec![ColumnRule {
            pattern: "*secret*".into(),
            strategy: None,
            keep: None,
            name: None,
        }],
        ..MaskConfig::default()
    };
    Masker::new(&cfg, [3; 32]).expect("a valid configuration")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let strategy = match selector % 3 {
        0 => Strategy::Redact,
        1 => Strategy::Partial,
        _ => Strategy::Hash,
    };
    let m = masker(strategy);
    let names = ["notes", "ssn", "phone", "order_number", "top_secret"];
    let name = names[usize::from(selector / 3) % names.len()];
    let col = ColumnContext {
        name,
        table: None,
        type_hint: if selector & 0x80 != 0 {
            TypeHint::Json
        } else {
            TypeHint::Text
        },
    };
    let first = m.mask(value, &col);
    let again = m.mask(value, &col);
    assert_eq!(first, again, "masking is deterministic");
    match &first {
        MaskResult::Unchanged(v) => {
            assert_eq!(*v, value);
            assert!(name != "top_secret", "a column rule always rewrites");
        }
        MaskResult::Masked { value: out, hits } => {
            assert!(!hits.is_empty());
            if std::str::from_utf8(value).is_ok() {
                assert!(std::str::from_utf8(out).is_ok(), "valid UTF-8 stays valid");
            }
        }
    }
});
