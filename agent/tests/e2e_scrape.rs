//! End to end with real components: Prometheus (OS package) as the remote-write receiver, 30
//! metrics endpoints of ours plus `prometheus-node-exporter` (if installed) as targets, and
//! three clustered `agent` processes with one Alloy config (each adds its own name as the
//! external label `agent`, the only line that differs, so Prometheus can tell who sent what).
//! Everything is checked through Prometheus' HTTP API, the way a user would:
//!
//! - every target arrives, each from exactly one agent;
//! - after `kill -9` of an agent its targets arrive from the others within a bound;
//! - after a graceful stop (SIGTERM) the moved targets have no gap (at most two scrape
//!   intervals between samples), no overlap, and no staleness marker from the old owner.
//!
//! Loopback only. Every wait is bounded; every process is killed when the test ends or fails.

mod common;
mod ports;
mod scrape_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use scrape_support::*;

/// The scrape interval of the test config.
const INTERVAL: Duration = Duration::from_secs(1);
const DEMO_TARGETS: usize = 30;

fn demo_metrics(index: usize, scrape: u64) -> String {
    format!(
        "# HELP demo_requests_total Requests served.\n\
         # TYPE demo_requests_total counter\n\
         demo_requests_total{{code=\"200\"}} {scrape}\n\
         demo_requests_total{{code=\"500\"}} {}\n\
         # TYPE demo_temperature_celsius gauge\n\
         demo_temperature_celsius {}\n",
        scrape / 10,
        20 + index
    )
}

/// The shared config, with this agent's name as the `agent` external label.
fn agent_config(
    targets_file: &Path,
    receiver_port: u16,
    node_exporter: Option<u16>,
    name: &str,
) -> String {
    let node = match node_exporter {
        Some(port) => format!(
            r#"
prometheus.scrape "node" {{
  targets         = [{{"__address__" = "127.0.0.1:{port}"}}]
  forward_to      = [prometheus.remote_write.local.receiver]
  job_name        = "node"
  scrape_interval = "1s"
  scrape_timeout  = "1s"
  clustering {{ enabled = true }}
}}
"#
        ),
        None => String::new(),
    };
    format!(
        r#"discovery.file "demo" {{
  files            = ["{}"]
  refresh_interval = "1s"
}}

prometheus.scrape "demo" {{
  targets         = discovery.file.demo.targets
  forward_to      = [prometheus.remote_write.local.receiver]
  job_name        = "demo"
  scrape_interval = "1s"
  scrape_timeout  = "1s"
  clustering {{ enabled = true }}
}}
{node}
prometheus.remote_write "local" {{
  endpoint {{
    url = "http://127.0.0.1:{receiver_port}/api/v1/write"
    queue_config {{ batch_send_deadline = "200ms" }}
  }}
  external_labels = {{ agent = "{name}" }}
}}
"#,
        targets_file.display()
    )
}

/// Which agents sent samples of `up` per instance in the last `window`.
fn senders(port: u16, window: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in query(
        port,
        &format!("count by (instance, agent) (count_over_time(up[{window}]))"),
    ) {
        out.entry(label(&s, "instance"))
            .or_default()
            .insert(label(&s, "agent"));
    }
    out
}

/// Instances whose samples in the last 3 s came from exactly one agent, with that agent —
/// `Some` only if that holds for all `instances`.
fn single_owners(port: u16, instances: &BTreeSet<String>) -> Option<BTreeMap<String, String>> {
    let seen = senders(port, "3s");
    let mut owners = BTreeMap::new();
    for i in instances {
        let agents = seen.get(i)?;
        if agents.len() != 1 {
            return None;
        }
        owners.insert(i.clone(), agents.iter().next().unwrap().clone());
    }
    Some(owners)
}

fn owned_metric(agent: &Agent, component: &str) -> f64 {
    sample(
        &agent.metrics(),
        &format!("agent_scrape_targets_owned{{component_id=\"prometheus.scrape.{component}\"}}"),
    )
    .unwrap_or(-1.0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn three_agents_split_the_targets_survive_a_crash_and_hand_over_without_gaps() {
    let Some(prometheus) = installed(PROMETHEUS, "prometheus") else {
        println!("SKIPPED e2e_scrape: {PROMETHEUS} is missing and `apt-get install -y prometheus` failed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Targets: 30 endpoints of ours (bound first: ephemeral ports taken later could collide
    // with the ports picked below), and node_exporter with a small fixed collector set.
    let fleet = TargetFleet::start(DEMO_TARGETS, 1, Arc::new(demo_metrics));
    let ports = free_ports(5);
    let (agent_ports, receiver_port, node_port) = (&ports[0..3], ports[3], ports[4]);
    let mut receiver = start_receiver(&prometheus, dir.path(), receiver_port);
    let node_exporter = Path::new(NODE_EXPORTER).exists().then(|| {
        Process::spawn(
            "node_exporter",
            Path::new(NODE_EXPORTER),
            &strings(&[
                &format!("--web.listen-address=127.0.0.1:{node_port}"),
                "--collector.disable-defaults",
                "--collector.loadavg",
                "--collector.meminfo",
                "--collector.cpu",
            ]),
            dir.path().join("node_exporter.log"),
        )
    });
    if node_exporter.is_none() {
        println!("note: {NODE_EXPORTER} not installed; scraping our targets only");
    }
    let mut instances: BTreeSet<String> = fleet.addresses.iter().cloned().collect();
    if node_exporter.is_some() {
        instances.insert(format!("127.0.0.1:{node_port}"));
    }
    let targets_file = dir.path().join("demo.json");
    let list: Vec<String> = fleet.addresses.iter().map(|a| format!("\"{a}\"")).collect();
    std::fs::write(
        &targets_file,
        format!(
            r#"[{{"targets": [{}], "labels": {{"group": "demo"}}}}]"#,
            list.join(", ")
        ),
    )
    .unwrap();

    wait_http_ok(&mut receiver, receiver_port, "/-/ready");

    // Three agents, the second and third join the first.
    let names = ["agent-1", "agent-2", "agent-3"];
    let mut agents: Vec<Agent> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let config = write_file(
            dir.path(),
            &format!("{name}.alloy"),
            &agent_config(
                &targets_file,
                receiver_port,
                node_exporter.as_ref().map(|_| node_port),
                name,
            ),
        );
        let mut flags = strings(&["--cluster.enabled"]);
        flags.extend(strings(FAST));
        if i > 0 {
            flags.push(format!(
                "--cluster.join-addresses=127.0.0.1:{}",
                agent_ports[0]
            ));
        }
        flags.push(config.display().to_string());
        let mut a = Agent::start(name, agent_ports[i], &flags);
        a.wait_healthy();
        agents.push(a);
    }
    let all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    wait_for(
        "three participants everywhere",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| names_in_state(&a.peers(), "participant") == all)
        },
    );

    // 1. Every target arrives, each from exactly one agent, and that agrees with what each
    //    agent says it scrapes. The 3 s window must start after the cluster formed.
    let formed = Instant::now();
    let per_agent = |owners: &BTreeMap<String, String>, name: &str| {
        owners
            .iter()
            .filter(|(_, a)| a.as_str() == name)
            .map(|(i, _)| i.clone())
            .collect::<BTreeSet<String>>()
    };
    let owned_total = |a: &Agent| {
        let node = if node_exporter.is_some() {
            owned_metric(a, "node")
        } else {
            0.0
        };
        owned_metric(a, "demo") + node
    };
    let mut owners = BTreeMap::new();
    let took = wait_for(
        "every target arrives in Prometheus from exactly one agent, as the agents say",
        Duration::from_secs(60),
        || {
            if formed.elapsed() < Duration::from_millis(3500) {
                return false;
            }
            let Some(o) = single_owners(receiver_port, &instances) else {
                return false;
            };
            let agree = agents
                .iter()
                .all(|a| per_agent(&o, &a.name).len() as f64 == owned_total(a));
            owners = o;
            agree
        },
    );
    eprintln!(
        "all {} targets arrive, each from one agent over a 3 s window ({took:?} after the cluster formed)",
        instances.len()
    );
    for a in &agents {
        let mine = per_agent(&owners, &a.name);
        assert!(!mine.is_empty(), "{} scrapes nothing: {owners:?}", a.name);
    }
    let demo_owned: f64 = agents.iter().map(|a| owned_metric(a, "demo")).sum();
    assert_eq!(
        demo_owned, DEMO_TARGETS as f64,
        "owned counts on /metrics add up"
    );
    if node_exporter.is_some() {
        let node_owned: f64 = agents.iter().map(|a| owned_metric(a, "node")).sum();
        assert_eq!(node_owned, 1.0);
        let load = query(
            receiver_port,
            r#"count_over_time(node_load1{job="node"}[3s])"#,
        );
        assert_eq!(
            load.len(),
            1,
            "node_exporter series arrive from one agent: {load:?}"
        );
    }
    let demo = query(
        receiver_port,
        r#"count_over_time(demo_requests_total{job="demo",group="demo"}[3s])"#,
    );
    assert_eq!(
        demo.len(),
        2 * DEMO_TARGETS,
        "two series per demo target, from one agent each"
    );
    let up = query(receiver_port, "up == 1");
    assert!(up.len() >= instances.len(), "every target is up: {up:?}");

    // 2. kill -9 of agent-2: its targets arrive from the others within a bound.
    let crashed = per_agent(&owners, "agent-2");
    agents[1].signal(libc::SIGKILL);
    let _ = agents[1].wait_exit(Duration::from_secs(5));
    let took = wait_for(
        "the crashed agent's targets arrive from the other agents",
        Duration::from_secs(30),
        || {
            let seen = senders(receiver_port, "2s");
            crashed.iter().all(|i| {
                seen.get(i)
                    .is_some_and(|a| a.iter().any(|a| a != "agent-2"))
            })
        },
    );
    eprintln!(
        "kill -9: {} targets of agent-2 arrive from the others {took:?} after the kill",
        crashed.len()
    );
    wait_for(
        "each target from exactly one survivor again",
        Duration::from_secs(30),
        || match single_owners(receiver_port, &instances) {
            Some(o) if o.values().all(|a| a != "agent-2") => {
                owners = o;
                true
            }
            _ => false,
        },
    );

    // 3. SIGTERM of agent-3: its targets move to agent-1 with no gap, no overlap and no
    //    staleness marker.
    let stable_since_ms = now_ms() - 3000;
    let moved = per_agent(&owners, "agent-3");
    assert!(!moved.is_empty());
    agents[2].signal(libc::SIGTERM);
    let status = agents[2].wait_exit(Duration::from_secs(15));
    assert!(status.success(), "graceful stop exits 0: {status}");
    assert!(agents[2].log_text().contains("left the cluster"));
    wait_for(
        "the stopped agent's targets arrive from agent-1",
        Duration::from_secs(15),
        || {
            let seen = senders(receiver_port, "2s");
            moved
                .iter()
                .all(|i| seen.get(i).is_some_and(|a| a.contains("agent-1")))
        },
    );
    std::thread::sleep(3 * INTERVAL);
    let window_s = (now_ms() - stable_since_ms) / 1000 + 1;
    let pattern: Vec<String> = moved.iter().map(|i| regex_escape(i)).collect();
    let mut worst_gap_ms = 0;
    for metric in ["up", "demo_temperature_celsius"] {
        let series = raw_samples(
            receiver_port,
            &format!(
                "{metric}{{instance=~\"{}\"}}[{window_s}s]",
                pattern.join("|")
            ),
        );
        for instance in &moved {
            let of = |agent: &str| -> Vec<i64> {
                series
                    .iter()
                    .filter(|(m, _)| m["instance"] == instance.as_str() && m["agent"] == agent)
                    .flat_map(|(_, v)| v.iter().map(|(t, _)| *t))
                    .filter(|t| *t >= stable_since_ms)
                    .collect()
            };
            let (old, new) = (of("agent-3"), of("agent-1"));
            if metric == "demo_temperature_celsius" && !instance_is_demo(instance, &fleet.addresses)
            {
                continue;
            }
            assert!(
                !old.is_empty() && !new.is_empty(),
                "{metric} {instance}: old {old:?} new {new:?}"
            );
            let last_old = *old.iter().max().unwrap();
            let first_new = *new.iter().min().unwrap();
            assert!(
                first_new > last_old,
                "{metric} {instance}: the new owner's samples start after the old owner's (no overlap): old {old:?} new {new:?}"
            );
            let mut all: Vec<i64> = old.iter().chain(new.iter()).copied().collect();
            all.sort_unstable();
            let gap = all.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
            worst_gap_ms = worst_gap_ms.max(gap);
            assert!(
                gap <= 2 * INTERVAL.as_millis() as i64,
                "{metric} {instance}: gap of {gap} ms at the hand-over (limit two intervals); old {old:?} new {new:?}"
            );
            // No staleness marker from the old owner: its series still has a current value
            // within the lookback (a marker would end it).
            let still = query(
                receiver_port,
                &format!("{metric}{{instance=\"{instance}\",agent=\"agent-3\"}}"),
            );
            assert_eq!(
                still.len(),
                1,
                "{metric} {instance} of agent-3 was marked stale"
            );
        }
    }
    eprintln!(
        "SIGTERM: {} targets moved to agent-1; worst gap between samples {worst_gap_ms} ms (interval {} ms)",
        moved.len(),
        INTERVAL.as_millis()
    );
    let m = agents[0].metrics();
    assert_eq!(
        sample(
            &m,
            "agent_scrape_targets_owned{component_id=\"prometheus.scrape.demo\"}"
        ),
        Some(DEMO_TARGETS as f64),
        "the last agent scrapes every demo target"
    );
    let failed = metric_sum(&m, "prometheus_remote_storage_samples_failed_total");
    let dropped = metric_sum(&m, "prometheus_remote_storage_samples_dropped_total");
    assert_eq!((failed, dropped), (0.0, 0.0), "{m}");
    assert!(metric_sum(&m, "prometheus_remote_storage_samples_total") > 0.0);
    receiver.assert_running();
}

fn instance_is_demo(instance: &str, demo: &[String]) -> bool {
    demo.iter().any(|d| d == instance)
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                vec![c]
            } else {
                vec!['\\', '\\', c]
            }
        })
        .collect()
}

/// `/-/reload` and SIGHUP: a good file updates the components and the config hash, a bad one
/// answers 400 with `file:line:col` and the running components stay.
#[test]
fn reloads_swap_components_and_a_bad_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = TargetFleet::start(3, 1, Arc::new(demo_metrics));
    let ports = free_ports(2);
    let config = |n: usize| {
        let targets: Vec<String> = fleet.addresses[..n]
            .iter()
            .map(|a| format!("{{\"__address__\" = \"{a}\"}}"))
            .collect();
        format!(
            "prometheus.scrape \"s\" {{\n  targets = [{}]\n  forward_to = [prometheus.remote_write.r.receiver]\n  scrape_interval = \"1s\"\n  scrape_timeout = \"1s\"\n}}\n\
             prometheus.remote_write \"r\" {{\n  endpoint {{ url = \"http://127.0.0.1:{}/api/v1/write\" }}\n}}\n",
            targets.join(", "),
            ports[1]
        )
    };
    let path = write_file(dir.path(), "agent.alloy", &config(2));
    let mut a = Agent::start("reload", ports[0], &[path.display().to_string()]);
    a.wait_healthy();
    let owned = |a: &Agent| {
        sample(
            &a.metrics(),
            "agent_scrape_targets_owned{component_id=\"prometheus.scrape.s\"}",
        )
    };
    wait_for("two targets scraped", Duration::from_secs(10), || {
        owned(&a) == Some(2.0)
    });
    let hash_before = a
        .metrics()
        .lines()
        .find(|l| l.starts_with("agent_config_hash{"))
        .unwrap()
        .to_string();

    std::fs::write(&path, "prometheus.scrape \"s\" {\n  targets = 7\n}\n").unwrap();
    let r = request(a.port, "POST", "/-/reload", "").unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("agent.alloy:2:"),
        "file:line:col in {}",
        r.body
    );
    assert_eq!(owned(&a), Some(2.0), "the old components keep running");
    assert!(a.log_text().contains("configuration not loaded"));

    std::fs::write(&path, config(3)).unwrap();
    a.signal(libc::SIGHUP);
    wait_for(
        "SIGHUP reload: three targets",
        Duration::from_secs(10),
        || owned(&a) == Some(3.0),
    );
    let m = a.metrics();
    let hash_after = m
        .lines()
        .find(|l| l.starts_with("agent_config_hash{"))
        .unwrap();
    assert_ne!(hash_before, hash_after, "config hash follows the file");
    assert_eq!(sample(&m, "agent_config_last_load_successful"), Some(1.0));
    a.signal(libc::SIGTERM);
    assert!(a.wait_exit(Duration::from_secs(15)).success());
}
