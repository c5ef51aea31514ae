//! Invariant checkers and expectations, fed by an engine's observations as the run goes.
//!
//! Each invariant is a type named after what it protects, in its own file, with a doc comment
//! saying why it matters. [`Checks`] is the [`ObservationSink`] that feeds all of them and the
//! plot timeline, and at the end hands back [`Findings`]. This module judges; it does not
//! format (that is `report`) and does not run anything (that is an `Engine`).

pub mod convergence;
pub mod false_death;
pub mod lamport;
pub mod ownership;
pub mod redistribution;
pub mod resurrection;

use std::collections::BTreeMap;

pub use convergence::{assess, Assessment, Assignment, ConvergenceChecker};
pub use false_death::NoFalseDeathChecker;
pub use lamport::LamportMonotonicChecker;
pub use ownership::OwnershipAccounting;
pub use redistribution::{
    ideal_fraction, moved_fraction, ChangeMovement, Hashmod, MovementBaseline,
    RedistributionChecker,
};
pub use resurrection::NoResurrectionChecker;

use crate::observe::{EventRecord, MemberView, NodeObservation, Observation, ObservationSink};
use crate::scenario::Scenario;
use crate::timeline::Timeline;

/// The engine broke its contract (unsorted observation, time going back...): the run's
/// numbers cannot be trusted.
pub const ENGINE_CONTRACT: &str = "engine_contract";

/// Most violations kept per invariant; the rest are only counted. A broken run can violate an
/// invariant at every observation; the first ones say what happened.
pub const VIOLATIONS_KEPT_PER_INVARIANT: usize = 50;

/// Something that must not happen, happened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Violation {
    pub at_ms: u64,
    pub invariant: String,
    pub detail: String,
}

impl Violation {
    pub fn new(at_ms: u64, invariant: &str, detail: impl Into<String>) -> Self {
        Violation {
            at_ms,
            invariant: invariant.to_string(),
            detail: detail.into(),
        }
    }
}

/// Violations as checkers push them.
pub type Violations = Vec<Violation>;

/// Everything the checkers concluded about one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// Kept violations, sorted by time then invariant (at most `VIOLATIONS_KEPT_PER_INVARIANT`
    /// per invariant).
    pub violations: Vec<Violation>,
    /// All violations, counted per invariant.
    pub violation_counts: BTreeMap<String, u64>,
    pub startup_converged_after_ms: Option<u64>,
    pub changes: Vec<ChangeFinding>,
    pub unowned_target_seconds: f64,
    pub duplicate_target_seconds: f64,
    pub false_deaths: u64,
    pub false_suspicions: u64,
    pub observations: u64,
    pub timeline: Timeline,
}

impl Findings {
    pub fn passed(&self) -> bool {
        self.violation_counts.is_empty()
    }
}

/// One logged event and what followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFinding {
    pub at_ms: u64,
    pub event: String,
    pub membership_change: bool,
    pub converged_after_ms: Option<u64>,
    /// For membership changes with converged assignments on both sides.
    pub movement: Option<ChangeMovement>,
}

/// Feeds every checker from an engine's calls; see the `Engine` contract for ordering.
pub struct Checks {
    duration_ms: u64,
    converge_within_ms: Option<u64>,
    max_redistribution_ratio: Option<f64>,
    max_false_deaths: u64,
    baseline: Box<dyn MovementBaseline>,
    lamport: LamportMonotonicChecker,
    false_death: NoFalseDeathChecker,
    resurrection: NoResurrectionChecker,
    convergence: ConvergenceChecker,
    ownership: OwnershipAccounting,
    redistribution: RedistributionChecker,
    timeline: Timeline,
    events: Vec<EventRecord>,
    violations: Violations,
    last_at_ms: Option<u64>,
    observations: u64,
}

impl Checks {
    /// Checks for `scenario`, comparing movement against hashmod.
    pub fn new(scenario: &Scenario) -> Self {
        Checks::with_baseline(scenario, Box::new(Hashmod))
    }

    pub fn with_baseline(scenario: &Scenario, baseline: Box<dyn MovementBaseline>) -> Self {
        Checks {
            duration_ms: scenario.duration_ms(),
            converge_within_ms: scenario
                .expect
                .converge_within
                .map(|d| d.as_millis() as u64),
            max_redistribution_ratio: scenario.expect.max_redistribution_ratio,
            max_false_deaths: scenario.expect.max_false_deaths,
            baseline,
            lamport: LamportMonotonicChecker::default(),
            false_death: NoFalseDeathChecker::default(),
            resurrection: NoResurrectionChecker::default(),
            convergence: ConvergenceChecker::default(),
            ownership: OwnershipAccounting::default(),
            redistribution: RedistributionChecker::default(),
            timeline: Timeline::default(),
            events: Vec::new(),
            violations: Vec::new(),
            last_at_ms: None,
            observations: 0,
        }
    }

    fn check_time(&mut self, at_ms: u64, what: &str) {
        if let Some(last) = self.last_at_ms {
            if at_ms < last {
                self.violations.push(Violation::new(
                    at_ms,
                    ENGINE_CONTRACT,
                    format!("{what} at {at_ms} ms reported after something at {last} ms: time must not go back"),
                ));
            }
        }
        if at_ms > self.duration_ms {
            self.violations.push(Violation::new(
                at_ms,
                ENGINE_CONTRACT,
                format!(
                    "{what} at {at_ms} ms is after the end of the run ({} ms)",
                    self.duration_ms
                ),
            ));
        }
        self.last_at_ms = Some(self.last_at_ms.map_or(at_ms, |l| l.max(at_ms)));
    }

    /// Runs the end-of-run checks and returns everything found.
    pub fn finish(mut self) -> Findings {
        let mut out = std::mem::take(&mut self.violations);
        if self.observations == 0 {
            out.push(Violation::new(
                0,
                ENGINE_CONTRACT,
                "the engine made no observation",
            ));
        }
        self.ownership.finish(self.duration_ms);
        self.false_death.finish(self.max_false_deaths, &mut out);
        let descriptions: Vec<String> = self.events.iter().map(|e| e.description.clone()).collect();
        self.convergence.finish(
            self.duration_ms,
            self.converge_within_ms,
            &descriptions,
            &mut out,
        );
        let movements = self.redistribution.finish(
            self.baseline.as_ref(),
            self.max_redistribution_ratio,
            &mut out,
        );
        let (startup, converged) = self.convergence.changes(self.duration_ms);
        let changes = self
            .events
            .iter()
            .zip(converged)
            .zip(movements)
            .map(|((e, c), movement)| ChangeFinding {
                at_ms: e.at_ms,
                event: e.description.clone(),
                membership_change: e.membership_change,
                converged_after_ms: c.converged_after_ms,
                movement,
            })
            .collect();

        out.sort();
        let mut violation_counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut violations = Vec::new();
        for v in out {
            let count = violation_counts.entry(v.invariant.clone()).or_default();
            *count += 1;
            if *count as usize <= VIOLATIONS_KEPT_PER_INVARIANT {
                violations.push(v);
            }
        }
        Findings {
            violations,
            violation_counts,
            startup_converged_after_ms: startup,
            changes,
            unowned_target_seconds: self.ownership.unowned_target_seconds(),
            duplicate_target_seconds: self.ownership.duplicate_target_seconds(),
            false_deaths: self.false_death.false_deaths,
            false_suspicions: self.false_death.false_suspicions,
            observations: self.observations,
            timeline: self.timeline,
        }
    }
}

impl ObservationSink for Checks {
    fn event(&mut self, record: &EventRecord) {
        self.check_time(record.at_ms, &format!("event {:?}", record.description));
        self.convergence.event(record.at_ms);
        self.redistribution
            .event(record.at_ms, record.membership_change, &record.description);
        self.timeline.event(record.at_ms, &record.description);
        self.events.push(record.clone());
    }

    fn observe(&mut self, obs: &Observation) {
        self.check_time(obs.at_ms, "observation");
        self.observations += 1;
        if let Some(problem) = obs.shape_error() {
            self.violations
                .push(Violation::new(obs.at_ms, ENGINE_CONTRACT, problem));
            return;
        }
        self.lamport.observe(obs, &mut self.violations);
        self.resurrection.observe(obs, &mut self.violations);
        self.false_death.observe(obs);
        self.ownership.observe(obs);
        let assessment = assess(obs);
        self.convergence.observe(obs.at_ms, &assessment);
        self.redistribution.observe(assessment.assignment.as_ref());
        self.timeline.observe(obs);
    }
}

/// For each member of a view (sorted by name), the index of the node of that name in `nodes`
/// (sorted by name): one linear merge instead of a search per member, which matters at 1,000
/// nodes (a million member entries per observation).
pub(crate) fn align(nodes: &[NodeObservation], members: &[MemberView]) -> Vec<Option<u32>> {
    let mut out = Vec::with_capacity(members.len());
    let mut j = 0;
    for m in members {
        while j < nodes.len() && nodes[j].name < m.name {
            j += 1;
        }
        out.push((j < nodes.len() && nodes[j].name == m.name).then_some(j as u32));
    }
    out
}
