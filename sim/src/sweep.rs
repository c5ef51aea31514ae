//! `--seeds A..B`: the same scenario over many seeds, with pass/fail per seed and convergence
//! percentiles.
//!
//! Owns the seed range syntax and the sweep summary; each run is an ordinary `run::run`.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::Violation;
use crate::run::RunOutput;

/// Most seeds in one sweep: a limit that keeps a typo from running for days.
pub const SEEDS_MAX: u64 = 1_000_000;

/// A range of seeds: `A..B` (B excluded) or `A..=B` (B included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    /// Excluded.
    pub end: u64,
}

impl SeedRange {
    pub fn seeds(self) -> impl Iterator<Item = u64> {
        self.start..self.end
    }

    pub fn len(self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::str::FromStr for SeedRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected a seed range A..B (B excluded) or A..=B, e.g. 0..100";
        let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = s.split_once("..") {
            (a, b, false)
        } else {
            return Err(format!("{s:?}: {expected}"));
        };
        let start: u64 = a
            .parse()
            .map_err(|_| format!("{s:?}: bad start {a:?}: {expected}"))?;
        let last: u64 = b
            .parse()
            .map_err(|_| format!("{s:?}: bad end {b:?}: {expected}"))?;
        let end = if inclusive {
            last.checked_add(1).ok_or(format!("{s:?}: end too large"))?
        } else {
            last
        };
        if end <= start {
            return Err(format!("{s:?} is empty: {expected}"));
        }
        if end - start > SEEDS_MAX {
            return Err(format!(
                "{s:?} has {} seeds: at most {SEEDS_MAX} per sweep",
                end - start
            ));
        }
        Ok(SeedRange { start, end })
    }
}

/// One seed's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub passed: bool,
    pub violations: u64,
    pub first_violation: Option<Violation>,
    /// Slowest convergence over start and all changes; null if some change never converged.
    pub max_converged_after_ms: Option<u64>,
    pub repro: String,
}

impl SeedResult {
    pub fn of(seed: u64, output: &RunOutput) -> Self {
        let r = &output.report;
        let all: Vec<Option<u64>> = std::iter::once(r.startup.converged_after_ms)
            .chain(r.changes.iter().map(|c| c.converged_after_ms))
            .collect();
        let max_converged_after_ms = if all.iter().any(Option::is_none) {
            None
        } else {
            all.into_iter().flatten().max()
        };
        SeedResult {
            seed,
            passed: r.passed,
            violations: r.violation_counts.values().sum(),
            first_violation: r.first_violation().cloned(),
            max_converged_after_ms,
            repro: output.repro.clone(),
        }
    }
}

/// Convergence times over every change of every seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConvergencePercentiles {
    /// Changes (start included) that converged before the next event or the end.
    pub converged: u64,
    /// Changes that did not.
    pub not_converged: u64,
    /// Percentiles to 5 significant digits (hdrhistogram).
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    /// Exact.
    pub max_ms: Option<u64>,
}

/// The sweep's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub scenario: String,
    pub engine: String,
    pub seeds: Vec<SeedResult>,
    pub passed: u64,
    pub failed: u64,
    pub convergence: ConvergencePercentiles,
}

/// Collects results seed by seed.
pub struct Sweep {
    scenario: String,
    engine: String,
    seeds: Vec<SeedResult>,
    histogram: Histogram<u64>,
    /// Exact, where the histogram rounds to 3 significant digits.
    max_ms: Option<u64>,
    not_converged: u64,
}

impl Sweep {
    pub fn new(scenario: &str, engine: &str) -> Self {
        Sweep {
            scenario: scenario.to_string(),
            engine: engine.to_string(),
            seeds: Vec::new(),
            // 5 significant digits: exact to the millisecond up to ~130 s, 0.001% beyond.
            histogram: Histogram::new(5).expect("5 significant digits is valid"),
            max_ms: None,
            not_converged: 0,
        }
    }

    pub fn add(&mut self, seed: u64, output: &RunOutput) {
        let r = &output.report;
        let all = std::iter::once(r.startup.converged_after_ms)
            .chain(r.changes.iter().map(|c| c.converged_after_ms));
        for c in all {
            match c {
                Some(ms) => {
                    self.histogram.record(ms).expect("auto-resizing histogram");
                    self.max_ms = self.max_ms.max(Some(ms));
                }
                None => self.not_converged += 1,
            }
        }
        self.seeds.push(SeedResult::of(seed, output));
    }

    pub fn finish(self) -> SweepSummary {
        let h = &self.histogram;
        // Never above the exact max (a bucket's highest equivalent value can be).
        let max = self.max_ms.unwrap_or(0);
        let some = |v: u64| (!h.is_empty()).then_some(v.min(max));
        let passed = self.seeds.iter().filter(|s| s.passed).count() as u64;
        SweepSummary {
            scenario: self.scenario,
            engine: self.engine,
            failed: self.seeds.len() as u64 - passed,
            passed,
            convergence: ConvergencePercentiles {
                converged: h.len(),
                not_converged: self.not_converged,
                p50_ms: some(h.value_at_quantile(0.5)),
                p99_ms: some(h.value_at_quantile(0.99)),
                max_ms: self.max_ms,
            },
            seeds: self.seeds,
        }
    }
}

impl SweepSummary {
    /// The table printed at the end of a sweep.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>10}  {:<6}  {:>10}  {:>16}  first violation",
            "seed", "result", "violations", "max converge ms"
        );
        for r in &self.seeds {
            let _ = writeln!(
                s,
                "{:>10}  {:<6}  {:>10}  {:>16}  {}",
                r.seed,
                if r.passed { "pass" } else { "FAIL" },
                r.violations,
                r.max_converged_after_ms
                    .map_or("never".to_string(), |v| v.to_string()),
                r.first_violation
                    .as_ref()
                    .map_or(String::new(), |v| format!(
                        "{} at {} ms: {}",
                        v.invariant, v.at_ms, v.detail
                    )),
            );
        }
        let c = &self.convergence;
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        let _ = writeln!(
            s,
            "\n{}: {} passed, {} failed ({} engine)",
            self.scenario, self.passed, self.failed, self.engine
        );
        let _ = writeln!(
            s,
            "convergence over {} changes: p50 {}, p99 {}, max {}; {} changes never converged",
            c.converged,
            ms(c.p50_ms),
            ms(c.p99_ms),
            ms(c.max_ms),
            c.not_converged
        );
        if c.not_converged > 0 {
            let _ = writeln!(
                s,
                "(never: a change did not converge before the next event; that fails a seed only \
                 when the gap was at least converge_within, or at the end of the run)"
            );
        }
        if self.failed > 0 {
            let _ = writeln!(s, "\nfailing seeds, to reproduce:");
            for r in self.seeds.iter().filter(|r| !r.passed) {
                let _ = writeln!(s, "  {}", r.repro);
            }
        }
        s
    }
}
