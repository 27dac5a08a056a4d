//! Masking of JSON bodies with the connection's masking engine. Each
//! scalar is masked as a value of the "column" named by its key (array
//! elements take the array's key), so column rules match key names; a
//! key a column rule matches masks everything inside its value.
//!
//! The document is first checked with a full parser (a body that is not
//! JSON is an error, never passed on), then rewritten in one pass that
//! copies everything but the masked values, so key order, numbers and
//! formatting stay as the backend sent them. A masked number or boolean
//! becomes a JSON string; `null` stays `null`.

use crate::mask::{ColumnContext, MaskSummary, Masker};

/// Why a body could not be masked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotJson(String);

/// What kind of body a response has, for masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// One JSON document: buffered, masked, re-sent.
    Json,
    /// A stream of JSON documents, one per line (`application/x-ndjson`,
    /// Kubernetes watches): masked line by line as they arrive.
    JsonLines,
    /// Media the agent passes untouched: images, audio, video, fonts.
    Media,
    /// Anything else, text-like or unknown: refused when masking is on.
    Other(String),
}

/// Classifies a `Content-Type` value (`None` when absent).
pub fn classify(content_type: Option<&str>) -> BodyKind {
    let Some(ct) = content_type else {
        return BodyKind::Other("a body without a Content-Type".into());
    };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let watch = parts.any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("stream") && v.trim().eq_ignore_ascii_case("watch")
        })
    });
    let (top, sub) = essence.split_once('/').unwrap_or((&essence, ""));
    match (top, sub) {
        ("application", "x-ndjson" | "ndjson" | "jsonl" | "x-jsonlines" | "jsonlines") => {
            BodyKind::JsonLines
        }
        ("application", "json") if watch => BodyKind::JsonLines,
        ("application" | "text", "json") => BodyKind::Json,
        ("application", s) if s.ends_with("+json") => BodyKind::Json,
        ("image" | "audio" | "video" | "font", s) if !s.is_empty() => BodyKind::Media,
        _ => BodyKind::Other(ct.trim().to_string()),
    }
}

/// Masks one JSON document. `Ok(None)` when nothing in it was masked.
pub fn mask_document(
    masker: &Masker,
    doc: &[u8],
    summary: &mut MaskSummary,
) -> Result<Option<Vec<u8>>, NotJson> {
    serde_json::from_slice::<serde::de::IgnoredAny>(doc).map_err(|e| NotJson(e.to_string()))?;
    Ok(rewrite(masker, doc, summary))
}

/// Where the walker is inside one container.
struct Frame {
    object: bool,
    /// Column name of this container's own value (its key, inherited
    /// through arrays).
    name: String,
    /// A column rule matched `name`: every value inside is masked as
    /// `name`, whatever its own key.
    forced: bool,
    /// Objects: the next string is a key.
    expect_key: bool,
    key: String,
}

/// The column name of the next value, and whether a rule is in force.
fn value_name(stack: &[Frame]) -> (&str, bool) {
    match stack.last() {
        None => ("", false),
        Some(f) if f.forced => (&f.name, true),
        Some(f) if f.object => (&f.key, false),
        Some(f) => (&f.name, false),
    }
}

fn after_value(stack: &mut [Frame]) {
    if let Some(f) = stack.last_mut().filter(|f| f.object) {
        f.expect_key = true;
    }
}

/// Index just past the string starting with the quote at `start`.
fn string_end(doc: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < doc.len() {
        match doc[i] {
            b'"' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    doc.len()
}

/// The text of a JSON string token (quotes included).
fn decode(token: &[u8]) -> String {
    let inner = &token[1..token.len().saturating_sub(1).max(1)];
    if !inner.contains(&b'\\') {
        return String::from_utf8_lossy(inner).into_owned();
    }
    serde_json::from_slice::<String>(token).unwrap_or_default()
}

/// Rewrites a document already known to be valid JSON.
fn rewrite(masker: &Masker, doc: &[u8], summary: &mut MaskSummary) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < doc.len() {
        let b = doc[i];
        match b {
            b'{' | b'[' => {
                let (name, mut forced) = value_name(&stack);
                let name = name.to_string();
                if !forced {
                    forced = masker.plan(&ColumnContext::named(&name)).whole_value();
                }
                stack.push(Frame {
                    object: b == b'{',
                    name,
                    forced,
                    expect_key: true,
                    key: String::new(),
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                after_value(&mut stack);
                i += 1;
            }
            b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let end = if b == b'"' {
                    string_end(doc, i)
                } else {
                    let mut e = i;
                    while e < doc.len() && !b",]} \t\r\n".contains(&doc[e]) {
                        e += 1;
                    }
                    e
                };
                let token = &doc[i..end];
                if let Some(f) = stack.last_mut().filter(|f| f.object && f.expect_key) {
                    f.key = decode(token);
                    f.expect_key = false;
                    i = end;
                    continue;
                }
                if b != b'n' {
                    let (name, _) = value_name(&stack);
                    let text = if b == b'"' {
                        decode(token)
                    } else {
                        String::from_utf8_lossy(token).into_owned()
                    };
                    let col = ColumnContext::named(name);
                    let r = masker.mask(text.as_bytes(), &col);
                    if r.is_masked() {
                        let o = out.get_or_insert_with(|| Vec::with_capacity(doc.len() + 64));
                        o.extend_from_slice(&doc[copied..i]);
                        let masked = String::from_utf8_lossy(r.as_bytes());
                        // Serialising a str cannot fail.
                        let _ = serde_json::to_writer(&mut *o, masked.as_ref());
                        copied = end;
                        summary.record(
                            name,
                            r.hits().iter().map(|h| (h.detector.as_ref(), h.count)),
                        );
                    }
                }
                after_value(&mut stack);
                i = end;
            }
            _ => i += 1,
        }
    }
    out.map(|mut o| {
        o.extend_from_slice(&doc[copied..]);
        o
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mask::{ColumnRule, DetectorSet, MaskConfig, Strategy};

    fn masker(columns: &[&str]) -> Masker {
        let cfg = MaskConfig {
            detectors: DetectorSet::all(),
            strategy: Strategy::Redact,
            columns: columns
                .iter()
                .map(|p| ColumnRule {
                    pattern: p.to_string(),
                    strategy: None,
                    keep: None,
                    name: None,
                })
                .collect(),
            ..MaskConfig::default()
        };
        Masker::new(&cfg, [3; 32]).unwrap()
    }

    fn run(m: &Masker, doc: &str) -> (String, MaskSummary) {
        let mut s = MaskSummary::default();
        let out = mask_document(m, doc.as_bytes(), &mut s).unwrap();
        let text = out.map_or_else(|| doc.to_string(), |o| String::from_utf8(o).unwrap());
        serde_json::from_str::<serde_json::Value>(&text).expect("still JSON");
        (text, s)
    }

    #[test]
    fn strings_are_masked_in_place_and_the_rest_is_untouched() {
        let m = masker(&[]);
        let doc = r#"{ "id": 7, "email": "alice@example.com",
  "notes": ["call bob@example.org", "nothing"], "ok": true, "n": null }"#;
        let (out, s) = run(&m, doc);
        assert!(
            !out.contains("alice@example.com") && !out.contains("bob@"),
            "{out}"
        );
        assert!(out.starts_with("{ \"id\": 7, \"email\": \""), "{out}");
        assert!(
            out.contains("\"nothing\"], \"ok\": true, \"n\": null }"),
            "{out}"
        );
        assert_eq!(s.values, 2);
        assert_eq!(s.detectors["email"], 2);
        assert!(s.columns.contains("email") && s.columns.contains("notes"));

        let plain = r#"{"a": [1, 2.5e3, "x"], "b": {"c": false}}"#;
        let mut s = MaskSummary::default();
        assert!(
            mask_document(&m, plain.as_bytes(), &mut s)
                .unwrap()
                .is_none()
        );
        assert!(s.is_empty());
    }

    #[test]
    fn column_rules_match_keys_and_cover_nested_values() {
        let m = masker(&["*password*", "ssn", "profile"]);
        let doc = r#"{"user": {"name": "al", "db_password": "hunter2", "ssn": 123456789,
            "profile": {"city": "Lisbon", "tags": ["a", 1, null]}}}"#;
        let (out, s) = run(&m, doc);
        for leaked in ["hunter2", "123456789", "Lisbon", "\"a\""] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("\"name\": \"al\""), "{out}");
        // null stays null; the number became a string.
        assert!(out.contains("null]"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["user"]["ssn"].is_string());
        assert_eq!(s.values, 5, "{s:?}");
    }

    #[test]
    fn escapes_and_unicode_survive() {
        let m = masker(&[]);
        let doc = r#"{"k\"ey": "caf\u00e9 \"q\" al\u0069ce@example.com", "u": "ünï"}"#;
        let (out, _) = run(&m, doc);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(!v["k\"ey"].as_str().unwrap().contains("alice@"), "{out}");
        assert!(
            v["k\"ey"].as_str().unwrap().starts_with("café \"q\" "),
            "{out}"
        );
        assert_eq!(v["u"], "ünï");
        // A top-level string and a card number as a bare number.
        let (out, _) = run(&m, "\"x@example.com\"");
        assert!(!out.contains("x@example.com"));
        let (out, _) = run(&m, "[4242424242424242]");
        assert!(!out.contains("4242424242424242"), "{out}");
    }

    #[test]
    fn what_is_not_json_is_an_error() {
        let m = masker(&[]);
        for bad in [
            "",
            "{",
            "{\"a\": 1} trailing",
            "<html>",
            "\u{feff}{}",
            "{'a': 1}",
        ] {
            let mut s = MaskSummary::default();
            assert!(mask_document(&m, bad.as_bytes(), &mut s).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(classify(Some("application/json")), BodyKind::Json);
        assert_eq!(
            classify(Some("Application/JSON; charset=utf-8")),
            BodyKind::Json
        );
        assert_eq!(classify(Some("application/problem+json")), BodyKind::Json);
        assert_eq!(
            classify(Some("application/json;stream=watch")),
            BodyKind::JsonLines
        );
        assert_eq!(classify(Some("application/x-ndjson")), BodyKind::JsonLines);
        assert_eq!(classify(Some("image/png")), BodyKind::Media);
        for other in [
            "text/plain",
            "text/event-stream",
            "application/octet-stream",
            "image",
        ] {
            assert!(
                matches!(classify(Some(other)), BodyKind::Other(_)),
                "{other}"
            );
        }
        assert!(matches!(classify(None), BodyKind::Other(_)));
    }
}
