//! `--seeds A..B`: the range syntax, and the summary over seeds.

use std::path::Path;

use sim::engine::{EngineKind, EngineRegistry};
use sim::run::run;
use sim::scenario::Scenario;
use sim::sweep::{SeedRange, Sweep};
use sim::testkit::OracleEngine;

#[test]
fn seed_ranges_are_half_open_or_inclusive() {
    assert_eq!(
        "0..3"
            .parse::<SeedRange>()
            .unwrap()
            .seeds()
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        "5..=6"
            .parse::<SeedRange>()
            .unwrap()
            .seeds()
            .collect::<Vec<_>>(),
        [5, 6]
    );
    for bad in ["3..3", "4..1", "1-5", "a..b", "..5", "0..2000000"] {
        assert!(
            bad.parse::<SeedRange>().is_err(),
            "{bad} should be rejected"
        );
    }
}

#[test]
fn a_sweep_counts_failures_and_reports_convergence_percentiles() {
    let file = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/split_brain.toml"
    ));
    let scenario = Scenario::load(file).unwrap();
    let mut sweep = Sweep::new(&scenario.name, "fast");
    for seed in 0..4u64 {
        // Seeds 0 and 2 settle in 2 s, 1 and 3 in 100 s (beyond converge_within = 90 s).
        let settle_ms = if seed % 2 == 0 { 2_000 } else { 100_000 };
        let out = run(&scenario, seed, &OracleEngine::new(settle_ms)).unwrap();
        sweep.add(seed, &out);
    }
    let summary = sweep.finish();
    assert_eq!((summary.passed, summary.failed), (2, 2));
    assert_eq!(summary.convergence.p50_ms, Some(2_000));
    assert_eq!(summary.convergence.max_ms, Some(100_000));
    // Slow seeds: neither start nor the partition settle before the next event.
    assert_eq!(summary.convergence.not_converged, 4);
    let text = summary.to_text();
    assert!(text.contains("split_brain: 2 passed, 2 failed"), "{text}");
    assert!(text.contains("--seed 3 --engine fast"), "{text}");
    let failing = &summary.seeds[1];
    assert!(!failing.passed && failing.first_violation.is_some());
    assert_eq!(failing.max_converged_after_ms, None);
}

/// Without an engine, nothing is faked: the registry says which engines exist.
#[test]
fn a_missing_engine_is_reported_not_faked() {
    let err = EngineRegistry::empty()
        .require(EngineKind::Turmoil)
        .err()
        .unwrap();
    assert_eq!(
        err,
        "engine \"turmoil\" is not available in this build (engines available: none yet); \
         no run was made and no report written"
    );
}
