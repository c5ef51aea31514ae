//! One run: scenario + seed + engine -> checks -> report files. Also the command line that
//! reproduces a run.
//!
//! Owns the order of the steps and where files go; the steps themselves live in `engine`,
//! `check`, `report` and `plot`.

use std::path::{Path, PathBuf};

use crate::check::{Checks, Findings};
use crate::engine::{Engine, EngineError, EngineKind};
use crate::observe::{Counters, ObservationSink};
use crate::plot::write_plots;
use crate::report::{write_reports, Report};
use crate::scenario::Scenario;

/// The result of one run, before anything is written.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub report: Report,
    pub findings: Findings,
    /// The command that reproduces this run.
    pub repro: String,
}

/// Runs `scenario` on `engine` with `seed` and checks everything.
pub fn run(scenario: &Scenario, seed: u64, engine: &dyn Engine) -> Result<RunOutput, EngineError> {
    run_with_progress(scenario, seed, engine, &mut |_| {})
}

/// [`run`], telling `progress` the simulated time (ms) of every observation as it is checked:
/// a progress bar for runs that take minutes.
pub fn run_with_progress(
    scenario: &Scenario,
    seed: u64,
    engine: &dyn Engine,
    progress: &mut dyn FnMut(u64),
) -> Result<RunOutput, EngineError> {
    let mut wall = None;
    let mut output = analyze(scenario, seed, engine.kind(), |sink| {
        let mut tee = Progress {
            inner: sink,
            progress,
        };
        engine.run(scenario, seed, &mut tee).map(|outcome| {
            wall = outcome.wall;
            outcome.counters
        })
    })?;
    output.report.process = wall;
    Ok(output)
}

/// Passes everything on to the checks, and the time of each observation to a callback.
struct Progress<'a> {
    inner: &'a mut dyn ObservationSink,
    progress: &'a mut dyn FnMut(u64),
}

impl ObservationSink for Progress<'_> {
    fn event(&mut self, record: &crate::observe::EventRecord) {
        self.inner.event(record);
    }

    fn observe(&mut self, observation: &crate::observe::Observation) {
        self.inner.observe(observation);
        (self.progress)(observation.at_ms);
    }
}

/// Checks whatever `feed` sends (an engine, or a recorded run replayed) as a run of `scenario`.
pub fn analyze<E>(
    scenario: &Scenario,
    seed: u64,
    engine: EngineKind,
    feed: impl FnOnce(&mut dyn ObservationSink) -> Result<Counters, E>,
) -> Result<RunOutput, E> {
    let mut checks = Checks::new(scenario);
    let counters = feed(&mut checks)?;
    let findings = checks.finish();
    let report = Report::build(scenario, seed, engine, &findings, &counters);
    Ok(RunOutput {
        report,
        findings,
        repro: repro_command(scenario, seed, engine),
    })
}

/// `sim <file> --seed <seed> --engine <engine>`.
pub fn repro_command(scenario: &Scenario, seed: u64, engine: EngineKind) -> String {
    // The embedded default is named after the file it was built from; the command names
    // that file, which exists from the repository root.
    let file = scenario
        .file
        .strip_suffix(EMBEDDED_SUFFIX)
        .unwrap_or(&scenario.file);
    format!("sim {} --seed {seed} --engine {engine}", shell_word(file))
}

/// What the embedded default scenario's name adds to its file's path.
pub const EMBEDDED_SUFFIX: &str = " (embedded default)";

/// The default report folder: `reports/<scenario name>/`.
pub fn default_out_dir(scenario: &Scenario) -> PathBuf {
    Path::new("reports").join(&scenario.name)
}

/// Writes report.json, report.md and the plots into `dir`.
pub fn write_outputs(dir: &Path, output: &RunOutput, duration_ms: u64) -> std::io::Result<()> {
    write_reports(dir, &output.report, &output.repro)?;
    write_plots(dir, &output.findings.timeline, duration_ms)
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
