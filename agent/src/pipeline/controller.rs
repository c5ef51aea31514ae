//! What the component controller dashboards and alerts read (Alloy's
//! `*_component_controller_*` and `*_component_evaluation_*` series, under the agent's
//! prefix): each component's health, whether an evaluation is running, how long
//! evaluations take, how long a component waits after a dependency changed, and the time
//! spent in slow evaluations.
//!
//! Here an *evaluation* is what Alloy's controller calls one: a component's arguments are
//! computed from the configuration and its dependencies' exports and applied. That happens to
//! every component on a (re)load, and to the components that read targets (scrape,
//! operator) whenever a discovery component publishes a new target list. The *dependency
//! wait* is the time from that publication to the start of the re-evaluation.
//!
//! It owns the counters and the health vocabulary; the pipeline decides what to time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;

/// Alloy's buckets for evaluation and wait times (5 ms to 10 min; "the evaluation time
/// becomes problematic in the range of 30 s+").
pub const EVALUATION_BUCKETS_SECONDS: [f64; 12] = [
    0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// An evaluation at least this long counts as slow (Alloy's threshold).
pub const SLOW_EVALUATION: Duration = Duration::from_secs(60);

/// A component's health, with Alloy's names (`health_type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Running with its current arguments.
    Healthy,
    /// Its last evaluation or its work fails (bad arguments, a discovery or API error).
    Unhealthy,
    /// Created but not evaluated yet.
    Unknown,
    /// Stopped for good.
    Exited,
}

impl Health {
    pub const ALL: [Health; 4] = [
        Health::Healthy,
        Health::Unhealthy,
        Health::Unknown,
        Health::Exited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
            Health::Exited => "exited",
        }
    }
}

/// The controller's timing counters, shared by the pipeline and its discovery forwarders.
#[derive(Debug)]
pub struct ControllerMetrics {
    evaluating: AtomicBool,
    pub evaluation_seconds: Histogram,
    pub dependencies_wait_seconds: Histogram,
    /// Seconds spent in slow evaluations, by component id.
    slow_seconds: Mutex<BTreeMap<String, f64>>,
    /// When a dependency published a change that no evaluation has taken in yet.
    pending_since: Mutex<Option<Instant>>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            evaluating: AtomicBool::new(false),
            evaluation_seconds: Histogram::new(EVALUATION_BUCKETS_SECONDS),
            dependencies_wait_seconds: Histogram::new(EVALUATION_BUCKETS_SECONDS),
            slow_seconds: Mutex::new(BTreeMap::new()),
            pending_since: Mutex::new(None),
        }
    }
}

impl ControllerMetrics {
    /// Marks an evaluation pass as running until the guard drops.
    pub fn evaluating(&self) -> EvaluatingGuard<'_> {
        self.evaluating.store(true, Ordering::Relaxed);
        EvaluatingGuard(self)
    }

    pub fn is_evaluating(&self) -> bool {
        self.evaluating.load(Ordering::Relaxed)
    }

    /// One component evaluation of `took`.
    pub fn evaluated(&self, component_id: &str, took: Duration) {
        self.evaluation_seconds.observe(took.as_secs_f64());
        if took >= SLOW_EVALUATION {
            *self
                .slow_seconds
                .lock()
                .unwrap()
                .entry(component_id.to_string())
                .or_default() += took.as_secs_f64();
        }
    }

    /// A dependency published new exports (the first one since the last evaluation starts
    /// the wait).
    pub fn dependency_updated(&self) {
        self.pending_since
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }

    /// An evaluation pass that takes in the pending updates starts: records the wait.
    pub fn dependencies_taken(&self) {
        if let Some(since) = self.pending_since.lock().unwrap().take() {
            self.dependencies_wait_seconds
                .observe(since.elapsed().as_secs_f64());
        }
    }

    /// Seconds of slow evaluations of each of `ids` (0 for those never slow), so that every
    /// component has the series.
    pub fn slow_seconds(&self, ids: &[String]) -> Vec<(String, f64)> {
        let slow = self.slow_seconds.lock().unwrap();
        ids.iter()
            .map(|id| (id.clone(), slow.get(id).copied().unwrap_or(0.0)))
            .collect()
    }
}

/// Clears the "evaluating" flag when dropped.
pub struct EvaluatingGuard<'a>(&'a ControllerMetrics);

impl Drop for EvaluatingGuard<'_> {
    fn drop(&mut self) {
        self.0.evaluating.store(false, Ordering::Relaxed);
    }
}

/// Times one component's evaluation: call [`Timer::done`] with its id.
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Timer {
        Timer(Instant::now())
    }

    pub fn done(self, metrics: &ControllerMetrics, component_id: &str) {
        metrics.evaluated(component_id, self.0.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    fn text(m: &ControllerMetrics) -> String {
        let mut r = Registry::default();
        r.register("e", "e", m.evaluation_seconds.clone());
        r.register("w", "w", m.dependencies_wait_seconds.clone());
        let mut out = String::new();
        encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn slow_evaluations_are_summed_per_component_and_every_component_has_a_series() {
        let m = ControllerMetrics::default();
        m.evaluated("prometheus.scrape.a", Duration::from_millis(3));
        m.evaluated("prometheus.scrape.a", Duration::from_secs(61));
        m.evaluated("prometheus.scrape.a", Duration::from_secs(90));
        m.evaluated("discovery.file.b", Duration::from_secs(59));
        let ids = [
            "discovery.file.b".to_string(),
            "prometheus.scrape.a".to_string(),
        ];
        assert_eq!(
            m.slow_seconds(&ids),
            vec![
                ("discovery.file.b".to_string(), 0.0),
                ("prometheus.scrape.a".to_string(), 151.0)
            ]
        );
        let t = text(&m);
        assert!(t.contains("e_count 4\n"), "{t}");
        assert!(t.contains("e_bucket{le=\"0.005\"} 1\n"), "{t}");
        assert!(t.contains("e_bucket{le=\"60.0\"} 2\n"), "{t}");
    }

    #[test]
    fn the_wait_runs_from_the_first_pending_update_and_is_taken_once() {
        let m = ControllerMetrics::default();
        m.dependencies_taken();
        assert!(
            text(&m).contains("w_count 0\n"),
            "nothing pending, nothing observed"
        );
        m.dependency_updated();
        std::thread::sleep(Duration::from_millis(30));
        m.dependency_updated();
        m.dependencies_taken();
        m.dependencies_taken();
        let t = text(&m);
        assert!(t.contains("w_count 1\n"), "{t}");
        assert!(
            t.contains("w_bucket{le=\"0.025\"} 0\n"),
            "waited >= 30 ms: {t}"
        );
        let guard = m.evaluating();
        assert!(m.is_evaluating());
        drop(guard);
        assert!(!m.is_evaluating());
    }
}
