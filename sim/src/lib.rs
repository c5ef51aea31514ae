//! The deterministic simulation testbed: scenario files in, invariant checks and reports out.
//!
//! Layers, each in its own module:
//! - [`scenario`]: the TOML format, parsed strictly (`duration` for its durations);
//! - [`engine`]: the [`engine::Engine`] trait engines implement, and the registry;
//! - [`observe`]: what engines report (observations, events, counters);
//! - [`check`]: invariant checkers fed by observations; [`timeline`]: plot series;
//! - [`report`] and [`plot`]: report.json / report.md / SVGs; [`run`] and [`sweep`] tie it up;
//! - [`regress`]: the regression gate against committed baseline reports;
//! - [`scale`]: convergence against cluster size (`sim scale`).
//!
//! Nothing here runs nodes; engines do. Nothing here reads the wall clock or iterates a
//! HashMap, so the same inputs give byte-identical reports.

pub mod check;
pub mod duration;
pub mod engine;
pub mod engines;
pub mod observe;
pub mod plot;
pub mod regress;
pub mod report;
pub mod run;
pub mod scale;
pub mod scenario;
pub mod sweep;
pub mod testkit;
pub mod timeline;

pub use engine::{Engine, EngineError, EngineKind, EngineOutcome, EngineRegistry};
pub use observe::{
    Counters, EventRecord, FaultCounts, MemberView, NodeObservation, NodeState, Observation,
    ObservationSink, Reachability, Recording, Status, WallFigures,
};
pub use scenario::{Scenario, ScenarioError};
