//! The two relabel components on top of the rules: `discovery.relabel` (a pure function from
//! target lists to target lists, evaluated whenever its input changes) and
//! `prometheus.relabel` (a [`MetricRelabel`] receiver on the sample path that rewrites every
//! sample's series labels, with a bounded cache of results per series, and forwards what is
//! kept). They own no parsing and no I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh64::Xxh64Builder;

use super::{process, Rule};
use crate::discovery::Target;
use crate::scrape::{Appender, Labels, Metadata, Sample};

/// `discovery.relabel`'s `output`: each target through the rules; those dropped by a rule are
/// gone. (Targets left without `__address__` stay in the output, as in Alloy; the scrape
/// component skips them.)
pub fn relabel_targets(targets: Vec<Target>, rules: &[Rule]) -> Vec<Target> {
    if rules.is_empty() {
        return targets;
    }
    targets
        .into_iter()
        .filter_map(|t| {
            let mut labels = t.into_labels();
            process(&mut labels, rules).then(|| Target::from_map(labels))
        })
        .collect()
}

/// Counters of one `prometheus.relabel` component, with Alloy's metric names
/// (`prometheus_relabel_*`).
#[derive(Debug, Default)]
pub struct MetricRelabelMetrics {
    /// `prometheus_relabel_metrics_processed`: samples received.
    pub processed: AtomicU64,
    /// `prometheus_relabel_metrics_written`: samples forwarded.
    pub written: AtomicU64,
    /// `prometheus_relabel_cache_hits` / `_misses`.
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// `prometheus_relabel_cache_size`.
    pub cache_size: AtomicU64,
}

/// Relabel results by input series, bounded: two generations of at most `max / 2` entries
/// each. A hit in the old generation moves the entry to the new one; when the new one is
/// full the old one is dropped. Series seen at every scrape stay; series that stopped
/// appearing age out after two generations. (An approximate LRU without per-hit bookkeeping.)
///
/// Keys are hashed with xxh64 under a per-cache random seed: several times cheaper than
/// SipHash on label bytes, and a scraped target cannot aim collisions at an unknown seed.
/// A cache smaller than the live series misses on every lookup (each series ages out before
/// its next scrape); size `max_cache_size` to the series that pass through.
struct Cache {
    young: HashMap<Labels, Option<Labels>, Xxh64Builder>,
    old: HashMap<Labels, Option<Labels>, Xxh64Builder>,
    hasher: Xxh64Builder,
    generation_max: usize,
}

impl Cache {
    fn new(max: usize) -> Cache {
        let hasher = Xxh64Builder::new(rand::random());
        Cache {
            young: HashMap::with_hasher(hasher.clone()),
            old: HashMap::with_hasher(hasher.clone()),
            hasher,
            generation_max: (max / 2).max(1),
        }
    }

    fn get(&mut self, key: &Labels) -> Option<Option<Labels>> {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let v = self.old.remove(key)?;
        self.insert(key.clone(), v.clone());
        Some(v)
    }

    fn insert(&mut self, key: Labels, value: Option<Labels>) {
        if self.young.len() >= self.generation_max {
            let fresh = HashMap::with_hasher(self.hasher.clone());
            self.old = std::mem::replace(&mut self.young, fresh);
        }
        self.young.insert(key, value);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// A running `prometheus.relabel` component: the `receiver` it exports.
pub struct MetricRelabel {
    rules: Vec<Rule>,
    sinks: Vec<Arc<dyn Appender>>,
    cache: Mutex<Cache>,
    metrics: Arc<MetricRelabelMetrics>,
}

impl MetricRelabel {
    pub fn new(
        rules: Vec<Rule>,
        sinks: Vec<Arc<dyn Appender>>,
        max_cache_size: usize,
    ) -> MetricRelabel {
        MetricRelabel {
            rules,
            sinks,
            cache: Mutex::new(Cache::new(max_cache_size)),
            metrics: Arc::new(MetricRelabelMetrics::default()),
        }
    }

    pub fn metrics(&self) -> Arc<MetricRelabelMetrics> {
        self.metrics.clone()
    }

    /// The series labels after the rules, or `None` if a rule drops the series.
    fn relabel(&self, labels: &Labels) -> Option<Labels> {
        let mut map = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !process(&mut map, &self.rules) {
            return None;
        }
        Some(Labels::from_pairs(map))
    }
}

impl Appender for MetricRelabel {
    fn append(&self, samples: &[Sample]) {
        let m = &self.metrics;
        m.processed
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        let mut out: Vec<Sample> = Vec::with_capacity(samples.len());
        {
            let mut cache = self.cache.lock().unwrap();
            let (mut hits, mut misses) = (0u64, 0u64);
            for s in samples {
                let relabeled = match cache.get(&s.labels) {
                    Some(r) => {
                        hits += 1;
                        r
                    }
                    None => {
                        misses += 1;
                        let r = self.relabel(&s.labels);
                        cache.insert(s.labels.clone(), r.clone());
                        r
                    }
                };
                if let Some(labels) = relabeled.filter(|l| !l.is_empty()) {
                    out.push(Sample {
                        labels,
                        ..s.clone()
                    });
                }
            }
            m.cache_hits.fetch_add(hits, Ordering::Relaxed);
            m.cache_misses.fetch_add(misses, Ordering::Relaxed);
            m.cache_size.store(cache.len() as u64, Ordering::Relaxed);
        }
        m.written.fetch_add(out.len() as u64, Ordering::Relaxed);
        if out.is_empty() {
            return;
        }
        for sink in &self.sinks {
            sink.append(&out);
        }
    }

    /// Metadata is per metric family, not per series: passed on as it is (Prometheus sends
    /// the scrape cache's metadata whatever the metric relabeling did).
    fn update_metadata(&self, source: u64, metadata: &Arc<[Metadata]>) {
        for sink in &self.sinks {
            sink.update_metadata(source, metadata);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::RuleSpec;

    struct Collect(Mutex<Vec<Sample>>);

    impl Appender for Collect {
        fn append(&self, samples: &[Sample]) {
            self.0.lock().unwrap().extend_from_slice(samples);
        }
    }

    fn rule(action: &str, source: &[&str], regex: &str, target: Option<&str>) -> Rule {
        Rule::new(RuleSpec {
            action: Some(action.into()),
            source_labels: Some(source.iter().map(|s| s.to_string()).collect()),
            regex: Some(regex.into()),
            target_label: target.map(String::from),
            ..RuleSpec::default()
        })
        .unwrap()
    }

    fn sample(name: &str, extra: &[(&str, &str)], v: f64) -> Sample {
        let mut pairs = vec![("__name__", name)];
        pairs.extend_from_slice(extra);
        Sample {
            labels: Labels::from_pairs(pairs),
            timestamp_ms: 1000,
            value: v,
        }
    }

    #[test]
    fn metric_relabel_drops_rewrites_and_counts_cache_hits() {
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let rules = vec![
            rule("drop", &["__name__"], "go_.*", None),
            rule("replace", &["instance"], "([^:]+):.*", Some("host")),
        ];
        let r = MetricRelabel::new(rules, vec![sink.clone()], 100);
        let batch = [
            sample("go_goroutines", &[("instance", "a:1")], 1.0),
            sample("up", &[("instance", "a:1")], 1.0),
        ];
        r.append(&batch);
        r.append(&batch);
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 2, "go_* dropped both times");
        assert_eq!(got[0].labels.get("host"), Some("a"));
        assert_eq!(got[0].labels.get("__name__"), Some("up"));
        let m = r.metrics();
        assert_eq!(m.processed.load(Ordering::Relaxed), 4);
        assert_eq!(m.written.load(Ordering::Relaxed), 2);
        assert_eq!(m.cache_misses.load(Ordering::Relaxed), 2);
        assert_eq!(m.cache_hits.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_keeps_hot_series() {
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let r = MetricRelabel::new(
            vec![rule("keep", &["__name__"], ".*", None)],
            vec![sink],
            10,
        );
        let hot = sample("hot", &[], 1.0);
        for i in 0..1000 {
            r.append(&[hot.clone(), sample(&format!("cold_{i}"), &[], 1.0)]);
            assert!(r.cache.lock().unwrap().len() <= 10);
        }
        let m = r.metrics();
        assert!(
            m.cache_hits.load(Ordering::Relaxed) >= 990,
            "the hot series stays cached"
        );
        assert_eq!(m.written.load(Ordering::Relaxed), 2000);
    }

    #[test]
    fn discovery_relabel_keeps_only_matching_targets() {
        let targets = vec![
            Target::from_labels([("__address__", "a:1"), ("env", "prod")]),
            Target::from_labels([("__address__", "b:1"), ("env", "dev")]),
        ];
        let out = relabel_targets(targets, &[rule("keep", &["env"], "prod", None)]);
        assert_eq!(
            out,
            vec![Target::from_labels([
                ("__address__", "a:1"),
                ("env", "prod")
            ])]
        );
    }
}
