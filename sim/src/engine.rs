//! The seam between the testbed and the engines that run nodes.
//!
//! An [`Engine`] takes a validated [`Scenario`] and a seed, runs the cluster in simulated time,
//! and reports what it saw to an [`ObservationSink`] as it goes; it returns the counters it kept.
//! Everything after that (invariants, expectations, reports) is engine-independent and lives in
//! `check` and `report`. This module owns the trait and the registry of engines built into this
//! binary; it must not contain an engine's internals.

use std::fmt;
use std::str::FromStr;

use crate::observe::{Counters, ObservationSink, WallFigures};
use crate::scenario::Scenario;

/// The engines the scenario format knows (`engine = "..."`, `--engine`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EngineKind {
    /// The real driver and HTTP/2 transport on turmoil's simulated TCP. Fidelity. Default.
    #[default]
    Turmoil,
    /// The sans-I/O core driven directly, discrete events. Scale.
    Fast,
    /// Real `agent run` processes in network namespaces, in real time. Production's behaviour,
    /// not deterministic.
    Process,
}

impl EngineKind {
    pub const ALL: [EngineKind; 3] = [EngineKind::Turmoil, EngineKind::Fast, EngineKind::Process];

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Turmoil => "turmoil",
            EngineKind::Fast => "fast",
            EngineKind::Process => "process",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "turmoil" => Ok(EngineKind::Turmoil),
            "fast" => Ok(EngineKind::Fast),
            "process" => Ok(EngineKind::Process),
            other => Err(format!(
                "unknown engine {other:?}: expected \"turmoil\", \"fast\" or \"process\""
            )),
        }
    }
}

/// What an engine hands back after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOutcome {
    pub counters: Counters,
    /// Wall-clock figures, from the engine that runs in real time (`process`) only: they go to
    /// report.json's `process` section, which the deterministic engines never write.
    pub wall: Option<WallFigures>,
}

/// A run that could not be carried out (as opposed to a run whose invariants failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The scenario asks for something this engine cannot do (e.g. more nodes than it supports).
    Unsupported(String),
    /// The engine itself failed (a bug, a node task panicked...).
    Failed(String),
    /// The run was stopped by a signal (Ctrl-C); what the engine had created is gone.
    Interrupted(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Unsupported(why) => {
                write!(f, "scenario not supported by this engine: {why}")
            }
            EngineError::Failed(why) => write!(f, "engine failed: {why}"),
            EngineError::Interrupted(why) => write!(f, "interrupted: {why}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Runs a scenario in simulated time.
///
/// Contract (every engine must keep it, or their reports stop being comparable):
/// - Deterministic: same scenario + seed gives the same calls to the sink. Every RNG is seeded
///   from `seed`; no wall clock, no HashMap iteration order in anything that reaches the sink.
///   The one exception is the `process` engine, whose time is the wall clock and whose nodes
///   are real processes on a real kernel network: it keeps every other rule, and says so by
///   returning [`EngineOutcome::wall`].
/// - Starts `scenario.initial_nodes()` at t=0, each joining `scenario.join_peers(name)`.
/// - Applies each `scenario.events[i]` at its `at`, then calls `sink.event` with
///   `EventRecord::from_scenario(event)`. Faults an engine adds on its own (from the seed) are
///   reported the same way with `EventRecord::new`.
/// - Calls `sink.observe` at a fixed simulated interval (`OBSERVATION_INTERVAL_MS` unless the
///   engine documents another), first at t=0 and last at or before `scenario.duration`.
///   Calls come in non-decreasing time; an event applied at t is reported before the
///   observation taken at t.
/// - Returns the counters of messages, bytes and faults injected.
pub trait Engine {
    fn kind(&self) -> EngineKind;
    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        sink: &mut dyn ObservationSink,
    ) -> Result<EngineOutcome, EngineError>;
}

/// The engines built into this binary, by kind.
pub struct EngineRegistry {
    engines: Vec<Box<dyn Engine>>,
}

impl EngineRegistry {
    /// An empty registry (tests register their own engines).
    pub fn empty() -> Self {
        EngineRegistry {
            engines: Vec::new(),
        }
    }

    /// The engines this build provides. Engines register here as they land:
    /// `registry.register(Box::new(crate::engines::turmoil::TurmoilEngine::default()))`.
    pub fn standard() -> Self {
        let mut registry = EngineRegistry::empty();
        registry.register(Box::new(crate::engines::TurmoilEngine::default()));
        registry.register(Box::new(crate::engines::FastEngine::default()));
        registry.register(Box::new(crate::engines::ProcessEngine));
        registry
    }

    /// Adds an engine; a later registration of the same kind replaces the earlier one.
    pub fn register(&mut self, engine: Box<dyn Engine>) {
        let kind = engine.kind();
        self.engines.retain(|e| e.kind() != kind);
        self.engines.push(engine);
    }

    pub fn get(&self, kind: EngineKind) -> Option<&dyn Engine> {
        self.engines
            .iter()
            .find(|e| e.kind() == kind)
            .map(|e| e.as_ref())
    }

    /// Kinds available, in `EngineKind` order.
    pub fn available(&self) -> Vec<EngineKind> {
        EngineKind::ALL
            .into_iter()
            .filter(|k| self.get(*k).is_some())
            .collect()
    }

    /// The engine for `kind`, or a message for the user saying it is not in this build.
    pub fn require(&self, kind: EngineKind) -> Result<&dyn Engine, String> {
        self.get(kind).ok_or_else(|| {
            let available = self.available();
            let available = if available.is_empty() {
                "none yet".to_string()
            } else {
                available.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            };
            format!(
                "engine \"{kind}\" is not available in this build (engines available: {available}); \
                 no run was made and no report written"
            )
        })
    }
}
