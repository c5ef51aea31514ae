//! The regression gate (`sim regress`, ci/regress.sh) fails when a figure gets worse than the
//! committed baseline beyond the tolerance, and only then: proven on a baseline made stricter
//! than reality by hand, on a true baseline, and on each rule separately.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sim::engine::EngineRegistry;
use sim::regress::{
    compare, converge_verdict, ratio_verdict, run_gate, scenario_files, update_baselines, Figures,
    GateConfig, Tolerance, Verdict,
};
use sim::scenario::Scenario;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh folder under the temp dir, empty.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sim-regress-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scenarios folder holding a copy of one shipped scenario, and a gate config around it.
/// The copy runs on the fast engine (`engine = "fast"`): these tests are about the gate, and
/// stay quick in debug builds; ci/regress.sh runs the real thing on each scenario's engine.
fn gate_on(scenario: &str, name: &str) -> GateConfig {
    let root = temp_dir(name);
    let scenarios = root.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    let text =
        std::fs::read_to_string(repo().join("scenarios").join(format!("{scenario}.toml"))).unwrap();
    // On the fast engine (the file may say so already).
    let text = if text.contains("\nengine = ") {
        text
    } else {
        let (head, rest) = text.split_once("\nseed = ").expect("a seed line");
        format!("{head}\nengine = \"fast\"\nseed = {rest}")
    };
    std::fs::write(scenarios.join(format!("{scenario}.toml")), text).unwrap();
    GateConfig {
        baseline: root.join("baseline"),
        scenarios,
        out: root.join("out"),
        tolerance: Tolerance::default(),
    }
}

/// Runs the gate once and keeps the reruns as the baseline: a true baseline.
fn make_true_baseline(config: &GateConfig) {
    let registry = EngineRegistry::standard();
    let first = run_gate(config, &registry, |_| {}).unwrap();
    assert!(!first.passed(), "no baseline yet: every scenario is STALE");
    update_baselines(config, &first.scenarios).unwrap();
}

fn baseline_json(config: &GateConfig, name: &str) -> (PathBuf, Value) {
    let path = config.baseline.join(name).join("report.json");
    let v = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, v)
}

fn figures(json: &str) -> Figures {
    Figures::from_json(json).unwrap()
}

const REPORT: &str = r#"{
  "scenario": "s", "seed": 7, "engine": "turmoil", "passed": true,
  "startup": {"converged_after_ms": 1000},
  "changes": [
    {"at_ms": 30000, "event": "crash node-3", "converged_after_ms": 10000,
     "moved_fraction": 0.11, "ideal_fraction": 0.1, "membership_change": true},
    {"at_ms": 90000, "event": "heal", "converged_after_ms": null,
     "moved_fraction": null, "ideal_fraction": null, "membership_change": false}
  ],
  "violation_counts": {}
}"#;

#[test]
fn an_unchanged_run_is_ok_on_every_row() {
    let f = figures(REPORT);
    let rows = compare(&f, &f, &Tolerance::default());
    assert_eq!(rows.len(), 5, "verdict, start, crash x2, heal: {rows:#?}");
    assert!(rows.iter().all(|r| r.verdict == Verdict::Ok), "{rows:#?}");
}

#[test]
fn convergence_may_grow_by_the_larger_of_2s_and_25_percent() {
    let t = Tolerance::default();
    assert_eq!(t.converge_limit_ms(1_000), 3_000);
    assert_eq!(t.converge_limit_ms(10_000), 12_500);
    assert_eq!(
        converge_verdict(Some(10_000), Some(12_500), &t),
        Verdict::Ok
    );
    assert_eq!(
        converge_verdict(Some(10_000), Some(13_000), &t),
        Verdict::Regressed
    );
    assert_eq!(converge_verdict(Some(10_000), None, &t), Verdict::Regressed);
    assert_eq!(converge_verdict(None, Some(60_000), &t), Verdict::Better);
    assert_eq!(
        converge_verdict(Some(10_000), Some(500), &t),
        Verdict::Better
    );
    assert_eq!(converge_verdict(None, None, &t), Verdict::Ok);
}

#[test]
fn the_moved_to_ideal_ratio_may_grow_by_0_05() {
    let t = Tolerance::default();
    assert_eq!(ratio_verdict(Some(1.10), Some(1.15), &t), Verdict::Ok);
    assert_eq!(
        ratio_verdict(Some(1.10), Some(1.16), &t),
        Verdict::Regressed
    );
    assert_eq!(ratio_verdict(Some(1.10), None, &t), Verdict::Regressed);
    assert_eq!(ratio_verdict(Some(1.10), Some(1.0), &t), Verdict::Better);
}

#[test]
fn a_scenario_that_passed_and_now_fails_is_a_regression() {
    let baseline = figures(REPORT);
    let mut now = baseline.clone();
    now.passed = false;
    now.violation_counts.insert("convergence".into(), 1);
    let rows = compare(&baseline, &now, &Tolerance::default());
    assert_eq!(rows[0].change, "verdict");
    assert_eq!(rows[0].verdict, Verdict::Regressed);
    assert_eq!(rows[0].now, "failed (convergence)");
}

#[test]
fn a_baseline_of_another_seed_or_other_events_is_stale() {
    let baseline = figures(REPORT);
    let mut other_seed = baseline.clone();
    other_seed.seed = 8;
    assert_eq!(
        compare(&baseline, &other_seed, &Tolerance::default())[0].verdict,
        Verdict::Stale
    );
    let mut other_events = baseline.clone();
    other_events.changes.pop();
    assert_eq!(
        compare(&baseline, &other_events, &Tolerance::default())[0].verdict,
        Verdict::Stale
    );
}

/// The gate passes against a baseline it made itself (same build, same seed: same figures).
#[test]
fn the_gate_passes_on_a_true_baseline() {
    let config = gate_on("node_churn", "true");
    make_true_baseline(&config);
    let report = run_gate(&config, &EngineRegistry::standard(), |_| {}).unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert!(report.rows.iter().all(|r| r.verdict == Verdict::Ok));
    assert!(
        report
            .rows
            .iter()
            .any(|r| r.change.ends_with("moved/ideal")),
        "node_churn's crashes are compared on redistribution:\n{}",
        report.to_text()
    );
}

/// Guards CI against a gate that cannot fail: a true baseline edited to be better than
/// reality (every measured moved/ideal ratio 0.1 lower, every convergence of 4 s or more
/// halved: silent_loss has both, a host lost without a trace takes seconds to drop) must fail, naming exactly the edited rows, through the library and the binary.
#[test]
fn the_gate_fails_on_a_baseline_better_than_reality() {
    let config = gate_on("silent_loss", "stricter");
    make_true_baseline(&config);
    let (path, mut json) = baseline_json(&config, "silent_loss");
    let mut edited = Vec::new();
    for c in json["changes"].as_array_mut().unwrap() {
        let event = c["event"].as_str().unwrap().to_string();
        if let (Some(moved), Some(ideal)) =
            (c["moved_fraction"].as_f64(), c["ideal_fraction"].as_f64())
        {
            if ideal > 0.0 {
                c["moved_fraction"] = Value::from(moved - 0.1 * ideal);
                edited.push(format!("{event}: moved/ideal"));
            }
        }
        if let Some(ms) = c["converged_after_ms"].as_u64() {
            if ms >= 4_000 {
                c["converged_after_ms"] = Value::from(ms / 2);
                edited.push(format!("{event}: converged"));
            }
        }
    }
    assert!(
        edited.iter().any(|e| e.ends_with("moved/ideal"))
            && edited.iter().any(|e| e.ends_with("converged")),
        "silent_loss has both kinds of figure to edit: {edited:?}"
    );
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();

    let report = run_gate(&config, &EngineRegistry::standard(), |_| {}).unwrap();
    assert!(!report.passed(), "{}", report.to_text());
    let mut failed: Vec<String> = report
        .failures()
        .iter()
        .map(|r| {
            assert_eq!(r.verdict, Verdict::Regressed, "{r:?}");
            // "1m30s crash node-3: converged" -> "crash node-3: converged"
            r.change.split_once(' ').unwrap().1.to_string()
        })
        .collect();
    failed.sort();
    edited.sort();
    assert_eq!(failed, edited, "{}", report.to_text());

    // The binary: exit 1, the table and the failing rows on stdout.
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("regress")
        .arg("--baseline")
        .arg(&config.baseline)
        .arg("--scenarios")
        .arg(&config.scenarios)
        .arg("--out")
        .arg(config.out.with_file_name("out-cli"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("scenario") && stdout.contains("baseline") && stdout.contains("verdict"),
        "{stdout}"
    );
    assert!(
        stdout.contains("REGRESSED") && stdout.contains("FAILED:"),
        "{stdout}"
    );

    // A looser tolerance lets the same edits through.
    let loose = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("regress")
        .arg("--baseline")
        .arg(&config.baseline)
        .arg("--scenarios")
        .arg(&config.scenarios)
        .arg("--out")
        .arg(config.out.with_file_name("out-loose"))
        .args(["--ratio-tolerance", "0.5", "--converge-tolerance", "60s"])
        .output()
        .unwrap();
    assert_eq!(
        loose.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&loose.stdout)
    );
}

/// A scenario edited so that it now fails (an expectation no cluster meets) regresses
/// against a baseline that passed.
#[test]
fn the_gate_fails_when_a_passing_scenario_now_fails() {
    let config = gate_on("node_churn", "now-fails");
    make_true_baseline(&config);
    let file = config.scenarios.join("node_churn.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("converge_within = \"60s\"", "converge_within = \"1s\""),
    )
    .unwrap();
    let report = run_gate(&config, &EngineRegistry::standard(), |_| {}).unwrap();
    let verdict = &report.rows[0];
    assert_eq!(
        (verdict.change.as_str(), verdict.verdict),
        ("verdict", Verdict::Regressed),
        "{}",
        report.to_text()
    );
    assert_eq!(verdict.now, "failed (convergence)");
}

/// The committed baselines are readable, one per shipped scenario, made with the scenario's
/// own seed and engine (what `ci/regress.sh` compares against).
#[test]
fn every_shipped_scenario_has_a_committed_baseline_of_its_seed_and_engine() {
    for file in scenario_files(&repo().join("scenarios")).unwrap() {
        let scenario = Scenario::load(&file).unwrap();
        let path = repo()
            .join("reports")
            .join(&scenario.name)
            .join("report.json");
        let f = Figures::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.scenario, scenario.name, "{}", path.display());
        assert_eq!(f.seed, scenario.seed, "{}", path.display());
        assert_eq!(
            f.engine,
            scenario.engine.unwrap_or_default().as_str(),
            "{}",
            path.display()
        );
        assert!(
            f.passed,
            "{}: the committed baseline passes",
            path.display()
        );
        for plot in ["participants.svg", "owned_targets.svg", "report.md"] {
            assert!(
                path.with_file_name(plot).exists(),
                "{} is committed",
                path.with_file_name(plot).display()
            );
        }
    }
}
