//! One target's scrape loop: when to scrape, what one scrape turns into (labelled samples,
//! staleness markers for vanished series, and the `up` / `scrape_duration_seconds` /
//! `scrape_samples_scraped` report series), and how it stops.
//!
//! Timing: scrapes fall on a fixed phase per target, `hash(target) mod interval` (as
//! Prometheus' jitter, but without a per-host seed so every node of a cluster uses the same
//! phase). A loop started by a hand-over scrapes at once and then joins that phase, so the
//! series sees at most one interval between samples across a move.
//!
//! Stopping: [`StopMode::Moved`] (the target went to another node, or the agent is shutting
//! down so its targets move) writes no staleness markers, so the new owner's samples continue
//! the series without a gap. [`StopMode::Gone`] (the target no longer exists) marks every
//! series of the last scrape stale, as Prometheus does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::exposition::{self, ParsedSample};
use super::fetch::{fetch, HttpClient};
use super::sample::{stale_nan, Appender, Labels, Sample};
use super::target::ScrapeTarget;

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
    pub scrape_immediately: bool,
}

/// Runs until `stop` carries a mode (or its sender is dropped, read as `Moved`).
pub(crate) async fn run(cx: LoopContext, mut stop: watch::Receiver<Option<StopMode>>) {
    let mut state = SeriesState::default();
    let interval = cx.settings.interval;
    let offset = phase_offset(cx.target.id ^ cx.settings.jitter_seed, interval);
    let mut next = if cx.scrape_immediately {
        Instant::now()
    } else {
        next_slot(SystemTime::now(), interval, offset)
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
        let result = fetched.and_then(|body| {
            let text = std::str::from_utf8(&body).map_err(|e| format!("body is not UTF-8: {e}"))?;
            exposition::parse(text).map_err(|e| format!("invalid exposition: {e}"))
        });
        let duration = start.elapsed();
        let samples = state.scrape_result(
            &cx.target,
            &cx.settings,
            unix_ms(start_wall),
            result.as_deref(),
            duration,
        );
        deliver(&cx.sinks, &samples);
        {
            let mut st = cx.status.lock().unwrap();
            st.last_scrape = Some(start_wall);
            st.last_scrape_duration = duration;
            st.scrapes_total += 1;
            match &result {
                Ok(parsed) => {
                    st.health = Health::Up;
                    st.last_error = None;
                    st.last_samples_scraped = parsed.len();
                }
                Err(e) => {
                    st.health = Health::Down;
                    st.last_error = Some(e.clone());
                    st.last_samples_scraped = 0;
                    tracing::debug!(url = %cx.target.url, error = %e, "scrape failed");
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

/// Nanoseconds from `now_nanos` to the next slot strictly after it.
pub(crate) fn next_slot_wait(now_nanos: u128, interval_nanos: u128, offset_nanos: u128) -> u128 {
    let offset_nanos = offset_nanos % interval_nanos;
    let since_phase = (now_nanos + interval_nanos - offset_nanos) % interval_nanos;
    interval_nanos - since_phase
}

/// What the loop remembers between scrapes: the series of the last scrape (for staleness).
#[derive(Default)]
pub(crate) struct SeriesState {
    previous: HashSet<Labels>,
    reported: bool,
}

pub(crate) const REPORT_UP: &str = "up";
pub(crate) const REPORT_DURATION: &str = "scrape_duration_seconds";
pub(crate) const REPORT_SAMPLES: &str = "scrape_samples_scraped";

impl SeriesState {
    /// Samples for one scrape at `ts_ms`: the scraped samples with target labels, staleness
    /// markers for series that vanished (all of them when the scrape failed), and the report
    /// series.
    pub(crate) fn scrape_result(
        &mut self,
        target: &ScrapeTarget,
        settings: &LoopSettings,
        ts_ms: i64,
        result: Result<&[ParsedSample], &String>,
        duration: Duration,
    ) -> Vec<Sample> {
        let parsed: &[ParsedSample] = result.unwrap_or(&[]);
        let mut out = Vec::with_capacity(parsed.len() + 3);
        let mut current = HashSet::with_capacity(parsed.len());
        for p in parsed {
            let labels = label_sample(p, &target.labels, settings.honor_labels);
            let timestamp_ms = match p.timestamp_ms {
                Some(t) if settings.honor_timestamps => t,
                _ => ts_ms,
            };
            // Series with explicit timestamps are not tracked for staleness (Prometheus).
            if timestamp_ms == ts_ms && !current.contains(&labels) {
                current.insert(labels.clone());
            }
            out.push(Sample {
                labels,
                timestamp_ms,
                value: p.value,
            });
        }
        for gone in self.previous.difference(&current) {
            out.push(Sample {
                labels: gone.clone(),
                timestamp_ms: ts_ms,
                value: stale_nan(),
            });
        }
        self.previous = current;
        let up = if result.is_ok() { 1.0 } else { 0.0 };
        for (name, value) in report_values(up, duration, parsed.len()) {
            out.push(Sample {
                labels: report_labels(target, name),
                timestamp_ms: ts_ms,
                value,
            });
        }
        self.reported = true;
        out
    }

    /// Staleness markers for everything this loop wrote last, when the target is gone.
    pub(crate) fn end_of_run(&mut self, target: &ScrapeTarget, ts_ms: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .previous
            .drain()
            .map(|labels| Sample {
                labels,
                timestamp_ms: ts_ms,
                value: stale_nan(),
            })
            .collect();
        if self.reported {
            for name in [REPORT_UP, REPORT_DURATION, REPORT_SAMPLES] {
                out.push(Sample {
                    labels: report_labels(target, name),
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
    let mut pairs: Vec<(String, String)> =
        Vec::with_capacity(p.labels.len() + target_labels.len() + 1);
    pairs.push(("__name__".to_string(), p.name.clone()));
    pairs.extend(p.labels.iter().cloned());
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

    #[test]
    fn scrape_adds_report_series_and_marks_vanished_series_stale() {
        let t = target();
        let mut st = SeriesState::default();
        let first = exposition::parse("a 1\nb 2\nc 3 1000\n").unwrap();
        let out = st.scrape_result(&t, &settings(), 5000, Ok(&first), Duration::from_millis(20));
        assert_eq!(out.len(), 6);
        assert_eq!(out[2].timestamp_ms, 1000, "explicit timestamp honoured");
        let up = out.iter().find(|s| s.labels.name() == "up").unwrap();
        assert_eq!(up.value, 1.0);
        assert_eq!(up.labels.get("job"), Some("prometheus.scrape.t"));
        let n = out
            .iter()
            .find(|s| s.labels.name() == "scrape_samples_scraped")
            .unwrap();
        assert_eq!(n.value, 3.0);

        let second = exposition::parse("a 1\n").unwrap();
        let out = st.scrape_result(&t, &settings(), 20000, Ok(&second), Duration::ZERO);
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

        let err = "boom".to_string();
        let out = st.scrape_result(&t, &settings(), 35000, Err(&err), Duration::ZERO);
        assert!(out
            .iter()
            .any(|s| s.labels.name() == "a" && is_stale_nan(s.value)));
        assert_eq!(
            out.iter().find(|s| s.labels.name() == "up").unwrap().value,
            0.0
        );

        let end = st.end_of_run(&t, 40000);
        assert!(end.iter().all(|s| is_stale_nan(s.value)));
        assert_eq!(end.len(), 3, "only the report series remained");
    }

    #[test]
    fn slots_fall_on_the_phase_strictly_after_now() {
        let sec = 1_000_000_000u128;
        assert_eq!(next_slot_wait(100 * sec, 15 * sec, 3 * sec), 8 * sec); // 108 = 7*15+3
        assert_eq!(next_slot_wait(108 * sec, 15 * sec, 3 * sec), 15 * sec);
        assert_eq!(next_slot_wait(107 * sec, 15 * sec, 3 * sec), sec);
        let d = phase_offset(u64::MAX, Duration::from_secs(15));
        assert!(d < Duration::from_secs(15));
    }
}
