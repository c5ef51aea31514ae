//! `sim`: run a scenario file on an engine, check invariants, write the report.
//!
//! ```text
//! sim SCENARIO.toml [--seed N] [--out DIR] [--engine turmoil|fast|process] [--seeds A..B]
//! sim distribution --nodes N --targets K [--algorithm NAME] [--seed N]
//! sim scale [--sizes 10,25,50,100,250,500,1000] [--seeds K] [--out DIR]
//! sim regress [--baseline reports] [--scenarios scenarios] [--out DIR] [--update]
//!             [--ratio-tolerance 0.05] [--converge-tolerance 2s] [--converge-tolerance-percent 25]
//! ```
//! Exit status: 0 every expectation held; 1 an invariant or expectation failed (the seed and the
//! command that reproduces it are printed); 2 bad input or no engine to run on; 130 stopped by
//! Ctrl-C (the process engine removes what it created first).
//! Wall-clock figures go to stdout only, never into the report files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use sim::engine::{EngineKind, EngineRegistry};
use sim::regress::{run_gate, update_baselines, GateConfig, Tolerance};
use sim::run::{default_out_dir, run, run_with_progress, write_outputs, RunOutput};
use sim::scenario::Scenario;
use sim::sweep::{SeedRange, Sweep};

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "sim",
    about = "Deterministic cluster simulation: run a scenario, check invariants, write a report.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Scenario file (TOML; see scenarios/ and SIMULATION.md). Without one, the embedded
    /// default runs: scenarios/split_brain.toml.
    scenario: Option<PathBuf>,

    /// Seed for every random choice of the run (default: the scenario's `seed`).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,

    /// Run every seed of a range, A..B (B excluded) or A..=B, and summarise.
    #[arg(long, value_name = "A..B")]
    seeds: Option<SeedRange>,

    /// Report folder (default: reports/<scenario name>/; with --seeds, failing seeds get
    /// seed-<n>/ under it).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Engine: turmoil (simulated network, deterministic), fast (the core alone, thousands of
    /// nodes) or process (real agents in network namespaces, real time; root). Default: the
    /// scenario's `engine`, else turmoil.
    #[arg(long)]
    engine: Option<EngineKind>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sharding quality of an algorithm: owners of K targets over N nodes, as JSON.
    Distribution {
        #[arg(long)]
        nodes: u32,
        #[arg(long)]
        targets: u32,
        /// Sharding algorithm: bounded (default), ring, rendezvous or hashmod.
        #[arg(long)]
        algorithm: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Convergence against cluster size on the fast engine: join seen by all and crash seen
    /// by all, p50/p99 over seeds per size, next to memberlist's figures (ANCHORS.md).
    Scale {
        /// Cluster sizes, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "10,25,50,100,250,500,1000"
        )]
        sizes: Vec<u32>,
        /// Seeds per size.
        #[arg(long, value_name = "K", default_value_t = 5)]
        seeds: u64,
        /// First seed (seeds are FIRST .. FIRST+K-1).
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Simulated time between observations: the figures' resolution.
        #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = sim::duration::parse_duration)]
        resolution: std::time::Duration,
        /// Report folder (scale.json, scale.md, scale.svg).
        #[arg(long, value_name = "DIR", default_value = "reports/scale")]
        out: PathBuf,
    },
    /// Regression gate: rerun every scenario with its own seed and engine and compare with the
    /// committed baseline reports; exit 1 when a figure got worse beyond the tolerance.
    Regress {
        /// Baseline reports: <DIR>/<scenario name>/report.json.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        baseline: PathBuf,
        /// Scenario files to rerun (every *.toml of the folder).
        #[arg(long, value_name = "DIR", default_value = "scenarios")]
        scenarios: PathBuf,
        /// Where the reruns' reports go (default: a fresh folder under the system temp dir).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Absolute slack on moved_fraction / ideal_fraction per membership change.
        #[arg(long, value_name = "R", default_value_t = Tolerance::default().ratio_slack)]
        ratio_tolerance: f64,
        /// Absolute slack on each convergence time.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = sim::duration::parse_duration)]
        converge_tolerance: std::time::Duration,
        /// Relative slack on each convergence time, in percent; the larger slack applies.
        #[arg(long, value_name = "PERCENT", default_value_t = 25.0)]
        converge_tolerance_percent: f64,
        /// After the comparison, copy the reruns over the baselines (for intended changes).
        #[arg(long)]
        update: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Distribution {
            nodes,
            targets,
            algorithm,
            seed,
        }) => distribution(nodes, targets, algorithm.as_deref(), seed),
        Some(Command::Scale {
            sizes,
            seeds,
            first_seed,
            resolution,
            out,
        }) => scale(&sizes, first_seed, seeds, resolution, &out),
        Some(Command::Regress {
            baseline,
            scenarios,
            out,
            ratio_tolerance,
            converge_tolerance,
            converge_tolerance_percent,
            update,
        }) => {
            let tolerance = Tolerance {
                ratio_slack: ratio_tolerance,
                converge_slack_ms: converge_tolerance.as_millis() as u64,
                converge_slack_fraction: converge_tolerance_percent / 100.0,
            };
            let out = out.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("sim-regress-{}", std::process::id()))
            });
            regress(
                GateConfig {
                    baseline,
                    scenarios,
                    out,
                    tolerance,
                },
                update,
            )
        }
        None => scenario_command(cli.scenario, cli.seed, cli.seeds, cli.out, cli.engine),
    };
    ExitCode::from(code)
}

/// The scenario `sim` runs when given none: six nodes split in two halves, then healed.
const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/split_brain.toml");
const DEFAULT_SCENARIO_NAME: &str = "scenarios/split_brain.toml (embedded default)";

fn scenario_command(
    path: Option<PathBuf>,
    seed: Option<u64>,
    seeds: Option<SeedRange>,
    out: Option<PathBuf>,
    engine: Option<EngineKind>,
) -> u8 {
    let loaded = match &path {
        Some(path) => Scenario::load(path),
        None => {
            eprintln!(
                "no scenario file given: running the embedded default, {DEFAULT_SCENARIO_NAME}"
            );
            Scenario::parse(DEFAULT_SCENARIO_NAME, DEFAULT_SCENARIO)
        }
    };
    let scenario = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let kind = engine.or(scenario.engine).unwrap_or_default();
    let registry = EngineRegistry::standard();
    let engine = match registry.require(kind) {
        Ok(e) => e,
        Err(why) => {
            eprintln!("error: {}: {why}", scenario.file);
            return EXIT_BAD_INPUT;
        }
    };
    let out = out.unwrap_or_else(|| default_out_dir(&scenario));
    match seeds {
        None => {
            let seed = seed.unwrap_or(scenario.seed);
            let started = Instant::now();
            // A progress bar on stderr (hidden when it is not a terminal), for runs that last:
            // it appears once a run has taken a second.
            let mut bar: Option<ProgressBar> = None;
            let total_ms = scenario.duration_ms();
            let result = run_with_progress(&scenario, seed, engine, &mut |at_ms| {
                if bar.is_none() && started.elapsed() >= Duration::from_secs(1) {
                    let b = ProgressBar::new(total_ms);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{msg}: {bar:30} {percent}% of the simulated time [{elapsed_precise}, eta {eta}]",
                        )
                        .expect("valid template"),
                    );
                    b.set_message(scenario.name.clone());
                    bar = Some(b);
                }
                if let Some(b) = &bar {
                    b.set_position(at_ms);
                }
            });
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let output = match result {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {} (seed {seed}): {e}", scenario.file);
                    return engine_error_exit(&e);
                }
            };
            let wall = started.elapsed();
            if let Err(e) = write_outputs(&out, &output, scenario.duration_ms()) {
                eprintln!("error: cannot write the report to {}: {e}", out.display());
                return EXIT_BAD_INPUT;
            }
            println!(
                "{}: {} simulated in {:.2}s wall ({:.0}x real time), report in {}",
                scenario.name,
                sim::duration::format_duration(scenario.duration),
                wall.as_secs_f64(),
                scenario.duration.as_secs_f64() / wall.as_secs_f64().max(1e-9),
                out.display()
            );
            verdict(&output)
        }
        Some(range) => {
            let started = Instant::now();
            let bar = ProgressBar::new(range.len());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} seeds, {msg} [{elapsed_precise}, eta {eta}]",
                )
                .expect("valid template"),
            );
            let mut sweep = Sweep::new(&scenario.name, kind.as_str());
            let mut failed = 0u64;
            for seed in range.seeds() {
                let output = match run(&scenario, seed, engine) {
                    Ok(o) => o,
                    Err(e) => {
                        bar.abandon();
                        eprintln!("error: {} (seed {seed}): {e}", scenario.file);
                        return engine_error_exit(&e);
                    }
                };
                if !output.report.passed {
                    failed += 1;
                    let dir = out.join(format!("seed-{seed}"));
                    if let Err(e) = write_outputs(&dir, &output, scenario.duration_ms()) {
                        bar.abandon();
                        eprintln!("error: cannot write the report to {}: {e}", dir.display());
                        return EXIT_BAD_INPUT;
                    }
                }
                sweep.add(seed, &output);
                bar.set_message(format!("{failed} failed"));
                bar.inc(1);
            }
            bar.finish_and_clear();
            let summary = sweep.finish();
            print!("{}", summary.to_text());
            let json = serde_json::to_string_pretty(&summary).expect("a summary serializes") + "\n";
            if let Err(e) = std::fs::create_dir_all(&out)
                .and_then(|_| std::fs::write(out.join("sweep.json"), json))
            {
                eprintln!(
                    "error: cannot write {}: {e}",
                    out.join("sweep.json").display()
                );
                return EXIT_BAD_INPUT;
            }
            println!(
                "{} seeds in {:.1}s wall; summary in {}",
                range.len(),
                started.elapsed().as_secs_f64(),
                out.join("sweep.json").display()
            );
            if summary.failed > 0 {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
    }
}

/// Exit status for a run the engine could not carry out: 2, or 130 when a signal stopped it
/// (as a shell reports Ctrl-C).
fn engine_error_exit(e: &sim::EngineError) -> u8 {
    match e {
        sim::EngineError::Interrupted(_) => EXIT_INTERRUPTED,
        _ => EXIT_BAD_INPUT,
    }
}

/// Prints the verdict; on failure the first violation, the seed and the repro command.
fn verdict(output: &RunOutput) -> u8 {
    let r = &output.report;
    if r.passed {
        println!("PASSED (seed {})", r.seed);
        return EXIT_OK;
    }
    let total: u64 = r.violation_counts.values().sum();
    println!("FAILED (seed {}): {total} violation(s)", r.seed);
    for v in r.violations.iter().take(10) {
        println!("  {} at {} ms: {}", v.invariant, v.at_ms, v.detail);
    }
    if total > 10 {
        println!("  ... see report.md for the rest");
    }
    println!("reproduce with: {}", output.repro);
    EXIT_FAILED
}

fn distribution(nodes: u32, targets: u32, algorithm: Option<&str>, seed: u64) -> u8 {
    use cluster::shard::{quality, Algorithm};
    let algorithm = match algorithm.map(str::parse::<Algorithm>) {
        None => Algorithm::default(),
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            eprintln!("error: --algorithm: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    if nodes == 0 {
        eprintln!("error: --nodes: 0: expected at least one node");
        return EXIT_BAD_INPUT;
    }
    let report = quality::distribution(algorithm, nodes as usize, targets as usize, seed);
    println!("{}", report.to_json());
    EXIT_OK
}

fn regress(config: GateConfig, update: bool) -> u8 {
    let t = &config.tolerance;
    if !(t.ratio_slack >= 0.0 && t.converge_slack_fraction >= 0.0) {
        eprintln!(
            "error: --ratio-tolerance and --converge-tolerance-percent: expected numbers >= 0"
        );
        return EXIT_BAD_INPUT;
    }
    let started = Instant::now();
    let registry = EngineRegistry::standard();
    let report = match run_gate(&config, &registry, |file| eprintln!("rerunning {file}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    println!("{}", config.tolerance.describe());
    print!("{}", report.to_text());
    let failures = report.failures();
    println!(
        "{} scenarios rerun in {:.1}s wall (reports in {}); {} regression(s) against {}",
        report.scenarios.len(),
        started.elapsed().as_secs_f64(),
        config.out.display(),
        failures.len(),
        config.baseline.display()
    );
    if update {
        if let Err(e) = update_baselines(&config, &report.scenarios) {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
        println!(
            "baselines in {} replaced by these reruns; review and commit them",
            config.baseline.display()
        );
        return EXIT_OK;
    }
    if failures.is_empty() {
        println!("PASSED: no figure worse than its baseline beyond the tolerance");
        EXIT_OK
    } else {
        println!("FAILED:");
        for r in failures {
            println!(
                "  {}: {}: baseline {}, now {} ({})",
                r.scenario, r.change, r.baseline, r.now, r.verdict
            );
        }
        println!(
            "if the change is intended, refresh the baselines with `sim regress --update` and commit reports/"
        );
        EXIT_FAILED
    }
}

fn scale(
    sizes: &[u32],
    first_seed: u64,
    seeds: u64,
    resolution: std::time::Duration,
    out: &std::path::Path,
) -> u8 {
    use sim::scale::{measure, write_report, Percentiles, ScaleReport, SizeResult};
    let range = sim::scale::NODES_MIN..=sim::scale::NODES_MAX;
    if let Some(bad) = sizes.iter().find(|n| !range.contains(n)) {
        eprintln!("error: --sizes: {bad}: expected cluster sizes in {range:?}");
        return EXIT_BAD_INPUT;
    }
    let resolution_ms = resolution.as_millis() as u64;
    if seeds == 0 || resolution_ms == 0 {
        eprintln!("error: --seeds and --resolution: expected at least 1 seed and 1 ms");
        return EXIT_BAD_INPUT;
    }
    let seed_list: Vec<u64> = (first_seed..first_seed.saturating_add(seeds)).collect();
    let mut results = Vec::new();
    for &n in sizes {
        let started = Instant::now();
        let mut samples = Vec::new();
        for &seed in &seed_list {
            match measure(n, seed, resolution_ms) {
                Ok(s) => samples.push(s),
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_BAD_INPUT;
                }
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let simulated = sim::scale::scenario_for(n, first_seed)
            .duration
            .as_secs_f64()
            * seed_list.len() as f64;
        let pick = |f: fn(&sim::scale::Sample) -> Option<u64>| {
            Percentiles::of(&samples.iter().map(f).collect::<Vec<_>>())
        };
        let r = SizeResult {
            nodes: n,
            start: pick(|s| s.start_seen_ms),
            join: pick(|s| s.join_seen_ms),
            crash: pick(|s| s.crash_seen_ms),
            loss: pick(|s| s.loss_seen_ms),
            samples,
        };
        let ms = |v: Option<u64>| v.map_or("never".to_string(), |v| format!("{v} ms"));
        println!(
            "N={n:>5}: join seen by all p50 {} p99 {}; crash seen by all p50 {} p99 {}; \
             silent loss seen by all p50 {} p99 {} ({} seeds, {wall:.1}s wall, {:.0}x real time)",
            ms(r.join.p50_ms),
            ms(r.join.p99_ms),
            ms(r.crash.p50_ms),
            ms(r.crash.p99_ms),
            ms(r.loss.p50_ms),
            ms(r.loss.p99_ms),
            seed_list.len(),
            simulated / wall.max(1e-9)
        );
        results.push(r);
    }
    let report = ScaleReport::new(resolution_ms, seed_list, results);
    if let Err(e) = write_report(out, &report) {
        eprintln!("error: cannot write the report to {}: {e}", out.display());
        return EXIT_BAD_INPUT;
    }
    println!("report in {}", out.join("scale.md").display());
    EXIT_OK
}
