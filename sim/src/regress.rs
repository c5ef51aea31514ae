//! `sim regress`: the regression gate. Reruns every scenario of a folder with its own seed and
//! engine and compares the new report with the committed baseline (`reports/<name>/report.json`).
//!
//! What counts as a regression (each with a tolerance, [`Tolerance`]):
//! - a scenario whose baseline passed now fails;
//! - after start or any event, the cluster converges later than the baseline by more than
//!   `max(converge_slack, converge_slack_fraction x baseline)`, or no longer converges;
//! - on any membership change, `moved_fraction / ideal_fraction` is above the baseline's by more
//!   than `ratio_slack`, or can no longer be measured;
//! - the baseline is missing, or no longer describes the scenario (other seed, engine or events).
//!
//! Better figures never fail the gate; they are marked so the baseline can be refreshed
//! (`--update`). This module owns the comparison and its table; running is `run`'s job.
//! Figures are read back from report.json text for both sides, so the baseline and the rerun
//! are interpreted by the same code.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::EngineRegistry;
use crate::run::{run, write_outputs};
use crate::scenario::Scenario;

/// How much worse than the baseline a figure may get before the gate fails.
///
/// Runs are deterministic, so an unchanged build reproduces the baseline exactly; the slack is
/// for protocol or engine changes that move timings a little (one observation is 0.5 s, a probe
/// period 1-2 s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute slack on `moved_fraction / ideal_fraction`. Default 0.05 (5% of the ideal).
    pub ratio_slack: f64,
    /// Absolute slack on a convergence time, in ms. Default 2,000 (two probe periods).
    pub converge_slack_ms: u64,
    /// Relative slack on a convergence time (0.25 = 25%); the larger of the two applies.
    /// Default 0.25.
    pub converge_slack_fraction: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            ratio_slack: 0.05,
            converge_slack_ms: 2_000,
            converge_slack_fraction: 0.25,
        }
    }
}

impl Tolerance {
    /// The latest convergence time that still passes against a baseline of `baseline_ms`.
    pub fn converge_limit_ms(&self, baseline_ms: u64) -> u64 {
        let relative = (baseline_ms as f64 * self.converge_slack_fraction).ceil() as u64;
        baseline_ms + self.converge_slack_ms.max(relative)
    }

    /// One line for the table's header.
    pub fn describe(&self) -> String {
        format!(
            "tolerance: moved/ideal +{}, convergence +max({} ms, {}%)",
            self.ratio_slack,
            self.converge_slack_ms,
            self.converge_slack_fraction * 100.0
        )
    }
}

/// The figures of one report the gate compares, read from report.json text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Figures {
    pub scenario: String,
    pub seed: u64,
    pub engine: String,
    pub passed: bool,
    pub startup: StartupFigures,
    pub changes: Vec<ChangeFigures>,
    #[serde(default)]
    pub violation_counts: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StartupFigures {
    pub converged_after_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChangeFigures {
    pub at_ms: u64,
    pub event: String,
    pub converged_after_ms: Option<u64>,
    pub moved_fraction: Option<f64>,
    pub ideal_fraction: Option<f64>,
    #[serde(default)]
    pub membership_change: bool,
}

impl ChangeFigures {
    /// `moved_fraction / ideal_fraction`, when both are known and the ideal is not zero.
    pub fn ratio(&self) -> Option<f64> {
        match (self.moved_fraction, self.ideal_fraction) {
            (Some(m), Some(i)) if i > 0.0 => Some(m / i),
            _ => None,
        }
    }
}

impl Figures {
    pub fn from_json(text: &str) -> Result<Figures, String> {
        serde_json::from_str(text).map_err(|e| format!("not a report.json: {e}"))
    }

    pub fn load(path: &Path) -> Result<Figures, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Figures::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How one figure compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Within tolerance (or identical).
    Ok,
    /// Better than the baseline: fine; refresh the baseline to lock it in.
    Better,
    /// Worse than the baseline beyond tolerance: fails the gate.
    Regressed,
    /// The baseline no longer describes this scenario (other seed, engine or events), or is
    /// missing: fails the gate until the baseline is regenerated.
    Stale,
}

impl Verdict {
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::Stale)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Better => "better",
            Verdict::Regressed => "REGRESSED",
            Verdict::Stale => "STALE",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the gate's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub scenario: String,
    /// What is compared: `verdict`, `start: converged`, `30s join node-9: moved/ideal`...
    pub change: String,
    pub baseline: String,
    pub now: String,
    pub verdict: Verdict,
}

fn ms(v: Option<u64>) -> String {
    v.map_or("never".to_string(), |v| format!("{v} ms"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

fn passed(figures: &Figures) -> String {
    if figures.passed {
        "passed".to_string()
    } else {
        let kinds: Vec<&str> = figures
            .violation_counts
            .keys()
            .map(String::as_str)
            .collect();
        if kinds.is_empty() {
            "failed".to_string()
        } else {
            format!("failed ({})", kinds.join(", "))
        }
    }
}

fn at(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// Compares a rerun (`now`) with its baseline, figure by figure.
pub fn compare(baseline: &Figures, now: &Figures, tol: &Tolerance) -> Vec<Row> {
    let name = now.scenario.clone();
    let row = |change: String, b: String, n: String, verdict: Verdict| Row {
        scenario: name.clone(),
        change,
        baseline: b,
        now: n,
        verdict,
    };
    let mut rows = Vec::new();
    if baseline.seed != now.seed || baseline.engine != now.engine {
        rows.push(row(
            "run".into(),
            format!("seed {} on {}", baseline.seed, baseline.engine),
            format!("seed {} on {}", now.seed, now.engine),
            Verdict::Stale,
        ));
        return rows;
    }
    let events = |f: &Figures| -> Vec<(u64, String)> {
        f.changes
            .iter()
            .map(|c| (c.at_ms, c.event.clone()))
            .collect()
    };
    if events(baseline) != events(now) {
        rows.push(row(
            "events".into(),
            format!("{} events", baseline.changes.len()),
            format!("{} events, not the same", now.changes.len()),
            Verdict::Stale,
        ));
        return rows;
    }
    let verdict = match (baseline.passed, now.passed) {
        (true, false) => Verdict::Regressed,
        (false, true) => Verdict::Better,
        _ => Verdict::Ok,
    };
    rows.push(row(
        "verdict".into(),
        passed(baseline),
        passed(now),
        verdict,
    ));
    rows.push(row(
        "start: converged".into(),
        ms(baseline.startup.converged_after_ms),
        ms(now.startup.converged_after_ms),
        converge_verdict(
            baseline.startup.converged_after_ms,
            now.startup.converged_after_ms,
            tol,
        ),
    ));
    for (b, n) in baseline.changes.iter().zip(&now.changes) {
        let label = format!("{} {}", at(b.at_ms), b.event);
        rows.push(row(
            format!("{label}: converged"),
            ms(b.converged_after_ms),
            ms(n.converged_after_ms),
            converge_verdict(b.converged_after_ms, n.converged_after_ms, tol),
        ));
        if b.membership_change || n.membership_change {
            rows.push(row(
                format!("{label}: moved/ideal"),
                ratio(b.ratio()),
                ratio(n.ratio()),
                ratio_verdict(b.ratio(), n.ratio(), tol),
            ));
        }
    }
    rows
}

/// A convergence time against its baseline; `None` = did not converge.
pub fn converge_verdict(baseline: Option<u64>, now: Option<u64>, tol: &Tolerance) -> Verdict {
    match (baseline, now) {
        (Some(b), Some(n)) if n > tol.converge_limit_ms(b) => Verdict::Regressed,
        (Some(b), Some(n)) if n < b => Verdict::Better,
        (Some(_), None) => Verdict::Regressed,
        (None, Some(_)) => Verdict::Better,
        _ => Verdict::Ok,
    }
}

/// A moved/ideal ratio against its baseline; `None` = not measurable (no converged
/// assignment on one side of the change).
pub fn ratio_verdict(baseline: Option<f64>, now: Option<f64>, tol: &Tolerance) -> Verdict {
    // Reports round fractions to 6 decimals; compare with a little room for that.
    const ROUNDING: f64 = 1e-6;
    match (baseline, now) {
        (Some(b), Some(n)) if n > b + tol.ratio_slack + ROUNDING => Verdict::Regressed,
        (Some(b), Some(n)) if n < b - ROUNDING => Verdict::Better,
        (Some(_), None) => Verdict::Regressed,
        (None, Some(_)) => Verdict::Better,
        _ => Verdict::Ok,
    }
}

/// The gate's outcome over every scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateReport {
    pub rows: Vec<Row>,
    /// Scenarios rerun, in file-name order.
    pub scenarios: Vec<String>,
}

impl GateReport {
    pub fn failures(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.verdict.fails()).collect()
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// The table: scenario, change, baseline, now, verdict.
    pub fn to_text(&self) -> String {
        let header = ["scenario", "change", "baseline", "now", "verdict"];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.clone(),
                    r.change.clone(),
                    r.baseline.clone(),
                    r.now.clone(),
                    r.verdict.to_string(),
                ]
            })
            .collect();
        let mut width = header.map(str::len);
        for c in &cells {
            for (w, s) in width.iter_mut().zip(c) {
                *w = (*w).max(s.chars().count());
            }
        }
        let mut s = String::new();
        let line = |s: &mut String, c: [&str; 5]| {
            let _ = writeln!(
                s,
                "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3]
            );
        };
        line(&mut s, header);
        for c in &cells {
            line(&mut s, [&c[0], &c[1], &c[2], &c[3], &c[4]]);
        }
        s
    }
}

/// Where the gate reads and writes.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Committed baselines: `<baseline>/<scenario name>/report.json`.
    pub baseline: PathBuf,
    /// Scenario files (`*.toml`), each rerun with its own seed and engine.
    pub scenarios: PathBuf,
    /// Where reruns write their reports (`<out>/<scenario name>/`).
    pub out: PathBuf,
    pub tolerance: Tolerance,
}

/// Why the gate could not run at all (as opposed to finding a regression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateError(pub String);

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GateError {}

/// The scenario files of a folder, sorted by path.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, GateError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        GateError(format!(
            "{}: cannot read the scenarios folder: {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(GateError(format!(
            "{}: no scenario files (*.toml)",
            dir.display()
        )));
    }
    Ok(files)
}

/// Reruns one scenario file with its own seed and engine, writes the reports under `out`, and
/// returns the rerun's figures.
pub fn rerun(
    file: &Path,
    registry: &EngineRegistry,
    out: &Path,
) -> Result<(Scenario, Figures), GateError> {
    let scenario = Scenario::load(file).map_err(|e| GateError(e.to_string()))?;
    let kind = scenario.engine.unwrap_or_default();
    let engine = registry
        .require(kind)
        .map_err(|e| GateError(format!("{}: {e}", scenario.file)))?;
    let output = run(&scenario, scenario.seed, engine)
        .map_err(|e| GateError(format!("{} (seed {}): {e}", scenario.file, scenario.seed)))?;
    let dir = out.join(&scenario.name);
    write_outputs(&dir, &output, scenario.duration_ms())
        .map_err(|e| GateError(format!("{}: cannot write the rerun: {e}", dir.display())))?;
    let figures =
        Figures::from_json(&output.report.to_json()).expect("a report reads back as figures");
    Ok((scenario, figures))
}

/// Runs the gate: every scenario of `config.scenarios` against `config.baseline`. `progress`
/// is told each scenario's name before it runs.
pub fn run_gate(
    config: &GateConfig,
    registry: &EngineRegistry,
    mut progress: impl FnMut(&str),
) -> Result<GateReport, GateError> {
    let mut report = GateReport::default();
    for file in scenario_files(&config.scenarios)? {
        progress(&file.display().to_string());
        let (scenario, now) = rerun(&file, registry, &config.out)?;
        report.scenarios.push(scenario.name.clone());
        let path = config.baseline.join(&scenario.name).join("report.json");
        match Figures::load(&path) {
            Ok(baseline) => report
                .rows
                .extend(compare(&baseline, &now, &config.tolerance)),
            Err(why) => report.rows.push(Row {
                scenario: scenario.name.clone(),
                change: "baseline".into(),
                baseline: format!("missing ({why})"),
                now: passed(&now),
                verdict: Verdict::Stale,
            }),
        }
    }
    Ok(report)
}

/// Copies every rerun's files (`<out>/<name>/*`) over the baselines (`<baseline>/<name>/`):
/// `sim regress --update`, after a change whose effect on the figures is intended.
pub fn update_baselines(config: &GateConfig, names: &[String]) -> Result<(), GateError> {
    for name in names {
        let from = config.out.join(name);
        let to = config.baseline.join(name);
        std::fs::create_dir_all(&to)
            .map_err(|e| GateError(format!("{}: cannot create: {e}", to.display())))?;
        let entries = std::fs::read_dir(&from)
            .map_err(|e| GateError(format!("{}: cannot read: {e}", from.display())))?;
        for entry in entries {
            let path = entry
                .map_err(|e| GateError(format!("{}: {e}", from.display())))?
                .path();
            if let Some(file) = path.file_name() {
                std::fs::copy(&path, to.join(file)).map_err(|e| {
                    GateError(format!(
                        "cannot copy {} to {}: {e}",
                        path.display(),
                        to.display()
                    ))
                })?;
            }
        }
    }
    Ok(())
}
