//! `sim scale`: the measurement (join and crash seen by all), its statistics, and the report
//! that puts our figures next to memberlist's.

use std::process::Command;

use sim::scale::{
    log_fit, lost, measure, percentile, scenario_for, victim, Percentiles, ScaleReport, SizeResult,
    ANCHORS, JOIN_AT_S,
};

#[test]
fn percentiles_are_nearest_rank_and_never_counts_as_longest() {
    let v = [Some(300), Some(100), None, Some(200)];
    assert_eq!(percentile(&v, 0.5), Some(200));
    assert_eq!(percentile(&v, 0.75), Some(300));
    assert_eq!(percentile(&v, 1.0), None, "the 4th of 4 is the 'never'");
    assert_eq!(percentile(&v, 0.25), Some(100));
    let p = Percentiles::of(&v);
    assert_eq!((p.p50_ms, p.p99_ms, p.never), (Some(200), None, 1));
    assert_eq!(percentile(&[], 0.5), None);
}

#[test]
fn a_logarithmic_series_fits_log_n_exactly() {
    // 100 ms + 200 ms per decade.
    let points = [(10, 300), (100, 500), (1000, 700)];
    let fit = log_fit(&points).unwrap();
    assert!((fit.a_ms - 100.0).abs() < 1e-6, "{fit:?}");
    assert!((fit.b_ms_per_decade - 200.0).abs() < 1e-6, "{fit:?}");
    assert_eq!(fit.r2, 1.0);
    assert!(log_fit(&points[..2]).is_none(), "two points fit anything");
}

#[test]
fn each_run_joins_the_last_node_then_crashes_another_then_powers_off_a_third() {
    let s = scenario_for(25, 3);
    assert_eq!(s.cluster.nodes, 24);
    assert_eq!(s.events.len(), 3);
    assert_eq!(s.events[0].action.describe(), "join node-25");
    let join_ms = s.events[0].at.as_millis() as u64;
    assert!((JOIN_AT_S * 1000..JOIN_AT_S * 1000 + 1000).contains(&join_ms));
    assert_eq!(
        s.events[1].action.describe(),
        format!("crash {}", victim(25, 3))
    );
    assert_eq!(
        s.events[2].action.describe(),
        format!("power_off {}", lost(25, 3))
    );
    assert!(s.events[2].at > s.events[1].at);
    for seed in 0..50 {
        let (v, l) = (victim(25, seed), lost(25, seed));
        assert!(v != "node-1" && v != "node-25", "seed {seed}: {v}");
        assert!(
            l != "node-1" && l != "node-25" && l != v,
            "seed {seed}: {l}"
        );
    }
}

/// At 10 nodes a join is seen by all within a few gossip rounds; a killed process within a
/// second (its connections close, its port refuses, two refusals make it dead); a host that
/// lost power only after a suspicion timeout, which is seconds, not a minute. The same seed
/// measures the same.
#[test]
fn a_small_cluster_sees_a_join_and_a_crash_within_a_second_and_a_silent_loss_in_seconds() {
    let a = measure(10, 1, 50).unwrap();
    assert!(a.start_seen_ms.is_some(), "{a:?}");
    assert!(a.join_seen_ms.is_some_and(|ms| ms < 2_000), "{a:?}");
    assert!(a.crash_seen_ms.is_some_and(|ms| ms < 1_000), "{a:?}");
    assert!(
        a.loss_seen_ms
            .is_some_and(|ms| (2_000..20_000).contains(&ms)),
        "{a:?}"
    );
    assert_eq!(a, measure(10, 1, 50).unwrap(), "deterministic");
}

#[test]
fn the_report_puts_our_figures_next_to_the_anchors() {
    let sizes: Vec<SizeResult> = [10u32, 25, 50]
        .iter()
        .map(|&n| {
            let samples = vec![measure(n, 1, 100).unwrap()];
            let pick = |f: fn(&sim::scale::Sample) -> Option<u64>| {
                Percentiles::of(&samples.iter().map(f).collect::<Vec<_>>())
            };
            SizeResult {
                nodes: n,
                start: pick(|s| s.start_seen_ms),
                join: pick(|s| s.join_seen_ms),
                crash: pick(|s| s.crash_seen_ms),
                loss: pick(|s| s.loss_seen_ms),
                samples,
            }
        })
        .collect();
    let report = ScaleReport::new(100, vec![1], sizes);
    let md = report.to_markdown();
    assert!(
        md.contains("| memberlist | LAN defaults (probe 1 s) | 10 | 0.40 s | 5.60 s | - |"),
        "{md}"
    );
    assert!(md.contains("| **ours** (fast engine, p50 / p99) |"), "{md}");
    assert!(md.contains("join: "), "{md}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["sizes"].as_array().unwrap().len(), 3);
    assert_eq!(json["anchors"].as_array().unwrap().len(), ANCHORS.len());
    assert!(json["join_p50_fit"].is_object());
    let svg = sim::scale::render(&report).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("memberlist"));
}

#[test]
fn sim_scale_writes_json_markdown_and_svg() {
    let out = std::env::temp_dir().join(format!("sim-scale-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "scale",
            "--sizes",
            "5,8",
            "--seeds",
            "2",
            "--resolution",
            "100ms",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("N=    5: join seen by all p50"), "{stdout}");
    for f in ["scale.json", "scale.md", "scale.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["scale", "--sizes", "2"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--sizes: 2"));
    std::fs::remove_dir_all(&out).unwrap();
}
