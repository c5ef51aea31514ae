//! The fast engine is honest: on every shipped scenario small enough for turmoil (at most
//! `NODES_MAX` nodes), over `SEEDS` seeds, both engines pass and their median convergence times
//! after start and after each event agree within a factor of `support::FACTOR_MAX`.
//!
//! Differences under `support::FLOOR_MS` always agree: the turmoil engine steps in 10 ms ticks and runs
//! real HTTP/2 (connection set-up, request timeouts), the fast engine delivers in memory, and
//! observations are 0.5 s apart, so "0.5 s vs 1.5 s" is resolution, not disagreement. A change
//! that never converged (before the next event) on most seeds must never converge on the other
//! engine either.
//!
//! Release profile only (CI runs `cargo test --release`): 280 turmoil runs take ~40 s there on
//! two cores, ten times that in a debug build.

mod support;

use std::path::Path;
use std::sync::Mutex;

use sim::engine::{EngineKind, EngineRegistry};
use sim::run::run;
use sim::scenario::Scenario;
use support::{agree, median, Runs};

const SEEDS: std::ops::RangeInclusive<u64> = 1..=20;
/// The two simulators (the process engine has its own agreement test, process_agreement.rs).
const ENGINES: [EngineKind; 2] = [EngineKind::Turmoil, EngineKind::Fast];
const NODES_MAX: usize = 15;

fn small_scenarios() -> Vec<Scenario> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = sim::regress::scenario_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    files
        .iter()
        .map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{e}")))
        .filter(|s| s.all_nodes().len() <= NODES_MAX)
        .collect()
}

fn runs(scenario: &Scenario, kind: EngineKind) -> Runs {
    let registry = EngineRegistry::standard();
    let engine = registry.require(kind).expect("both engines are built in");
    let mut out = Runs::new(scenario);
    for seed in SEEDS {
        let r = run(scenario, seed, engine)
            .unwrap_or_else(|e| panic!("{} seed {seed} on {kind}: {e}", scenario.name))
            .report;
        out.add(scenario, kind, &r);
    }
    out
}

#[test]
fn agree_counts_small_differences_and_a_factor_of_two_as_agreement() {
    assert!(agree(Some(500), Some(2_000)), "under the floor");
    assert!(agree(Some(10_000), Some(19_000)), "within 2x");
    assert!(!agree(Some(5_000), Some(12_000)), "beyond 2x and the floor");
    assert!(agree(None, None));
    assert!(!agree(Some(500), None));
    assert_eq!(median(&[Some(3), None, Some(1)]), Some(3));
    assert_eq!(median(&[None, None, Some(1)]), None);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "280 turmoil runs: run in the release profile (cargo test --release)"
)]
fn both_engines_pass_and_agree_on_convergence_for_every_small_scenario() {
    let scenarios = small_scenarios();
    assert!(
        scenarios.len() >= 7,
        "expected the seven small fault stories"
    );
    // Two workers: one turmoil run per scenario and seed is the bulk of the time.
    let jobs: Vec<(usize, EngineKind)> = (0..scenarios.len())
        .flat_map(|i| ENGINES.into_iter().map(move |k| (i, k)))
        .collect();
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Runs>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let j = {
                    let mut n = next.lock().unwrap();
                    let j = *n;
                    *n += 1;
                    j
                };
                let Some(&(i, kind)) = jobs.get(j) else { break };
                let r = runs(&scenarios[i], kind);
                results.lock().unwrap()[j] = Some(r);
            });
        }
    });
    let results: Vec<Runs> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect();

    let mut failures = Vec::new();
    let mut table = String::from("scenario / change: turmoil median, fast median\n");
    for (i, scenario) in scenarios.iter().enumerate() {
        let t = &results[2 * i];
        let f = &results[2 * i + 1];
        failures.extend(t.failures.iter().cloned());
        failures.extend(f.failures.iter().cloned());
        t.compare(f, &scenario.name, &mut table, &mut failures);
    }
    println!("{table}");
    assert!(failures.is_empty(), "{table}\n{}", failures.join("\n"));
}
