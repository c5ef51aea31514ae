//! The write-ahead log end to end, with a real Prometheus as the remote-write receiver and the
//! real `agent` binary scraping targets of ours once a second. Each target answers
//! `wal_demo_scrape` with its own scrape number (0, 1, 2, ...), so "every sample arrived" is
//! exact: per target, Prometheus must hold every number from 0 to the last one scraped, in
//! order, and together exactly as many as the targets answered.
//!
//! - the receiver is down for 60 s (10 minutes with `WAL_OUTAGE_SECS=600`, see
//!   `ci/wal_outage.sh`): everything arrives once it is back;
//! - the agent is `kill -9`ed during an outage and restarted on the same `--storage.path`:
//!   everything it had scraped before the kill arrives (a scrape answered in the very
//!   instant of the kill may not have been written; at most one per target is allowed), and
//!   nothing arrives twice;
//! - a segment torn by a crash is replayed up to the bad record, counted, and the agent starts.
//!
//! Loopback only; every wait is bounded; every process is killed when the test ends.

mod common;
mod ports;
mod scrape_support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use scrape_support::*;

const TARGETS: usize = 8;
/// Series per target besides `wal_demo_scrape`, for some volume.
const FILLER_SERIES: usize = 50;

fn render(index: usize, scrape: u64) -> String {
    let mut s = format!("# TYPE wal_demo_scrape counter\nwal_demo_scrape {scrape}\n");
    for j in 0..FILLER_SERIES {
        s.push_str(&format!(
            "wal_demo_filler{{j=\"{j}\"}} {}\n",
            scrape as usize * 7 + j + index
        ));
    }
    s
}

fn config(dir: &Path, targets: &[String], receiver_port: u16) -> std::path::PathBuf {
    let list: Vec<String> = targets
        .iter()
        .map(|a| format!("{{\"__address__\" = \"{a}\"}}"))
        .collect();
    let text = format!(
        r#"
prometheus.scrape "demo" {{
  targets         = [{}]
  forward_to      = [prometheus.remote_write.local.receiver]
  scrape_interval = "1s"
  scrape_timeout  = "1s"
}}
prometheus.remote_write "local" {{
  endpoint {{
    url = "http://127.0.0.1:{receiver_port}/api/v1/write"
    queue_config {{
      batch_send_deadline = "1s"
      max_backoff         = "2s"
    }}
  }}
}}
"#,
        list.join(", ")
    );
    write_file(dir, "agent.alloy", &text)
}

struct Setup {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    receiver_port: u16,
    agent_port: u16,
    fleet: TargetFleet,
    config: std::path::PathBuf,
    storage: std::path::PathBuf,
}

fn setup() -> Option<Setup> {
    let Some(bin) = installed("/usr/bin/prometheus", "prometheus") else {
        println!("SKIPPED e2e_wal: prometheus is missing and could not be installed");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let fleet = TargetFleet::start(TARGETS, 1, Arc::new(render));
    let config = config(dir.path(), &fleet.addresses, ports[0]);
    let storage = dir.path().join("storage");
    Some(Setup {
        bin,
        receiver_port: ports[0],
        agent_port: ports[1],
        fleet,
        config,
        storage,
        dir,
    })
}

impl Setup {
    fn receiver(&self) -> Process {
        let mut p = start_receiver(&self.bin, self.dir.path(), self.receiver_port);
        wait_http_ok(&mut p, self.receiver_port, "/-/ready");
        p
    }

    fn agent(&self, name: &str) -> Agent {
        let mut a = Agent::start(
            name,
            self.agent_port,
            &[
                self.config.display().to_string(),
                format!("--storage.path={}", self.storage.display()),
            ],
        );
        a.wait_healthy();
        a
    }

    /// Per target: the scrape numbers Prometheus holds, in timestamp order.
    fn arrived(&self) -> Vec<Vec<u64>> {
        let mut out: Vec<Vec<u64>> = raw_samples(self.receiver_port, "wal_demo_scrape[2h]")
            .into_iter()
            .map(|(_, values)| {
                values
                    .iter()
                    .map(|(_, v)| v.parse::<f64>().unwrap() as u64)
                    .collect()
            })
            .collect();
        out.sort();
        out
    }
}

impl Setup {
    /// The receiver and the agent running, data arriving, then the receiver stopped.
    fn agent_then_outage(&self) -> Agent {
        let mut receiver = self.receiver();
        let agent = self.agent("a");
        wait_for("data in Prometheus", Duration::from_secs(30), || {
            self.arrived().len() == TARGETS
        });
        stop(&mut receiver);
        agent
    }
}

/// What Prometheus holds against what the targets answered (the agent stopped): per target
/// the scrape numbers rise from 0 (in order, nothing twice), every target's newest scrape
/// arrived, and at most `may_miss` numbers are missing in all. Returns the scrapes
/// answered, arrived and missing.
fn check_arrivals(s: &Setup, may_miss: u64) -> (u64, u64, u64) {
    let answered = s.fleet.scrapes.load(Ordering::Relaxed);
    let arrived = s.arrived();
    assert_eq!(arrived.len(), TARGETS, "every target has a series");
    let mut missing = 0;
    for numbers in &arrived {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "in order, nothing twice: {numbers:?}"
        );
        assert_eq!(numbers[0], 0, "the first scrape arrived");
        missing += numbers.last().unwrap() + 1 - numbers.len() as u64;
    }
    let numbered: u64 = arrived.iter().map(|n| n.last().unwrap() + 1).sum();
    assert_eq!(
        numbered, answered,
        "the newest scrape of each target arrived"
    );
    assert!(
        missing <= may_miss,
        "{missing} scrapes missing, at most {may_miss} allowed"
    );
    (answered, numbered - missing, missing)
}

/// Graceful stop (SIGTERM), waiting for the exit.
fn stop(p: &mut Process) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) };
    let _ = p.child.take().map(|mut c| c.wait());
}

fn metric(agent: &Agent, name: &str) -> f64 {
    metric_sum(&agent.metrics(), name)
}

/// Waits until the agent has sent everything it wrote (nothing pending, newest sent = newest
/// written), bounded.
fn wait_caught_up(agent: &Agent, limit: Duration) {
    wait_for("the agent to catch up with the receiver", limit, || {
        let m = agent.metrics();
        let written = metric_sum(&m, "prometheus_remote_storage_highest_timestamp_in_seconds");
        let sent = metric_sum(
            &m,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
        );
        written > 0.0
            && sent >= written
            && metric_sum(&m, "prometheus_remote_storage_samples_pending") == 0.0
    });
}

fn outage_test(outage: Duration) {
    let Some(s) = setup() else { return };
    let mut agent = s.agent_then_outage();
    let down = Instant::now();
    let mut last_report = Instant::now();
    while down.elapsed() < outage {
        std::thread::sleep(Duration::from_secs(1));
        if last_report.elapsed() >= Duration::from_secs(60) {
            eprintln!("outage: {:?} of {outage:?}", down.elapsed());
            last_report = Instant::now();
        }
    }
    // The outage happened: requests were retried and the agent is behind by about its length.
    let m = agent.metrics();
    assert!(metric_sum(&m, "prometheus_remote_storage_samples_retried_total") > 0.0);
    let behind = metric_sum(&m, "prometheus_remote_storage_highest_timestamp_in_seconds")
        - metric_sum(
            &m,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
        );
    assert!(behind >= outage.as_secs_f64() * 0.8, "behind by {behind}s");
    let _receiver = s.receiver();
    let back = Instant::now();
    wait_caught_up(&agent, outage.max(Duration::from_secs(60)));
    let catch_up = back.elapsed();
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(20)).success());
    let (answered, _, _) = check_arrivals(&s, 0);
    println!(
        "outage {outage:?}: {answered} scrapes ({} samples) all arrived; caught up {catch_up:?} after the receiver came back",
        answered * (FILLER_SERIES as u64 + 6)
    );
}

#[test]
fn a_60s_receiver_outage_loses_nothing() {
    outage_test(Duration::from_secs(60));
}

/// The long version, behind `ci/wal_outage.sh` (10 minutes by default).
#[test]
#[ignore]
fn a_long_receiver_outage_loses_nothing() {
    let secs = std::env::var("WAL_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    outage_test(Duration::from_secs(secs));
}

#[test]
fn kill_9_during_an_outage_and_a_restart_on_the_same_storage_lose_nothing_written() {
    let Some(s) = setup() else { return };
    let mut agent = s.agent_then_outage();
    std::thread::sleep(Duration::from_secs(15));
    let written_before = metric(&agent, "prometheus_remote_write_wal_samples_appended_total");
    agent.signal(libc::SIGKILL);
    agent.wait_exit(Duration::from_secs(10));
    let answered_before_kill = s.fleet.scrapes.load(Ordering::Relaxed);
    let agent = s.agent("a-restarted");
    assert!(
        metric(&agent, "prometheus_remote_write_wal_replayed_records_total") > 0.0,
        "the WAL was replayed"
    );
    assert_eq!(metric(&agent, "prometheus_tsdb_wal_corruptions_total"), 0.0);
    std::thread::sleep(Duration::from_secs(3));
    let _receiver = s.receiver();
    wait_caught_up(&agent, Duration::from_secs(90));
    let mut agent = agent;
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(20)).success());
    // Only scrapes answered at the instant of the kill may be missing.
    let (answered, total, missing) = check_arrivals(&s, TARGETS as u64);
    assert!(written_before > 0.0);
    println!(
        "kill -9 during outage: {answered} scrapes answered ({answered_before_kill} before the kill), {total} arrived, {missing} answered at the kill instant missing"
    );
}

#[test]
fn a_torn_segment_is_replayed_up_to_the_bad_record_and_the_agent_starts() {
    let Some(s) = setup() else { return };
    // No receiver: everything stays in the WAL.
    let mut agent = s.agent("a");
    wait_for("a few scrapes written", Duration::from_secs(30), || {
        metric(&agent, "prometheus_remote_write_wal_samples_appended_total") >= (TARGETS * 3) as f64
    });
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(20)).success());
    let wal = s.storage.join("prometheus.remote_write.local").join("wal");
    let newest = std::fs::read_dir(&wal)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .max()
        .expect("a segment with data");
    let len = std::fs::metadata(&newest).unwrap().len();
    // A crash in the middle of a write: a record header promising more than is there.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    f.write_all(&[2, 0, 1, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .unwrap();
    drop(f);
    let agent = s.agent("a-restarted");
    assert_eq!(metric(&agent, "prometheus_tsdb_wal_corruptions_total"), 1.0);
    assert!(metric(&agent, "prometheus_remote_write_wal_replayed_records_total") > 0.0);
    assert_eq!(
        std::fs::metadata(&newest).unwrap().len(),
        len,
        "cut back to the last good record"
    );
    assert!(
        agent.log_text().contains("damaged or torn WAL record"),
        "the cut is logged"
    );
    let before = metric(&agent, "prometheus_remote_write_wal_samples_appended_total");
    wait_for("scraping goes on", Duration::from_secs(20), || {
        metric(&agent, "prometheus_remote_write_wal_samples_appended_total") > before
    });
}

#[test]
fn a_storage_path_in_use_or_unusable_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "rw.alloy",
        "prometheus.remote_write \"x\" { endpoint { url = \"http://127.0.0.1:1/api/v1/write\" } }\n",
    );
    let storage = format!("--storage.path={}", dir.path().join("storage").display());
    let ports = free_ports(3);
    let mut first = Agent::start(
        "first",
        ports[0],
        &[config.display().to_string(), storage.clone()],
    );
    first.wait_healthy();
    let mut second = Agent::start("second", ports[1], &[config.display().to_string(), storage]);
    assert!(!second.wait_exit(Duration::from_secs(20)).success());
    let log = second.log_text();
    assert!(
        log.contains("in use by another agent process") && log.contains("--storage.path"),
        "{log}"
    );
    let mut third = Agent::start(
        "third",
        ports[2],
        &[
            config.display().to_string(),
            "--storage.path=/proc/no-such-dir".into(),
        ],
    );
    assert!(!third.wait_exit(Duration::from_secs(20)).success());
    assert!(
        third
            .log_text()
            .contains("cannot create WAL directory /proc/no-such-dir"),
        "{}",
        third.log_text()
    );
    first.signal(libc::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(20)).success());
}
