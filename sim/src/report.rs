//! The run's report: `report.json` (the contract of SIMULATION.md, byte-identical for the same
//! scenario and seed), `report.md` for people, and the plots.
//!
//! Owns the report's shape and formatting. Numbers come from `check::Findings` and the engine's
//! counters; nothing here judges or measures. No wall-clock figure may enter these files (they go
//! to stdout), and no HashMap: structs and BTreeMaps only, floats rounded to fixed decimals.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::check::{Findings, Violation};
use crate::duration::format_duration;
use crate::engine::EngineKind;
use crate::observe::{Counters, FaultCounts, WallFigures};
use crate::scenario::{Action, Scenario};

/// Decimals kept for fractions and ratios: 1e-6 resolves one target in a million.
pub const FRACTION_DECIMALS: i32 = 6;
/// Decimals kept for target-seconds: milliseconds.
pub const SECONDS_DECIMALS: i32 = 3;

/// `report.json`. Field names and meanings are a contract (SIMULATION.md): extend, never
/// rename or drop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    /// Nodes started at t=0 (`cluster.nodes`).
    pub nodes: u32,
    /// Targets every node lists at start (`targets.count`).
    pub targets: u32,
    pub duration_ms: u64,
    /// No invariant or expectation failed.
    pub passed: bool,
    /// The first violations of each invariant, by time.
    pub violations: Vec<Violation>,
    /// One per event, in order.
    pub changes: Vec<ChangeReport>,
    pub ownership: OwnershipReport,
    pub messages: MessagesReport,
    pub engine: String,
    pub description: String,
    /// Nodes joined by events.
    pub nodes_joined: u32,
    pub expect: ExpectReport,
    /// All violations, counted per invariant (the list above is capped).
    pub violation_counts: BTreeMap<String, u64>,
    pub startup: StartupReport,
    pub false_positives: FalsePositivesReport,
    pub faults: FaultCounts,
    pub observations: u64,
    /// Wall-clock figures of a run on real processes (`process` engine only; absent from the
    /// deterministic engines' reports, which stay byte-identical per seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<WallFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    pub at_ms: u64,
    pub event: String,
    /// Null when not converged before the next later event or the end of the run.
    pub converged_after_ms: Option<u64>,
    /// Fraction of targets whose owner changed between the converged assignments before and
    /// after; null for events that are not membership changes or without both assignments.
    pub moved_fraction: Option<f64>,
    /// Least fraction any balanced assignment moves (1/(N+1) join, 1/N leave).
    pub ideal_fraction: Option<f64>,
    /// Prometheus hashmod's moved fraction on the same participant change.
    pub hashmod_moved_fraction: Option<f64>,
    pub membership_change: bool,
    pub participants_before: Option<u32>,
    pub participants_after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnershipReport {
    /// Time each wanted target had no live owner, summed over targets.
    pub unowned_target_seconds: f64,
    /// Time x (owners - 1) for targets owned more than once, summed over targets.
    pub duplicate_target_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessagesReport {
    pub sent: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectReport {
    pub converge_within_ms: Option<u64>,
    pub max_redistribution_ratio: Option<f64>,
    pub max_false_deaths: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartupReport {
    /// From t=0 to the first converged observation, null if not before the first event/end.
    pub converged_after_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FalsePositivesReport {
    /// Live, reachable members declared dead.
    pub deaths: u64,
    /// Live, reachable members newly suspected (refuted or not).
    pub suspicions: u64,
}

/// `x` rounded to `decimals` places, so that the JSON text does not depend on float noise.
pub fn round_to(x: f64, decimals: i32) -> f64 {
    assert!(x.is_finite(), "report numbers are finite, got {x}");
    let scale = 10f64.powi(decimals);
    let r = (x * scale).round() / scale;
    if r == 0.0 {
        0.0 // no "-0.0"
    } else {
        r
    }
}

impl Report {
    pub fn build(
        scenario: &Scenario,
        seed: u64,
        engine: EngineKind,
        findings: &Findings,
        counters: &Counters,
    ) -> Report {
        let fraction = |x: Option<f64>| x.map(|x| round_to(x, FRACTION_DECIMALS));
        let changes = findings
            .changes
            .iter()
            .map(|c| {
                let m = c.movement.as_ref();
                ChangeReport {
                    at_ms: c.at_ms,
                    event: c.event.clone(),
                    converged_after_ms: c.converged_after_ms,
                    moved_fraction: fraction(m.and_then(|m| m.moved_fraction)),
                    ideal_fraction: fraction(m.map(|m| m.ideal_fraction)),
                    hashmod_moved_fraction: fraction(m.and_then(|m| m.hashmod_moved_fraction)),
                    membership_change: c.membership_change,
                    participants_before: m.map(|m| m.participants_before),
                    participants_after: m.map(|m| m.participants_after),
                }
            })
            .collect();
        Report {
            scenario: scenario.name.clone(),
            seed,
            nodes: scenario.cluster.nodes,
            targets: scenario.targets.count,
            duration_ms: scenario.duration_ms(),
            passed: findings.passed(),
            violations: findings.violations.clone(),
            changes,
            ownership: OwnershipReport {
                unowned_target_seconds: round_to(findings.unowned_target_seconds, SECONDS_DECIMALS),
                duplicate_target_seconds: round_to(
                    findings.duplicate_target_seconds,
                    SECONDS_DECIMALS,
                ),
            },
            messages: MessagesReport {
                sent: counters.messages_sent,
                bytes: counters.bytes_sent,
            },
            engine: engine.as_str().to_string(),
            description: scenario.description.clone(),
            nodes_joined: scenario
                .events
                .iter()
                .filter(|e| matches!(e.action, Action::Join(_)))
                .count() as u32,
            expect: ExpectReport {
                converge_within_ms: scenario
                    .expect
                    .converge_within
                    .map(|d| d.as_millis() as u64),
                max_redistribution_ratio: scenario.expect.max_redistribution_ratio,
                max_false_deaths: scenario.expect.max_false_deaths,
            },
            violation_counts: findings.violation_counts.clone(),
            startup: StartupReport {
                converged_after_ms: findings.startup_converged_after_ms,
            },
            false_positives: FalsePositivesReport {
                deaths: findings.false_deaths,
                suspicions: findings.false_suspicions,
            },
            faults: counters.faults,
            observations: findings.observations,
            process: None,
        }
    }

    /// The `report.json` text: pretty JSON, fields in declaration order, trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report always serializes");
        s.push('\n');
        s
    }

    /// The first violation (by time), for the one-line failure message.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.violations.iter().min_by_key(|v| v.at_ms)
    }

    /// The `report.md` text. `repro` is the command that reproduces this run.
    pub fn to_markdown(&self, repro: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Simulation report: {}\n", self.scenario);
        if !self.description.is_empty() {
            let _ = writeln!(md, "{}\n", self.description);
        }
        if self.passed {
            let _ = writeln!(
                md,
                "**Verdict: PASSED.** Every invariant and expectation held.\n"
            );
        } else {
            let counts: Vec<String> = self
                .violation_counts
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect();
            let _ = writeln!(md, "**Verdict: FAILED** ({}).\n", counts.join(", "));
        }
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| engine | {} |", self.engine);
        let _ = writeln!(md, "| seed | {} |", self.seed);
        let _ = writeln!(
            md,
            "| nodes | {} at start, {} joined later |",
            self.nodes, self.nodes_joined
        );
        let _ = writeln!(md, "| targets | {} |", self.targets);
        // The process engine runs in real time (its packets dropped are kernel packets).
        let time = if self.process.is_some() {
            "real time"
        } else {
            "simulated time"
        };
        let _ = writeln!(md, "| {time} | {} |", seconds(self.duration_ms));
        let _ = writeln!(md, "| observations | {} |", self.observations);
        let _ = writeln!(
            md,
            "| messages sent | {} ({} bytes) |",
            self.messages.sent, self.messages.bytes
        );
        let f = &self.faults;
        let _ = writeln!(
            md,
            "| faults injected | {} partitions, {} heals, {} crashes, {} restarts, {} leaves, {} joins, {} config changes, {} network changes, {} messages dropped |",
            f.partitions, f.heals, f.crashes, f.restarts, f.leaves, f.joins, f.config_changes, f.network_changes, f.dropped_messages
        );
        let _ = writeln!(
            md,
            "| false positives | {} deaths (tolerated: {}), {} suspicions |",
            self.false_positives.deaths,
            self.expect.max_false_deaths,
            self.false_positives.suspicions
        );
        let _ = writeln!(
            md,
            "| unowned target-seconds | {} |",
            self.ownership.unowned_target_seconds
        );
        let _ = writeln!(
            md,
            "| duplicate target-seconds | {} |",
            self.ownership.duplicate_target_seconds
        );
        let expect_within = self
            .expect
            .converge_within_ms
            .map_or("none".to_string(), seconds);
        let expect_ratio = self
            .expect
            .max_redistribution_ratio
            .map_or("none".to_string(), |r| r.to_string());
        let _ = writeln!(md, "| expected convergence within | {expect_within} |");
        let _ = writeln!(
            md,
            "| expected redistribution ratio at most | {expect_ratio} |"
        );
        if let Some(p) = &self.process {
            let _ = writeln!(
                md,
                "| real processes | {} agents started; all answering {} ms after spawning; {} of wall time |",
                p.processes_started,
                p.startup_ms,
                seconds(p.wall_ms)
            );
            let _ = writeln!(
                md,
                "| observation lag | median {} ms, max {} ms; {} stale node observations |",
                p.observation_lag_p50_ms, p.observation_lag_max_ms, p.stale_node_observations
            );
            let _ = writeln!(
                md,
                "| agents' own scrape counts vs their views | {} checked, {} differed |",
                p.owned_checks, p.owned_mismatches
            );
            let _ = writeln!(md, "| latency | {} |", p.latency);
        }
        let _ = writeln!(md);

        let _ = writeln!(md, "## What happened\n");
        let _ = writeln!(
            md,
            "Start: {} nodes {}.\n",
            self.nodes,
            match self.startup.converged_after_ms {
                Some(ms) => format!("converged after {}", seconds(ms)),
                None => "did not converge before the first event".to_string(),
            }
        );
        if self.changes.is_empty() {
            let _ = writeln!(md, "No events.\n");
        } else {
            let _ = writeln!(
                md,
                "| at | event | converged after | moved | ideal | hashmod moved | participants |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|---|");
            for c in &self.changes {
                let participants = match (c.participants_before, c.participants_after) {
                    (Some(b), Some(a)) => format!("{b} -> {a}"),
                    _ => "-".to_string(),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    seconds(c.at_ms),
                    c.event,
                    c.converged_after_ms
                        .map_or("not converged".to_string(), seconds),
                    percent(c.moved_fraction),
                    percent(c.ideal_fraction),
                    percent(c.hashmod_moved_fraction),
                    participants
                );
            }
            let _ = writeln!(md);
        }
        if !self.violations.is_empty() {
            let _ = writeln!(md, "## Violations\n");
            for v in &self.violations {
                let _ = writeln!(md, "- {} `{}`: {}", seconds(v.at_ms), v.invariant, v.detail);
            }
            let kept = self.violations.len() as u64;
            let total: u64 = self.violation_counts.values().sum();
            if total > kept {
                let _ = writeln!(
                    md,
                    "- ... {} more (see violation_counts in report.json)",
                    total - kept
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Plots\n");
        let _ = writeln!(md, "![participants seen by each node](participants.svg)\n");
        let _ = writeln!(md, "![targets owned by each node](owned_targets.svg)\n");
        let _ = writeln!(md, "## Reproduce\n\n```\n{repro}\n```");
        md
    }
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format_duration(std::time::Duration::from_millis(ms))
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |x| format!("{:.2}%", x * 100.0))
}

/// Writes `report.json` and `report.md` into `dir` (created if missing).
pub fn write_reports(dir: &Path, report: &Report, repro: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), report.to_json())?;
    std::fs::write(dir.join("report.md"), report.to_markdown(repro))?;
    Ok(())
}
