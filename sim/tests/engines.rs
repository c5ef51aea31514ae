//! Both real engines keep the determinism contract of SIMULATION.md and really inject faults:
//! the same seed gives byte-identical reports, another seed gives another run, and the
//! partitions, crashes, restarts, leaves, joins and lost messages of a scenario happen (the
//! chaos is not a no-op that would let every invariant pass vacuously).

use sim::engine::{EngineKind, EngineRegistry};
use sim::report::Report;
use sim::run::{run, RunOutput};
use sim::scenario::Scenario;

/// Every kind of fault within three simulated minutes, on a small cluster. The partition
/// lasts 50 s so that each side declares the other dead before the heal.
const CHAOS: &str = r#"
name = "chaos"
description = "loss all along; a partition, a crash, a restart, a leave and a join"
seed = 4
duration = "180s"
[cluster]
nodes = 5
join = "node-1"
[targets]
count = 200
[network]
latency = ["1ms", "10ms"]
loss = 0.05
[[event]]
at = "10s"
partition = [["node-1", "node-2", "node-3"], ["node-4", "node-5"]]
[[event]]
at = "60s"
heal = true
[[event]]
at = "65s"
crash = "node-5"
[[event]]
at = "95s"
restart = "node-5"
[[event]]
at = "105s"
leave = "node-4"
[[event]]
at = "115s"
join = "node-6"
[expect]
converge_within = "60s"
max_redistribution_ratio = 1.5
"#;

fn chaos() -> Scenario {
    Scenario::parse("chaos.toml", CHAOS).expect("the chaos scenario is valid")
}

fn run_on(kind: EngineKind, seed: u64) -> RunOutput {
    let registry = EngineRegistry::standard();
    let engine = registry.require(kind).expect("built in");
    run(&chaos(), seed, engine).unwrap_or_else(|e| panic!("{kind} seed {seed}: {e}"))
}

fn same_seed_gives_byte_identical_reports(kind: EngineKind) {
    let a = run_on(kind, 4);
    let b = run_on(kind, 4);
    assert_eq!(
        a.report.to_json(),
        b.report.to_json(),
        "{kind}: report.json"
    );
    assert_eq!(
        a.report.to_markdown(&a.repro),
        b.report.to_markdown(&b.repro),
        "{kind}: report.md"
    );
    assert_eq!(
        a.findings.timeline, b.findings.timeline,
        "{kind}: plot data"
    );
}

/// The report with the seed field blanked: what differs is then the run itself.
fn without_seed(r: &Report) -> String {
    let mut r = r.clone();
    r.seed = 0;
    r.to_json()
}

fn another_seed_gives_another_run(kind: EngineKind) {
    let a = run_on(kind, 4);
    let b = run_on(kind, 5);
    assert_ne!(
        without_seed(&a.report),
        without_seed(&b.report),
        "{kind}: seeds 4 and 5 ran identically"
    );
    assert_ne!(
        (a.report.messages.sent, a.report.messages.bytes),
        (b.report.messages.sent, b.report.messages.bytes),
        "{kind}: seeds 4 and 5 sent exactly the same traffic"
    );
}

fn the_chaos_really_happens(kind: EngineKind) {
    let out = run_on(kind, 4);
    let r = &out.report;
    let f = &r.faults;
    assert_eq!(
        (
            f.partitions,
            f.heals,
            f.crashes,
            f.restarts,
            f.leaves,
            f.joins
        ),
        (1, 1, 1, 1, 1, 1),
        "{kind}: every scheduled fault is applied and counted"
    );
    assert!(
        f.dropped_messages > 0,
        "{kind}: 5% loss and a partition dropped nothing"
    );
    // The partition was real: each side owned the other side's targets for a while.
    assert!(
        r.ownership.duplicate_target_seconds > 0.0,
        "{kind}: two sides of a partition never owned the same target: {:?}",
        r.ownership
    );
    // The crash was real: the survivors dropped node-5 (its connections closed and its port
    // refused: seconds at most, no suspicion timer) and owned its targets.
    let crash = r
        .changes
        .iter()
        .find(|c| c.event == "crash node-5")
        .expect("crash logged");
    assert!(
        crash.converged_after_ms.is_some_and(|ms| ms <= 5_000),
        "{kind}: the survivors drop a killed process within seconds: {crash:?}"
    );
    assert!(
        crash.participants_before > crash.participants_after && crash.moved_fraction > Some(0.0),
        "{kind}: the crash removed a participant and moved its targets: {crash:?}"
    );
    // The join was real: node-6 ended up a participant everyone sees.
    let last = out
        .findings
        .timeline
        .nodes
        .get("node-6")
        .and_then(|points| points.last())
        .unwrap_or_else(|| panic!("{kind}: node-6 never ran"));
    assert_eq!(
        last.participants_seen, 5,
        "{kind}: node-6 sees node-1,2,3,5 and itself at the end"
    );
    assert!(
        r.passed,
        "{kind}: the cluster survives the chaos: {:?}",
        r.violations
    );
}

#[test]
fn same_seed_gives_byte_identical_reports_on_turmoil() {
    same_seed_gives_byte_identical_reports(EngineKind::Turmoil);
}

#[test]
fn same_seed_gives_byte_identical_reports_on_fast() {
    same_seed_gives_byte_identical_reports(EngineKind::Fast);
}

#[test]
fn another_seed_gives_another_run_on_turmoil() {
    another_seed_gives_another_run(EngineKind::Turmoil);
}

#[test]
fn another_seed_gives_another_run_on_fast() {
    another_seed_gives_another_run(EngineKind::Fast);
}

#[test]
fn the_chaos_really_happens_on_turmoil() {
    the_chaos_really_happens(EngineKind::Turmoil);
}

#[test]
fn the_chaos_really_happens_on_fast() {
    the_chaos_really_happens(EngineKind::Fast);
}
