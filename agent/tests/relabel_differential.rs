//! Differential test: the agent's relabeling against a real Prometheus (2.42, the OS
//! package). The same rules are written as `relabel_configs` in a Prometheus scrape config
//! and as `rule` blocks of a `discovery.relabel` component in an Alloy config that the agent's
//! own parser loads; the agent side then runs the component (`relabel_targets`) and the
//! scrape component's target population (`ScrapeTarget::new`: job, instance, `__` labels
//! removed), exactly the path a discovered target takes in `agent run`.
//!
//! Every input target of every case becomes its own scrape job
//! (`case_NN_tK`) of a single Prometheus process; after service discovery
//! settles we read `/api/v1/targets?state=any` and compare, per job, whether
//! the target is active (and with which labels), dropped, or gone
//! (Prometheus discards a target whose `__address__` is empty after
//! relabeling without listing it). One target per job because Prometheus
//! 2.42 reports `discoveredLabels` *after* relabeling (its labels builder
//! aliases the input), so targets cannot be told apart by input labels.
//!
//! Prometheus runs the rules after adding `job`, `__scheme__`,
//! `__metrics_path__`, `__scrape_interval__` and `__scrape_timeout__`. In the
//! agent the rules run in discovery.relabel BEFORE the scrape component adds
//! those labels, so the table is designed so that results cannot depend on
//! them: no rule references job/`__scheme__`/`__metrics_path__`/`__scrape_*`,
//! labelmap only matches `__meta_*`, labeldrop never matches them, and
//! labelkeep regexes always keep `__.*` and `job`.
//!
//! All addresses are on the loopback range with explicit ports (Prometheus
//! 2.42 appends a default port otherwise), so the odd scrape attempt that
//! fires during the test only ever goes to 127.0.0.0/8.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::config::{Config, ScrapeConfig};
use agent::discovery::Target;
use agent::relabel::{relabel_targets, Rule};
use agent::scrape::ScrapeTarget;

mod ports;
use ports::free_port;
#[path = "relabel_differential/cases.rs"]
mod cases;
use cases::{cases, Case};

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Active(Labels),
    Dropped,
    /// Not listed at all (empty `__address__` after relabeling).
    Gone,
}

/// What the agent does with one input target: `discovery.relabel` with the case's rules,
/// then the scrape component's population of the target's labels.
fn ours(rules: &[Rule], input: &Labels, job: &str) -> Outcome {
    let out = relabel_targets(vec![Target::from_map(input.clone())], rules);
    let Some(target) = out.into_iter().next() else {
        return Outcome::Dropped;
    };
    if target.address().is_empty() {
        // Left out before sharding, as Prometheus leaves it out of every list.
        return Outcome::Gone;
    }
    let mut scrape = ScrapeConfig::with_defaults("differential");
    scrape.job_name = job.to_string();
    let populated = ScrapeTarget::new(&target, &scrape)
        .unwrap_or_else(|e| panic!("target {target:?} not scrapable: {e}"));
    Outcome::Active(
        populated
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn on_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Minimal HTTP/1.0 GET against 127.0.0.1; returns (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn start_prometheus(bin: &Path, config: &str) -> Prometheus {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("relabel-diff-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).expect("create temp dir");
    std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("create log");
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    let mut p = Prometheus { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("prometheus exited early ({status}):\n{}", log_tail(&p.dir));
        }
        if matches!(http_get(p.port, "/-/ready"), Ok((200, _))) {
            return p;
        }
        if Instant::now() > deadline {
            panic!("prometheus not ready after 30s:\n{}", log_tail(&p.dir));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Outcomes reported by Prometheus, keyed by job (one target per job).
fn prometheus_outcomes(body: &str) -> BTreeMap<String, Outcome> {
    let v: serde_json::Value = serde_json::from_str(body).expect("targets JSON");
    let data = &v["data"];
    let str_map = |m: &serde_json::Value| -> Labels {
        m.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for t in data["activeTargets"].as_array().into_iter().flatten() {
        let job = t["scrapePool"].as_str().unwrap_or_default().to_string();
        out.insert(job, Outcome::Active(str_map(&t["labels"])));
    }
    for t in data["droppedTargets"].as_array().into_iter().flatten() {
        // Rules never touch `job` (see the table), so it still names the pool.
        let job = str_map(&t["discoveredLabels"])
            .remove("job")
            .unwrap_or_default();
        out.insert(job, Outcome::Dropped);
    }
    out
}

/// Polls the targets API until the listing is non-empty and unchanged over
/// three consecutive polls (discovery and scrape-pool sync are asynchronous).
fn settled_targets(p: &Prometheus) -> BTreeMap<String, Outcome> {
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last: Option<BTreeMap<String, Outcome>> = None;
    let mut stable = 0;
    loop {
        if let Ok((200, body)) = http_get(p.port, "/api/v1/targets?state=any") {
            let now = prometheus_outcomes(&body);
            if !now.is_empty() && last.as_ref() == Some(&now) {
                stable += 1;
                if stable >= 2 {
                    return now;
                }
            } else {
                stable = 0;
            }
            last = Some(now);
        }
        if Instant::now() > deadline {
            panic!("targets did not settle within 45s:\n{}", log_tail(&p.dir));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The case's rules as the agent's config parser reads them from Alloy `rule` blocks.
fn build_rules(case: &Case) -> Vec<Rule> {
    let src = format!(
        "discovery.relabel \"d\" {{\n  targets = []\n{}}}\n",
        case.to_alloy_rules()
    );
    let config = Config::from_str(&src, "differential.alloy")
        .unwrap_or_else(|e| panic!("{}: config refused: {e}\n{src}", case.name));
    config.discovery_relabels[0].rules.clone()
}

#[test]
fn alloy_rendering_escapes_go_style() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "replace_perl_classes_are_ascii")
        .expect("case exists");
    let alloy = c.to_alloy_rules();
    assert!(
        alloy.starts_with("rule {\n  source_labels = [\"v\"]\n  regex = \"(\\\\w*)(\\\\W.*)?\"\n"),
        "{alloy}"
    );
    assert!(alloy.contains("  action = \"replace\"\n}\n"), "{alloy}");
}

#[test]
fn relabel_matches_prometheus() {
    let Some(bin) = on_path("prometheus") else {
        if std::env::var_os("CI").is_some() {
            panic!("`prometheus` is not on PATH but CI is set: install it (apt-get install prometheus)");
        }
        // Written to the real stderr so the skip is visible even when output is captured.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED relabel_matches_prometheus: `prometheus` is not on PATH"
        );
        return;
    };
    let cases = cases();
    assert!(cases.len() >= 30, "table too small");
    let mut config = String::from("scrape_configs:\n");
    for (i, c) in cases.iter().enumerate() {
        for k in 0..c.inputs().len() {
            config.push_str(&c.to_prometheus_job(&target_job(i, k), k));
        }
    }
    let prom = start_prometheus(&bin, &config);
    let theirs = settled_targets(&prom);

    let mut failures = Vec::new();
    let mut compared = 0;
    let mut seen = BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let rules = build_rules(case);
        for (k, input) in case.inputs().into_iter().enumerate() {
            let job = target_job(i, k);
            let addr = input["__address__"].clone();
            assert!(
                seen.insert(addr.clone()),
                "address {addr} reused across cases"
            );
            let ours = ours(&rules, &input, &job);
            let prom_out = theirs.get(&job).cloned().unwrap_or(Outcome::Gone);
            if let Some(why) = case.known_divergence {
                eprintln!(
                    "NOTE {job} {}: not compared ({why})\n  prometheus: {prom_out:?}\n  ours:       {ours:?}",
                    case.name
                );
                continue;
            }
            compared += 1;
            if prom_out != ours {
                failures.push(format!(
                    "MISMATCH {job} {}\n  rules:\n{}\n  input:      {input:?}\n  prometheus: {prom_out:?}\n  ours:       {ours:?}",
                    case.name,
                    case.to_alloy_rules()
                ));
            }
        }
    }
    drop(prom);
    eprintln!(
        "differential: {} cases, {compared} targets compared, {} mismatches",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The job (scrape pool) of input `k` of case `i`.
fn target_job(i: usize, k: usize) -> String {
    format!("case_{:02}_t{k}", i + 1)
}
