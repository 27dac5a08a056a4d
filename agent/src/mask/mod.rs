//! The masking engine: rewrites sensitive values before they leave the
//! agent. It knows nothing of wire protocols: a connector hands it one
//! value at a time with its column context and gets back either the same
//! bytes (borrowed, no copy) or a masked copy with counts per detector for
//! the audit log.
//!
//! ```
//! use hoop_agent::config::mask::{DetectorSet, MaskConfig, Strategy};
//! use hoop_agent::mask::{ColumnContext, Masker};
//!
//! let cfg = MaskConfig { detectors: DetectorSet::all(), strategy: Strategy::Partial, ..MaskConfig::default() };
//! let masker = Masker::new(&cfg, [7; 32]).unwrap();
//! let col = ColumnContext::named("notes");
//! assert_eq!(masker.mask_str("card 4242-4242-4242-4242", &col), "card ****-****-****-4242");
//! assert_eq!(masker.mask_str("mail alice@example.com", &col), "mail a****@example.com");
//! ```
//!
//! What is masked:
//! - **Column rules** (`*.ssn`, `users.email`, `*password*`) mask the whole
//!   value, whatever it holds, even bytes that are not UTF-8.
//! - **Built-in content detectors** find spans inside a value in one pass
//!   (`scan`): email, card, ssn, phone, iban, ip, secret, cpf, aadhaar,
//!   nhs, dni. Checksum-backed ones check their check digits.
//! - **Custom regexes and deny-word lists** (`custom`), one more pass each.
//!
//! Values are bytes. Every built-in detector matches ASCII only, and ASCII
//! bytes never occur inside a multi-byte UTF-8 sequence, so a value that
//! is not valid UTF-8 is scanned exactly as its valid runs would be, with
//! the invalid bytes acting as separators; spans are rewritten in place
//! and the other bytes are copied unchanged. A column rule masks the value
//! whatever its bytes are (fail closed).
//!
//! What the content detectors promise, and what they do not (each is a
//! choice for precision; a column rule covers a column where it matters):
//! - A number written as bare digits with no separators (a 9-digit SSN,
//!   10-digit NHS number, 11-digit CPF, 12-digit Aadhaar, a phone number
//!   without `+`) is masked only with context: a column name or a keyword
//!   just before it (`ssn`, `cpf`, `phone`, `tel` ...; see `context`).
//!   Bare card numbers (13-19 digits, Luhn, issuer prefix) need none.
//! - A word just before a number, or the column name, can also say it is
//!   not personal (`tracking`, `order`, `sku`, `isbn`, `version`); then
//!   shapes that other numbers share are left alone (not `123-45-6789` or
//!   `529.982.247-25`).
//! - A number glued to a word or joined to it by `-`, `.`, `_` or `/`
//!   (`ORD-2024-000123`, `user_4242...`) is an identifier, not a match;
//!   a `(`, space or punctuation before it is fine.
//! - A number that continues, with the same separator, into more digit
//!   groups (`9400 1000 0000 0000 0000 00`) is one longer number: no
//!   window inside it is taken for a card or an Aadhaar number.
//! - `NNN NNN NNNN` with spaces is a phone number only with context (it is
//!   as often a member number); `NNN-NNN-NNNN` and `(NNN) NNN-NNNN` need
//!   none.
//! - IBANs are recognised in upper case, compact or in groups of four,
//!   for the countries of the SWIFT registry; e-mail addresses in ASCII or
//!   UTF-8, and URL-encoded (`%40`).
//! - Unquoted `password=` values run to whitespace, a quote, or a `&`, `;`
//!   or `,` that starts the next `key=`; quoted ones to the closing quote,
//!   or to the end of the value when it is not closed.
//! - Custom regexes are applied to the raw bytes; on JSON columns a regex
//!   that spans quotes can break the document under `redact`.

mod checksum;
mod column;
mod context;
mod custom;
mod numeric;
mod scan;
mod strategy;
mod swar;
#[cfg(test)]
pub(crate) mod tests;
mod text;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use aws_lc_rs::hmac;
use serde::Serialize;

pub use crate::config::mask::{Detector, MaskConfig, Strategy};
use context::Hints;
use scan::{ColumnHints, Enabled, Found, HintsOnce, Kind, Scan};
use strategy::Shape;

/// What type the backend says a column has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TypeHint {
    /// Text-like (`text`, `varchar`, numbers in text format ...).
    #[default]
    Text,
    /// JSON text: a whole-value replacement is emitted as a JSON string so
    /// the document still parses. Spans inside are masked like text; the
    /// built-in replacements hold no quotes or backslashes.
    Json,
    /// Anything else. Scanned like text.
    Other,
}

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnContext<'c> {
    /// Column name (or alias) as the client sees it.
    pub name: &'c str,
    /// Table, possibly schema-qualified, when the connector knows it.
    pub table: Option<&'c str>,
    pub type_hint: TypeHint,
}

impl<'c> ColumnContext<'c> {
    /// A text column with no known table.
    pub fn named(name: &'c str) -> Self {
        ColumnContext {
            name,
            table: None,
            type_hint: TypeHint::Text,
        }
    }
}

/// What masking did to one statement's results: counts and names, never
/// a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaskSummary {
    /// Values rewritten.
    pub values: u64,
    /// Columns (or `(error)`, `(notice)`, `(copy)`, `(notification)`)
    /// where a value was rewritten.
    pub columns: BTreeSet<String>,
    /// Matches per detector, custom rule, word list or column rule.
    pub detectors: BTreeMap<String, u64>,
    /// Binary columns a column rule matched whose type the agent cannot
    /// rewrite: their values were sent as NULL.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub nulled: BTreeSet<String>,
}

impl MaskSummary {
    pub fn is_empty(&self) -> bool {
        self.values == 0 && self.nulled.is_empty()
    }

    /// Counts one rewritten value of `column`.
    pub fn record<'a>(&mut self, column: &str, hits: impl IntoIterator<Item = (&'a str, usize)>) {
        self.values += 1;
        if !self.columns.contains(column) {
            self.columns.insert(column.to_string());
        }
        for (detector, n) in hits {
            match self.detectors.get_mut(detector) {
                Some(c) => *c += n as u64,
                None => {
                    self.detectors.insert(detector.to_string(), n as u64);
                }
            }
        }
    }

    /// Counts one rewritten value of `column` whose matches were counted
    /// with [`MaskSummary::hit`].
    pub fn value_in(&mut self, column: &str) {
        self.values += 1;
        if !self.columns.contains(column) {
            self.columns.insert(column.to_string());
        }
    }

    /// Counts one match of `detector` (a detector, rule or list name).
    pub fn hit(&mut self, detector: &str) {
        match self.detectors.get_mut(detector) {
            Some(c) => *c += 1,
            None => {
                self.detectors.insert(detector.to_string(), 1);
            }
        }
    }

    /// Adds `other` in, leaving it empty.
    pub fn absorb(&mut self, other: &mut MaskSummary) {
        self.values += other.values;
        self.columns.append(&mut other.columns);
        for (k, v) in std::mem::take(&mut other.detectors) {
            *self.detectors.entry(k).or_default() += v;
        }
        self.nulled.append(&mut other.nulled);
        other.values = 0;
    }
}

/// How many values one detector, custom rule, word list or column rule
/// masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub detector: Cow<'static, str>,
    pub count: usize,
}

/// The outcome for one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskResult<'a> {
    /// Nothing to mask: the input, not copied.
    Unchanged(&'a [u8]),
    /// The masked copy and what was found in it.
    Masked { value: Vec<u8>, hits: Vec<Hit> },
}

impl MaskResult<'_> {
    /// The bytes to send on.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MaskResult::Unchanged(v) => v,
            MaskResult::Masked { value, .. } => value,
        }
    }
    pub fn is_masked(&self) -> bool {
        matches!(self, MaskResult::Masked { .. })
    }
    pub fn hits(&self) -> &[Hit] {
        match self {
            MaskResult::Unchanged(_) => &[],
            MaskResult::Masked { hits, .. } => hits,
        }
    }
}

/// One detected span, for audit summaries and evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'m> {
    pub range: Range<usize>,
    pub detector: &'m str,
}

/// Scratch space [`Masker::mask_into`] reuses between values.
#[derive(Debug, Default)]
pub struct Scratch {
    found: Vec<scan::Found>,
}

/// What [`Masker::find`] found in one value, to be written masked with
/// [`Spans::write`].
pub struct Spans<'a> {
    masker: &'a Masker,
    value: &'a [u8],
    plan: &'a ColumnPlan,
    /// Empty under a column rule (the whole value is masked).
    found: &'a [Found],
}

impl Spans<'_> {
    /// Appends the masked value to `out`, calling `hit` once per
    /// rewritten span with its built-in detector (`None` for a custom
    /// detector, word list or column rule) and its name.
    pub fn write(self, out: &mut Vec<u8>, hit: impl FnMut(Option<Detector>, &str)) {
        let value = self.value;
        let at = self.write_head(out, hit);
        out.extend_from_slice(&value[at..]);
    }

    /// [`Spans::write`] but for the value's last bytes, which are kept as
    /// they are: returns where they start in the value. A caller copying
    /// unchanged bytes in runs sends `value[at..]` out with the next run,
    /// one copy instead of two (for a partial e-mail, its domain).
    ///
    /// Inlined for the commonest value masked, one address whose `@` the
    /// scan found, under `partial`: written in the caller's loop without
    /// building the call's arguments and saving its registers (~80
    /// instructions a value); anything else goes to [`Spans::write_spans`].
    #[inline]
    pub fn write_head(
        self,
        out: &mut Vec<u8>,
        mut hit: impl FnMut(Option<Detector>, &str),
    ) -> usize {
        // Under a column rule `found` is empty: not taken here.
        if let [f] = self.found {
            if f.kind == Kind::Builtin(Detector::Email)
                && f.at != scan::NO_AT
                && self.masker.strategies[Detector::Email as usize] == Strategy::Partial
            {
                let sign = usize::from(f.at);
                // Mostly the whole value: nothing before it to copy.
                if f.start > 0 {
                    out.extend_from_slice(&self.value[..f.start]);
                }
                strategy::email_head(out, &self.value[f.start..f.end], sign);
                hit(Some(Detector::Email), Detector::Email.as_str());
                return f.start + sign;
            }
        }
        // Its parts as arguments, in registers: not a struct written to
        // the stack before the fast path's test.
        let Spans {
            masker,
            value,
            plan,
            found,
        } = self;
        Spans::write_spans(masker, value, plan, found, out, hit)
    }

    /// [`Spans::write_head`] for any spans. Cold: the row loop is laid
    /// out for its fast path (2-5 instructions a row less in each of the
    /// benchmark's columns, measured).
    #[cold]
    #[inline(never)]
    fn write_spans(
        m: &Masker,
        value: &[u8],
        plan: &ColumnPlan,
        found: &[Found],
        out: &mut Vec<u8>,
        mut hit: impl FnMut(Option<Detector>, &str),
    ) -> usize {
        if let Some(r) = plan.rule {
            let rule = &m.rules[r];
            if plan.json {
                out.extend_from_slice(m.whole(value, rule, true).as_bytes());
            } else {
                strategy::render(
                    out,
                    value,
                    &rule.label,
                    rule.strategy,
                    rule.keep,
                    Shape::Generic,
                    &m.key,
                );
            }
            hit(None, &rule.label);
            return value.len();
        }
        // A partial e-mail, the commonest span, is written without
        // `describe` and with its name known.
        let email_partial = m.strategies[Detector::Email as usize] == Strategy::Partial;
        let mut at = 0;
        for f in found {
            out.extend_from_slice(&value[at..f.start]);
            let span = &value[f.start..f.end];
            at = f.end;
            if f.kind == Kind::Builtin(Detector::Email) && email_partial {
                let sign = match f.at {
                    scan::NO_AT => strategy::last_at(span),
                    sign => Some(usize::from(sign)),
                };
                match sign {
                    Some(sign) => {
                        strategy::email_head(out, span, sign);
                        // The domain is kept as it is: it goes out with
                        // the bytes after the span, in one copy (with the
                        // row's next unchanged bytes, under `write_head`).
                        at = f.start + sign;
                    }
                    None => strategy::email_at(out, span, None),
                }
                hit(Some(Detector::Email), Detector::Email.as_str());
                continue;
            }
            let (label, strategy, shape) = m.describe(f.kind);
            strategy::render(out, span, label, strategy, m.keep, shape, &m.key);
            let builtin = match f.kind {
                Kind::Builtin(d) => Some(d),
                Kind::Custom(_) | Kind::Words(_) => None,
            };
            hit(builtin, label);
        }
        at
    }
}

/// Everything about a column that does not depend on its values; compute
/// it once per result set with [`Masker::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnPlan {
    rule: Option<usize>,
    hints: Hints,
    json: bool,
}

impl ColumnPlan {
    /// Whether a column rule masks every value of this column.
    pub fn whole_value(&self) -> bool {
        self.rule.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("invalid masking configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

#[derive(Debug)]
struct RuleOut {
    strategy: Strategy,
    keep: usize,
    label: String,
}

/// A compiled `MaskConfig` and the agent's masking key. Cheap to share
/// between sessions (`Send + Sync`).
pub struct Masker {
    en: Enabled,
    strategies: [Strategy; Detector::ALL.len()],
    keep: usize,
    columns: column::Columns,
    rules: Vec<RuleOut>,
    custom: custom::Custom,
    custom_names: Vec<(String, Strategy)>,
    word_names: Vec<(String, Strategy)>,
    key: hmac::Key,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("detectors", &self.en)
            .field("columns", &self.rules)
            .field("custom", &self.custom_names)
            .field("words", &self.word_names)
            .field("key", &"***")
            .finish()
    }
}

impl Masker {
    /// Compiles a configuration. `key` keys the `hash` strategy; keep it
    /// per agent and stable, or hashed values stop joining across
    /// restarts.
    pub fn new(cfg: &MaskConfig, key: [u8; 32]) -> Result<Masker, MaskError> {
        let problems = cfg.validate("mask");
        if !problems.is_empty() {
            return Err(MaskError::Invalid(problems));
        }
        let mut en = Enabled::default();
        for &d in &cfg.detectors.0 {
            en.set(d);
        }
        let pick = |name: &str, own: Option<Strategy>| {
            own.or_else(|| cfg.strategy_for.get(name).copied())
                .unwrap_or(cfg.strategy)
        };
        let strategies = Detector::ALL.map(|d| pick(d.as_str(), None));
        let rules = cfg
            .columns
            .iter()
            .map(|r| RuleOut {
                strategy: r.strategy.unwrap_or(cfg.strategy),
                keep: r.keep.unwrap_or(cfg.keep),
                label: r.name.clone().unwrap_or_else(|| "column".to_string()),
            })
            .collect();
        let custom = custom::Custom::new(&cfg.custom, &cfg.words)
            .map_err(|e| MaskError::Invalid(vec![format!("mask.{e}")]))?;
        Ok(Masker {
            en,
            strategies,
            keep: cfg.keep,
            columns: column::Columns::new(&cfg.columns),
            rules,
            custom,
            custom_names: cfg
                .custom
                .iter()
                .map(|c| (c.name.clone(), pick(&c.name, c.strategy)))
                .collect(),
            word_names: cfg
                .words
                .iter()
                .map(|w| (w.name.clone(), pick(&w.name, w.strategy)))
                .collect(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// Whether any value could ever be masked.
    pub fn is_active(&self) -> bool {
        self.en.any() || !self.columns.is_empty() || !self.custom.is_empty()
    }

    /// Whether column rules are configured: then a value whose column is
    /// not known (a COPY row, say) cannot be masked safely.
    pub fn has_column_rules(&self) -> bool {
        !self.columns.is_empty()
    }

    /// Whether a column rule names a table (`users.email`).
    pub fn has_table_rules(&self) -> bool {
        self.columns.has_table_rules()
    }

    /// The column part of every column rule (`users.email` gives
    /// `email`), lowercase globs (`*`, `?`): a connector that can look up
    /// real column names asks only for those that may match.
    pub fn column_globs(&self) -> impl Iterator<Item = &str> {
        self.columns.column_globs()
    }

    /// Whether the `ip` detector runs.
    pub fn detects_ip(&self) -> bool {
        self.en.ip
    }

    /// The per-column part of the work: the column rule and the hints the
    /// column name gives.
    pub fn plan(&self, col: &ColumnContext<'_>) -> ColumnPlan {
        ColumnPlan {
            rule: self.rule(col),
            hints: if self.en.any() {
                context::column(col.name)
            } else {
                Hints::default()
            },
            json: col.type_hint == TypeHint::Json,
        }
    }

    /// Like [`plan`](Masker::plan) for a column the client sees as
    /// `shown` (its alias) whose real name and table the server reported
    /// as `real`: a rule matching either applies, and the alias may add
    /// hints but never take any away (`card AS sku` does not make card
    /// numbers "not personal").
    pub fn plan_aliased(&self, real: &ColumnContext<'_>, shown: &ColumnContext<'_>) -> ColumnPlan {
        ColumnPlan {
            rule: self.rule(real).or_else(|| self.rule(shown)),
            hints: if self.en.any() {
                context::column(real.name) | context::column(shown.name).personal_only()
            } else {
                Hints::default()
            },
            json: real.type_hint == TypeHint::Json,
        }
    }

    fn rule(&self, col: &ColumnContext<'_>) -> Option<usize> {
        if self.columns.is_empty() {
            None
        } else {
            self.columns.find(col.table, col.name)
        }
    }

    /// Masks one value. Hints from the column name are worked out only if
    /// a bare number needs them; a connector masking many rows should
    /// still [`plan`](Masker::plan) each column once and call
    /// [`mask_planned`](Masker::mask_planned).
    pub fn mask<'a>(&self, value: &'a [u8], col: &ColumnContext<'_>) -> MaskResult<'a> {
        match self.rule(col) {
            Some(r) => self.whole(value, &self.rules[r], col.type_hint == TypeHint::Json),
            None => self.rewrite(value, ColumnHints::lazy(&col.name)),
        }
    }

    /// Masks one value of a column planned with [`Masker::plan`].
    pub fn mask_planned<'a>(&self, value: &'a [u8], plan: &ColumnPlan) -> MaskResult<'a> {
        match plan.rule {
            Some(r) => self.whole(value, &self.rules[r], plan.json),
            None => self.rewrite(value, ColumnHints::known(plan.hints)),
        }
    }

    /// Like [`mask_planned`](Masker::mask_planned) without allocating: when
    /// anything in `value` is masked, appends the masked bytes to `out`,
    /// calls `hit` once per rewritten span with its detector (or rule)
    /// name, and returns `true`; otherwise leaves `out` as it was and
    /// returns `false`. `scratch` is reused from call to call.
    pub fn mask_into(
        &self,
        value: &[u8],
        plan: &ColumnPlan,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
        mut hit: impl FnMut(&str),
    ) -> bool {
        self.mask_into_by_kind(value, plan, scratch, out, |_, label| hit(label))
    }

    /// [`Masker::mask_into`] whose `hit` is also told the built-in
    /// detector (`None` for a custom detector, word list or column rule),
    /// so that a caller can count per detector without comparing names.
    pub fn mask_into_by_kind(
        &self,
        value: &[u8],
        plan: &ColumnPlan,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
        hit: impl FnMut(Option<Detector>, &str),
    ) -> bool {
        match self.find(value, plan, scratch) {
            Some(spans) => {
                spans.write(out, hit);
                true
            }
            None => false,
        }
    }

    /// The first half of [`Masker::mask_into_by_kind`]: what in `value`
    /// is to be masked, `None` when nothing is. A caller that copies
    /// unchanged values in runs learns this before it writes anything.
    /// Inlined into the row loop; `collect` is not (see there).
    #[inline]
    pub fn find<'a>(
        &'a self,
        value: &'a [u8],
        plan: &'a ColumnPlan,
        scratch: &'a mut Scratch,
    ) -> Option<Spans<'a>> {
        // Under a column rule, no spans (as `Spans::found` says), not the
        // last value's left in `scratch`: `write_head`'s fast path then
        // needs no test of its own for a rule.
        let found: &[Found] = match plan.rule {
            Some(_) => &[],
            None if self.collect(value, ColumnHints::known(plan.hints), &mut scratch.found) => {
                &scratch.found
            }
            None => return None,
        };
        Some(Spans {
            masker: self,
            value,
            plan,
            found,
        })
    }

    fn rewrite<'a>(&self, value: &'a [u8], hints: ColumnHints<'_>) -> MaskResult<'a> {
        let mut found = Vec::new();
        if !self.collect(value, hints, &mut found) {
            return MaskResult::Unchanged(value);
        }
        let mut out = Vec::with_capacity(value.len() + 16 * found.len());
        let mut hits: Vec<Hit> = Vec::new();
        let mut at = 0;
        for f in &found {
            out.extend_from_slice(&value[at..f.start]);
            let (label, strategy, shape) = self.describe(f.kind);
            strategy::render(
                &mut out,
                &value[f.start..f.end],
                label,
                strategy,
                self.keep,
                shape,
                &self.key,
            );
            at = f.end;
            match hits.iter_mut().find(|h| h.detector == label) {
                Some(h) => h.count += 1,
                None => hits.push(Hit {
                    detector: match f.kind {
                        Kind::Builtin(d) => Cow::Borrowed(d.as_str()),
                        _ => Cow::Owned(label.to_string()),
                    },
                    count: 1,
                }),
            }
        }
        out.extend_from_slice(&value[at..]);
        MaskResult::Masked { value: out, hits }
    }

    /// Masks a string; the result is a string too.
    pub fn mask_str<'a>(&self, s: &'a str, col: &ColumnContext<'_>) -> Cow<'a, str> {
        match self.mask(s.as_bytes(), col) {
            MaskResult::Unchanged(_) => Cow::Borrowed(s),
            MaskResult::Masked { value, .. } => Cow::Owned(
                // Spans start and end at ASCII bytes and replacements are
                // ASCII or copied whole characters, so this cannot fail.
                String::from_utf8(value)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// The spans that `mask` would rewrite, with their detector names.
    pub fn findings(&self, value: &[u8], col: &ColumnContext<'_>) -> Vec<Finding<'_>> {
        if let Some(r) = self.rule(col) {
            return vec![Finding {
                range: 0..value.len(),
                detector: &self.rules[r].label,
            }];
        }
        let mut found = Vec::new();
        self.collect(value, ColumnHints::lazy(&col.name), &mut found);
        found
            .iter()
            .map(|f| Finding {
                range: f.start..f.end,
                detector: self.describe(f.kind).0,
            })
            .collect()
    }

    /// The scan of one value, kept out of line (with `Scan::run` and the
    /// digit fast path inlined into it) whoever calls it: the inliner
    /// otherwise moves these pieces around with any change nearby, and
    /// the row's instruction count with them (up to ~75 a row).
    ///
    /// `found` is cleared first, and the answer is whether it holds
    /// anything after: a flag in a register for the row loop to test,
    /// rather than `found` reloaded after the call.
    #[inline(never)]
    fn collect(&self, value: &[u8], hints: ColumnHints<'_>, found: &mut Vec<Found>) -> bool {
        found.clear();
        if self.en.any() {
            Scan {
                v: value,
                en: &self.en,
                column: HintsOnce::new(hints),
                out: found,
                v6_clear_until: 0,
            }
            .run();
        }
        if !self.custom.is_empty() {
            self.custom.find(value, found);
        }
        scan::merge(found);
        !found.is_empty()
    }

    fn describe(&self, kind: Kind) -> (&str, Strategy, Shape) {
        match kind {
            Kind::Builtin(d) => (
                d.as_str(),
                self.strategies[d as usize],
                match d {
                    Detector::Email => Shape::Email,
                    Detector::Secret => Shape::Secret,
                    Detector::Ip => Shape::Generic,
                    Detector::Card
                    | Detector::Ssn
                    | Detector::Phone
                    | Detector::Iban
                    | Detector::Cpf
                    | Detector::Aadhaar
                    | Detector::Nhs
                    | Detector::Dni => Shape::Number,
                },
            ),
            Kind::Custom(i) => {
                let (name, s) = &self.custom_names[usize::from(i)];
                (name, *s, Shape::Generic)
            }
            Kind::Words(i) => {
                let (name, s) = &self.word_names[usize::from(i)];
                (name, *s, Shape::Generic)
            }
        }
    }

    fn whole<'a>(&self, value: &'a [u8], rule: &RuleOut, json: bool) -> MaskResult<'a> {
        let mut out = Vec::with_capacity(value.len().max(24));
        strategy::render(
            &mut out,
            value,
            &rule.label,
            rule.strategy,
            rule.keep,
            Shape::Generic,
            &self.key,
        );
        if json {
            let text = String::from_utf8_lossy(&out);
            // A string literal always serialises.
            out = serde_json::to_string(&text)
                .map(String::into_bytes)
                .unwrap_or_else(|_| b"\"[REDACTED]\"".to_vec());
        }
        MaskResult::Masked {
            value: out,
            hits: vec![Hit {
                detector: Cow::Owned(rule.label.clone()),
                count: 1,
            }],
        }
    }
}
