//! Benchmark (ignored by default; `ci/bench_scrape.sh` runs it): the agent's scrape pipeline
//! against Prometheus in agent mode (`--enable-feature=agent`, the OS package) scraping the
//! same targets in the same run, as ANCHORS.md "Scrape pipeline" measures it.
//!
//! For each target count T: a target server of ours serves T targets x 500 series (values
//! change every scrape); the scraper (first `agent run`, a cluster of one, then Prometheus in
//! agent mode, one after the other so they do not compete for the 2 cores) scrapes every 5 s
//! through file_sd and remote-writes to a second Prometheus with the remote-write receiver.
//! After a 30 s warm-up, a 60 s window: CPU seconds (utime + stime from /proc/<pid>/stat of
//! the scraper alone), RSS sampled every second (mean and peak), samples forwarded (the
//! scraper's own `prometheus_remote_storage_samples_total`, samples the receiver accepted),
//! and the growth of its write-ahead log directory per sample (both write every sample to a
//! WAL before sending it).
//!
//! Environment: `BENCH_RUNS` (default `text:100,text:400,openmetrics:100,gzip:100`: the
//! targets' format — the text format, OpenMetrics, or the text format gzip-compressed — and
//! their count, per run), `BENCH_TARGETS` (if set instead, text runs of these counts),
//! `BENCH_WARMUP_S` (30), `BENCH_WINDOW_S`
//! (60), `BENCH_SCRAPERS` (default `agent,prometheus`), `BENCH_TLS` (`1`: the real-endpoint
//! variant — targets serve HTTPS, the receiver requires TLS and basic auth, and both scrapers
//! run one metric relabel rule on every series: `prometheus.relabel` in the agent,
//! `metric_relabel_configs` in Prometheus).

mod ports;
mod scrape_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scrape_support::*;

const SERIES_PER_TARGET: usize = 500;
const FAMILIES: usize = 50;
const SCRAPE_INTERVAL_S: u64 = 5;

/// 50 counter families x 10 series, 3 labels each; values move with every scrape.
fn bench_metrics(index: usize, scrape: u64) -> String {
    let mut out = String::with_capacity(SERIES_PER_TARGET * 80);
    let per_family = SERIES_PER_TARGET / FAMILIES;
    for f in 0..FAMILIES {
        out.push_str(&format!(
            "# HELP bench_requests_{f:02}_total Requests of kind {f}.\n# TYPE bench_requests_{f:02}_total counter\n"
        ));
        for s in 0..per_family {
            let value = scrape * (s as u64 + 1) + index as u64;
            out.push_str(&format!(
                "bench_requests_{f:02}_total{{path=\"/api/v1/item/{s}\",method=\"GET\",code=\"200\"}} {value}\n"
            ));
        }
    }
    out
}

/// [`bench_metrics`] in OpenMetrics: the same series (`_total` samples of counter families).
fn bench_metrics_openmetrics(index: usize, scrape: u64) -> String {
    let mut out = String::with_capacity(SERIES_PER_TARGET * 80);
    let per_family = SERIES_PER_TARGET / FAMILIES;
    for f in 0..FAMILIES {
        out.push_str(&format!(
            "# HELP bench_requests_{f:02} Requests of kind {f}.\n# TYPE bench_requests_{f:02} counter\n"
        ));
        for s in 0..per_family {
            let value = scrape * (s as u64 + 1) + index as u64;
            out.push_str(&format!(
                "bench_requests_{f:02}_total{{path=\"/api/v1/item/{s}\",method=\"GET\",code=\"200\"}} {value}\n"
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The TLS variant's files: a CA, a server certificate for 127.0.0.1, the receiver's web
/// config (TLS + basic auth) and the password file.
struct Tls {
    ca_file: std::path::PathBuf,
    password_file: std::path::PathBuf,
    receiver_web: std::path::PathBuf,
    server: Arc<rustls::ServerConfig>,
}

const BENCH_PASSWORD: &str = "bench-pa55";

fn tls_setup(dir: &Path) -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_file = write("ca.pem", &ca_cert.pem());
    let cert_file = write("server.crt", &cert.pem());
    let key_file = write("server.key", &key.serialize_pem());
    let password_file = write("password", BENCH_PASSWORD);
    let receiver_web = write(
        "receiver-web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  bench: {}\n",
            cert_file.display(),
            key_file.display(),
            bcrypt::hash(BENCH_PASSWORD, 4).unwrap()
        ),
    );
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    Tls {
        ca_file,
        password_file,
        receiver_web,
        server: Arc::new(server),
    }
}

/// Waits until the TLS receiver answers `/-/ready` with the bench password.
fn wait_tls_ready(process: &mut Process, port: u16, tls: &Tls) {
    use agent::http_client::{BasicAuth, ClientSettings, HttpClient, Secret, TlsSettings};
    let settings = ClientSettings {
        tls: TlsSettings {
            ca_file: Some(tls.ca_file.display().to_string()),
            ..TlsSettings::default()
        },
        basic_auth: Some(BasicAuth {
            username: "bench".into(),
            password: Some(Secret::new(BENCH_PASSWORD)),
            password_file: None,
        }),
        ..ClientSettings::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = HttpClient::new(&settings, "bench").unwrap();
    let start = Instant::now();
    loop {
        process.assert_running();
        let req = hyper::Request::get(format!("https://127.0.0.1:{port}/-/ready"))
            .body(bytes::Bytes::new())
            .unwrap();
        if rt
            .block_on(client.send(req, Duration::from_secs(5), 1 << 16))
            .is_ok_and(|r| r.status == 200)
        {
            return;
        }
        assert!(start.elapsed() < READY_TIMEOUT, "TLS receiver not ready");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// What one scraper did in the window.
#[derive(Debug)]
struct Measured {
    scraper: &'static str,
    format: String,
    targets: usize,
    cpu_seconds: f64,
    samples: f64,
    rss_mean_mib: f64,
    rss_peak_mib: f64,
    failed: f64,
    dropped: f64,
    pending_end: f64,
    wal_bytes: f64,
}

impl Measured {
    fn cpu_per_million(&self) -> f64 {
        self.cpu_seconds / (self.samples / 1e6)
    }
}

/// Warm-up, then the window: CPU, RSS and the forwarded-samples counter of `process`.
fn measure(
    scraper: &'static str,
    targets: usize,
    process: &mut Process,
    metrics_port: u16,
    wal_dir: &Path,
    warmup: Duration,
    window: Duration,
) -> Measured {
    let counter = |name: &str| {
        http_get(metrics_port, "/metrics")
            .map(|(_, body)| metric_sum(&body, name))
            .unwrap_or(f64::NAN)
    };
    std::thread::sleep(warmup);
    process.assert_running();
    let pid = process.pid();
    let cpu0 = proc_sample(pid).expect("scraper /proc").cpu_seconds;
    let sent0 = counter("prometheus_remote_storage_samples_total");
    let disk0 = dir_bytes(wal_dir);
    let start = Instant::now();
    let mut rss: Vec<u64> = Vec::new();
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(proc_sample(pid).expect("scraper /proc").rss_bytes);
    }
    let cpu1 = proc_sample(pid).expect("scraper /proc").cpu_seconds;
    let sent1 = counter("prometheus_remote_storage_samples_total");
    let disk1 = dir_bytes(wal_dir);
    process.assert_running();
    let mib = |b: f64| b / (1024.0 * 1024.0);
    Measured {
        scraper,
        format: String::new(),
        targets,
        cpu_seconds: cpu1 - cpu0,
        samples: sent1 - sent0,
        rss_mean_mib: mib(rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64),
        rss_peak_mib: mib(rss.iter().copied().max().unwrap_or(0) as f64),
        failed: counter("prometheus_remote_storage_samples_failed_total"),
        dropped: counter("prometheus_remote_storage_samples_dropped_total"),
        pending_end: counter("prometheus_remote_storage_samples_pending"),
        wal_bytes: disk1.saturating_sub(disk0) as f64,
    }
}

/// Bytes of the files under `dir` (recursively).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn run_agent(
    dir: &Path,
    targets_file: &Path,
    receiver_port: u16,
    targets: usize,
    warmup: Duration,
    window: Duration,
    tls: Option<&Tls>,
) -> Measured {
    let port = free_port();
    let config = dir.join(format!("agent-{targets}.alloy"));
    let (scrape_tls, forward, relabel, endpoint) = match tls {
        None => (
            String::new(),
            "prometheus.remote_write.receiver.receiver",
            String::new(),
            format!("url = \"http://127.0.0.1:{receiver_port}/api/v1/write\""),
        ),
        Some(t) => (
            format!(
                "  scheme = \"https\"\n  tls_config {{ ca_file = \"{}\" }}\n",
                t.ca_file.display()
            ),
            "prometheus.relabel.tier.receiver",
            // The cache sized to the series that pass (up to 400 x 500), as a user sizes it:
            // smaller than the live series, every lookup misses.
            r#"prometheus.relabel "tier" {
  max_cache_size = 500000
  rule {
    source_labels = ["code"]
    regex         = "(2..)"
    target_label  = "class"
    replacement   = "ok_$1"
  }
  forward_to = [prometheus.remote_write.receiver.receiver]
}
"#
            .to_string(),
            format!(
                "url = \"https://127.0.0.1:{receiver_port}/api/v1/write\"\n    basic_auth {{\n      username = \"bench\"\n      password_file = \"{}\"\n    }}\n    tls_config {{ ca_file = \"{}\" }}",
                t.password_file.display(),
                t.ca_file.display()
            ),
        ),
    };
    std::fs::write(
        &config,
        format!(
            r#"discovery.file "bench" {{
  files = ["{}"]
}}
prometheus.scrape "bench" {{
  targets         = discovery.file.bench.targets
  forward_to      = [{forward}]
  job_name        = "bench"
  scrape_interval = "{SCRAPE_INTERVAL_S}s"
  scrape_timeout  = "{SCRAPE_INTERVAL_S}s"
{scrape_tls}}}
{relabel}prometheus.remote_write "receiver" {{
  endpoint {{
    {endpoint}
  }}
  external_labels = {{ scraper = "agent" }}
}}
"#,
            targets_file.display()
        ),
    )
    .unwrap();
    let storage = dir.join(format!("agent-storage-{targets}"));
    let mut agent = Process::spawn(
        "agent",
        Path::new(env!("CARGO_BIN_EXE_agent")),
        &[
            "run".into(),
            "--cluster.node-name=bench".into(),
            format!("--server.http.listen-addr=127.0.0.1:{port}"),
            format!("--storage.path={}", storage.display()),
            config.display().to_string(),
        ],
        dir.join(format!("agent-{targets}.log")),
    );
    wait_http_ok(&mut agent, port, "/-/ready");
    let m = measure("agent", targets, &mut agent, port, &storage, warmup, window);
    let owned = http_get(port, "/metrics")
        .map(|(_, b)| metric_sum(&b, "agent_scrape_targets_owned"))
        .unwrap_or(0.0);
    assert_eq!(owned, targets as f64, "the agent scraped every target");
    m
}

fn run_prometheus_agent(
    bin: &Path,
    dir: &Path,
    targets_file: &Path,
    receiver_port: u16,
    targets: usize,
    warmup: Duration,
    window: Duration,
    tls: Option<&Tls>,
) -> Measured {
    let port = free_port();
    let config = dir.join(format!("prometheus-agent-{targets}.yml"));
    let (scrape_tls, remote) = match tls {
        None => (
            String::new(),
            format!("  - url: http://127.0.0.1:{receiver_port}/api/v1/write\n"),
        ),
        Some(t) => (
            format!(
                "    scheme: https\n    tls_config:\n      ca_file: {}\n    metric_relabel_configs:\n      - source_labels: [code]\n        regex: '(2..)'\n        target_label: class\n        replacement: 'ok_$1'\n",
                t.ca_file.display()
            ),
            format!(
                "  - url: https://127.0.0.1:{receiver_port}/api/v1/write\n    basic_auth:\n      username: bench\n      password_file: {}\n    tls_config:\n      ca_file: {}\n",
                t.password_file.display(),
                t.ca_file.display()
            ),
        ),
    };
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n  scrape_timeout: {SCRAPE_INTERVAL_S}s\n  external_labels:\n    scraper: prometheus\n\
             scrape_configs:\n  - job_name: bench\n    file_sd_configs:\n      - files: ['{}']\n{scrape_tls}\
             remote_write:\n{remote}",
            targets_file.display()
        ),
    )
    .unwrap();
    let wal = dir.join(format!("agent-wal-{targets}"));
    let mut prom = Process::spawn(
        "prometheus (agent mode)",
        bin,
        &[
            "--enable-feature=agent".into(),
            format!("--config.file={}", config.display()),
            format!("--storage.agent.path={}", wal.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir.join(format!("prometheus-agent-{targets}.log")),
    );
    wait_http_ok(&mut prom, port, "/-/ready");
    measure("prometheus", targets, &mut prom, port, &wal, warmup, window)
}

#[test]
#[ignore = "benchmark: several minutes; run ci/bench_scrape.sh"]
fn scrape_pipeline_vs_prometheus_agent_mode() {
    let bin = installed(PROMETHEUS, "prometheus").expect("Prometheus (OS package) is needed");
    let runs: Vec<(String, usize)> = match std::env::var("BENCH_TARGETS") {
        Ok(t) if std::env::var_os("BENCH_RUNS").is_none() => t
            .split(',')
            .map(|s| {
                let n = s
                    .trim()
                    .parse()
                    .expect("BENCH_TARGETS: comma list of numbers");
                ("text".to_string(), n)
            })
            .collect(),
        _ => env_or("BENCH_RUNS", "text:100,text:400,openmetrics:100,gzip:100")
            .split(',')
            .map(|r| {
                let (format, n) = r
                    .trim()
                    .split_once(':')
                    .expect("BENCH_RUNS: comma list of FORMAT:TARGETS");
                assert!(
                    ["text", "openmetrics", "gzip"].contains(&format),
                    "BENCH_RUNS: format {format:?} is not text, openmetrics or gzip"
                );
                (
                    format.to_string(),
                    n.parse().expect("BENCH_RUNS: TARGETS is a number"),
                )
            })
            .collect(),
    };
    let warmup = Duration::from_secs(env_or("BENCH_WARMUP_S", "30").parse().unwrap());
    let window = Duration::from_secs(env_or("BENCH_WINDOW_S", "60").parse().unwrap());
    let scrapers = env_or("BENCH_SCRAPERS", "agent,prometheus");
    let dir = tempfile::tempdir().unwrap();
    let receiver_port = free_port();
    let tls = (env_or("BENCH_TLS", "0") == "1").then(|| tls_setup(dir.path()));
    let mut receiver = match &tls {
        None => {
            let mut r = start_receiver(&bin, dir.path(), receiver_port);
            wait_http_ok(&mut r, receiver_port, "/-/ready");
            r
        }
        Some(t) => {
            let web = format!("--web.config.file={}", t.receiver_web.display());
            let mut r = start_receiver_with(&bin, dir.path(), receiver_port, &[web]);
            wait_tls_ready(&mut r, receiver_port, t);
            r
        }
    };
    eprintln!(
        "variant: {}",
        if tls.is_some() {
            "HTTPS targets, TLS + basic-auth receiver, one metric relabel rule"
        } else {
            "plain HTTP"
        }
    );

    let mut results: Vec<Measured> = Vec::new();
    for (run, (format, targets)) in runs.iter().enumerate() {
        let targets = *targets;
        let (render, serving): (Render, Serving) = match format.as_str() {
            "openmetrics" => (Arc::new(bench_metrics_openmetrics), Serving::OPENMETRICS),
            "gzip" => (
                Arc::new(bench_metrics),
                Serving {
                    gzip: true,
                    ..Serving::TEXT
                },
            ),
            _ => (Arc::new(bench_metrics), Serving::TEXT),
        };
        eprintln!("run {run}: {format} targets x {targets}");
        let fleet = TargetFleet::start_serving(
            targets,
            1,
            render,
            tls.as_ref().map(|t| t.server.clone()),
            serving,
        );
        // Each run has a directory of its own: a scraper must not find an earlier run's WAL.
        let run_dir = dir.path().join(format!("run-{run}-{format}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let targets_file = run_dir.join("targets.json");
        let list: Vec<String> = fleet.addresses.iter().map(|a| format!("\"{a}\"")).collect();
        std::fs::write(
            &targets_file,
            format!(r#"[{{"targets": [{}]}}]"#, list.join(", ")),
        )
        .unwrap();
        for scraper in scrapers.split(',') {
            let m = match scraper.trim() {
                "agent" => run_agent(
                    &run_dir,
                    &targets_file,
                    receiver_port,
                    targets,
                    warmup,
                    window,
                    tls.as_ref(),
                ),
                "prometheus" => run_prometheus_agent(
                    &bin,
                    &run_dir,
                    &targets_file,
                    receiver_port,
                    targets,
                    warmup,
                    window,
                    tls.as_ref(),
                ),
                other => panic!("BENCH_SCRAPERS: unknown scraper {other:?}"),
            };
            let m = Measured {
                format: format.clone(),
                ..m
            };
            eprintln!("{m:?}");
            results.push(m);
        }
        receiver.assert_running();
    }

    let expected_per_window = |targets: usize| {
        (targets * SERIES_PER_TARGET) as f64 * window.as_secs_f64() / SCRAPE_INTERVAL_S as f64
    };
    println!();
    println!(
        "| scraper | format | targets | samples in window (expected ~{}/target) | CPU s | CPU s per 1M samples | cores | RSS mean / peak MiB | WAL bytes per sample | failed / dropped / pending at end |",
        expected_per_window(1)
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for m in &results {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.3} | {:.0} / {:.0} | {:.2} | {} / {} / {} |",
            m.scraper,
            m.format,
            m.targets,
            m.samples,
            m.cpu_seconds,
            m.cpu_per_million(),
            m.cpu_seconds / window.as_secs_f64(),
            m.rss_mean_mib,
            m.rss_peak_mib,
            m.wal_bytes / m.samples.max(1.0),
            m.failed,
            m.dropped,
            m.pending_end
        );
    }
    for (format, targets) in &runs {
        let of = |s: &str| {
            results
                .iter()
                .find(|m| m.scraper == s && m.targets == *targets && m.format == *format)
        };
        if let (Some(a), Some(p)) = (of("agent"), of("prometheus")) {
            println!(
                "{format} T={targets}: agent / prometheus: CPU per sample {:.2}x, peak RSS {:.2}x, WAL bytes per sample {:.2}x",
                a.cpu_per_million() / p.cpu_per_million(),
                a.rss_peak_mib / p.rss_peak_mib,
                (a.wal_bytes / a.samples.max(1.0)) / (p.wal_bytes / p.samples.max(1.0))
            );
        }
    }
    for m in &results {
        assert!(
            m.samples >= 0.9 * expected_per_window(m.targets),
            "{} forwarded too few samples at T={}: {m:?}",
            m.scraper,
            m.targets
        );
    }
}
