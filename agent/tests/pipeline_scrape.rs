//! The scrape manager against real HTTP targets on loopback: labelling, report series,
//! failures, and the hand-over rules (immediate first scrape; no staleness on a move).

mod pipeline_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::config::ScrapeConfig;
use agent::discovery::Target;
use agent::scrape::{is_stale_nan, Health, ManagerOptions, ScrapeManager};
use pipeline_support::{eventually, reply, Recorder, TestServer};

const WAIT: Duration = Duration::from_secs(10);

const METRICS: &str = "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total{code=\"200\",job=\"app\"} 10\nrequests_total{code=\"500\",job=\"app\"} 2\ntemperature 21.5\n";

fn config(interval_ms: u64) -> ScrapeConfig {
    let mut c = ScrapeConfig::with_defaults("test");
    c.scrape_interval = Duration::from_millis(interval_ms);
    c.scrape_timeout = Duration::from_millis(interval_ms.min(5_000));
    c
}

/// A manager that scrapes every new target at once, however long ago its slot was, so that
/// tests with a one-hour interval see exactly one scrape.
fn manager(config: ScrapeConfig) -> (ScrapeManager, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let options = ManagerOptions {
        catch_up_window: Duration::MAX,
        ..ManagerOptions::default()
    };
    (
        ScrapeManager::with_options(config, vec![rec.clone()], options).unwrap(),
        rec,
    )
}

async fn counting_server(body: &'static str) -> (TestServer, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = TestServer::serving(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        (200, body.to_string())
    })
    .await;
    (server, hits)
}

#[tokio::test]
async fn a_newly_assigned_target_is_scraped_at_once_not_after_its_interval() {
    let (server, hits) = counting_server(METRICS).await;
    // A one-hour interval: any scrape within the test is the immediate first scrape.
    let (m, rec) = manager(config(3_600_000));
    let report = m.set_targets(vec![Target::from_address(&server.address())]);
    assert_eq!(report.started, 1);
    eventually(WAIT, "first scrape", || {
        (!rec.named("up").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "exactly one scrape so far");
}

#[tokio::test]
async fn scraped_series_get_job_and_instance_and_report_series() {
    let (server, _) = counting_server(METRICS).await;
    let (m, rec) = manager(config(3_600_000));
    m.set_targets(vec![Target::from_labels([
        ("__address__", server.address().as_str()),
        ("env", "prod"),
        ("__meta_filepath", "/x.json"),
    ])]);
    eventually(WAIT, "first scrape", || {
        (!rec.named("up").is_empty()).then_some(())
    })
    .await;
    let samples = rec.take();
    let instance = server.address();

    let req: Vec<_> = samples
        .iter()
        .filter(|s| s.labels.name() == "requests_total")
        .collect();
    assert_eq!(req.len(), 2);
    for s in &req {
        assert_eq!(s.labels.get("job"), Some("prometheus.scrape.test"));
        assert_eq!(s.labels.get("instance"), Some(instance.as_str()));
        assert_eq!(s.labels.get("exported_job"), Some("app"), "clash renamed");
        assert_eq!(s.labels.get("env"), Some("prod"));
        assert_eq!(s.labels.get("__meta_filepath"), None);
    }
    let value = |name: &str| {
        samples
            .iter()
            .find(|s| s.labels.name() == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .value
    };
    assert_eq!(value("temperature"), 21.5);
    assert_eq!(value("up"), 1.0);
    assert_eq!(value("scrape_samples_scraped"), 3.0);
    assert_eq!(value("scrape_samples_post_metric_relabeling"), 3.0);
    assert_eq!(value("scrape_series_added"), 3.0, "every series is new");
    assert!(value("scrape_duration_seconds") > 0.0);
    let up = samples.iter().find(|s| s.labels.name() == "up").unwrap();
    assert_eq!(up.labels.get("job"), Some("prometheus.scrape.test"));
    assert_eq!(up.labels.get("instance"), Some(instance.as_str()));
    // All samples of one scrape share the scrape's start timestamp.
    assert!(samples.iter().all(|s| s.timestamp_ms == up.timestamp_ms));

    let status = m.targets();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].health, Health::Up);
    assert_eq!(status[0].last_samples_scraped, 3);
}

/// Guards the hand-over rule of alloy#249/#784: a target that moves away must not get
/// staleness markers from its old owner, or the series shows a gap.
#[tokio::test]
async fn a_target_that_moved_away_gets_no_staleness_markers() {
    let (server, _) = counting_server(METRICS).await;
    let (m, rec) = manager(config(3_600_000));
    let t = Target::from_address(&server.address());
    m.set_targets(vec![t.clone()]);
    eventually(WAIT, "first scrape", || {
        (!rec.named("up").is_empty()).then_some(())
    })
    .await;
    let report = m.set_targets(vec![]);
    assert_eq!(report.stopped, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = rec
        .take()
        .into_iter()
        .filter(|s| is_stale_nan(s.value))
        .count();
    assert_eq!(stale, 0);
    assert!(m.is_empty());
}

#[tokio::test]
async fn a_target_that_is_gone_is_marked_stale() {
    let (server, _) = counting_server(METRICS).await;
    let (m, rec) = manager(config(3_600_000));
    let t = Target::from_address(&server.address());
    m.set_targets(vec![t.clone()]);
    eventually(WAIT, "first scrape", || {
        (!rec.named("up").is_empty()).then_some(())
    })
    .await;
    rec.take();
    m.set_targets_marking_gone(vec![], &[t]);
    let stale = eventually(WAIT, "staleness markers", || {
        let s = rec.samples.lock().unwrap().clone();
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert!(stale.iter().all(|s| is_stale_nan(s.value)));
    let mut names: Vec<&str> = stale.iter().map(|s| s.labels.name()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "requests_total",
            "requests_total",
            "scrape_duration_seconds",
            "scrape_samples_post_metric_relabeling",
            "scrape_samples_scraped",
            "scrape_series_added",
            "temperature",
            "up"
        ]
    );
}

#[tokio::test]
async fn unchanged_targets_keep_their_loops() {
    let (server, hits) = counting_server(METRICS).await;
    let (m, rec) = manager(config(3_600_000));
    let t = Target::from_address(&server.address());
    m.set_targets(vec![t.clone()]);
    eventually(WAIT, "first scrape", || {
        (!rec.named("up").is_empty()).then_some(())
    })
    .await;
    let report = m.set_targets(vec![t.clone(), t]);
    assert_eq!((report.started, report.kept, report.stopped), (0, 1, 0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no restart, no extra scrape"
    );
}

#[tokio::test]
async fn later_scrapes_follow_the_interval() {
    let (server, _) = counting_server("x 1\n").await;
    let (m, rec) = manager(config(300));
    m.set_targets(vec![Target::from_address(&server.address())]);
    let ups = eventually(WAIT, "four scrapes", || {
        let u = rec.named("up");
        (u.len() >= 4).then_some(u)
    })
    .await;
    // After the immediate first scrape, scrapes sit one interval apart on a fixed phase.
    // Tolerances allow for a loaded CI machine; a skipped slot would show as a 600ms gap.
    let ts: Vec<i64> = ups.iter().map(|s| s.timestamp_ms).collect();
    for pair in ts[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!((150..=500).contains(&gap), "gap {gap}ms in {ts:?}");
    }
    let phase0 = ts[1].rem_euclid(300);
    for t in &ts[1..] {
        let d = (t.rem_euclid(300) - phase0).rem_euclid(300);
        let circular = d.min(300 - d);
        assert!(circular <= 100, "phase drifts: {ts:?}");
    }
}

#[tokio::test]
async fn http_errors_bad_bodies_and_timeouts_mark_the_target_down() {
    let server = TestServer::serving(|path| match path {
        "/missing" => (404, "not here".into()),
        "/garbage" => (200, "this is { not metrics\n".into()),
        "/big" => (200, "x 1\n".repeat(10_000)),
        _ => (200, "ok 1\n".into()),
    })
    .await;
    let slow = TestServer::start(Arc::new(|_req| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, "late 1\n")
        })
    }))
    .await;
    let mut c = config(3_600_000);
    // Long enough for the 40 KB body on a loaded machine, well short of the slow target's 5 s.
    c.scrape_timeout = Duration::from_millis(2000);
    c.body_size_limit_bytes = 1024;
    let (m, rec) = manager(c);
    let with_path = |p: &str| {
        Target::from_labels([
            ("__address__", server.address().as_str()),
            ("__metrics_path__", p),
        ])
    };
    m.set_targets(vec![
        with_path("/missing"),
        with_path("/garbage"),
        with_path("/big"),
        Target::from_address(&slow.address()),
    ]);
    let statuses = eventually(WAIT, "four failed scrapes", || {
        let s = m.targets();
        s.iter().all(|t| t.scrapes_total > 0).then_some(s)
    })
    .await;
    let error_of = |url_end: &str| {
        let t = statuses.iter().find(|t| t.url.ends_with(url_end)).unwrap();
        assert_eq!(t.health, Health::Down, "{}", t.url);
        t.last_error.clone().unwrap()
    };
    for (end, why) in [
        ("/missing", "404"),
        ("/garbage", "invalid exposition: line 1"),
        (
            "/big",
            "body size limit exceeded: the body is 1024 bytes or more",
        ),
        (&format!("{}/metrics", slow.address()), "timed out"),
    ] {
        let error = error_of(end);
        assert!(error.contains(why), "{end}: {error:?} does not say {why:?}");
    }
    let ups = rec.named("up");
    assert_eq!(ups.len(), 4);
    assert!(ups.iter().all(|s| s.value == 0.0));
}

#[tokio::test]
async fn invalid_targets_are_reported_not_scraped() {
    let (m, _) = manager(config(60_000));
    let report = m.set_targets(vec![Target::from_labels([("env", "x")])]);
    assert_eq!(report.started, 0);
    assert_eq!(report.invalid.len(), 1);
    assert!(report.invalid[0].1.contains("__address__"));
}

/// Guards the whole hand-over story across two nodes: node A scrapes a target, the target
/// moves to node B. Both write to the same receiver (as two agents remote-writing to one
/// Prometheus). The merged series must have no staleness marker and no gap longer than one
/// interval.
#[tokio::test]
async fn a_target_handed_over_between_two_nodes_has_no_gap_and_no_staleness() {
    let (server, _) = counting_server("x 1\n").await;
    let interval_ms = 400;
    let rec = Arc::new(Recorder::default());
    let node_a = ScrapeManager::new(config(interval_ms), vec![rec.clone()]).unwrap();
    let node_b = ScrapeManager::new(config(interval_ms), vec![rec.clone()]).unwrap();
    let t = Target::from_address(&server.address());

    node_a.set_targets(vec![t.clone()]);
    eventually(WAIT, "node A scraped three times", || {
        (rec.named("up").len() >= 3).then_some(())
    })
    .await;
    // Move at an arbitrary point inside an interval. A missed slot would show as a gap of
    // two intervals; the tolerance only absorbs timer lateness on a loaded machine.
    tokio::time::sleep(Duration::from_millis(interval_ms / 3)).await;
    node_a.set_targets(vec![]);
    node_b.set_targets(vec![t]);
    let before = rec.named("up").len();
    eventually(WAIT, "node B scraped three times", || {
        (rec.named("up").len() >= before + 3).then_some(())
    })
    .await;
    node_b.set_targets(vec![]);

    let samples = rec.take();
    assert!(samples.iter().all(|s| !is_stale_nan(s.value)));
    let mut ts: Vec<i64> = samples
        .iter()
        .filter(|s| s.labels.name() == "x")
        .map(|s| s.timestamp_ms)
        .collect();
    ts.sort();
    let worst_gap = ts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        worst_gap <= interval_ms as i64 + 200,
        "gap of {worst_gap}ms across the hand-over: {ts:?}"
    );
}
