//! Differential test: the agent's scraping against Prometheus itself (2.42, the OS package, in
//! agent mode). Both scrape the same targets of ours — one per case in
//! `scrape_differential/cases.rs`: the text format and OpenMetrics as the specifications and
//! Prometheus' documented behaviour describe them, malformed bodies, content negotiation,
//! gzip, redirects, statuses, `honor_labels`, `honor_timestamps`, `body_size_limit` — and each
//! remote-writes to a receiver of ours that decodes every request. Every target serves each
//! scraper the same sequence (3 good scrapes, then 503), so the two streams can be compared
//! sample by sample: per case, every sample's labels, the scrape it belongs to (or its
//! explicit timestamp) and its value bits — the five report series, staleness markers and
//! counts included — and the metric metadata each sent. Cases marked as deliberate
//! differences (documented in agent/README.md) are printed, not compared.
//!
//! A second test puts real Prometheus receivers behind both scrapers and targets whose samples
//! a receiver would refuse next to a good one: every sample of the good target must be stored,
//! as Prometheus stores them (issue 16 measured 0 of 20 for the agent of that time).

mod ports;
mod scrape_support;

#[path = "scrape_differential/cases.rs"]
mod cases;
#[path = "scrape_differential/harness.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::*;
use scrape_support::{free_port, installed, wait_http_ok, Process, PROMETHEUS};

/// Bound on both scrapers having sent what the comparison needs.
const SETTLE: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn prometheus_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let found = installed(PROMETHEUS, "prometheus");
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{PROMETHEUS} is missing but CI is set: install it (apt-get install prometheus)"
            );
        }
        eprintln!("SKIPPED {test}: {PROMETHEUS} is missing");
    }
    found
}

/// Prometheus 2.42 in agent mode with `config`.
fn start_prometheus_agent(bin: &Path, dir: &Path, config: &str) -> Process {
    let port = free_port();
    let file = dir.join("prometheus-agent.yml");
    std::fs::write(&file, config).unwrap();
    let mut p = Process::spawn(
        "prometheus (agent mode)",
        bin,
        &[
            "--enable-feature=agent".into(),
            format!("--config.file={}", file.display()),
            format!(
                "--storage.agent.path={}",
                dir.join("prometheus-wal").display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir.join("prometheus-agent.log"),
    );
    wait_http_ok(&mut p, port, "/-/ready");
    p
}

/// `agent run` with `config`; the process and its HTTP port.
fn start_agent(dir: &Path, config: &str) -> (Process, u16) {
    let port = free_port();
    let file = dir.join("agent.alloy");
    std::fs::write(&file, config).unwrap();
    let mut a = Process::spawn(
        "agent",
        Path::new(env!("CARGO_BIN_EXE_agent")),
        &[
            "run".into(),
            "--cluster.node-name=differential".into(),
            format!("--server.http.listen-addr=127.0.0.1:{port}"),
            format!("--storage.path={}", dir.join("agent-data").display()),
            file.display().to_string(),
        ],
        dir.join("agent.log"),
    );
    wait_http_ok(&mut a, port, "/-/ready");
    (a, port)
}

#[test]
fn scraping_matches_prometheus_sample_by_sample() {
    let Some(bin) = prometheus_or_skip("scraping_matches_prometheus_sample_by_sample") else {
        return;
    };
    let started = Instant::now();
    let cases: &'static [cases::Case] = Box::leak(cases::cases().into_boxed_slice());
    assert!(cases.len() >= 80, "table too small: {}", cases.len());
    // Explicit timestamps sit 4 minutes ahead: after both scrapers' start (Prometheus never
    // sends older ones) and within the 10 minutes it accepts ahead.
    let base_ms = now_ms() + 4 * 60 * 1000;
    let targets = Targets::start(cases, base_ms);
    let (theirs, ours) = (Receiver::start(), Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let mut prom = start_prometheus_agent(
        &bin,
        dir.path(),
        &prometheus_config(cases, &targets.addresses, theirs.port, "1s"),
    );
    let (mut agent, _) = start_agent(
        dir.path(),
        &agent_config(cases, &targets.addresses, ours.port, "1s"),
    );

    // Wait until both sent every case's compared scrapes, then for a metadata request sent
    // after that (metadata goes out every 2 s).
    let deadline = Instant::now() + SETTLE;
    let complete = |r: &Receiver| {
        let got = r.got.lock().unwrap();
        cases
            .iter()
            .all(|c| case_samples(&got.samples, c.name).is_some())
    };
    let mut all_scraped: Option<Instant> = None;
    loop {
        prom.assert_running();
        agent.assert_running();
        if all_scraped.is_none() && complete(&theirs) && complete(&ours) {
            all_scraped = Some(Instant::now());
        }
        if let Some(t) = all_scraped {
            let after = |r: &Receiver| {
                r.got
                    .lock()
                    .unwrap()
                    .metadata_requests
                    .iter()
                    .any(|at| *at > t)
            };
            if after(&theirs) && after(&ours) {
                break;
            }
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = cases
                .iter()
                .filter(|c| {
                    [&theirs, &ours]
                        .iter()
                        .any(|r| case_samples(&r.got.lock().unwrap().samples, c.name).is_none())
                })
                .map(|c| c.name)
                .collect();
            panic!(
                "not everything arrived within {SETTLE:?}: cases {missing:?}, all scraped at {all_scraped:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(agent);
    drop(prom);

    let (t, o) = (theirs.got.lock().unwrap(), ours.got.lock().unwrap());
    assert!(t.bad_requests.is_empty(), "{:?}", t.bad_requests);
    assert!(o.bad_requests.is_empty(), "{:?}", o.bad_requests);
    let mut failures = Vec::new();
    let mut compared = 0;
    let (mut up_cases, mut down_cases) = (0, 0);
    for c in cases {
        let a = case_samples(&t.samples, c.name).unwrap();
        let b = case_samples(&o.samples, c.name).unwrap();
        let summary = format!("{:<42} up prometheus {} agent {}", c.name, ups(&a), ups(&b));
        if let Some(why) = c.known_divergence {
            eprintln!(
                "NOTE {summary}: not compared ({why})\n{}",
                diff(&a, &b).join("\n")
            );
            continue;
        }
        compared += 1;
        match ups(&a).as_bytes().first() {
            Some(b'1') => up_cases += 1,
            _ => down_cases += 1,
        }
        let d = diff(&a, &b);
        if d.is_empty() {
            eprintln!("same {summary}");
        } else {
            failures.push(format!("DIFFERENT {summary}\n{}", d.join("\n")));
        }
    }
    // The metadata each sent (every distinct entry, over all requests).
    let only = |x: &harness::Received, y: &harness::Received| -> Vec<String> {
        x.metadata
            .difference(&y.metadata)
            .map(|m| format!("{m:?}"))
            .collect()
    };
    let (only_theirs, only_ours) = (only(&t, &o), only(&o, &t));
    if !only_theirs.is_empty() || !only_ours.is_empty() {
        failures.push(format!(
            "METADATA differs\n  only Prometheus sent: {only_theirs:#?}\n  only the agent sent: {only_ours:#?}"
        ));
    }
    eprintln!(
        "scrape differential: {} cases, {compared} compared ({up_cases} up / {down_cases} down at the first scrape), {} metadata entries, {} failures, {:?}",
        cases.len(),
        t.metadata.len(),
        failures.len(),
        started.elapsed()
    );
    // The test proves both sides were exercised: targets up and down, metadata sent.
    assert!(
        up_cases >= 30 && down_cases >= 20,
        "{up_cases} / {down_cases}"
    );
    assert!(t.metadata.len() >= 20, "metadata: {:?}", t.metadata);
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Targets whose samples a receiver would refuse, next to a good one (see the module doc).
fn data_loss_cases() -> Vec<cases::Case> {
    use cases::{reply, Case, Job};
    const TEXT: &str = "text/plain; version=0.0.4";
    fn text(body: String) -> cases::Reply {
        reply(200, TEXT, body)
    }
    vec![
        Case {
            name: "good",
            job: Job::Default,
            known_divergence: None,
            serve: |r| {
                text(format!(
                    "# TYPE good_total counter\ngood_total{{path=\"/a\"}} {}\ngood_total{{path=\"/b\"}} {}\ngood_temperature 21\n",
                    r.n,
                    r.n * 2
                ))
            },
        },
        Case {
            name: "ancient",
            job: Job::Default,
            known_divergence: None,
            serve: |_| text("ancient 1 1000\nancient_fresh 1\n".into()),
        },
        Case {
            name: "negative",
            job: Job::Default,
            known_divergence: None,
            serve: |_| text("negative 1 -5\n".into()),
        },
        Case {
            name: "backwards",
            job: Job::Default,
            known_divergence: None,
            serve: |r| {
                text(format!(
                    "backwards {} {}\n",
                    r.n,
                    r.base_ms + [2000, 1000, 3000][r.n as usize % 3]
                ))
            },
        },
        Case {
            name: "future",
            job: Job::Default,
            known_divergence: None,
            serve: |r| text(format!("future 1 {}\n", r.base_ms + 30 * 60 * 1000)),
        },
        Case {
            name: "om_negative",
            job: Job::Default,
            known_divergence: None,
            serve: |_| {
                reply(
                    200,
                    "application/openmetrics-text; version=1.0.0",
                    "om_negative 1 -1.5\n# EOF\n",
                )
            },
        },
        // The same series from two targets (honor_labels), the second one's timestamps older
        // than the first one's: only a receiver (or Prometheus' shared storage) can see the
        // conflict. Scrape 2 of conflict_b is older than scrape 0 of conflict_a, which was
        // sent (100 ms batches) a second or more before, so a receiver refuses it in a request
        // of its own; within one request a Prometheus receiver drops it silently. Which of
        // the earlier samples survive depends on the scrapers' phases.
        Case {
            name: "conflict_a",
            job: Job::HonorLabels,
            known_divergence: Some("which conflicting sample is stored depends on scrape phases"),
            serve: |r| {
                text(format!(
                    "shared{{case=\"conflict\",job=\"conflict\",instance=\"x\"}} {} {}\n",
                    r.n,
                    r.base_ms + 1000 * r.n as i64 + 500
                ))
            },
        },
        Case {
            name: "conflict_b",
            job: Job::HonorLabels,
            known_divergence: Some("which conflicting sample is stored depends on scrape phases"),
            serve: |r| {
                text(format!(
                    "shared{{case=\"conflict\",job=\"conflict\",instance=\"x\"}} {} {}\n",
                    100 + r.n,
                    r.base_ms + 1000 * r.n as i64 - 2500
                ))
            },
        },
    ]
}

/// Every sample a Prometheus receiver stored (stale markers are not returned by range
/// queries), as the comparison takes them.
fn stored(port: u16, at_ms: i64) -> Vec<Sent> {
    let q = scrape_support::percent_encode("{__name__!=\"\"}[20m]");
    let path = format!("/api/v1/query?query={q}&time={}", at_ms as f64 / 1000.0);
    let Some((200, body)) = scrape_support::http_get(port, &path) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut out = Vec::new();
    for series in v["data"]["result"].as_array().into_iter().flatten() {
        let mut labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        labels.sort();
        for p in series["values"].as_array().into_iter().flatten() {
            let ts = (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            let value: f64 = p[1].as_str().unwrap_or("").parse().unwrap_or(f64::NAN);
            out.push((labels.clone(), ts, value.to_bits()));
        }
    }
    out
}

#[test]
fn bad_samples_never_cost_good_ones_at_a_real_receiver() {
    let Some(bin) = prometheus_or_skip("bad_samples_never_cost_good_ones_at_a_real_receiver")
    else {
        return;
    };
    let cases: &'static [cases::Case] = Box::leak(data_loss_cases().into_boxed_slice());
    let base_ms = now_ms() + 60 * 1000;
    let targets = Targets::start(cases, base_ms);
    let dir = tempfile::tempdir().unwrap();
    let (theirs_port, ours_port) = (free_port(), free_port());
    let theirs_dir = dir.path().join("theirs");
    let ours_dir = dir.path().join("ours");
    std::fs::create_dir_all(&theirs_dir).unwrap();
    std::fs::create_dir_all(&ours_dir).unwrap();
    let mut theirs = scrape_support::start_receiver(&bin, &theirs_dir, theirs_port);
    let mut ours = scrape_support::start_receiver(&bin, &ours_dir, ours_port);
    wait_http_ok(&mut theirs, theirs_port, "/-/ready");
    wait_http_ok(&mut ours, ours_port, "/-/ready");
    let mut prom = start_prometheus_agent(
        &bin,
        &theirs_dir,
        &prometheus_config(cases, &targets.addresses, theirs_port, "100ms"),
    );
    let (mut agent, agent_port) = start_agent(
        &ours_dir,
        &agent_config(cases, &targets.addresses, ours_port, "100ms"),
    );
    let query_at = base_ms + 10 * 60 * 1000;
    let deadline = Instant::now() + SETTLE;
    let (a, b) = loop {
        prom.assert_running();
        agent.assert_running();
        let (a, b) = (stored(theirs_port, query_at), stored(ours_port, query_at));
        let done = |s: &[Sent]| cases.iter().all(|c| case_samples(s, c.name).is_some());
        if done(&a) && done(&b) {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "the receivers did not get {} scrapes of every target within {SETTLE:?}",
            SCRAPES + 1
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The receiver refused the conflicting samples the agent sent (Prometheus' shared storage
    // drops them before sending), and the agent isolated them: the rest of their requests
    // was stored, the good target's samples included.
    let metrics = scrape_support::http_get(agent_port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let refused =
        scrape_support::metric_sum(&metrics, "prometheus_remote_storage_samples_failed_total");
    assert!(
        refused >= 1.0,
        "no sample was refused: the test proves nothing\n{metrics}"
    );
    eprintln!("the receiver refused {refused} of the agent's samples");
    let mut failures = Vec::new();
    for c in cases {
        let (x, y) = (
            case_samples(&a, c.name).unwrap(),
            case_samples(&b, c.name).unwrap(),
        );
        eprintln!("{:<12} up prometheus {} agent {}", c.name, ups(&x), ups(&y));
        if c.known_divergence.is_none() && x != y {
            failures.push(format!("{}:\n{}", c.name, diff(&x, &y).join("\n")));
        }
    }
    // Every good sample is stored: 3 series x 3 good scrapes, and the 5 report series x 4.
    let good = case_samples(&b, "good").unwrap();
    assert_eq!(
        good.len(),
        3 * SCRAPES as usize + 5 * (SCRAPES as usize + 1),
        "{good:#?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
