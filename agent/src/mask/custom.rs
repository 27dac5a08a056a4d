//! Configured detectors: named regular expressions and deny-word lists.
//! Each regex is one extra pass over a value (the `regex` crate skips
//! ahead with its literal prefilters); all word lists together are one
//! Aho-Corasick pass.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use super::scan::{Found, Kind, NO_AT};
use crate::config::mask::{CustomRule, MAX_REGEX_SIZE, WordList};

#[derive(Debug)]
pub(crate) struct Custom {
    regexes: Vec<Regex>,
    words: Option<AhoCorasick>,
    /// For each word pattern: its list and whether it must be a whole word.
    word_owner: Vec<(u16, bool)>,
    /// No regex and no word list: one flag for `Masker::collect` to test
    /// on every value, not a length and an `Option` (measured: 2
    /// instructions a value less).
    empty: bool,
}

impl Custom {
    pub fn new(custom: &[CustomRule], lists: &[WordList]) -> Result<Custom, String> {
        let mut regexes = Vec::with_capacity(custom.len());
        for (i, c) in custom.iter().enumerate() {
            let re = RegexBuilder::new(&c.regex)
                .size_limit(MAX_REGEX_SIZE)
                .build()
                .map_err(|e| format!("custom[{i}].regex: {e}"))?;
            regexes.push(re);
        }
        let mut patterns = Vec::new();
        let mut word_owner = Vec::new();
        for (i, l) in lists.iter().enumerate() {
            for w in &l.words {
                let w = w.trim();
                if !w.is_empty() {
                    patterns.push(w.to_string());
                    word_owner.push((i as u16, l.whole_word));
                }
            }
        }
        let words = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&patterns)
                    .map_err(|e| format!("words: {e}"))?,
            )
        };
        Ok(Custom {
            empty: regexes.is_empty() && words.is_none(),
            regexes,
            words,
            word_owner,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    pub fn find(&self, v: &[u8], out: &mut Vec<Found>) {
        for (i, re) in self.regexes.iter().enumerate() {
            for m in re.find_iter(v) {
                if !m.is_empty() {
                    out.push(Found {
                        start: m.start(),
                        end: m.end(),
                        kind: Kind::Custom(i as u16),
                        at: NO_AT,
                    });
                }
            }
        }
        if let Some(ac) = &self.words {
            for m in ac.find_iter(v) {
                let (list, whole) = self.word_owner[m.pattern().as_usize()];
                let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
                if whole
                    && ((m.start() > 0 && word(v[m.start() - 1]))
                        || v.get(m.end()).is_some_and(|&b| word(b)))
                {
                    continue;
                }
                out.push(Found {
                    start: m.start(),
                    end: m.end(),
                    kind: Kind::Words(list),
                    at: NO_AT,
                });
            }
        }
    }
}
