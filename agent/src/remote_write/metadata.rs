//! Metric metadata for remote write, as Prometheus sends it (`storage/remote/
//! metadata_watcher.go`): the scrape loops forwarding to the component report their targets'
//! metadata after every scrape ([`MetadataStore`]); every `send_interval` each endpoint sends
//! the distinct entries of all current targets in requests of their own, at most
//! `max_samples_per_send` entries each, retried like samples. Metadata is not written to the
//! WAL (Prometheus' agent mode does not either): it is re-sent every interval anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::send::Sender;
use crate::config::MetadataConfig;
use crate::scrape::Metadata;

/// The metadata of every scrape loop that forwards to one component, by loop. Bounded by the
/// loops' targets (one list each, itself bounded by a target's body size).
#[derive(Debug, Default)]
pub struct MetadataStore {
    by_source: Mutex<BTreeMap<u64, Arc<[Metadata]>>>,
}

impl MetadataStore {
    /// Replaces what `source` reported; an empty list forgets it.
    pub fn update(&self, source: u64, metadata: &Arc<[Metadata]>) {
        let mut m = self.by_source.lock().unwrap();
        if metadata.is_empty() {
            m.remove(&source);
        } else {
            m.insert(source, metadata.clone());
        }
    }

    /// Every distinct entry (family, type, help, unit) of every source, sorted.
    pub fn distinct(&self) -> Vec<Metadata> {
        let lists: Vec<Arc<[Metadata]>> =
            self.by_source.lock().unwrap().values().cloned().collect();
        let set: BTreeSet<&Metadata> = lists.iter().flat_map(|l| l.iter()).collect();
        set.into_iter().cloned().collect()
    }
}

/// An endpoint's metadata sender: runs until aborted (with the endpoint).
pub(crate) async fn run(sender: Arc<Sender>, store: Arc<MetadataStore>, config: MetadataConfig) {
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + config.send_interval,
        config.send_interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let metadata = store.distinct();
        for chunk in metadata.chunks(config.max_samples_per_send.max(1)) {
            // Metadata is not durable: shutdown aborts this task rather than waiting for it.
            if sender.deliver_metadata(chunk, || None).await.is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::MetricType;

    fn md(name: &str, help: &str) -> Metadata {
        Metadata {
            metric_family_name: name.into(),
            kind: MetricType::Gauge,
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn distinct_entries_of_current_sources_only() {
        let store = MetadataStore::default();
        store.update(1, &Arc::from(vec![md("a", "x"), md("b", "y")]));
        store.update(2, &Arc::from(vec![md("a", "x"), md("a", "other help")]));
        let names: Vec<(String, String)> = store
            .distinct()
            .into_iter()
            .map(|m| (m.metric_family_name, m.help))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a".into(), "other help".into()),
                ("a".into(), "x".into()),
                ("b".into(), "y".into())
            ]
        );
        store.update(1, &Arc::from(Vec::new()));
        assert_eq!(store.distinct().len(), 2, "source 1 ended");
    }
}
