//! The `sim` binary's exit codes and messages for bad input.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sim runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("sim-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_bad_scenario_exits_2_naming_the_file_and_key() {
    let file = temp_file(
        "bad.toml",
        "name = \"x\"\nduration = \"1m\"\n[cluster]\nnodes = 3\n[targets]\ncount = 1\n[[event]]\nat = \"5s\"\ncrash = \"node-4\"\n",
    );
    let (code, _, err) = sim(&[&file]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{file}: event[0].crash: unknown node \"node-4\"")),
        "{err}"
    );
}

#[test]
fn a_missing_file_exits_2() {
    let (code, _, err) = sim(&["does/not/exist.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("does/not/exist.toml: (file): cannot read"),
        "{err}"
    );
}

/// `sim` with no scenario file runs the embedded default (the split-brain story) and writes
/// its report: the README's "run the main job" command.
#[test]
fn no_scenario_runs_the_embedded_default() {
    let out = std::env::temp_dir().join(format!("sim-cli-{}-default", std::process::id()));
    let (code, stdout, err) = sim(&["--out", out.to_str().unwrap(), "--engine", "fast"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(err.contains("embedded default"), "{err}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("sim scenarios/split_brain.toml --seed 7 --engine fast"),
        "a reproduce command that runs from the repository root:\n{md}"
    );
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(report.contains("\"scenario\": \"split_brain\""), "{report}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_flags_exit_2() {
    assert_eq!(
        sim(&["../scenarios/split_brain.toml", "--engine", "warp"]).0,
        2
    );
    let (code, _, err) = sim(&["../scenarios/split_brain.toml", "--seeds", "5..3"]);
    assert_eq!(code, 2);
    assert!(err.contains("is empty"), "{err}");
    assert_eq!(
        sim(&[
            "../scenarios/split_brain.toml",
            "--seeds",
            "0..3",
            "--seed",
            "1"
        ])
        .0,
        2
    );
}

#[test]
fn distribution_prints_the_quality_report_as_json() {
    let (code, out, err) = sim(&[
        "distribution",
        "--nodes",
        "10",
        "--targets",
        "1000",
        "--algorithm",
        "ring",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["algorithm"], "ring");
    assert_eq!(v["nodes"], 10);
    assert_eq!(v["targets"], 1000);
    let (code, _, err) = sim(&[
        "distribution",
        "--nodes",
        "10",
        "--targets",
        "10",
        "--algorithm",
        "magic",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown sharding algorithm"), "{err}");
}
