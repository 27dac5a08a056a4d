//! Masking settings of one connection (`[connection.mask]`): which content
//! detectors run, column rules, custom regexes and word lists, and how a
//! match is rewritten. The engine that applies them is `crate::mask`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Largest `keep` accepted: more would reveal most of any value.
pub const MAX_KEEP: usize = 16;

/// Largest compiled size of one custom regex, in bytes.
pub const MAX_REGEX_SIZE: usize = 1 << 20;

/// A built-in content detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Payment card numbers: 12–19 digits, Luhn, known IIN ranges.
    Card,
    /// US Social Security numbers.
    Ssn,
    /// Phone numbers: E.164 and common national formats.
    Phone,
    /// IBANs: country length and mod-97 check.
    Iban,
    /// IPv4 and IPv6 addresses.
    Ip,
    /// Credentials: AWS key ids, JWTs, PEM private keys, bearer tokens,
    /// `password=`-style pairs, passwords in URLs.
    Secret,
    /// Brazil CPF (two mod-11 check digits).
    Cpf,
    /// India Aadhaar (12 digits, Verhoeff).
    Aadhaar,
    /// UK NHS number (10 digits, mod 11).
    Nhs,
    /// Spain DNI and NIE (check letter).
    Dni,
}

impl Detector {
    /// Every built-in detector, in a fixed order.
    pub const ALL: [Detector; 11] = [
        Detector::Email,
        Detector::Card,
        Detector::Ssn,
        Detector::Phone,
        Detector::Iban,
        Detector::Ip,
        Detector::Secret,
        Detector::Cpf,
        Detector::Aadhaar,
        Detector::Nhs,
        Detector::Dni,
    ];

    /// The name used in config, markers (`[REDACTED:email]`) and audit.
    pub const fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Card => "card",
            Detector::Ssn => "ssn",
            Detector::Phone => "phone",
            Detector::Iban => "iban",
            Detector::Ip => "ip",
            Detector::Secret => "secret",
            Detector::Cpf => "cpf",
            Detector::Aadhaar => "aadhaar",
            Detector::Nhs => "nhs",
            Detector::Dni => "dni",
        }
    }

    /// Looks a detector up by its config name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a match is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// A fixed marker naming the type: `[REDACTED:email]`.
    #[default]
    Redact,
    /// Letters and digits become `*` except the last `keep`; separators
    /// stay (`****-****-****-4242`). E-mails keep the first character of
    /// the local part and the domain (`a****@example.com`); secrets keep
    /// nothing (`****`).
    Partial,
    /// `hash:` and the first 16 hex digits of HMAC-SHA-256 of the value
    /// under the agent's masking key: equal inputs give equal tokens, so
    /// joins and GROUP BY still work. Detected numbers are hashed without
    /// their formatting (`4242 4242 ...` = `4242-4242-...`) and e-mail
    /// addresses without case; column rules hash the value as it is.
    Hash,
}

/// The `detectors` key: a list of names, or `"all"` (also allowed inside
/// the list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DetectorSet(pub Vec<Detector>);

impl DetectorSet {
    /// All built-in detectors.
    pub fn all() -> DetectorSet {
        DetectorSet(Detector::ALL.to_vec())
    }
    pub fn contains(&self, d: Detector) -> bool {
        self.0.contains(&d)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for DetectorSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn one<E: de::Error>(name: &str, out: &mut Vec<Detector>) -> Result<(), E> {
            if name == "all" {
                out.extend(Detector::ALL);
                return Ok(());
            }
            match Detector::from_name(name) {
                Some(det) => {
                    out.push(det);
                    Ok(())
                }
                None => Err(E::custom(format!(
                    "unknown detector `{name}`, expected `all` or one of: {}",
                    Detector::ALL.map(Detector::as_str).join(", ")
                ))),
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = DetectorSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of detector names")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DetectorSet, E> {
                let mut out = Vec::new();
                one(s, &mut out)?;
                Ok(DetectorSet(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DetectorSet, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    one(&s, &mut out)?;
                }
                out.sort();
                out.dedup();
                Ok(DetectorSet(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[connection.mask.column]]`: mask a whole value, whatever it holds,
/// when its column name matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// Case-insensitive glob with `*` (any run) and `?` (one character).
    /// With a dot (`users.email`, `*.ssn`) it matches `table.column`
    /// (schema-qualified or not); when the table of a value is unknown it
    /// matches on the part after the last dot, so an unknown table never
    /// lets a value through. Without a dot (`*password*`) it matches the
    /// column name alone.
    pub pattern: String,
    /// Overrides the connection's `strategy` for this rule.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Overrides the connection's `keep` for this rule.
    #[serde(default)]
    pub keep: Option<usize>,
    /// Name in markers and audit records. Default `column`.
    #[serde(default)]
    pub name: Option<String>,
}

/// `[[connection.mask.custom]]`: a named regular expression.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Name in markers and audit records: lowercase letters, digits, `_`
    /// and `-`, not a built-in detector's name.
    pub name: String,
    /// Rust `regex` syntax, matched against the bytes of each value.
    pub regex: String,
    /// Overrides the connection's `strategy` for this rule.
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

/// `[[connection.mask.words]]`: a named list of words matched without
/// regard to ASCII case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordList {
    /// Name in markers and audit records (same rules as a custom rule).
    pub name: String,
    /// The words. Each must be non-empty.
    pub words: Vec<String>,
    /// Match only whole words (not inside a longer run of letters and
    /// digits). Default true.
    #[serde(default = "default_true")]
    pub whole_word: bool,
    /// Overrides the connection's `strategy` for this list.
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

fn default_true() -> bool {
    true
}

fn default_keep() -> usize {
    4
}

/// `[connection.mask]`. Without detectors, columns, custom rules or word
/// lists, masking is off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Built-in content detectors: names or `"all"`. Default none.
    #[serde(default)]
    pub detectors: DetectorSet,
    /// Default strategy. Default `redact`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Trailing letters and digits kept by `partial`; default 4, at most
    /// 16, and never more than half of a value's letters and digits.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Strategy per detector, custom rule or word list name, e.g.
    /// `email = "hash"`.
    #[serde(default)]
    pub strategy_for: BTreeMap<String, Strategy>,
    /// Column rules, tried in order; the first match wins.
    #[serde(default, rename = "column")]
    pub columns: Vec<ColumnRule>,
    /// Custom regular expressions.
    #[serde(default)]
    pub custom: Vec<CustomRule>,
    /// Deny-word lists.
    #[serde(default)]
    pub words: Vec<WordList>,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            detectors: DetectorSet::default(),
            strategy: Strategy::default(),
            keep: default_keep(),
            strategy_for: BTreeMap::new(),
            columns: Vec::new(),
            custom: Vec::new(),
            words: Vec::new(),
        }
    }
}

impl MaskConfig {
    /// Whether anything would ever be masked.
    pub fn is_enabled(&self) -> bool {
        !self.detectors.is_empty()
            || !self.columns.is_empty()
            || !self.custom.is_empty()
            || !self.words.is_empty()
    }

    /// Checks what types alone cannot. Each problem names its key under
    /// `key_prefix` (e.g. `connection[2].mask`).
    pub fn validate(&self, key_prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let p = key_prefix;
        if self.keep > MAX_KEEP {
            problems.push(format!("{p}.keep: at most {MAX_KEEP}, got {}", self.keep));
        }
        for (i, c) in self.columns.iter().enumerate() {
            let key = format!("{p}.column[{i}]");
            if let Err(e) = check_glob(&c.pattern) {
                problems.push(format!("{key}.pattern: {e}"));
            }
            if c.keep.is_some_and(|k| k > MAX_KEEP) {
                problems.push(format!("{key}.keep: at most {MAX_KEEP}"));
            }
            if let Some(name) = &c.name {
                if let Err(e) = check_name(name) {
                    problems.push(format!("{key}.name: {e}"));
                }
            }
        }
        let mut names: HashSet<&str> = HashSet::new();
        for (i, c) in self.custom.iter().enumerate() {
            let key = format!("{p}.custom[{i}]");
            check_rule_name(&c.name, &key, &mut names, &mut problems);
            match regex::bytes::RegexBuilder::new(&c.regex)
                .size_limit(MAX_REGEX_SIZE)
                .build()
            {
                Err(e) => problems.push(format!("{key}.regex: {}", one_line(&e.to_string()))),
                Ok(re) if re.is_match(b"") => problems.push(format!(
                    "{key}.regex: matches the empty string, so it would match everywhere"
                )),
                Ok(_) => {}
            }
        }
        for (i, w) in self.words.iter().enumerate() {
            let key = format!("{p}.words[{i}]");
            check_rule_name(&w.name, &key, &mut names, &mut problems);
            if w.words.is_empty() {
                problems.push(format!("{key}.words: must list at least one word"));
            }
            for (j, word) in w.words.iter().enumerate() {
                if word.trim().is_empty() {
                    problems.push(format!("{key}.words[{j}]: must not be empty"));
                }
            }
        }
        for name in self.strategy_for.keys() {
            if Detector::from_name(name).is_none() && !names.contains(name.as_str()) {
                problems.push(format!(
                    "{p}.strategy_for.{name}: not a detector, custom rule or word list of this connection"
                ));
            }
        }
        problems
    }
}

fn check_rule_name<'a>(
    name: &'a str,
    key: &str,
    seen: &mut HashSet<&'a str>,
    problems: &mut Vec<String>,
) {
    if let Err(e) = check_name(name) {
        problems.push(format!("{key}.name: {e}"));
    } else if Detector::from_name(name).is_some() || name == "all" || name == "column" {
        problems.push(format!("{key}.name: `{name}` is a built-in name"));
    } else if !seen.insert(name) {
        problems.push(format!("{key}.name: `{name}` is used twice"));
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "`{name}` may hold only lowercase letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

fn check_glob(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if pattern.chars().all(|c| c == '*' || c == '.') {
        return Err(format!(
            "`{pattern}` would match every column; list the columns, or mask with a content detector"
        ));
    }
    if let Some(c) = pattern
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '[' | ']' | '{' | '}'))
    {
        return Err(format!(
            "`{pattern}`: `{c}` is not supported (only `*` and `?` are special)"
        ));
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<MaskConfig, String> {
        toml::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn issue_example_parses() {
        let cfg = parse(
            r#"
detectors = ["email", "card", "ssn", "phone", "iban", "ip", "secret", "cpf", "aadhaar", "nhs", "dni"]
strategy = "partial"
keep = 4
[strategy_for]
email = "hash"
[[column]]
pattern = "*.ssn"
strategy = "redact"
[[custom]]
name = "ticket"
regex = "TCK-[0-9]{6}"
[[words]]
name = "codename"
words = ["bluebird", "nightjar"]
"#,
        )
        .unwrap();
        assert_eq!(cfg.detectors, DetectorSet::all());
        assert_eq!(cfg.strategy, Strategy::Partial);
        assert!(cfg.words[0].whole_word);
        assert!(cfg.validate("connection[0].mask").is_empty());
        assert!(cfg.is_enabled());
    }

    #[test]
    fn all_as_string_or_in_list() {
        assert_eq!(
            parse(r#"detectors = "all""#).unwrap().detectors,
            DetectorSet::all()
        );
        assert_eq!(
            parse(r#"detectors = ["email", "all"]"#).unwrap().detectors,
            DetectorSet::all()
        );
        let off = parse("").unwrap();
        assert!(!off.is_enabled());
        assert_eq!(off.keep, 4);
        assert_eq!(off.strategy, Strategy::Redact);
    }

    #[test]
    fn unknown_names_are_parse_errors() {
        let e = parse(r#"detectors = ["emial"]"#).unwrap_err();
        assert!(e.contains("unknown detector `emial`"), "{e}");
        let e = parse(r#"stratgy = "hash""#).unwrap_err();
        assert!(e.contains("stratgy"), "{e}");
        let e = parse("[[column]]\npattern = \"a\"\nmode = \"x\"").unwrap_err();
        assert!(e.contains("mode"), "{e}");
        let e = parse(r#"strategy = "scramble""#).unwrap_err();
        assert!(e.contains("scramble"), "{e}");
    }

    #[test]
    fn problems_name_keys() {
        let cfg = parse(
            r#"
keep = 40
[strategy_for]
nope = "hash"
[[column]]
pattern = "*"
[[column]]
pattern = "a b"
[[custom]]
name = "email"
regex = "x"
[[custom]]
name = "t"
regex = "(unclosed"
[[custom]]
name = "empty"
regex = "a*"
[[words]]
name = "t"
words = [""]
"#,
        )
        .unwrap();
        let p = cfg.validate("connection[1].mask");
        let want = [
            "connection[1].mask.keep:",
            "connection[1].mask.column[0].pattern:",
            "connection[1].mask.column[1].pattern:",
            "connection[1].mask.custom[0].name: `email` is a built-in name",
            "connection[1].mask.custom[1].regex:",
            "connection[1].mask.custom[2].regex: matches the empty string",
            "connection[1].mask.words[0].name: `t` is used twice",
            "connection[1].mask.words[0].words[0]: must not be empty",
            "connection[1].mask.strategy_for.nope:",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.starts_with(w)), "missing {w} in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }
}
