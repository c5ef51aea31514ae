//! One target's scrape loop: when to scrape, what one scrape turns into (labelled samples,
//! staleness markers for vanished series, and the `up` / `scrape_duration_seconds` /
//! `scrape_samples_scraped` report series), and how it stops.
//!
//! Timing: scrapes fall on a fixed phase per target, `hash(target) mod interval` (as
//! Prometheus' jitter, but without a per-host seed so every node of a cluster uses the same
//! phase). A loop started by a hand-over catches up at once if its last slot passed within
//! the catch-up window (the old owner stopped before it), else it waits for its next slot
//! (the old owner had scraped the last one), so the series sees at most one interval between
//! samples across a move plus the time the move took to be noticed.
//!
//! Stopping: [`StopMode::Moved`] (the target went to another node, or the agent is shutting
//! down so its targets move) writes no staleness markers, so the new owner's samples continue
//! the series without a gap. [`StopMode::Gone`] (the target no longer exists) marks every
//! series of the last scrape stale, as Prometheus does.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::exposition::{self, Line, ParsedSample};
use super::fetch::fetch;
use super::sample::{stale_nan, Appender, Labels, Sample};
use super::target::ScrapeTarget;
use crate::http_client::HttpClient;

/// How a loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The target moved to another owner (or this node is leaving): no staleness markers.
    Moved,
    /// The target disappeared: staleness markers for every series of the last scrape.
    Gone,
}

/// Health of a target after its last scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

/// What a status page shows for one target.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub labels: Labels,
    pub url: String,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration: Duration,
    pub last_samples_scraped: usize,
    pub scrapes_total: u64,
}

/// The per-loop settings; a change restarts the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub body_size_limit_bytes: u64,
    /// Mixed into the phase hash. 0 on every node keeps phases equal across the cluster.
    pub jitter_seed: u64,
}

/// The receivers samples go to; swapped on reload without restarting loops.
pub type Sinks = Arc<RwLock<Vec<Arc<dyn Appender>>>>;

pub(crate) struct LoopContext {
    pub target: Arc<ScrapeTarget>,
    pub settings: LoopSettings,
    pub client: HttpClient,
    pub sinks: Sinks,
    pub status: Arc<Mutex<TargetStatus>>,
    /// `Some(window)`: a hand-in; scrape at once if the last slot passed within `window`.
    pub catch_up_window: Option<Duration>,
}

/// Runs until `stop` carries a mode (or its sender is dropped, read as `Moved`).
pub(crate) async fn run(cx: LoopContext, mut stop: watch::Receiver<Option<StopMode>>) {
    let mut state = SeriesState::default();
    let interval = cx.settings.interval;
    let offset = phase_offset(cx.target.id ^ cx.settings.jitter_seed, interval);
    let mut next = match cx.catch_up_window {
        Some(window) if since_last_slot(SystemTime::now(), interval, offset) < window => {
            Instant::now()
        }
        _ => next_slot(SystemTime::now(), interval, offset),
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            mode = stopped(&mut stop) => return finish(&cx, &mut state, mode),
        }
        let start_wall = SystemTime::now();
        let start = Instant::now();
        let fetched = tokio::select! {
            r = fetch(&cx.client, &cx.target.url, cx.settings.timeout, cx.settings.body_size_limit_bytes) => r,
            mode = stopped(&mut stop) => return finish(&cx, &mut state, mode),
        };
        let ts_ms = unix_ms(start_wall);
        let result = fetched.and_then(|body| {
            let text = std::str::from_utf8(&body).map_err(|e| format!("body is not UTF-8: {e}"))?;
            state
                .scraped(&cx.target, &cx.settings, ts_ms, text)
                .map_err(|e| format!("invalid exposition: {e}"))
        });
        let duration = start.elapsed();
        let (samples, scraped) = match result {
            Ok((mut samples, n)) => {
                state.report(&cx.target, ts_ms, Ok(n), duration, &mut samples);
                (samples, Ok(n))
            }
            Err(e) => {
                let mut samples = state.failed(ts_ms);
                state.report(&cx.target, ts_ms, Err(()), duration, &mut samples);
                (samples, Err(e))
            }
        };
        deliver(&cx.sinks, &samples);
        drop(samples);
        {
            let mut st = cx.status.lock().unwrap();
            st.last_scrape = Some(start_wall);
            st.last_scrape_duration = duration;
            st.scrapes_total += 1;
            match scraped {
                Ok(n) => {
                    if st.health == Health::Down {
                        tracing::info!(url = %crate::http_client::redact_url(&cx.target.url), "scrape target is up again");
                    }
                    st.health = Health::Up;
                    st.last_error = None;
                    st.last_samples_scraped = n;
                }
                Err(e) => {
                    // A warning when the target goes down (once), debug while it stays down.
                    if st.health != Health::Down {
                        tracing::warn!(url = %crate::http_client::redact_url(&cx.target.url), error = %e, "scrape failed; the target is down");
                    } else {
                        tracing::debug!(url = %cx.target.url, error = %e, "scrape failed");
                    }
                    st.health = Health::Down;
                    st.last_error = Some(e);
                    st.last_samples_scraped = 0;
                }
            }
        }
        next = next_slot(SystemTime::now(), interval, offset);
    }
}

async fn stopped(stop: &mut watch::Receiver<Option<StopMode>>) -> StopMode {
    loop {
        if let Some(mode) = *stop.borrow_and_update() {
            return mode;
        }
        if stop.changed().await.is_err() {
            return StopMode::Moved;
        }
    }
}

fn finish(cx: &LoopContext, state: &mut SeriesState, mode: StopMode) {
    if mode == StopMode::Gone {
        let samples = state.end_of_run(&cx.target, unix_ms(SystemTime::now()));
        deliver(&cx.sinks, &samples);
    }
}

fn deliver(sinks: &Sinks, samples: &[Sample]) {
    if samples.is_empty() {
        return;
    }
    let sinks = sinks.read().unwrap().clone();
    for sink in sinks {
        sink.append(samples);
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The target's phase within the interval.
pub(crate) fn phase_offset(hash: u64, interval: Duration) -> Duration {
    let interval_nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % interval_nanos)
}

/// The next instant strictly after `now` that lies on `offset` modulo `interval` of the Unix
/// clock. Using the wall clock makes the phase the same on every node.
pub(crate) fn next_slot(now: SystemTime, interval: Duration, offset: Duration) -> Instant {
    let now_instant = Instant::now();
    let now_nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let wait = next_slot_wait(now_nanos, interval.as_nanos().max(1), offset.as_nanos());
    now_instant + Duration::from_nanos(wait as u64)
}

/// How long ago the last slot at or before `now` was.
pub(crate) fn since_last_slot(now: SystemTime, interval: Duration, offset: Duration) -> Duration {
    let now_nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let interval_nanos = interval.as_nanos().max(1);
    let wait = next_slot_wait(now_nanos, interval_nanos, offset.as_nanos());
    Duration::from_nanos(((interval_nanos - wait) % interval_nanos) as u64)
}

/// Nanoseconds from `now_nanos` to the next slot strictly after it.
pub(crate) fn next_slot_wait(now_nanos: u128, interval_nanos: u128, offset_nanos: u128) -> u128 {
    let offset_nanos = offset_nanos % interval_nanos;
    let since_phase = (now_nanos + interval_nanos - offset_nanos) % interval_nanos;
    interval_nanos - since_phase
}

/// What the loop remembers between scrapes: a cache of the target's series (so a series
/// seen before costs a hash lookup, not a parse and a relabelling) and the series of the last
/// scrape (for staleness).
///
/// Both hold exactly the series of the last scrape, so they are bounded by the body size
/// limit; entries of series that vanished are dropped after every scrape.
#[derive(Default)]
pub(crate) struct SeriesState {
    /// By xxhash64 of the series text as written (`name{labels}`), checked against `text`.
    cache: PreHashedMap<CachedSeries>,
    /// Series of the last successful scrape without explicit timestamps, by labels hash,
    /// with the scrape number that last saw them.
    previous: PreHashedMap<(Labels, u64)>,
    /// Scrapes so far (successful or not).
    generation: u64,
    /// Labels of `up`, `scrape_duration_seconds`, `scrape_samples_scraped`, once built.
    report: Option<[Labels; 3]>,
    /// Whether report series were written (and so get staleness markers at the end).
    reported: bool,
}

struct CachedSeries {
    text: Box<str>,
    labels: Labels,
    labels_hash: u64,
    /// The scrape that last saw it.
    generation: u64,
}

/// A map keyed by a hash already computed (the key is used as the hash).
type PreHashedMap<V> = HashMap<u64, V, BuildHasherDefault<PreHashed>>;

#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; this keeps the hasher total.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub(crate) const REPORT_UP: &str = "up";
pub(crate) const REPORT_DURATION: &str = "scrape_duration_seconds";
pub(crate) const REPORT_SAMPLES: &str = "scrape_samples_scraped";

impl SeriesState {
    /// Samples of one scrape at `ts_ms` whose body is `text`: the scraped samples with target
    /// labels, then staleness markers for series of the last scrape that are gone. Also the
    /// number of samples scraped. A malformed exposition is an error and changes nothing but
    /// the cache (call [`SeriesState::failed`]).
    pub(crate) fn scraped(
        &mut self,
        target: &ScrapeTarget,
        settings: &LoopSettings,
        ts_ms: i64,
        text: &str,
    ) -> Result<(Vec<Sample>, usize), String> {
        self.generation += 1;
        let generation = self.generation;
        let mut out: Vec<Sample> = Vec::with_capacity(self.previous.len() + 8);
        // Hashes of the tracked samples in `out` (those at the scrape's own timestamp).
        let mut tracked: Vec<(u64, usize)> = Vec::with_capacity(self.previous.len());
        for line in exposition::scan(text) {
            let (labels, labels_hash, value, timestamp_ms) = match line
                .map_err(|e| e.to_string())?
            {
                Line::Sample(raw) => {
                    let key = xxhash_rust::xxh64::xxh64(raw.series.as_bytes(), 0);
                    let (labels, labels_hash) = match self.cache.get_mut(&key) {
                        Some(c) if *c.text == *raw.series => {
                            c.generation = generation;
                            (c.labels.clone(), c.labels_hash)
                        }
                        hit => {
                            let collision = hit.is_some();
                            let (name, pairs) = exposition::parse_series(raw.series)
                                .map_err(|m| format!("line {}: {m}", raw.line))?;
                            let labels =
                                label_parts(&name, &pairs, &target.labels, settings.honor_labels);
                            let labels_hash = labels.hash();
                            if !collision {
                                self.cache.insert(
                                    key,
                                    CachedSeries {
                                        text: raw.series.into(),
                                        labels: labels.clone(),
                                        labels_hash,
                                        generation,
                                    },
                                );
                            }
                            (labels, labels_hash)
                        }
                    };
                    (labels, labels_hash, raw.value, raw.timestamp_ms)
                }
                Line::Parsed(_, p) => {
                    let labels = label_sample(&p, &target.labels, settings.honor_labels);
                    let hash = labels.hash();
                    (labels, hash, p.value, p.timestamp_ms)
                }
            };
            let timestamp_ms = match timestamp_ms {
                Some(t) if settings.honor_timestamps => t,
                _ => ts_ms,
            };
            // Series with explicit timestamps are not tracked for staleness (Prometheus).
            if timestamp_ms == ts_ms {
                tracked.push((labels_hash, out.len()));
            }
            out.push(Sample {
                labels,
                timestamp_ms,
                value,
            });
        }
        let scraped = out.len();
        for (hash, i) in tracked {
            match self.previous.get_mut(&hash) {
                Some(entry) => entry.1 = generation,
                None => {
                    self.previous
                        .insert(hash, (out[i].labels.clone(), generation));
                }
            }
        }
        let mut gone: Vec<Labels> = Vec::new();
        self.previous.retain(|_, (labels, seen)| {
            if *seen == generation {
                true
            } else {
                gone.push(labels.clone());
                false
            }
        });
        out.extend(gone.into_iter().map(|labels| Sample {
            labels,
            timestamp_ms: ts_ms,
            value: stale_nan(),
        }));
        self.cache.retain(|_, c| c.generation == generation);
        Ok((out, scraped))
    }

    /// Staleness markers for every series of the last scrape, after a failed one.
    pub(crate) fn failed(&mut self, ts_ms: i64) -> Vec<Sample> {
        self.generation += 1;
        self.previous
            .drain()
            .map(|(_, (labels, _))| Sample {
                labels,
                timestamp_ms: ts_ms,
                value: stale_nan(),
            })
            .collect()
    }

    /// Appends the report series: `up` (1 when `scraped` is `Ok`), `scrape_duration_seconds`
    /// and `scrape_samples_scraped`.
    pub(crate) fn report(
        &mut self,
        target: &ScrapeTarget,
        ts_ms: i64,
        scraped: Result<usize, ()>,
        duration: Duration,
        out: &mut Vec<Sample>,
    ) {
        let (up, n) = match scraped {
            Ok(n) => (1.0, n),
            Err(()) => (0.0, 0),
        };
        let labels = self.report_labels(target).clone();
        for (labels, (_, value)) in labels.into_iter().zip(report_values(up, duration, n)) {
            out.push(Sample {
                labels,
                timestamp_ms: ts_ms,
                value,
            });
        }
        self.reported = true;
    }

    fn report_labels(&mut self, target: &ScrapeTarget) -> &[Labels; 3] {
        self.report.get_or_insert_with(|| {
            [REPORT_UP, REPORT_DURATION, REPORT_SAMPLES].map(|name| report_labels(target, name))
        })
    }

    /// Staleness markers for everything this loop wrote last, when the target is gone.
    pub(crate) fn end_of_run(&mut self, target: &ScrapeTarget, ts_ms: i64) -> Vec<Sample> {
        let mut out = self.failed(ts_ms);
        if self.reported {
            for labels in self.report_labels(target).clone() {
                out.push(Sample {
                    labels,
                    timestamp_ms: ts_ms,
                    value: stale_nan(),
                });
            }
        }
        self.reported = false;
        out
    }
}

fn report_values(up: f64, duration: Duration, scraped: usize) -> [(&'static str, f64); 3] {
    [
        (REPORT_UP, up),
        (REPORT_DURATION, duration.as_secs_f64()),
        (REPORT_SAMPLES, scraped as f64),
    ]
}

fn report_labels(target: &ScrapeTarget, name: &str) -> Labels {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(target.labels.len() + 1);
    pairs.push(("__name__".into(), name.into()));
    pairs.extend(
        target
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Labels::from_pairs(pairs)
}

/// Attaches target labels to a scraped sample. With `honor_labels = false`, a scraped label
/// that clashes with a target label is kept as `exported_NAME` (prefixed again while that
/// name is taken) and the target's value wins; with `true`, the scraped value wins. Empty
/// values are dropped.
pub(crate) fn label_sample(p: &ParsedSample, target_labels: &Labels, honor_labels: bool) -> Labels {
    label_parts(&p.name, &p.labels, target_labels, honor_labels)
}

/// [`label_sample`] for a decoded series (metric name and labels as written).
pub(crate) fn label_parts(
    name: &str,
    scraped: &[(String, String)],
    target_labels: &Labels,
    honor_labels: bool,
) -> Labels {
    let mut pairs: Vec<(String, String)> =
        Vec::with_capacity(scraped.len() + target_labels.len() + 1);
    pairs.push(("__name__".to_string(), name.to_string()));
    pairs.extend(scraped.iter().cloned());
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for (name, value) in target_labels.iter() {
        match pairs.iter().position(|(k, _)| k == name) {
            Some(i) if honor_labels => {
                if pairs[i].1.is_empty() {
                    pairs[i].1 = value.to_string();
                }
            }
            Some(i) => {
                let old = std::mem::replace(&mut pairs[i].1, value.to_string());
                if !old.is_empty() {
                    conflicts.push((name.to_string(), old));
                }
            }
            None => pairs.push((name.to_string(), value.to_string())),
        }
    }
    for (name, value) in conflicts {
        let mut exported = format!("exported_{name}");
        while pairs.iter().any(|(k, _)| *k == exported) {
            exported = format!("exported_{exported}");
        }
        pairs.push((exported, value));
    }
    Labels::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeConfig;
    use crate::discovery::Target;
    use crate::scrape::sample::is_stale_nan;

    fn target() -> ScrapeTarget {
        ScrapeTarget::new(
            &Target::from_labels([("__address__", "h:1"), ("env", "prod")]),
            &ScrapeConfig::with_defaults("t"),
        )
        .unwrap()
    }

    fn settings() -> LoopSettings {
        LoopSettings {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            honor_labels: false,
            honor_timestamps: true,
            body_size_limit_bytes: 1 << 20,
            jitter_seed: 0,
        }
    }

    #[test]
    fn clashing_scraped_labels_become_exported() {
        let p =
            exposition::parse(r#"m{job="theirs",instance="i",exported_job="x",a="1"} 1"#).unwrap();
        let l = label_sample(&p[0], &target().labels, false);
        assert_eq!(
            format!("{l:?}"),
            r#"{__name__="m", a="1", env="prod", exported_exported_job="theirs", exported_instance="i", exported_job="x", instance="h:1", job="prometheus.scrape.t"}"#
        );
        let l = label_sample(&p[0], &target().labels, true);
        assert_eq!(l.get("job"), Some("theirs"));
        assert_eq!(l.get("instance"), Some("i"));
        assert_eq!(l.get("env"), Some("prod"));
    }

    /// One scrape as the loop does it: samples (or staleness markers after a failure) and
    /// the report series.
    fn scrape(
        st: &mut SeriesState,
        t: &ScrapeTarget,
        ts_ms: i64,
        body: Result<&str, ()>,
    ) -> Vec<Sample> {
        let mut out = match body.map(|text| st.scraped(t, &settings(), ts_ms, text)) {
            Ok(Ok((mut out, n))) => {
                st.report(t, ts_ms, Ok(n), Duration::from_millis(20), &mut out);
                out
            }
            _ => {
                let mut out = st.failed(ts_ms);
                st.report(t, ts_ms, Err(()), Duration::ZERO, &mut out);
                out
            }
        };
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    fn value_of<'a>(out: &'a [Sample], name: &str) -> Option<&'a Sample> {
        out.iter().find(|s| s.labels.name() == name)
    }

    #[test]
    fn scrape_adds_report_series_and_marks_vanished_series_stale() {
        let t = target();
        let mut st = SeriesState::default();
        let out = scrape(&mut st, &t, 5000, Ok("a 1\nb 2\nc 3 1000\n"));
        assert_eq!(out.len(), 6);
        assert_eq!(
            value_of(&out, "c").unwrap().timestamp_ms,
            1000,
            "explicit timestamp honoured"
        );
        let up = value_of(&out, "up").unwrap();
        assert_eq!(up.value, 1.0);
        assert_eq!(up.labels.get("job"), Some("prometheus.scrape.t"));
        assert_eq!(value_of(&out, "scrape_samples_scraped").unwrap().value, 3.0);

        let out = scrape(&mut st, &t, 20000, Ok("a 1\n"));
        let stale: Vec<&str> = out
            .iter()
            .filter(|s| is_stale_nan(s.value))
            .map(|s| s.labels.name())
            .collect();
        assert_eq!(
            stale,
            vec!["b"],
            "only the vanished series without explicit timestamp"
        );

        let out = scrape(&mut st, &t, 35000, Err(()));
        assert!(out
            .iter()
            .any(|s| s.labels.name() == "a" && is_stale_nan(s.value)));
        assert_eq!(value_of(&out, "up").unwrap().value, 0.0);

        let end = st.end_of_run(&t, 40000);
        assert!(end.iter().all(|s| is_stale_nan(s.value)));
        assert_eq!(end.len(), 3, "only the report series remained");
    }

    #[test]
    fn a_malformed_body_fails_the_scrape_and_marks_the_last_series_stale() {
        let t = target();
        let mut st = SeriesState::default();
        scrape(&mut st, &t, 1000, Ok("a 1\nb{x=\"1\"} 2\n"));
        let e = st
            .scraped(&t, &settings(), 2000, "a 1\nnew 5\nb{x=\"1\" 2\n")
            .unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        let out = scrape(&mut st, &t, 2000, Err(()));
        let mut stale: Vec<&str> = out
            .iter()
            .filter(|s| is_stale_nan(s.value))
            .map(|s| s.labels.name())
            .collect();
        stale.sort();
        assert_eq!(
            stale,
            vec!["a", "b"],
            "the last good scrape's series, not `new`"
        );
    }

    #[test]
    fn a_series_seen_before_reuses_its_labels_and_one_written_differently_is_the_same_series() {
        let t = target();
        let mut st = SeriesState::default();
        let first = scrape(&mut st, &t, 1000, Ok("m{a=\"1\",b=\"2\"} 1\n"));
        let second = scrape(&mut st, &t, 2000, Ok("m{a=\"1\",b=\"2\"} 2\n"));
        let (x, y) = (
            value_of(&first, "m").unwrap(),
            value_of(&second, "m").unwrap(),
        );
        assert_eq!(x.labels, y.labels);
        assert_eq!(st.cache.len(), 1);
        // The same labels in another order: same series, no staleness marker for it.
        let third = scrape(&mut st, &t, 3000, Ok("m{b=\"2\", a=\"1\"} 3\n"));
        let m: Vec<&Sample> = third.iter().filter(|s| s.labels.name() == "m").collect();
        assert_eq!(m.len(), 1, "{third:?}");
        assert_eq!(m[0].value, 3.0);
        assert_eq!(st.cache.len(), 1, "the old spelling was evicted");
    }

    #[test]
    fn slots_fall_on_the_phase_strictly_after_now() {
        let sec = 1_000_000_000u128;
        assert_eq!(next_slot_wait(100 * sec, 15 * sec, 3 * sec), 8 * sec); // 108 = 7*15+3
        assert_eq!(next_slot_wait(108 * sec, 15 * sec, 3 * sec), 15 * sec);
        assert_eq!(next_slot_wait(107 * sec, 15 * sec, 3 * sec), sec);
        let d = phase_offset(u64::MAX, Duration::from_secs(15));
        assert!(d < Duration::from_secs(15));
        let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
        let (i, o) = (Duration::from_secs(15), Duration::from_secs(3));
        assert_eq!(
            since_last_slot(at(108, 0), i, o),
            Duration::ZERO,
            "on the slot"
        );
        assert_eq!(since_last_slot(at(109, 500), i, o), Duration::new(1, 500));
        assert_eq!(since_last_slot(at(107, 0), i, o), Duration::from_secs(14));
    }
}
