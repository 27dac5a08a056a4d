//! Tests of the masking engine: one module per concern.

mod bench;
mod detectors;
mod digest;
mod eval;
mod prop;
mod strategies;

use super::*;
use crate::config::mask::{DetectorSet, MaskConfig, Strategy};

/// xorshift64*: the same inputs on every run.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(super) const KEY: [u8; 32] = [42; 32];

pub(super) fn masker_with(strategy: Strategy) -> Masker {
    let cfg = MaskConfig {
        detectors: DetectorSet::all(),
        strategy,
        ..MaskConfig::default()
    };
    Masker::new(&cfg, KEY).unwrap()
}

pub(super) fn all() -> Masker {
    masker_with(Strategy::Redact)
}

/// `(detector, matched text)` of every finding in a free-text column.
pub(super) fn found(m: &Masker, text: &str) -> Vec<(String, String)> {
    found_in(m, "notes", text)
}

pub(super) fn found_in(m: &Masker, column: &str, text: &str) -> Vec<(String, String)> {
    m.findings(text.as_bytes(), &ColumnContext::named(column))
        .into_iter()
        .map(|f| (f.detector.to_string(), text[f.range].to_string()))
        .collect()
}
