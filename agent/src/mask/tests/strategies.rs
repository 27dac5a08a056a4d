//! Strategy outputs, column rules, configured detectors and the API's
//! promises (no copy when unchanged, hits, non-UTF-8 input).

use std::collections::BTreeMap;

use super::*;
use crate::config::mask::{ColumnRule, CustomRule, WordList};

fn text(m: &Masker, s: &str) -> String {
    m.mask_str(s, &ColumnContext::named("notes")).into_owned()
}

#[test]
fn unchanged_is_borrowed() {
    let m = all();
    let v = b"nothing to see here, order ORD-2024-000123 at 2024-01-15 10:30".as_slice();
    match m.mask(v, &ColumnContext::named("notes")) {
        MaskResult::Unchanged(out) => assert!(std::ptr::eq(out, v)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.mask_str("plain", &ColumnContext::named("notes")),
        Cow::Borrowed("plain")
    ));
}

#[test]
fn redact_names_the_type_and_counts_hits() {
    let m = all();
    let r = m.mask(
        b"a@example.com, b@example.com, card 4242 4242 4242 4242",
        &ColumnContext::named("notes"),
    );
    assert_eq!(
        r.as_bytes(),
        b"[REDACTED:email], [REDACTED:email], card [REDACTED:card]"
    );
    assert_eq!(
        r.hits(),
        &[
            Hit {
                detector: "email".into(),
                count: 2
            },
            Hit {
                detector: "card".into(),
                count: 1
            }
        ]
    );
}

#[test]
fn partial_keeps_the_tail_and_the_domain() {
    let m = masker_with(Strategy::Partial);
    assert_eq!(
        text(&m, "card 4242-4242-4242-4242."),
        "card ****-****-****-4242."
    );
    assert_eq!(text(&m, "mail alice@example.com"), "mail a****@example.com");
    assert_eq!(text(&m, "SSN 123-45-6789"), "SSN ***-**-6789");
    assert_eq!(text(&m, "password=hunter2 ok"), "password=**** ok");
    assert_eq!(text(&m, "+44 20 7946 0958"), "+** ** **** 0958");
}

#[test]
fn hash_is_stable_across_cells_and_keyed() {
    let m = masker_with(Strategy::Hash);
    let a = text(&m, "from alice@example.com");
    let b = text(&m, "alice@example.com");
    let token = b.clone();
    assert!(token.starts_with("hash:") && token.len() == 21, "{token}");
    assert_eq!(a, format!("from {token}"));
    assert_ne!(token, text(&m, "bob@example.com"));
    let cfg = MaskConfig {
        detectors: DetectorSet::all(),
        strategy: Strategy::Hash,
        ..MaskConfig::default()
    };
    let other = Masker::new(&cfg, [1; 32]).unwrap();
    assert_ne!(token, text(&other, "alice@example.com"));
}

#[test]
fn strategy_per_detector() {
    let cfg = MaskConfig {
        detectors: DetectorSet::all(),
        strategy: Strategy::Redact,
        strategy_for: BTreeMap::from([("email".to_string(), Strategy::Hash)]),
        ..MaskConfig::default()
    };
    let m = Masker::new(&cfg, KEY).unwrap();
    let out = text(&m, "a@example.com 123-45-6789");
    assert!(
        out.starts_with("hash:") && out.ends_with(" [REDACTED:ssn]"),
        "{out}"
    );
}

fn with_columns(rules: Vec<ColumnRule>) -> Masker {
    let cfg = MaskConfig {
        detectors: DetectorSet::all(),
        columns: rules,
        ..MaskConfig::default()
    };
    Masker::new(&cfg, KEY).unwrap()
}

fn rule(pattern: &str, strategy: Option<Strategy>) -> ColumnRule {
    ColumnRule {
        pattern: pattern.into(),
        strategy,
        keep: None,
        name: None,
    }
}

#[test]
fn column_rules_mask_whole_values_whatever_they_hold() {
    let m = with_columns(vec![
        rule("*.ssn", None),
        rule("*password*", Some(Strategy::Hash)),
        rule("users.note", Some(Strategy::Partial)),
    ]);
    let col = |name, table| ColumnContext {
        name,
        table,
        type_hint: TypeHint::Text,
    };
    let r = m.mask(b"anything at all", &col("ssn", Some("people")));
    assert_eq!(r.as_bytes(), b"[REDACTED:column]");
    assert_eq!(r.hits()[0].detector, "column");
    // Unknown table: the column part decides (fail closed).
    assert!(m.mask(b"x", &col("ssn", None)).is_masked());
    let h = m.mask(b"\xff\xfe not utf-8", &col("db_password", None));
    assert!(h.as_bytes().starts_with(b"hash:"));
    assert_eq!(
        m.mask("Café 1234".as_bytes(), &col("note", Some("users")))
            .as_bytes(),
        "**** 1234".as_bytes()
    );
    // Not matched: content detectors still run.
    assert_eq!(
        m.mask(b"a@example.com", &col("note", Some("orders")))
            .as_bytes(),
        b"[REDACTED:email]"
    );
    let plan = m.plan(&col("ssn", Some("people")));
    assert!(plan.whole_value());
}

#[test]
fn json_columns_stay_json() {
    let m = with_columns(vec![rule("profile", None)]);
    let json = ColumnContext {
        name: "profile",
        table: None,
        type_hint: TypeHint::Json,
    };
    let out = m.mask(br#"{"a": 1}"#, &json);
    assert_eq!(out.as_bytes(), br#""[REDACTED:column]""#);
    let doc = ColumnContext {
        name: "doc",
        table: None,
        type_hint: TypeHint::Json,
    };
    let out = m.mask(br#"{"email": "a@example.com", "password": "x\"y"}"#, &doc);
    let v: serde_json::Value = serde_json::from_slice(out.as_bytes()).unwrap();
    assert_eq!(v["email"], "[REDACTED:email]");
    assert_eq!(v["password"], "[REDACTED:secret]");
}

#[test]
fn invalid_utf8_is_scanned_around() {
    let m = all();
    let v = b"\xff\xfe card 4242 4242 4242 4242 \xc3(";
    let r = m.mask(v, &ColumnContext::named("notes"));
    assert_eq!(r.as_bytes(), b"\xff\xfe card [REDACTED:card] \xc3(");
    let r = m.mask(b"\x80123-45-6789\x80", &ColumnContext::named("notes"));
    assert_eq!(r.as_bytes(), b"\x80[REDACTED:ssn]\x80");
}

#[test]
fn custom_regexes_and_words() {
    let cfg = MaskConfig {
        custom: vec![CustomRule {
            name: "ticket".into(),
            regex: "TCK-[0-9]{6}".into(),
            strategy: None,
        }],
        words: vec![WordList {
            name: "codename".into(),
            words: vec!["bluebird".into(), "night jar".into()],
            whole_word: true,
            strategy: Some(Strategy::Partial),
        }],
        ..MaskConfig::default()
    };
    let m = Masker::new(&cfg, KEY).unwrap();
    assert!(m.is_active());
    assert_eq!(
        text(
            &m,
            "see TCK-123456 about BlueBird and Night Jar, not bluebirds"
        ),
        "see [REDACTED:ticket] about ****Bird and ****t Jar, not bluebirds"
    );
    // Built-in detectors are off here.
    assert_eq!(text(&m, "a@example.com"), "a@example.com");
}

#[test]
fn off_by_default() {
    let m = Masker::new(&MaskConfig::default(), KEY).unwrap();
    assert!(!m.is_active());
    assert!(
        !m.mask(b"a@example.com", &ColumnContext::named("email"))
            .is_masked()
    );
}

#[test]
fn invalid_config_is_refused() {
    let cfg = MaskConfig {
        keep: 99,
        ..MaskConfig::default()
    };
    let e = Masker::new(&cfg, KEY).unwrap_err().to_string();
    assert!(e.contains("mask.keep"), "{e}");
}

#[test]
fn debug_hides_the_key() {
    let s = format!("{:?}", all());
    assert!(s.contains("***") && !s.contains("42, 42"), "{s}");
}
