//! What the agreement tests share (`agreement.rs`: turmoil vs fast; `process_agreement.rs`:
//! real processes vs fast): convergence times per change over many runs, their medians, and
//! the rule for two medians to agree.
//!
//! Agreement: within a factor of [`FACTOR_MAX`], or closer than [`FLOOR_MS`] (observations are
//! 0.5 s apart and engines differ in transport detail, so "0.5 s vs 1.5 s" is resolution, not
//! disagreement). A change that never converged (before the next event) on most runs must never
//! converge on the other engine either.

#![allow(dead_code)] // each test uses its part

use sim::engine::EngineKind;
use sim::report::Report;
use sim::scenario::Scenario;

pub const FACTOR_MAX: f64 = 2.0;
pub const FLOOR_MS: u64 = 2_000;

/// Convergence after start and after each event, per run: `times[change][run]`.
pub struct Runs {
    pub changes: Vec<String>,
    pub times: Vec<Vec<Option<u64>>>,
    pub failures: Vec<String>,
}

impl Runs {
    pub fn new(scenario: &Scenario) -> Runs {
        let mut changes = vec!["start".to_string()];
        changes.extend(scenario.events.iter().map(|e| {
            format!(
                "{} {}",
                sim::duration::format_duration(e.at),
                e.action.describe()
            )
        }));
        Runs {
            times: vec![Vec::new(); changes.len()],
            changes,
            failures: Vec::new(),
        }
    }

    /// Adds one run's report (a failed run is listed with the command that reproduces it).
    pub fn add(&mut self, scenario: &Scenario, kind: EngineKind, report: &Report) {
        let seed = report.seed;
        if !report.passed {
            self.failures.push(format!(
                "{} failed on {kind} (seed {seed}): {:?}; reproduce with sim {} --seed {seed} --engine {kind}",
                scenario.name,
                report.first_violation(),
                scenario.file
            ));
        }
        self.times[0].push(report.startup.converged_after_ms);
        for (i, c) in report.changes.iter().enumerate() {
            self.times[i + 1].push(c.converged_after_ms);
        }
    }

    /// Compares these runs (engine `a`) with `other` (engine `b`) change by change: one table
    /// line per change into `table`, and a failure per disagreement.
    pub fn compare(
        &self,
        other: &Runs,
        scenario: &str,
        table: &mut String,
        failures: &mut Vec<String>,
    ) {
        for (c, change) in self.changes.iter().enumerate() {
            let (a, b) = (median(&self.times[c]), median(&other.times[c]));
            let ok = agree(a, b);
            table.push_str(&format!(
                "{scenario} / {change}: {}, {}{}\n",
                show(a),
                show(b),
                if ok { "" } else { "  DISAGREE" }
            ));
            if !ok {
                failures.push(format!(
                    "{scenario} / {change}: median convergence {} vs {} (runs: {:?} vs {:?})",
                    show(a),
                    show(b),
                    self.times[c],
                    other.times[c]
                ));
            }
        }
    }
}

/// The median, "never" (`None`) counting as longer than any time.
pub fn median(times: &[Option<u64>]) -> Option<u64> {
    let mut sorted: Vec<u64> = times.iter().map(|t| t.unwrap_or(u64::MAX)).collect();
    sorted.sort_unstable();
    let m = sorted[sorted.len() / 2];
    (m != u64::MAX).then_some(m)
}

pub fn agree(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (lo, hi) = (a.min(b), a.max(b));
            hi - lo < FLOOR_MS || hi as f64 <= FACTOR_MAX * lo as f64
        }
        _ => false,
    }
}

pub fn show(ms: Option<u64>) -> String {
    ms.map_or("never".to_string(), |v| format!("{v} ms"))
}
