//! The remote write client against a fake receiver on loopback: wire format and headers,
//! batching, retry rules (5xx/429/network retried, other 4xx not), splitting a rejected
//! batch, the bounded shard queues, and resuming from the WAL after a restart.

mod pipeline_support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::config::{EndpointConfig, RemoteWriteConfig};
use agent::remote_write::proto::{decode_write_request, snappy_decompress, DecodedSeries};
use agent::remote_write::RemoteWrite;
use agent::scrape::{Labels, Sample};
use agent::wal::Wal;
use http_body_util::BodyExt;
use pipeline_support::{eventually, reply, TestServer};

const WAIT: Duration = Duration::from_secs(10);

/// The timestamp the test samples start at: an hour after this test process started, so
/// every component (which drops samples timestamped before its own start, as Prometheus
/// does) takes them.
fn base_ms() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.as_millis() as i64 + 3_600_000
    })
}

/// What the fake receiver saw.
#[derive(Default)]
struct Seen {
    requests: Vec<(hyper::HeaderMap, Vec<DecodedSeries>)>,
}

/// A receiver answering with the queued statuses (then 204) and decoding every body.
async fn receiver(statuses: Vec<u16>) -> (TestServer, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let statuses = Arc::new(Mutex::new(VecDeque::from(statuses)));
    let s = seen.clone();
    let server = TestServer::start(Arc::new(
        move |req: hyper::Request<hyper::body::Incoming>| {
            let seen = s.clone();
            let statuses = statuses.clone();
            Box::pin(async move {
                let headers = req.headers().clone();
                let decoded = decoded(req).await;
                seen.lock().unwrap().requests.push((headers, decoded));
                let status = statuses.lock().unwrap().pop_front().unwrap_or(204);
                reply(status, "")
            })
        },
    ))
    .await;
    (server, seen)
}

/// The receiver got `n` samples, no (series, timestamp) twice.
fn assert_each_once(seen: &Seen, n: usize) {
    let mut all: Vec<(&[(String, String)], i64)> = seen
        .requests
        .iter()
        .flat_map(|(_, s)| {
            s.iter()
                .flat_map(|x| x.samples.iter().map(|(t, _)| (&x.labels[..], *t)))
        })
        .collect();
    assert_eq!(all.len(), n, "each sample exactly once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "nothing twice");
}

/// The series of a remote write request.
async fn decoded(req: hyper::Request<hyper::body::Incoming>) -> Vec<DecodedSeries> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    decode_write_request(&snappy_decompress(&body).unwrap()).unwrap()
}

fn config(addr: &str, tweak: impl FnOnce(&mut EndpointConfig)) -> RemoteWriteConfig {
    let mut e = EndpointConfig::with_defaults(&format!("http://{addr}/api/v1/write"));
    e.queue.batch_send_deadline = Duration::from_millis(100);
    e.queue.min_backoff = Duration::from_millis(10);
    e.queue.max_backoff = Duration::from_millis(40);
    e.remote_timeout = Duration::from_secs(2);
    tweak(&mut e);
    RemoteWriteConfig {
        name: "test".into(),
        endpoints: vec![e],
        external_labels: Default::default(),
        wal: Default::default(),
    }
}

/// The component with a WAL of its own (kept alive by the returned directory).
fn start(cfg: RemoteWriteConfig) -> (Arc<RemoteWrite>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), (&cfg.wal).into()).unwrap();
    (RemoteWrite::start(cfg, wal, None).unwrap(), dir)
}

fn samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            labels: Labels::from_pairs([
                ("__name__", "m"),
                ("i", i.to_string().as_str()),
                ("job", "j"),
            ]),
            timestamp_ms: base_ms() + i as i64,
            value: i as f64,
        })
        .collect()
}

#[tokio::test]
async fn batches_carry_protocol_headers_and_decode_to_the_samples_sent() {
    let (server, seen) = receiver(vec![]).await;
    let (rw, _dir) = start(config(&server.address(), |_| {}));
    rw.receiver().append(&samples(3));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "3 samples sent", || {
        (metrics.snapshot().samples_sent_total == 3).then_some(())
    })
    .await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 1);
    let (headers, series) = &seen.requests[0];
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(series.len(), 3);
    assert_eq!(
        series[1].labels,
        vec![
            ("__name__".to_string(), "m".to_string()),
            ("i".to_string(), "1".to_string()),
            ("job".to_string(), "j".to_string())
        ]
    );
    assert_eq!(series[1].samples, vec![(base_ms() + 1, 1.0)]);
    let snap = metrics.snapshot();
    assert_eq!(snap.samples_pending, 0);
    assert_eq!(snap.highest_sent_timestamp_ms, base_ms() + 2);
    assert!(snap.bytes_sent_total > 0);
}

#[tokio::test]
async fn full_batches_go_at_once_and_the_rest_after_the_deadline() {
    let (server, seen) = receiver(vec![]).await;
    let (rw, _dir) = start(config(&server.address(), |e| {
        e.queue.max_samples_per_send = 10;
        e.queue.batch_send_deadline = Duration::from_millis(300);
    }));
    rw.receiver().append(&samples(25));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "25 samples sent", || {
        (metrics.snapshot().samples_sent_total == 25).then_some(())
    })
    .await;
    let sizes: Vec<usize> = seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(_, s)| s.iter().map(|x| x.samples.len()).sum())
        .collect();
    assert_eq!(sizes, vec![10, 10, 5]);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_until_accepted() {
    let (server, seen) = receiver(vec![500, 503, 429]).await;
    let (rw, _dir) = start(config(&server.address(), |_| {}));
    rw.receiver().append(&samples(4));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "sent after retries", || {
        (metrics.snapshot().samples_sent_total == 4).then_some(())
    })
    .await;
    let snap = metrics.snapshot();
    assert_eq!(snap.requests_total, 4);
    assert_eq!(snap.samples_retried_total, 12);
    assert_eq!(snap.samples_failed_total, 0);
    assert_eq!(snap.samples_pending, 0);
    let seen = seen.lock().unwrap();
    assert!(
        seen.requests.windows(2).all(|w| w[0].1 == w[1].1),
        "retries resend the same batch"
    );
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let (server, _) = receiver(vec![400]).await;
    let (rw, _dir) = start(config(&server.address(), |_| {}));
    rw.receiver().append(&samples(5));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "batch failed", || {
        (metrics.snapshot().samples_failed_total == 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let snap = metrics.snapshot();
    assert_eq!(snap.requests_total, 1);
    assert_eq!(snap.samples_sent_total, 0);
    assert_eq!(snap.samples_pending, 0);

    let (server, _) = receiver(vec![429]).await;
    let (rw, _dir2) = start(config(&server.address(), |e| {
        e.queue.retry_on_http_429 = false
    }));
    rw.receiver().append(&samples(2));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "429 not retried", || {
        (metrics.snapshot().samples_failed_total == 2).then_some(())
    })
    .await;
    assert_eq!(metrics.snapshot().requests_total, 1);
}

#[tokio::test]
async fn network_errors_are_retried_and_what_is_unsent_at_shutdown_goes_after_the_restart() {
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let named = |addr: &str| config(addr, |e| e.name = "primary".into());
    let dir = tempfile::tempdir().unwrap();
    let cfg = named(&addr.to_string());
    let rw = RemoteWrite::start(
        cfg.clone(),
        Wal::open(dir.path(), (&cfg.wal).into()).unwrap(),
        None,
    )
    .unwrap();
    rw.receiver().append(&samples(3));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "several attempts", || {
        (metrics.snapshot().requests_total >= 3).then_some(())
    })
    .await;
    assert_eq!(metrics.snapshot().samples_sent_total, 0);
    tokio::time::timeout(WAIT, rw.shutdown(Duration::from_millis(200)))
        .await
        .expect("shutdown is bounded");
    let snap = metrics.snapshot();
    assert_eq!(
        snap.samples_failed_total, 0,
        "nothing is given up: it stays in the WAL"
    );
    assert_eq!(snap.samples_pending, 0);
    drop(rw);

    // The same endpoint (by name) now reaches a receiver: the 3 samples arrive, once.
    let (server, seen) = receiver(vec![]).await;
    let cfg = named(&server.address());
    let rw = RemoteWrite::start(
        cfg.clone(),
        Wal::open(dir.path(), (&cfg.wal).into()).unwrap(),
        None,
    )
    .unwrap();
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "the 3 samples after the restart", || {
        (metrics.snapshot().samples_sent_total == 3).then_some(())
    })
    .await;
    rw.receiver().append(&samples(2));
    eventually(WAIT, "and new ones", || {
        (metrics.snapshot().samples_sent_total == 5).then_some(())
    })
    .await;
    let got: usize = seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(_, s)| s.len())
        .sum();
    assert_eq!(got, 5, "nothing twice");
}

/// `samples(10)`, `k` seconds later.
fn later(k: i64) -> Vec<Sample> {
    samples(10)
        .into_iter()
        .map(|mut s| {
            s.timestamp_ms += 1000 * k;
            s
        })
        .collect()
}

#[tokio::test]
async fn a_restart_resends_nothing_that_was_accepted_and_everything_that_was_not() {
    let (server, seen) = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server.address(), |e| e.queue.max_samples_per_send = 7);
    let wal = Wal::open(dir.path(), (&cfg.wal).into()).unwrap();
    let rw = RemoteWrite::start(cfg.clone(), wal.clone(), None).unwrap();
    for k in 0..10 {
        rw.receiver().append(&later(k));
    }
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "100 sent", || {
        (metrics.snapshot().samples_sent_total == 100).then_some(())
    })
    .await;
    rw.shutdown(Duration::from_secs(1)).await;
    drop(rw);
    // Written while no endpoint runs (a scrape racing the restart).
    wal.append(&later(10));
    drop(wal);
    let wal = Wal::open(dir.path(), (&cfg.wal).into()).unwrap();
    let rw = RemoteWrite::start(cfg, wal, None).unwrap();
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "the 10 written meanwhile", || {
        (metrics.snapshot().samples_sent_total == 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_each_once(&seen.lock().unwrap(), 110);
}

#[tokio::test]
async fn a_full_shard_queue_makes_the_reader_wait_and_nothing_is_dropped() {
    let (server, _) = receiver(vec![500; 20]).await;
    let (rw, _dir) = start(config(&server.address(), |e| {
        e.queue.capacity = 5;
        e.queue.max_samples_per_send = 5;
    }));
    rw.receiver().append(&samples(20));
    let metrics = rw.metrics()[0].1.clone();
    let mut most_pending = 0;
    eventually(WAIT, "all 20 sent after the errors", || {
        let s = metrics.snapshot();
        most_pending = most_pending.max(s.samples_pending);
        (s.samples_sent_total == 20).then_some(())
    })
    .await;
    let snap = metrics.snapshot();
    // The queue's capacity, plus the request in flight.
    assert!(
        most_pending <= 10,
        "memory bounded by the shard capacity: {most_pending}"
    );
    assert_eq!(snap.samples_dropped_total, 0);
    assert_eq!(snap.samples_failed_total, 0);
    assert!(snap.samples_retried_total >= 20 * 5, "{snap:?}");
}

#[tokio::test]
async fn one_rejected_sample_costs_only_itself() {
    // Like Prometheus with an out-of-order sample: the whole request is refused with 400.
    let seen = Arc::new(Mutex::new(Vec::<usize>::new()));
    let s = seen.clone();
    let server = TestServer::start(Arc::new(
        move |req: hyper::Request<hyper::body::Incoming>| {
            let seen = s.clone();
            Box::pin(async move {
                let decoded = decoded(req).await;
                let ids: Vec<usize> = decoded
                    .iter()
                    .map(|x| {
                        x.labels
                            .iter()
                            .find(|(k, _)| k == "i")
                            .unwrap()
                            .1
                            .parse()
                            .unwrap()
                    })
                    .collect();
                if ids.contains(&7) {
                    return reply(400, "out of order sample");
                }
                seen.lock().unwrap().extend(ids);
                reply(204, "")
            })
        },
    ))
    .await;
    let (rw, _dir) = start(config(&server.address(), |e| {
        e.queue.max_samples_per_send = 100
    }));
    rw.receiver().append(&samples(20));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "19 accepted, 1 refused", || {
        let s = metrics.snapshot();
        (s.samples_sent_total == 19 && s.samples_failed_total == 1).then_some(())
    })
    .await;
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, (0..20).filter(|i| *i != 7).collect::<Vec<_>>());
    assert!(
        metrics.snapshot().requests_total <= 2 * 5 + 1,
        "bisection, not one request per sample"
    );
}

#[tokio::test]
async fn external_labels_are_added_unless_present() {
    let (server, seen) = receiver(vec![]).await;
    let mut cfg = config(&server.address(), |_| {});
    cfg.external_labels.insert("cluster".into(), "eu1".into());
    cfg.external_labels.insert("job".into(), "ignored".into());
    let (rw, _dir) = start(cfg);
    rw.receiver().append(&samples(1));
    let metrics = rw.metrics()[0].1.clone();
    eventually(WAIT, "sent", || {
        (metrics.snapshot().samples_sent_total == 1).then_some(())
    })
    .await;
    let labels = seen.lock().unwrap().requests[0].1[0].labels.clone();
    assert!(labels.contains(&("cluster".to_string(), "eu1".to_string())));
    assert!(labels.contains(&("job".to_string(), "j".to_string())));
    assert!(
        labels.windows(2).all(|w| w[0].0 < w[1].0),
        "labels sorted: {labels:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_gets_more_shards_and_every_series_stays_in_order() {
    // Each request takes 50 ms: one shard of 100-sample requests moves 2000 samples/s, the
    // input is ~10000/s.
    let seen = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let s = seen.clone();
    let server = TestServer::start(Arc::new(
        move |req: hyper::Request<hyper::body::Incoming>| {
            let seen = s.clone();
            Box::pin(async move {
                let decoded = decoded(req).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut seen = seen.lock().unwrap();
                for x in decoded {
                    let id = x.labels.iter().find(|(k, _)| k == "i").unwrap().1.clone();
                    seen.extend(x.samples.iter().map(|(t, _)| (id.clone(), *t)));
                }
                reply(204, "")
            })
        },
    ))
    .await;
    let (rw, _dir) = start(config(&server.address(), |e| {
        e.queue.max_samples_per_send = 100;
        e.queue.max_shards = 8;
    }));
    let metrics = rw.metrics()[0].1.clone();
    let mut scrapes = 0i64;
    let started = std::time::Instant::now();
    while metrics.snapshot().shards < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no reshard: {:?}",
            metrics.snapshot()
        );
        rw.receiver().append(&later(scrapes));
        for k in 0..10 {
            rw.receiver().append(&batch_of(100, scrapes * 10 + k));
        }
        scrapes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shards = metrics.snapshot().shards;
    assert!((2..=8).contains(&shards), "{:?}", metrics.snapshot());
    // Everything written arrives, and per series in timestamp order across the reshard.
    let written = scrapes as u64 * (10 + 10 * 100);
    eventually(Duration::from_secs(60), "all sent", || {
        (metrics.snapshot().samples_sent_total == written).then_some(())
    })
    .await;
    let seen = seen.lock().unwrap();
    let mut last: std::collections::BTreeMap<&str, i64> = Default::default();
    for (id, t) in seen.iter() {
        if let Some(prev) = last.insert(id, *t) {
            assert!(*t > prev, "series {id} out of order: {prev} then {t}");
        }
    }
    assert_eq!(seen.len() as u64, written);
}

/// `n` series at timestamp `t` (ms offset), distinct from `samples()`'s.
fn batch_of(n: usize, t: i64) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            labels: Labels::from_pairs([
                ("__name__", "load"),
                ("i", format!("s{i}").as_str()),
                ("job", "j"),
            ]),
            timestamp_ms: base_ms() + t,
            value: t as f64,
        })
        .collect()
}

#[tokio::test]
async fn a_component_replaced_by_a_reload_hands_its_wal_over_without_loss_or_duplicates() {
    let (server, seen) = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server.address(), |_| {});
    let wal = Wal::open(dir.path(), (&cfg.wal).into()).unwrap();
    let old = RemoteWrite::start(cfg.clone(), wal.clone(), None).unwrap();
    for k in 0..5 {
        old.receiver().append(&later(k));
    }
    // The reload: the new component starts on the same WAL while the old one still runs;
    // its endpoint waits for the old one's to stop, then reads on from its position.
    let mut changed = cfg.clone();
    changed.endpoints[0].queue.batch_send_deadline = Duration::from_millis(50);
    let new = RemoteWrite::start(changed, wal.clone(), Some(&old)).unwrap();
    for k in 5..10 {
        new.receiver().append(&later(k));
    }
    old.shutdown(Duration::from_secs(2)).await;
    drop(old);
    for k in 10..15 {
        new.receiver().append(&later(k));
    }
    let metrics = new.metrics()[0].1.clone();
    eventually(WAIT, "everything after the hand-over", || {
        let got: usize = seen
            .lock()
            .unwrap()
            .requests
            .iter()
            .flat_map(|(_, s)| s.iter().map(|x| x.samples.len()))
            .sum();
        (got >= 150 && metrics.snapshot().samples_pending == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_each_once(&seen.lock().unwrap(), 150);
}
