//! The simulators predict what the real binary does: the four fault stories of
//! `scenarios/process/` (partition, split brain, node churn, rolling restart, 5-6 nodes) run on
//! real `agent` processes in network namespaces (`PROCESS_RUNS` runs each) and on the fast
//! engine (`FAST_SEEDS`); every run passes, and the median convergence after start and after
//! each event agrees within 2x or 2 s (`support::agree`). The table it prints is the one in
//! BENCHMARKS.md ("Real processes").
//!
//! Every process run is also checked for what makes it a real run: the agents started as the
//! story says, partitions really dropped packets, and each agent scraped exactly the targets its
//! view gives it whenever that view held still (`owned_checks`, `owned_mismatches`).
//!
//! The process engine's own tests live here too (loss, config drift, leave and join on real
//! agents; Ctrl-C clean-up; a missing agent binary), so that they run alongside the long test
//! instead of after it.
//!
//! Cost: the stories last 90-110 s of real time and all twelve process runs go at once (72
//! idle agents are light; one after the other they would take 20 minutes), so this binary
//! takes about two minutes. Needs root, iproute2, nftables (ci/test.sh installs them) and the agent
//! binary (`cargo test --workspace --release` builds target/release/agent). Release profile
//! only, like the other agreement test.

mod support;

use std::path::Path;

use sim::engine::{EngineKind, EngineRegistry};
use sim::report::Report;
use sim::run::run;
use sim::scenario::{Action, Scenario};
use support::Runs;

const PROCESS_RUNS: u64 = 3;
const FAST_SEEDS: std::ops::RangeInclusive<u64> = 1..=20;

fn stories() -> Vec<Scenario> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/process");
    let files = sim::regress::scenario_files(&dir).unwrap_or_else(|e| panic!("{e}"));
    files
        .iter()
        .map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// What the process run did, checked against its story: faults applied as written, agent
/// processes started for the initial nodes, joins and restarts, packets dropped by partitions,
/// and the agents' own scrape counts matching their views.
fn check_real(scenario: &Scenario, r: &Report, problems: &mut Vec<String>) {
    let count = |f: fn(&Action) -> bool| scenario.events.iter().filter(|e| f(&e.action)).count();
    let partitions = count(|a| matches!(a, Action::Partition(_))) as u64;
    let starts = scenario.cluster.nodes as u64
        + count(|a| matches!(a, Action::Join(_) | Action::Restart(_))) as u64;
    let mut problem =
        |what: String| problems.push(format!("{} (seed {}): {what}", r.scenario, r.seed));
    if r.faults.partitions != partitions {
        problem(format!(
            "{} partitions applied, the story has {partitions}",
            r.faults.partitions
        ));
    }
    if partitions > 0 && r.faults.dropped_messages == 0 {
        problem("partitioned, yet no packet was dropped".into());
    }
    let Some(p) = &r.process else {
        problem("no process section in report.json".into());
        return;
    };
    if p.processes_started != starts {
        problem(format!(
            "{} agent processes started, the story needs {starts}",
            p.processes_started
        ));
    }
    if p.owned_checks == 0 || p.owned_mismatches > 0 {
        problem(format!(
            "the agents' own scrape counts matched their views {} times out of {}",
            p.owned_checks - p.owned_mismatches,
            p.owned_checks
        ));
    }
    if r.messages.sent == 0 {
        problem("no cluster message counted".into());
    }
}

#[test]
fn the_stories_of_the_agreement_scenarios_are_all_here() {
    let names: Vec<String> = stories().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "process_node_churn",
            "process_partition",
            "process_rolling_restart",
            "process_split_brain"
        ]
    );
    for s in stories() {
        assert_eq!(s.engine, Some(EngineKind::Process), "{}", s.name);
        let live_max = s.all_nodes().len();
        assert!(
            live_max <= 7 && s.cluster.nodes <= 6,
            "{}: 5-6 nodes",
            s.name
        );
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "two minutes of real agents: run in the release profile (cargo test --release)"
)]
fn real_agents_agree_with_the_fast_engine_on_every_story() {
    let stories = stories();
    let registry = EngineRegistry::standard();
    // Every process run at once, each on its own thread (each engine has its own network
    // namespaces, bridge and subnet); the fast engine runs meanwhile on this thread.
    let (process, fast) = std::thread::scope(|s| {
        let handles: Vec<_> = stories
            .iter()
            .flat_map(|story| (1..=PROCESS_RUNS).map(move |seed| (story, seed)))
            .map(|(story, seed)| {
                s.spawn(move || {
                    let engine = EngineRegistry::standard();
                    let engine = engine.require(EngineKind::Process).expect("built in");
                    run(story, seed, engine)
                        .unwrap_or_else(|e| {
                            panic!("{} run {seed} on real processes: {e}", story.name)
                        })
                        .report
                })
            })
            .collect();
        let fast_engine = registry.require(EngineKind::Fast).expect("built in");
        let fast: Vec<Runs> = stories
            .iter()
            .map(|story| {
                let mut runs = Runs::new(story);
                for seed in FAST_SEEDS {
                    let r = run(story, seed, fast_engine).expect("the fast engine runs it");
                    runs.add(story, EngineKind::Fast, &r.report);
                }
                runs
            })
            .collect();
        let process: Vec<Report> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (process, fast)
    });

    let mut failures = Vec::new();
    let mut table = format!(
        "scenario / change: process median ({PROCESS_RUNS} runs), fast median ({} seeds)\n",
        FAST_SEEDS.count()
    );
    for (i, story) in stories.iter().enumerate() {
        let mut real = Runs::new(story);
        for r in &process[i * PROCESS_RUNS as usize..(i + 1) * PROCESS_RUNS as usize] {
            real.add(story, EngineKind::Process, r);
            check_real(story, r, &mut failures);
        }
        failures.extend(real.failures.iter().cloned());
        failures.extend(fast[i].failures.iter().cloned());
        real.compare(&fast[i], &story.name, &mut table, &mut failures);
    }
    let wall: Vec<String> = process
        .iter()
        .filter_map(|r| {
            let p = r.process.as_ref()?;
            Some(format!(
                "{} seed {}: started in {} ms, observation lag p50 {} ms max {} ms, {} stale, settle max {} ms, {} packets dropped",
                r.scenario,
                r.seed,
                p.startup_ms,
                p.observation_lag_p50_ms,
                p.observation_lag_max_ms,
                p.stale_node_observations,
                p.event_settle_max_ms,
                r.faults.dropped_messages
            ))
        })
        .collect();
    println!("{table}\n{}", wall.join("\n"));
    assert!(failures.is_empty(), "{table}\n{}", failures.join("\n"));
}

/// What the process engine created for the `sim` process `pid`: its namespaces, bridge, agent
/// processes and run folders.
fn leftovers(pid: u32) -> Vec<String> {
    let tag = format!("{pid:x}-");
    let mut found = Vec::new();
    let list = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("iproute2 runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for line in list(&["ip", "netns", "list"]).lines() {
        if line.starts_with(&format!("simp-{tag}")) {
            found.push(format!("namespace {line}"));
        }
    }
    for line in list(&["ip", "-o", "link", "show"]).lines() {
        if line.contains(&format!(": sp{tag}")) {
            found.push(format!("link {line}"));
        }
    }
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&format!("sim-process-{tag}")) {
            found.push(format!("process {:?}", entry.file_name()));
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("sim-process-{tag}"))
        {
            found.push(format!("folder {}", entry.path().display()));
        }
    }
    found
}

/// Ctrl-C during a run: sim stops the agents, removes the namespaces, the bridge and the run
/// folder, and exits 130.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release profile only, like the other tests here"
)]
fn ctrl_c_removes_every_namespace_bridge_and_process() {
    let out = std::env::temp_dir().join(format!("sim-ctrl-c-{}", std::process::id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/process/split_brain.toml"))
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sim starts");
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Running: six agents in their namespaces.
    while leftovers(pid)
        .iter()
        .filter(|l| l.starts_with("process"))
        .count()
        < 6
    {
        assert!(std::time::Instant::now() < deadline, "{:?}", leftovers(pid));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let output = child.wait_with_output().expect("sim exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: SIGINT"), "{stderr}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
    assert!(
        !out.join("report.json").exists(),
        "no report for a stopped run"
    );
}

/// Without the agent binary the engine says where it looked and how to get it, and runs
/// nothing.
#[test]
fn a_missing_agent_binary_is_named() {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/process/partition.toml"))
        .env(sim::engines::process::AGENT_ENV, "/nonexistent/agent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sim runs");
    let pid = child.id();
    let output = child.wait_with_output().expect("sim exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SIM_AGENT_BIN=/nonexistent/agent: no such file"),
        "{stderr}"
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// The actions the four stories do not use, on real agents: packet loss (nftables drops, no
/// false death), config drift (the file rewritten and SIGHUP: the engine fails the run unless
/// the agent then lists the new targets), a graceful leave (SIGTERM: terminating, then gone,
/// exit 0) and a join while loss is on. Runs alongside the agreement test.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release profile only, like the other tests here"
)]
fn loss_drift_leave_and_join_happen_on_real_agents() {
    let scenario = Scenario::parse(
        "drift_loss_leave.toml",
        r#"
name = "drift_loss_leave"
duration = "50s"
[cluster]
nodes = 4
join = "node-1"
probe_interval = "1s"
probe_timeout = "500ms"
[targets]
count = 300
[[event]]
at = "5s"
loss = 0.2
[[event]]
at = "10s"
leave = "node-2"
[[event]]
at = "15s"
join = "node-5"
[[event]]
at = "20s"
loss = 0.0
[[event]]
at = "25s"
targets = { nodes = ["node-3", "node-4"], count = 400 }
[[event]]
at = "30s"
targets = { nodes = ["node-1", "node-5"], count = 400 }
[expect]
converge_within = "20s"
max_redistribution_ratio = 1.5
max_false_deaths = 0
"#,
    )
    .expect("valid");
    let registry = EngineRegistry::standard();
    let engine = registry.require(EngineKind::Process).expect("built in");
    let out = run(&scenario, 1, engine).unwrap_or_else(|e| panic!("{e}"));
    let r = &out.report;
    assert!(
        r.passed,
        "{:?}\n{}",
        r.violations,
        r.to_markdown(&out.repro)
    );
    assert_eq!(
        (
            r.faults.network_changes,
            r.faults.config_changes,
            r.faults.leaves,
            r.faults.joins
        ),
        (2, 2, 1, 1)
    );
    assert!(r.faults.dropped_messages > 0, "20% loss dropped nothing");
    let leave = &r.changes[1];
    assert_eq!(leave.event, "leave node-2");
    assert_eq!(
        (leave.participants_before, leave.participants_after),
        (Some(4), Some(3))
    );
    let join = &r.changes[2];
    assert_eq!(
        (join.participants_before, join.participants_after),
        (Some(3), Some(4))
    );
    let p = r.process.as_ref().expect("process figures");
    assert_eq!(p.processes_started, 5);
    assert!(p.owned_checks > 0 && p.owned_mismatches == 0, "{p:?}");
}
