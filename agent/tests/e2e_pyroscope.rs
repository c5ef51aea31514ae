//! End-to-end: `pyroscope.scrape` with clustering and `pyroscope.write`, real processes.
//! Three clustered agents (one configuration file) pull the default profile types from nine
//! Go programs' `/debug/pprof/*` (a Prometheus and eight node_exporters from the Debian
//! packages) and push them to our Pyroscope test endpoint (`pyroscope_support`, which checks
//! the wire format and that each profile is a real pprof profile of its type). Proven: the
//! agents split the targets (each target's profiles come from one agent, the agents' own
//! `agent_scrape_targets_owned` add up to the nine targets, at least two agents own some),
//! and each (target, profile type) is scraped once per interval: no duplicate, no gap.

mod common;
mod ports;
mod pyroscope_support;
mod scrape_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{names_in_state, sample, strings, wait_for, Agent, FAST};
use scrape_support::{free_port, installed, wait_http_ok, Process};

const INTERVAL: Duration = Duration::from_secs(3);
const PROFILE_TYPES: [&str; 5] = ["memory", "block", "goroutine", "mutex", "process_cpu"];

#[test]
fn three_agents_split_the_profile_targets_and_scrape_each_once_per_interval() {
    let prometheus_bin = installed(scrape_support::PROMETHEUS, "prometheus").expect("prometheus");
    let exporter_bin = installed(scrape_support::NODE_EXPORTER, "prometheus-node-exporter")
        .expect("node_exporter");
    let dir = tempfile::tempdir().unwrap();

    // The Go programs: each its own process (a CPU profile is one at a time per process).
    let mut programs = Vec::new();
    let mut targets = Vec::new();
    let prom_port = free_port();
    std::fs::write(dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
    programs.push((
        Process::spawn(
            "prometheus",
            &prometheus_bin,
            &[
                format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ],
            dir.path().join("prometheus.log"),
        ),
        prom_port,
    ));
    targets.push((prom_port, "prometheus".to_string()));
    for i in 0..8 {
        let port = free_port();
        programs.push((
            Process::spawn(
                &format!("node_exporter-{i}"),
                &exporter_bin,
                &[format!("--web.listen-address=127.0.0.1:{port}")],
                dir.path().join(format!("node_exporter-{i}.log")),
            ),
            port,
        ));
        targets.push((port, format!("node-exporter-{i}")));
    }
    for (p, port) in programs.iter_mut() {
        wait_http_ok(p, *port, "/debug/pprof/");
    }

    let receiver = pyroscope_support::Receiver::start();
    let target_list: Vec<String> = targets
        .iter()
        .map(|(port, service)| {
            format!("{{\"__address__\" = \"127.0.0.1:{port}\", \"service_name\" = \"{service}\"}}")
        })
        .collect();
    let config = dir.path().join("config.alloy");
    std::fs::write(
        &config,
        format!(
            r#"pyroscope.scrape "go" {{
  targets         = [{}]
  forward_to      = [pyroscope.write.local.receiver]
  scrape_interval = "3s"

  clustering {{
    enabled = true
  }}
}}

pyroscope.write "local" {{
  endpoint {{
    url     = "http://127.0.0.1:{}"
    headers = {{"X-Agent" = sys.env("AGENT_NAME")}}
  }}
}}
"#,
            target_list.join(", "),
            receiver.port
        ),
    )
    .unwrap();

    let ports = common::free_ports(3);
    let mut agents = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let name = format!("agent-{}", i + 1);
        let mut flags = strings(&["--cluster.enabled"]);
        flags.extend(strings(FAST));
        flags.push(format!("--cluster.join-addresses=127.0.0.1:{}", ports[0]));
        flags.push(config.display().to_string());
        agents.push(Agent::start_with_env(
            &name,
            *port,
            &flags,
            &[("AGENT_NAME", &name)],
        ));
    }
    for a in agents.iter_mut() {
        a.wait_healthy();
    }
    let names = strings(&["agent-1", "agent-2", "agent-3"]);
    wait_for(
        "three participants everywhere",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&a.peers(), "participant") == names)
        },
    );
    // Two intervals for the hand-overs of the start to settle, then five measured.
    std::thread::sleep(INTERVAL * 2 + Duration::from_millis(500));
    let start = Instant::now();
    std::thread::sleep(INTERVAL * 5);
    let end = Instant::now();
    // Profiles fetched before `end` arrive within a CPU profile's duration.
    std::thread::sleep(INTERVAL);

    let log = receiver.log.lock().unwrap();
    assert!(log.errors.is_empty(), "refused pushes: {:?}", log.errors);
    // Per (instance, profile type): who sent it and when, in the measured window.
    let mut seen: BTreeMap<(String, String), Vec<(String, Instant)>> = BTreeMap::new();
    for p in &log.profiles {
        let key = (p.labels["instance"].clone(), p.labels["__name__"].clone());
        seen.entry(key).or_default().push((p.agent.clone(), p.at));
        assert_eq!(p.labels["job"], "pyroscope.scrape.go");
    }
    let mut owner_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (port, service) in &targets {
        let instance = format!("127.0.0.1:{port}");
        for t in PROFILE_TYPES {
            let all = seen
                .get(&(instance.clone(), t.to_string()))
                .unwrap_or_else(|| panic!("no {t} profile of {service} ({instance})"));
            // Owners in the measured window (at the start, targets move as nodes join).
            owner_of.entry(instance.clone()).or_default().extend(
                all.iter()
                    .filter(|(_, at)| *at >= start)
                    .map(|(a, _)| a.clone()),
            );
            let times: Vec<Instant> = all
                .iter()
                .map(|(_, at)| *at)
                .filter(|at| *at >= start && *at < end + INTERVAL)
                .collect();
            // The window is six intervals long: a steady scrape lands six profiles in it, a
            // seventh when the first arrival was late and the last early (a loaded machine
            // delays a fetch by up to a second). Duplicates are the gap check's business.
            let arrivals: Vec<String> = all
                .iter()
                .map(|(a, at)| format!("{a}@{:?}", at.saturating_duration_since(start)))
                .collect();
            assert!(
                times.len() >= 4 && times.len() <= 7,
                "{t} of {service}: {} profiles in five intervals; arrivals after the window's start: {arrivals:?}",
                times.len()
            );
            for w in times.windows(2) {
                let gap = w[1] - w[0];
                assert!(
                    gap > INTERVAL / 2 && gap < INTERVAL * 3 / 2,
                    "{t} of {service}: profiles {gap:?} apart (interval {INTERVAL:?}): a duplicate or a gap; arrivals: {arrivals:?}"
                );
            }
        }
    }
    // Each target is scraped by one agent only (every profile type of it).
    for (instance, owners) in &owner_of {
        assert_eq!(owners.len(), 1, "{instance} scraped by {owners:?}");
    }
    let mut per_agent: BTreeMap<String, usize> = BTreeMap::new();
    for owners in owner_of.values() {
        *per_agent
            .entry(owners.iter().next().unwrap().clone())
            .or_default() += 1;
    }
    drop(log);
    // The agents' own view agrees: owned targets add up, and match what each one pushed.
    let mut total = 0.0;
    for a in &agents {
        let owned = sample(
            &a.metrics(),
            "agent_scrape_targets_owned{component_id=\"pyroscope.scrape.go\"}",
        )
        .expect("owned targets metric");
        assert_eq!(
            owned as usize,
            per_agent.get(&a.name).copied().unwrap_or(0),
            "{} owns {owned} targets; pushed: {per_agent:?}",
            a.name
        );
        total += owned;
    }
    assert_eq!(total as usize, targets.len());
    assert!(
        per_agent.len() >= 2,
        "the targets are shared: {per_agent:?}"
    );
    eprintln!("targets per agent: {per_agent:?}");
}
