//! The whole pipeline (scenario file -> engine -> checks -> report) on the oracle test double,
//! whose answer is known: every change converges exactly `settle_ms` after it.

use std::path::{Path, PathBuf};

use sim::run::{run, write_outputs};
use sim::scenario::Scenario;
use sim::testkit::{modulo, OracleEngine};

fn shipped_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = sim::regress::scenario_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        files.len() >= 7,
        "expected the seven fault stories, found {files:?}"
    );
    files
}

/// Guards the checkers against false alarms: a perfect cluster passes every shipped story
/// (restarts, leaves, partitions and drift included).
#[test]
fn every_shipped_scenario_passes_on_a_perfect_cluster() {
    for file in shipped_scenarios() {
        let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let out = run(&scenario, scenario.seed, &OracleEngine::new(2_000)).expect("oracle runs");
        assert!(
            out.report.passed,
            "{}: {:#?}",
            file.display(),
            out.report.violations
        );
        assert_eq!(
            out.report.startup.converged_after_ms,
            Some(2_000),
            "{}",
            file.display()
        );
        for c in &out.report.changes {
            // Drift to a config only some nodes share leaves the shared targets where they
            // were (converged at once); when all share it again, the new targets need owners.
            // Loss and latency change nothing a perfect cluster shows.
            // The oracle settles 2 s after an event; observations fall every 500 ms, so an
            // event off that grid (crash_detection's 60.3 s) is seen settled at the next one.
            let next_observation = |t: u64| t.div_ceil(500) * 500 - c.at_ms;
            let expected = match c.event.as_str() {
                "targets 1200 on node-4 node-5" => next_observation(c.at_ms),
                e if e.starts_with("loss")
                    || e.starts_with("latency")
                    || e.starts_with("stall") =>
                {
                    next_observation(c.at_ms)
                }
                _ => next_observation(c.at_ms + 2_000),
            };
            assert_eq!(
                c.converged_after_ms,
                Some(expected),
                "{}: {}",
                file.display(),
                c.event
            );
            if c.membership_change {
                assert!(
                    c.moved_fraction.is_some(),
                    "{}: {} has no movement",
                    file.display(),
                    c.event
                );
                assert!(
                    c.hashmod_moved_fraction.is_some(),
                    "{}: {}",
                    file.display(),
                    c.event
                );
            }
        }
    }
}

/// Events 30 s apart with converge_within 60 s: only changes followed by a 60 s quiet window
/// can be judged, plus the final "converged from last event + 60 s on" check.
#[test]
fn a_cluster_slower_than_converge_within_fails() {
    let scenario = Scenario::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/node_churn.toml"
    )))
    .unwrap();
    let out = run(&scenario, 3, &OracleEngine::new(70_000)).unwrap();
    assert!(!out.report.passed);
    let details: Vec<&str> = out
        .report
        .violations
        .iter()
        .map(|v| v.detail.as_str())
        .collect();
    assert!(details.iter().any(|d| d.starts_with("after crash node-3 at 90000 ms: not converged within 60000 ms")), "{details:#?}");
    assert!(
        details.iter().any(
            |d| d.starts_with("after join node-11 at 270000 ms: converged only after 70000 ms")
        ),
        "{details:#?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("not converged at 330000 ms, after the last event + 60000 ms")),
        "{details:#?}"
    );
    assert_eq!(
        out.report.changes.last().unwrap().converged_after_ms,
        Some(70_000)
    );
    assert_eq!(
        out.report.changes[0].converged_after_ms, None,
        "next event came first"
    );
}

#[test]
fn hashmod_like_movement_fails_the_redistribution_ratio() {
    let scenario = Scenario::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/node_churn.toml"
    )))
    .unwrap();
    let engine = OracleEngine {
        owner_of: modulo,
        ..OracleEngine::new(2_000)
    };
    let out = run(&scenario, 3, &engine).unwrap();
    assert!(!out.report.passed);
    assert!(out.report.violation_counts.contains_key("redistribution"));
    assert!(!out.report.violation_counts.contains_key("convergence"));
    let join = &out.report.changes[0];
    assert_eq!(join.event, "join node-9");
    assert_eq!(join.ideal_fraction, Some(0.111111));
    assert!(join.moved_fraction.unwrap() > 0.8, "{join:?}");
}

#[test]
fn reports_and_plots_are_written() {
    let scenario = Scenario::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/split_brain.toml"
    )))
    .unwrap();
    let out = run(&scenario, 7, &OracleEngine::new(2_000)).unwrap();
    let dir = std::env::temp_dir().join(format!("sim-pipeline-{}", std::process::id()));
    write_outputs(&dir, &out, scenario.duration_ms()).unwrap();
    for f in [
        "report.json",
        "report.md",
        "participants.svg",
        "owned_targets.svg",
    ] {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        assert!(bytes.len() > 100, "{f} is too small");
    }
    let svg = std::fs::read_to_string(dir.join("participants.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("node-6"));
    std::fs::remove_dir_all(&dir).unwrap();
}
