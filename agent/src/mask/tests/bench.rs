//! Throughput of the engine alone, on one core, all built-in detectors on.
//! A benchmark, not a timed test: it is ignored by default and asserts
//! nothing about speed. Run it optimised:
//!
//! ```text
//! cargo test -p hoop-agent --release --lib mask::tests::bench -- --ignored --nocapture
//! ```
//!
//! Cells come from `tests/data/mask/bench.jsonl` (typical users, orders,
//! events and ticket tables, made by `scripts/mask_eval.py`). MB/s counts
//! cell bytes in, 10^6 bytes per MB.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::*;

fn cells() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/mask/bench.jsonl"
    );
    let data = std::fs::read_to_string(path).expect("tests/data/mask/bench.jsonl");
    data.lines()
        .map(|l| serde_json::from_str::<(String, String)>(l).unwrap())
        .collect()
}

/// Nanoseconds this thread has run on a CPU (Linux), so that the figure
/// means "on one core" even when other work shares the machine; wall
/// time elsewhere.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` over all cells until `min` has passed; returns (MB/s of CPU
/// time, MB/s of wall time).
fn measure<T>(
    cells: &[T],
    bytes: usize,
    min: Duration,
    mut f: impl FnMut(&T) -> usize,
) -> (f64, f64) {
    for c in cells {
        black_box(f(c));
    }
    let (wall, cpu) = (Instant::now(), cpu_ns());
    let mut rounds = 0u64;
    while wall.elapsed() < min {
        for c in cells {
            black_box(f(black_box(c)));
        }
        rounds += 1;
    }
    let total = bytes as f64 * rounds as f64;
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu_s = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => wall_s,
    };
    (total / cpu_s / 1e6, total / wall_s / 1e6)
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn throughput() {
    let cells = cells();
    let m = all();
    let bytes: usize = cells.iter().map(|c| c.1.len()).sum();
    let masked = cells
        .iter()
        .filter(|(c, t)| m.mask(t.as_bytes(), &ColumnContext::named(c)).is_masked())
        .count();
    let min = Duration::from_secs(3);
    let per_value = measure(&cells, bytes, min, |(c, t)| {
        m.mask(t.as_bytes(), &ColumnContext::named(c))
            .as_bytes()
            .len()
    });
    // What a connector does: plan each column once per result set.
    let planned: Vec<(ColumnPlan, &str)> = cells
        .iter()
        .map(|(c, t)| (m.plan(&ColumnContext::named(c)), t.as_str()))
        .collect();
    let planned_rate = measure(&planned, bytes, min, |(p, t)| {
        m.mask_planned(t.as_bytes(), p).as_bytes().len()
    });
    let clean: Vec<(ColumnPlan, &str)> = planned
        .iter()
        .filter(|(p, t)| !m.mask_planned(t.as_bytes(), p).is_masked())
        .copied()
        .collect();
    let clean_bytes = clean.iter().map(|c| c.1.len()).sum();
    let clean_rate = measure(&clean, clean_bytes, min, |(p, t)| {
        m.mask_planned(t.as_bytes(), p).as_bytes().len()
    });
    println!(
        "mask bench: {} cells, {bytes} bytes, mean {:.1} bytes/cell, {masked} cells ({:.1}%) masked",
        cells.len(),
        bytes as f64 / cells.len() as f64,
        100.0 * masked as f64 / cells.len() as f64
    );
    println!("  MB/s per CPU-second (and per wall-second):");
    for (name, (cpu, wall)) in [
        ("mask_planned, all cells", planned_rate),
        ("mask (plan per value)", per_value),
        ("mask_planned, clean cells", clean_rate),
    ] {
        println!("  {name:<27} {cpu:>8.1} ({wall:.1})");
    }
}
