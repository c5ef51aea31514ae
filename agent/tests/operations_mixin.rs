//! The monitoring mixin in `operations/`, tested on the real thing:
//! - the committed dashboards are the rendering of `mixin/mod.rs` (`MIXIN_UPDATE=1` rewrites
//!   them);
//! - `promtool check rules` and `promtool test rules` pass, and every alert has a story in
//!   which it fires and is quiet in the healthy-cluster test;
//! - three clustered agents and a real Prometheus scraping them (and receiving their remote
//!   writes): every template variable has values, every dashboard query returns data, the
//!   alert rules evaluate without error and none is pending in the healthy cluster, and
//!   reloading one agent with another file makes ClusterConfigurationDrift pending.
//!
//! `PUBLIC_MIXIN_DASHBOARDS=DIR` also evaluates the rendered dashboards of DIR (e.g. Alloy's
//! `operations/alloy-mixin/rendered/dashboards`) and prints which queries return data
//! (with `PUBLIC_MIXIN_PREFIX=alloy`, `alloy_` names are read as `agent_`); it asserts
//! nothing about them.

mod common;
mod mixin;
mod ports;
mod scrape_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{names_in_state, request, strings, wait_for, Agent, FAST};
use scrape_support::{free_port, http_get, installed, percent_encode, wait_http_ok, Process};
use serde_json::Value;

fn operations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../operations")
        .canonicalize()
        .expect("operations/ at the repository root")
}

#[test]
fn the_committed_dashboards_are_the_rendering_of_their_source() {
    let dir = operations().join("dashboards");
    let update = std::env::var("MIXIN_UPDATE").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    let mut files = Vec::new();
    for d in mixin::dashboards() {
        let text = serde_json::to_string_pretty(&mixin::render(&d)).unwrap() + "\n";
        let path = dir.join(d.file);
        files.push(d.file.to_string());
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(d.file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from agent/tests/mixin/mod.rs; run `MIXIN_UPDATE=1 cargo test -p agent --test operations_mixin the_committed`"
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    on_disk.sort();
    files.sort();
    assert_eq!(on_disk, files, "no dashboard without a source");
}

/// Alert names of a rule file.
fn alert_names(path: &Path) -> Vec<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    doc["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn promtool_checks_the_rules_and_every_alert_fires_in_its_story_only() {
    let promtool =
        installed("/usr/bin/promtool", "prometheus").expect("promtool (Debian package prometheus)");
    let ops = operations();
    let rules = yaml_files(&ops.join("alerts"));
    let tests = yaml_files(&ops.join("tests"));
    assert!(!rules.is_empty() && !tests.is_empty());

    let out = std::process::Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .args(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&promtool)
        .current_dir(ops.join("tests"))
        .arg("test")
        .arg("rules")
        .args(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Coverage: each alert fires in some test, and the first test of its file (the healthy
    // cluster) checks that it stays quiet.
    for rule_file in &rules {
        let stem = rule_file.file_stem().unwrap().to_string_lossy().to_string();
        let test_file = ops.join("tests").join(format!("{stem}.test.yaml"));
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&test_file).unwrap()).unwrap();
        let cases = doc["tests"].as_sequence().unwrap();
        let healthy = &cases[0];
        assert!(
            healthy["name"].as_str().unwrap().contains("healthy"),
            "{}: the first test is the healthy cluster",
            test_file.display()
        );
        let checks = |case: &serde_yaml::Value| -> Vec<(String, bool)> {
            case["alert_rule_test"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|t| {
                    let fires = !t["exp_alerts"].as_sequence().unwrap().is_empty();
                    (t["alertname"].as_str().unwrap().to_string(), fires)
                })
                .collect()
        };
        for alert in alert_names(rule_file) {
            assert!(
                checks(healthy).contains(&(alert.clone(), false)),
                "{alert}: not checked quiet in the healthy test of {}",
                test_file.display()
            );
            assert!(
                cases
                    .iter()
                    .any(|c| checks(c).contains(&(alert.clone(), true))),
                "{alert}: no test where it fires in {}",
                test_file.display()
            );
        }
    }
}

/// Prometheus' HTTP API on 127.0.0.1.
struct Api(u16);

impl Api {
    fn get(&self, path: &str) -> Value {
        match http_get(self.0, path) {
            Some((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            other => panic!("GET {path}: {other:?}"),
        }
    }

    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        match http_get(self.0, &path) {
            Some((200, body)) => {
                let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
            }
            Some((status, body)) => Err(format!("{status}: {body}")),
            None => Err("no answer".into()),
        }
    }

    fn label_values(&self, label: &str, selector: &str) -> Vec<String> {
        let path = format!(
            "/api/v1/label/{label}/values?match[]={}",
            percent_encode(selector)
        );
        self.get(&path)["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    }

    /// Alerts pending or firing.
    fn alerts(&self) -> Vec<Value> {
        self.get("/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// `label_values(SELECTOR, LABEL)` split.
fn parse_label_values(q: &str) -> Option<(String, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr.replace("$__rate_interval", RATE_INTERVAL);
    // Longest names first, so `$instance` is not taken for a prefix of another name.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out.replace(&format!("${{{name}}}"), &vars[name]);
        out = out.replace(&format!("${name}"), &vars[name]);
    }
    out
}

/// Grafana's `$__rate_interval` for a 2 s scrape interval and a short time range.
const RATE_INTERVAL: &str = "30s";

/// What evaluating one dashboard found: every query with whether it returned data.
struct Evaluated {
    vars: BTreeMap<String, String>,
    queries: Vec<(String, String, Result<usize, String>)>,
}

/// Resolves the dashboard's variables the way Grafana does on load (the first value of a
/// single-value variable, `allValue` for a multi-value one) and runs every panel query.
fn evaluate(api: &Api, dashboard: &Value, rename: Option<&str>) -> Result<Evaluated, String> {
    let fix = |s: &str| match rename {
        Some(prefix) => s.replace(&format!("{prefix}_"), "agent_"),
        None => s.to_string(),
    };
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("query") => {
                let q = v["query"]["query"]
                    .as_str()
                    .or(v["query"].as_str())
                    .unwrap_or_default();
                let Some((selector, label)) = parse_label_values(&fix(q)) else {
                    return Err(format!("variable {name}: not a label_values query: {q}"));
                };
                let values = api.label_values(&label, &substitute(&selector, &vars));
                let value = if v["includeAll"].as_bool() == Some(true) {
                    v["allValue"].as_str().unwrap_or(".*").to_string()
                } else {
                    values.first().cloned().unwrap_or_default()
                };
                if values.is_empty() && rename.is_none() {
                    return Err(format!("variable {name} has no values: {q}"));
                }
                vars.insert(name, value);
            }
            Some("custom") => {
                let value = v["current"]["value"]
                    .as_str()
                    .map(String::from)
                    .or_else(|| {
                        v["current"]["value"]
                            .as_array()
                            .and_then(|a| a.first().and_then(|x| x.as_str()).map(String::from))
                    })
                    .unwrap_or_else(|| "instance".into());
                vars.insert(name, value);
            }
            _ => {}
        }
    }
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            let Some(expr) = t["expr"].as_str() else {
                continue;
            };
            let promql = substitute(&fix(expr), &vars);
            let result = api.query(&promql).map(|series| {
                series
                    .iter()
                    .filter(|s| {
                        s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(f64::is_finite)
                    })
                    .count()
            });
            queries.push((
                p["title"].as_str().unwrap_or("").to_string(),
                promql,
                result,
            ));
        }
    }
    Ok(Evaluated { vars, queries })
}

fn write_targets(path: &Path, node_exporter: &str, phase: u32) {
    let groups: Vec<Value> = (0..6)
        .map(|i| {
            let mut labels = serde_json::json!({"shard": format!("s{i}")});
            if i == 0 {
                labels["phase"] = Value::String(format!("p{phase}"));
            }
            serde_json::json!({"targets": [node_exporter], "labels": labels})
        })
        .collect();
    // Written whole, then renamed: discovery never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string(&groups).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn agent_config(dir: &Path, prometheus: u16, scrape_interval: &str) -> String {
    format!(
        r#"discovery.file "nodes" {{
  files            = ["{}"]
  refresh_interval = "1s"
}}

prometheus.scrape "nodes" {{
  targets         = discovery.file.nodes.targets
  forward_to      = [prometheus.remote_write.main.receiver]
  scrape_interval = "{scrape_interval}"
  scrape_timeout  = "2s"

  clustering {{
    enabled = true
  }}
}}

prometheus.remote_write "main" {{
  endpoint {{
    url = "http://127.0.0.1:{prometheus}/api/v1/write"
  }}
}}
"#,
        dir.join("targets.json").display()
    )
}

#[test]
fn every_dashboard_query_returns_data_from_three_clustered_agents() {
    let started = Instant::now();
    let prometheus_bin = installed(scrape_support::PROMETHEUS, "prometheus").expect("prometheus");
    let exporter_bin = installed(scrape_support::NODE_EXPORTER, "prometheus-node-exporter")
        .expect("node_exporter");
    let dir = tempfile::tempdir().unwrap();
    let exporter_port = free_port();
    let mut exporter = Process::spawn(
        "node_exporter",
        &exporter_bin,
        &[format!("--web.listen-address=127.0.0.1:{exporter_port}")],
        dir.path().join("node_exporter.log"),
    );
    let exporter_addr = format!("127.0.0.1:{exporter_port}");
    let targets_file = dir.path().join("targets.json");
    write_targets(&targets_file, &exporter_addr, 0);

    let ports = common::free_ports(3);
    let prom_port = free_port();
    let rules: Vec<String> = yaml_files(&operations().join("alerts"))
        .iter()
        .map(|p| format!("  - {}\n", p.display()))
        .collect();
    let targets: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files:\n{}scrape_configs:\n  - job_name: agent\n    static_configs:\n      - targets: [{}]\n        labels: {{cluster: test, namespace: agents}}\n",
            rules.concat(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let mut prometheus = Process::spawn(
        "prometheus",
        &prometheus_bin,
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--web.enable-remote-write-receiver".into(),
        ],
        dir.path().join("prometheus.log"),
    );
    wait_http_ok(&mut prometheus, prom_port, "/-/ready");
    wait_http_ok(&mut exporter, exporter_port, "/metrics");

    let mut agents = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let config = dir.path().join(format!("agent-{}.alloy", i + 1));
        std::fs::write(&config, agent_config(dir.path(), prom_port, "2s")).unwrap();
        let mut flags = strings(&["--cluster.enabled", "--cluster.name=mixin"]);
        flags.extend(strings(FAST));
        flags.push(format!("--cluster.join-addresses=127.0.0.1:{}", ports[0]));
        flags.push(config.display().to_string());
        agents.push(Agent::start(&format!("agent-{}", i + 1), *port, &flags));
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

    // Traffic for the rate windows: the target list changes every 3 s (a label of one
    // target flips), so discovery publishes and the scrape components are re-evaluated.
    let api = Api(prom_port);
    let traffic_until = Instant::now() + Duration::from_secs(36);
    let mut phase = 0;
    while Instant::now() < traffic_until {
        std::thread::sleep(Duration::from_secs(3));
        phase += 1;
        write_targets(&targets_file, &exporter_addr, phase % 2);
        prometheus.assert_running();
    }

    // Every dashboard: variables resolve, every query returns finite data.
    let mut failures = Vec::new();
    let mut total = 0;
    let dashboards_dir = operations().join("dashboards");
    for file in std::fs::read_dir(&dashboards_dir).unwrap() {
        let path = file.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match evaluate(&api, &dashboard, None) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(ev) => {
                assert_eq!(
                    ev.vars.get("cluster").map(String::as_str),
                    Some("test"),
                    "{name}"
                );
                for (title, promql, result) in ev.queries {
                    total += 1;
                    match result {
                        Ok(n) if n > 0 => {}
                        other => {
                            failures.push(format!("{name} / {title}: {other:?}\n    {promql}"))
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} dashboard queries returned no data:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} dashboard queries, each returned data");

    // The alert rules evaluate on the real series without error, and a healthy cluster has
    // none pending or firing.
    let groups = api.get("/api/v1/rules")["data"]["groups"].clone();
    let rules: Vec<&Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .collect();
    assert!(rules.len() >= 12, "rules loaded: {}", rules.len());
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} failed: {}",
            r["name"], r["lastError"]
        );
    }
    let alerts = api.alerts();
    assert!(
        alerts.is_empty(),
        "alerts in a healthy cluster: {alerts:#?}"
    );

    // Configuration drift: agent-3 reloads another file; the alert becomes pending.
    let config3 = dir.path().join("agent-3.alloy");
    std::fs::write(&config3, agent_config(dir.path(), prom_port, "3s")).unwrap();
    let answer = request(ports[2], "POST", "/-/reload", "").expect("reload answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_for(
        "ClusterConfigurationDrift pending",
        Duration::from_secs(30),
        || {
            api.alerts().iter().any(|a| {
                a["labels"]["alertname"] == "ClusterConfigurationDrift"
                    && a["labels"]["cluster_name"] == "mixin"
                    && a["labels"]["cluster"] == "test"
            })
        },
    );
    let others: Vec<Value> = api
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] != "ClusterConfigurationDrift")
        .collect();
    assert!(others.is_empty(), "only the drift alert: {others:#?}");

    if let Ok(dir) = std::env::var("PUBLIC_MIXIN_DASHBOARDS") {
        public_mixin_report(&api, Path::new(&dir));
    }
    eprintln!("mixin end-to-end test took {:?}", started.elapsed());
}

/// Evaluates a public mixin's rendered dashboards against the same cluster and prints, per
/// dashboard, how many queries return data and those that do not.
fn public_mixin_report(api: &Api, dir: &Path) {
    let rename = std::env::var("PUBLIC_MIXIN_PREFIX").ok();
    let (mut with_data, mut total) = (0, 0);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for path in files {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match evaluate(api, &dashboard, Some(rename.as_deref().unwrap_or("agent"))) {
            Err(e) => eprintln!("{name}: {e}"),
            Ok(ev) => {
                let ok = ev
                    .queries
                    .iter()
                    .filter(|q| matches!(q.2, Ok(n) if n > 0))
                    .count();
                eprintln!("{name}: {ok} of {} queries return data", ev.queries.len());
                for (title, promql, result) in &ev.queries {
                    if !matches!(result, Ok(n) if *n > 0) {
                        eprintln!("    no data: {title}: {}", promql.replace('\n', " "));
                    }
                }
                with_data += ok;
                total += ev.queries.len();
            }
        }
    }
    eprintln!(
        "public mixin {}: {with_data} of {total} queries return data",
        dir.display()
    );
}
