//! One target's scrape loop: when to scrape, delivering what a scrape turns into (see
//! `scrape_cache.rs`: samples, staleness markers, the five report series, metadata) to the
//! receivers, the target's status, and how the loop stops.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::fetch::fetch;
use super::sample::{Appender, Labels, Metadata, Sample};
use super::scrape_cache::{SeriesState, Shaping};
use super::target::ScrapeTarget;
use crate::http_client::HttpClient;

/// Numbers scrape loops (each loop's metadata source, see [`Appender::update_metadata`]).
static NEXT_SOURCE: AtomicU64 = AtomicU64::new(1);

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
    let source = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed);
    let shaping = Shaping {
        honor_labels: cx.settings.honor_labels,
        honor_timestamps: cx.settings.honor_timestamps,
    };
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
            mode = stopped(&mut stop) => return finish(&cx, &mut state, source, mode),
        }
        let start_wall = SystemTime::now();
        let start = Instant::now();
        let fetched = tokio::select! {
            r = fetch(&cx.client, &cx.target.url, cx.settings.timeout, cx.settings.body_size_limit_bytes) => r,
            mode = stopped(&mut stop) => return finish(&cx, &mut state, source, mode),
        };
        let ts_ms = unix_ms(start_wall);
        let scraped = match fetched {
            Ok((body, format)) => state.scraped(&cx.target, shaping, ts_ms, &body, format),
            Err(e) => super::scrape_cache::Scraped {
                samples: state.failed(ts_ms),
                error: Some(e),
                ..Default::default()
            },
        };
        let duration = start.elapsed();
        let mut samples = scraped.samples;
        let counts = (scraped.total, scraped.added, scraped.series_added);
        let up = scraped.error.is_none();
        state.report(&cx.target, ts_ms, up, duration, counts, &mut samples);
        deliver(&cx.sinks, &samples);
        drop(samples);
        deliver_metadata(&cx.sinks, source, &state.metadata());
        {
            let mut st = cx.status.lock().unwrap();
            st.last_scrape = Some(start_wall);
            st.last_scrape_duration = duration;
            st.scrapes_total += 1;
            st.last_samples_scraped = scraped.total;
            match scraped.error {
                None => {
                    if st.health == Health::Down {
                        tracing::info!(url = %crate::http_client::redact_url(&cx.target.url), "scrape target is up again");
                    }
                    st.health = Health::Up;
                    st.last_error = None;
                }
                Some(e) => {
                    // A warning when the target goes down (once), debug while it stays down.
                    if st.health != Health::Down {
                        tracing::warn!(url = %crate::http_client::redact_url(&cx.target.url), error = %e, "scrape failed; the target is down");
                    } else {
                        tracing::debug!(url = %cx.target.url, error = %e, "scrape failed");
                    }
                    st.health = Health::Down;
                    st.last_error = Some(e);
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

fn finish(cx: &LoopContext, state: &mut SeriesState, source: u64, mode: StopMode) {
    if mode == StopMode::Gone {
        let samples = state.end_of_run(&cx.target, unix_ms(SystemTime::now()));
        deliver(&cx.sinks, &samples);
    }
    // The target is no longer ours: its metadata goes with it (Prometheus sends the metadata
    // of its active targets).
    deliver_metadata(&cx.sinks, source, &Arc::from(Vec::new()));
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

fn deliver_metadata(sinks: &Sinks, source: u64, metadata: &Arc<[Metadata]>) {
    let sinks = sinks.read().unwrap().clone();
    for sink in sinks {
        sink.update_metadata(source, metadata);
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

#[cfg(test)]
mod tests {
    use super::*;

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
