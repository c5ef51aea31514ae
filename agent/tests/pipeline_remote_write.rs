//! End to end against a real Prometheus (the OS package): an Alloy-syntax config with
//! `discovery.file` -> `prometheus.scrape` -> `prometheus.remote_write`, a target server of
//! ours on loopback, and Prometheus with `--web.enable-remote-write-receiver`. The series
//! must arrive in Prometheus with `job`/`instance` and the target's labels.
//!
//! Prometheus is installed with apt-get when missing; the test is skipped (with a message)
//! only if it cannot be. Prometheus is killed when the test ends, also on panic.

mod ports;
use ports::free_port;
mod pipeline_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::config::Config;
use agent::discovery::FileDiscovery;
use agent::remote_write::RemoteWrite;
use agent::scrape::ScrapeManager;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pipeline_support::TestServer;

const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Bound on installing Prometheus.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on Prometheus becoming ready, and on the data showing up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

const TARGET_METRICS: &str = "\
# HELP demo_requests_total Requests served.
# TYPE demo_requests_total counter
demo_requests_total{path=\"/a\",code=\"200\"} 42
demo_requests_total{path=\"/b\",code=\"500\"} 3
# TYPE demo_temperature gauge
demo_temperature{instance=\"sensor-7\"} 21.5
";

/// Kills and reaps Prometheus when dropped; on panic prints the end of its log.
struct PrometheusGuard {
    child: Child,
    log: PathBuf,
}

impl Drop for PrometheusGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&self.log) {
                let _ = f.read_to_string(&mut text);
            }
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("--- prometheus log (last lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Returns the Prometheus binary, installing the OS package if needed.
fn prometheus_binary() -> Option<PathBuf> {
    if Path::new(PROMETHEUS).exists() {
        return Some(PROMETHEUS.into());
    }
    eprintln!("{PROMETHEUS} missing; trying `apt-get install -y prometheus`");
    let install = || -> std::io::Result<bool> {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus >/dev/null 2>&1 \
                 || (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus >/dev/null 2>&1)",
            ])
            .stdin(Stdio::null())
            .spawn()?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if start.elapsed() > INSTALL_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    match install() {
        Ok(true) if Path::new(PROMETHEUS).exists() => Some(PROMETHEUS.into()),
        _ => None,
    }
}

fn start_prometheus(bin: &Path, dir: &Path, port: u16) -> PrometheusGuard {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let log = dir.join("prometheus.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("prometheus starts");
    PrometheusGuard { child, log }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn get(client: &Http, url: &str) -> Option<(u16, String)> {
    let fut = async {
        let resp = client.get(url.parse().ok()?).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

/// Instant query; returns the `data.result` vector.
async fn query(client: &Http, port: u16, promql: &str) -> Vec<serde_json::Value> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        percent_encode(promql)
    );
    let Some((200, body)) = get(client, &url).await else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_series_arrive_in_prometheus_with_job_and_instance() {
    let Some(bin) = prometheus_binary() else {
        println!(
            "SKIPPED pipeline_remote_write: {PROMETHEUS} is missing and `apt-get install -y prometheus` failed"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _prometheus = start_prometheus(&bin, dir.path(), port);
    let http: Http = Client::builder(TokioExecutor::new()).build_http();

    let target = TestServer::serving(|path| match path {
        "/metrics" => (200, TARGET_METRICS.to_string()),
        _ => (404, String::new()),
    })
    .await;

    let targets_file = dir.path().join("targets.json");
    std::fs::write(
        &targets_file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "storage"}}}}]"#,
            target.address()
        ),
    )
    .unwrap();
    let config_text = format!(
        r#"
        discovery.file "local" {{
          files = ["{}"]
          refresh_interval = "1s"
        }}
        prometheus.scrape "e2e" {{
          targets         = discovery.file.local.targets
          forward_to      = [prometheus.remote_write.local.receiver]
          scrape_interval = "1s"
          scrape_timeout  = "1s"
          clustering {{ enabled = true }}
        }}
        prometheus.remote_write "local" {{
          endpoint {{
            url = "http://127.0.0.1:{port}/api/v1/write"
            queue_config {{ batch_send_deadline = "200ms" }}
          }}
        }}"#,
        targets_file.display()
    );
    let config = Config::from_str(&config_text, "e2e.alloy").unwrap();

    // Wait for Prometheus.
    let start = Instant::now();
    loop {
        if let Some((200, _)) = get(&http, &format!("http://127.0.0.1:{port}/-/ready")).await {
            break;
        }
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "prometheus not ready after {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Wire the components the way `agent run` does (here every target is ours).
    let discovery = FileDiscovery::spawn(config.file_discoveries[0].clone());
    assert!(discovery.errors().is_empty(), "{:?}", discovery.errors());
    let rw_cfg = config.remote_writes[0].clone();
    let wal = agent::wal::Wal::open(&dir.path().join("wal"), (&rw_cfg.wal).into()).unwrap();
    let rw = RemoteWrite::start(rw_cfg, wal, None).unwrap();
    let scrape_cfg = config.scrapes[0].clone();
    let manager = ScrapeManager::new(scrape_cfg.clone(), vec![rw.receiver()]).unwrap();
    let discovered = discovery.targets().borrow().clone();
    // The scrape component's targets are exactly the discovery's export.
    assert_eq!(
        scrape_cfg.targets,
        vec![agent::config::TargetsSource::DiscoveryFile(
            config.file_discoveries[0].name.clone()
        )]
    );
    let owned = discovered;
    assert_eq!(owned.len(), 1);
    let report = manager.set_targets(owned);
    assert_eq!(report.started, 1, "{report:?}");

    let instance = target.address();
    let start = Instant::now();
    let result = loop {
        let r = query(
            &http,
            port,
            r#"demo_requests_total{job="prometheus.scrape.e2e"}"#,
        )
        .await;
        if r.len() == 2 {
            break r;
        }
        if start.elapsed() > ARRIVAL_TIMEOUT {
            let m = rw.metrics()[0].1.snapshot();
            panic!(
                "series did not arrive within {ARRIVAL_TIMEOUT:?}; got {r:?}; remote write: {m:?}; targets: {:?}",
                manager.targets()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for series in &result {
        let m = &series["metric"];
        assert_eq!(m["job"], "prometheus.scrape.e2e");
        assert_eq!(m["instance"], instance.as_str());
        assert_eq!(m["team"], "storage");
        assert!(m.get("__meta_filepath").is_none());
    }
    let a = result.iter().find(|s| s["metric"]["path"] == "/a").unwrap();
    assert_eq!(a["value"][1], "42");

    // A clashing `instance` label from the target was kept as `exported_instance`.
    let temp = query(&http, port, "demo_temperature").await;
    assert_eq!(temp.len(), 1, "{temp:?}");
    assert_eq!(temp[0]["metric"]["exported_instance"], "sensor-7");
    assert_eq!(temp[0]["metric"]["instance"], instance.as_str());
    assert_eq!(temp[0]["value"][1], "21.5");

    // Report series.
    let up = query(&http, port, r#"up{job="prometheus.scrape.e2e"}"#).await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["value"][1], "1");
    assert_eq!(up[0]["metric"]["instance"], instance.as_str());
    let scraped = query(&http, port, "scrape_samples_scraped").await;
    assert_eq!(scraped[0]["value"][1], "3");
    assert_eq!(query(&http, port, "scrape_duration_seconds").await.len(), 1);

    let m = rw.metrics()[0].1.snapshot();
    assert!(m.samples_sent_total >= 6, "{m:?}");
    assert_eq!(m.samples_failed_total, 0, "{m:?}");
    assert_eq!(m.samples_dropped_total, 0, "{m:?}");

    manager.stop_all(agent::scrape::StopMode::Moved);
    tokio::time::timeout(Duration::from_secs(10), rw.shutdown(Duration::from_secs(5)))
        .await
        .expect("remote write shuts down in bounded time");
}
