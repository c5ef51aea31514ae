//! report.json is a contract: its fields, and byte-identical text for identical inputs.

use sim::engine::{Engine, EngineKind};
use sim::observe::Recording;
use sim::report::round_to;
use sim::run::{analyze, run};
use sim::scenario::Scenario;
use sim::testkit::{OracleEngine, ReplayEngine};

const TINY: &str = r#"
name = "tiny"
description = "three nodes, one crash, one join"
seed = 42
duration = "30s"

[cluster]
nodes = 3

[targets]
count = 60

[[event]]
at = "10s"
crash = "node-2"

[[event]]
at = "20s"
join = "node-4"

[expect]
converge_within = "5s"
max_redistribution_ratio = 1.5
"#;

fn tiny() -> Scenario {
    Scenario::parse("scenarios/tiny.toml", TINY).unwrap()
}

#[test]
fn the_same_run_gives_byte_identical_json() {
    let s = tiny();
    let engine = OracleEngine::new(1_500);
    let a = run(&s, 42, &engine).unwrap().report.to_json();
    let b = run(&s, 42, &engine).unwrap().report.to_json();
    assert_eq!(a, b);

    // Recorded once, replayed twice through fresh checkers: same bytes again.
    let mut rec = Recording::default();
    let outcome = engine.run(&s, 42, &mut rec).unwrap();
    let replay = ReplayEngine {
        kind: EngineKind::Fast,
        recording: rec,
        counters: outcome.counters,
    };
    let c = run(&s, 42, &replay).unwrap().report.to_json();
    let d = analyze(&s, 42, EngineKind::Fast, |sink| {
        replay.recording.replay(sink);
        Ok::<_, ()>(outcome.counters)
    })
    .unwrap()
    .report
    .to_json();
    assert_eq!(a, c);
    assert_eq!(c, d);
}

#[test]
fn report_json_has_every_contract_field() {
    let json = run(&tiny(), 42, &OracleEngine::new(1_500))
        .unwrap()
        .report
        .to_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in [
        "scenario",
        "seed",
        "nodes",
        "targets",
        "duration_ms",
        "passed",
        "violations",
        "changes",
        "ownership",
        "messages",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in [
        "at_ms",
        "event",
        "converged_after_ms",
        "moved_fraction",
        "ideal_fraction",
        "hashmod_moved_fraction",
    ] {
        assert!(
            v["changes"][0].get(key).is_some(),
            "missing changes[].{key}"
        );
    }
    assert!(v["ownership"].get("unowned_target_seconds").is_some());
    assert!(v["ownership"].get("duplicate_target_seconds").is_some());
    assert!(v["messages"].get("sent").is_some() && v["messages"].get("bytes").is_some());
}

/// Pins the whole format (and the oracle's known answers: every change converges after 1.5 s).
#[test]
fn report_json_snapshot() {
    let out = run(&tiny(), 42, &OracleEngine::new(1_500)).unwrap();
    insta::assert_snapshot!(out.report.to_json());
}

#[test]
fn report_markdown_snapshot() {
    let out = run(&tiny(), 42, &OracleEngine::new(1_500)).unwrap();
    insta::assert_snapshot!(out.report.to_markdown(&out.repro));
}

#[test]
fn a_failed_run_reports_its_violations_and_the_repro_command() {
    let out = run(&tiny(), 9, &OracleEngine::new(6_000)).unwrap();
    assert!(!out.report.passed);
    assert_eq!(out.repro, "sim scenarios/tiny.toml --seed 9 --engine fast");
    let md = out.report.to_markdown(&out.repro);
    assert!(md.contains("**Verdict: FAILED** (convergence x"), "{md}");
    assert!(md.contains("sim scenarios/tiny.toml --seed 9 --engine fast"));
    let first = out.report.first_violation().unwrap();
    assert_eq!(first.invariant, "convergence");
}

#[test]
fn numbers_are_rounded_to_fixed_decimals() {
    assert_eq!(round_to(1.0 / 3.0, 6), 0.333333);
    assert_eq!(round_to(-1e-12, 6).to_string(), "0");
    assert_eq!(round_to(2.0 / 3.0, 3), 0.667);
}
