//! `prometheus.remote_write`: forwards samples to Prometheus remote write 1.0 endpoints
//! (protobuf WriteRequest + snappy block, `Content-Encoding: snappy`,
//! `Content-Type: application/x-protobuf`, `X-Prometheus-Remote-Write-Version: 0.1.0`).
//!
//! [`RemoteWrite`] is the component; it is the `receiver` scrape components forward to (it
//! implements [`Appender`]). Samples go to the component's write-ahead log (`crate::wal`)
//! and nowhere else; each `endpoint` block reads the log from its own position, so an
//! endpoint that is down or slow holds up neither the scrapers nor the other endpoints, and
//! nothing is lost while the log's bounds hold — across restarts and `kill -9` too.
//!
//! - `proto.rs` encodes (and, for tests, decodes) the wire format.
//! - `endpoint.rs` reads the log and runs the shards; `shards.rs` batches and sends per
//!   shard; `send.rs` owns requests, retries and splitting rejected batches;
//!   `positions.rs` keeps each endpoint's position on disk; `reshard.rs` sizes the shards.
//! - `metadata.rs` collects the scraped targets' metric metadata and sends it every
//!   `metadata_config.send_interval`.
//! - `metrics.rs` holds the counters.
//!
//! As in Prometheus, a sample timestamped no later than the component's start is not sent
//! (Prometheus' WAL watcher skips them): it is counted and dropped before the WAL, so an
//! exposition timestamp from long ago cannot make a receiver refuse a whole request.

mod endpoint;
mod metadata;
mod metrics;
mod positions;
pub mod proto;
mod reshard;
mod send;
mod shards;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use endpoint::Endpoint;
pub use metadata::MetadataStore;
pub use metrics::{EndpointMetrics, MetricsSnapshot};

use crate::config::RemoteWriteConfig;
use crate::scrape::{Appender, Metadata, Sample};
use crate::wal::{Wal, WalMetrics};

/// A running `prometheus.remote_write` component.
pub struct RemoteWrite {
    config: RemoteWriteConfig,
    wal: Arc<Wal>,
    endpoints: Vec<Arc<Endpoint>>,
    metadata: Arc<MetadataStore>,
    /// Samples timestamped at or before this (ms) are not written (see the module doc).
    start_ms: i64,
}

impl RemoteWrite {
    /// Starts one reader per endpoint on the current tokio runtime, each once the same
    /// endpoint of `previous` (the component this one replaces on a reload) has stopped.
    /// Fails if an endpoint's client settings name a file that cannot be read or used.
    pub fn start(
        config: RemoteWriteConfig,
        wal: Arc<Wal>,
        previous: Option<&RemoteWrite>,
    ) -> Result<Arc<RemoteWrite>, String> {
        let external: Vec<(String, String)> = config
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        wal.set_options((&config.wal).into());
        let metadata = previous.map_or_else(Arc::default, |p| p.metadata.clone());
        let start_ms = previous.map_or_else(
            || crate::scrape::unix_ms(std::time::SystemTime::now()),
            |p| p.start_ms,
        );
        let endpoints = config
            .endpoints
            .iter()
            .cloned()
            .map(|e| {
                let name = e.name.clone();
                let before = previous
                    .and_then(|p| p.endpoints.iter().find(|o| o.config().name == name))
                    .map(|o| o.stopped());
                Endpoint::start(e, external.clone(), wal.clone(), metadata.clone(), before)
                    .map(Arc::new)
                    .map_err(|err| format!("endpoint {name:?}: {err}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Arc::new(RemoteWrite {
            config,
            wal,
            endpoints,
            metadata,
            start_ms,
        }))
    }

    pub fn config(&self) -> &RemoteWriteConfig {
        &self.config
    }

    /// The exported `receiver`, for `ScrapeManager::new(.., vec![rw.receiver()])`.
    pub fn receiver(self: &Arc<Self>) -> Arc<dyn Appender> {
        self.clone()
    }

    /// Counters per endpoint, keyed by the endpoint's name (its URL unless named).
    pub fn metrics(&self) -> Vec<(String, Arc<EndpointMetrics>)> {
        self.endpoints
            .iter()
            .map(|e| (e.config().name.clone(), e.metrics()))
            .collect()
    }

    /// The log's counters.
    pub fn wal_metrics(&self) -> Arc<WalMetrics> {
        self.wal.metrics()
    }

    /// Sends what the shards hold (bounded by `flush_timeout`) and stops; the rest stays in
    /// the log for the next start.
    pub async fn shutdown(&self, flush_timeout: Duration) {
        let all: Vec<_> = self
            .endpoints
            .iter()
            .cloned()
            .map(|e| tokio::spawn(async move { e.shutdown(flush_timeout).await }))
            .collect();
        for t in all {
            let _ = t.await;
        }
        self.wal.close();
    }
}

impl Appender for RemoteWrite {
    /// Writes the samples to the log (the endpoints read them from there), except those
    /// timestamped no later than the component's start.
    fn append(&self, samples: &[Sample]) {
        if samples.iter().all(|s| s.timestamp_ms > self.start_ms) {
            self.wal.append(samples);
            return;
        }
        let kept: Vec<Sample> = samples
            .iter()
            .filter(|s| s.timestamp_ms > self.start_ms)
            .cloned()
            .collect();
        self.wal
            .metrics()
            .samples_before_start
            .fetch_add((samples.len() - kept.len()) as u64, Ordering::Relaxed);
        self.wal.append(&kept);
    }

    fn update_metadata(&self, source: u64, metadata: &Arc<[Metadata]>) {
        self.metadata.update(source, metadata);
    }
}
