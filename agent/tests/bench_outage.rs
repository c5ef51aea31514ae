//! Benchmark (ignored by default; `ci/bench_outage.sh` runs it): what a remote-write outage
//! costs, the agent against Prometheus in agent mode (the OS package) in the same run, one
//! scraper at a time so they do not compete for the cores.
//!
//! Each scraper scrapes `BENCH_TARGETS` targets of ours (default 100, each 200 series plus
//! `bench_scrape_number`, the target's own scrape count) every second and remote-writes to a
//! real Prometheus receiver. After a warm-up the receiver is stopped for `BENCH_OUTAGE_S`
//! (default 60); in the crash variant the scraper is also `kill -9`ed halfway through the
//! outage and restarted on the same storage directory. Then the receiver comes back and we
//! measure:
//!
//! - catch-up: seconds until the scraper's newest sent timestamp reaches its newest written
//!   one (`prometheus_remote_storage_queue_highest_sent_timestamp_seconds` vs
//!   `prometheus_remote_storage_highest_timestamp_in_seconds`, polled every 250 ms), and the
//!   backlog rate that gives (samples scraped during the outage / catch-up seconds);
//! - loss: scrapes the targets answered that never reached the receiver (sum of
//!   `count_over_time(bench_scrape_number[2h])` against the targets' own count, after the
//!   scraper was stopped gracefully);
//! - peak RSS of the scraper over outage and catch-up.

mod ports;
mod scrape_support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scrape_support::*;

const SERIES_PER_TARGET: usize = 200;

fn render(index: usize, scrape: u64) -> String {
    let mut out = format!("# TYPE bench_scrape_number counter\nbench_scrape_number {scrape}\n");
    for s in 0..SERIES_PER_TARGET {
        out.push_str(&format!(
            "bench_outage_items{{item=\"{s}\",kind=\"k{}\"}} {}\n",
            s % 7,
            scrape * (s as u64 + 1) + index as u64
        ));
    }
    out
}

fn env_or(name: &str, default: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().unwrap())
}

#[derive(Debug)]
struct Outcome {
    scraper: &'static str,
    crash: bool,
    answered: u64,
    arrived: u64,
    catch_up_s: f64,
    backlog_samples: f64,
    rss_peak_mib: f64,
}

struct Scraper {
    name: &'static str,
    port: u16,
    bin: std::path::PathBuf,
    args: Vec<String>,
    dir: std::path::PathBuf,
}

impl Scraper {
    fn start(&self, n: usize) -> Process {
        let mut p = Process::spawn(
            self.name,
            &self.bin,
            &self.args,
            self.dir.join(format!("{}-{n}.log", self.name)),
        );
        wait_http_ok(&mut p, self.port, "/-/ready");
        p
    }

    fn metric(&self, name: &str) -> f64 {
        http_get(self.port, "/metrics")
            .map(|(_, b)| metric_sum(&b, name))
            .unwrap_or(f64::NAN)
    }
}

fn scraper(
    kind: &'static str,
    bin: &Path,
    dir: &Path,
    targets_file: &Path,
    receiver: u16,
) -> Scraper {
    let port = free_port();
    match kind {
        "agent" => {
            let config = dir.join("agent.alloy");
            std::fs::write(
                &config,
                format!(
                    r#"discovery.file "bench" {{
  files = ["{}"]
}}
prometheus.scrape "bench" {{
  targets         = discovery.file.bench.targets
  forward_to      = [prometheus.remote_write.receiver.receiver]
  job_name        = "bench"
  scrape_interval = "1s"
  scrape_timeout  = "1s"
}}
prometheus.remote_write "receiver" {{
  endpoint {{
    url = "http://127.0.0.1:{receiver}/api/v1/write"
  }}
}}
"#,
                    targets_file.display()
                ),
            )
            .unwrap();
            Scraper {
                name: "agent",
                port,
                bin: env!("CARGO_BIN_EXE_agent").into(),
                args: vec![
                    "run".into(),
                    "--cluster.node-name=bench".into(),
                    format!("--server.http.listen-addr=127.0.0.1:{port}"),
                    format!("--storage.path={}", dir.join("agent-storage").display()),
                    config.display().to_string(),
                ],
                dir: dir.to_path_buf(),
            }
        }
        _ => {
            let config = dir.join("prometheus-agent.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: bench\n    file_sd_configs:\n      - files: ['{}']\nremote_write:\n  - url: http://127.0.0.1:{receiver}/api/v1/write\n",
                    targets_file.display()
                ),
            )
            .unwrap();
            Scraper {
                name: "prometheus",
                port,
                bin: bin.to_path_buf(),
                args: vec![
                    "--enable-feature=agent".into(),
                    format!("--config.file={}", config.display()),
                    format!(
                        "--storage.agent.path={}",
                        dir.join("prometheus-wal").display()
                    ),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                ],
                dir: dir.to_path_buf(),
            }
        }
    }
}

fn signal(p: &mut Process, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(p.pid() as i32, sig) };
    let _ = p.child.take().map(|mut c| c.wait());
}

fn run(kind: &'static str, crash: bool, bin: &Path, targets: usize, outage: Duration) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let receiver_port = free_port();
    let start_receiver_ready = || {
        let mut r = start_receiver(bin, dir.path(), receiver_port);
        wait_http_ok(&mut r, receiver_port, "/-/ready");
        r
    };
    let mut receiver = start_receiver_ready();
    let fleet = TargetFleet::start(targets, 1, Arc::new(render));
    let targets_file = dir.path().join("targets.json");
    let list: Vec<String> = fleet.addresses.iter().map(|a| format!("\"{a}\"")).collect();
    std::fs::write(
        &targets_file,
        format!(r#"[{{"targets": [{}]}}]"#, list.join(", ")),
    )
    .unwrap();
    let s = scraper(kind, bin, dir.path(), &targets_file, receiver_port);
    let mut process = s.start(0);
    std::thread::sleep(Duration::from_secs(env_or("BENCH_WARMUP_S", "20")));
    let mut rss_peak = 0u64;
    let mut sample_rss = |p: &Process| {
        if let Some(x) = p.child.as_ref().and_then(|c| proc_sample(c.id())) {
            rss_peak = rss_peak.max(x.rss_bytes);
        }
    };
    signal(&mut receiver, libc::SIGTERM);
    let scrapes_at_down = fleet.scrapes.load(Ordering::Relaxed);
    let down = Instant::now();
    let mut restarted = false;
    while down.elapsed() < outage {
        std::thread::sleep(Duration::from_millis(500));
        sample_rss(&process);
        if crash && !restarted && down.elapsed() >= outage / 2 {
            signal(&mut process, libc::SIGKILL);
            process = s.start(1);
            restarted = true;
        }
    }
    let backlog_samples = (fleet.scrapes.load(Ordering::Relaxed) - scrapes_at_down) as f64
        * (SERIES_PER_TARGET + 6) as f64;
    let _receiver = start_receiver_ready();
    let back = Instant::now();
    let limit = Duration::from_secs(300);
    let catch_up_s = loop {
        sample_rss(&process);
        let written = s.metric("prometheus_remote_storage_highest_timestamp_in_seconds");
        let sent = s.metric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Caught up: the newest sent sample is the newest written, from the last seconds.
        if written > 0.0 && sent >= written - 1.0 && sent >= now - 3.0 {
            break back.elapsed().as_secs_f64();
        }
        if back.elapsed() > limit {
            break f64::NAN;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    std::thread::sleep(Duration::from_secs(3));
    signal(&mut process, libc::SIGTERM);
    let answered = fleet.scrapes.load(Ordering::Relaxed);
    drop(fleet);
    let arrived: u64 = query(
        receiver_port,
        "sum(count_over_time(bench_scrape_number[2h]))",
    )
    .first()
    .and_then(|r| r["value"][1].as_str().and_then(|v| v.parse().ok()))
    .unwrap_or(0);
    Outcome {
        scraper: kind,
        crash,
        answered,
        arrived,
        catch_up_s,
        backlog_samples,
        rss_peak_mib: rss_peak as f64 / (1024.0 * 1024.0),
    }
}

#[test]
#[ignore = "benchmark: several minutes; run ci/bench_outage.sh"]
fn remote_write_outage_vs_prometheus_agent_mode() {
    let bin = installed(PROMETHEUS, "prometheus").expect("Prometheus (OS package) is needed");
    let targets = env_or("BENCH_TARGETS", "100") as usize;
    let outage = Duration::from_secs(env_or("BENCH_OUTAGE_S", "60"));
    let mut results = Vec::new();
    for crash in [false, true] {
        for kind in ["agent", "prometheus"] {
            let o = run(kind, crash, &bin, targets, outage);
            eprintln!("{o:?}");
            results.push(o);
        }
    }
    println!();
    println!(
        "{targets} targets x {} series at 1 s, receiver down {}s",
        SERIES_PER_TARGET + 1,
        outage.as_secs()
    );
    println!("| scraper | kill -9 + restart mid-outage | scrapes answered | arrived | lost | catch-up s | backlog samples/s caught up | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    for o in &results {
        println!(
            "| {} | {} | {} | {} | {} ({:.2}%) | {:.1} | {:.0} | {:.0} |",
            o.scraper,
            if o.crash { "yes" } else { "no" },
            o.answered,
            o.arrived,
            o.answered.saturating_sub(o.arrived),
            100.0 * o.answered.saturating_sub(o.arrived) as f64 / o.answered.max(1) as f64,
            o.catch_up_s,
            o.backlog_samples / o.catch_up_s,
            o.rss_peak_mib
        );
    }
}
