//! `prometheus.remote_write`: forwards samples to Prometheus remote write 1.0 endpoints
//! (protobuf WriteRequest + snappy block, `Content-Encoding: snappy`,
//! `Content-Type: application/x-protobuf`, `X-Prometheus-Remote-Write-Version: 0.1.0`).
//!
//! [`RemoteWrite`] is the component; it is the `receiver` scrape components forward to (it
//! implements [`Appender`]). Each `endpoint` block gets its own bounded queue and sender
//! ([`Endpoint`]), so a slow endpoint never holds up another or the scrapers. There is no
//! write-ahead log: what cannot be queued is dropped and counted.
//!
//! - `proto.rs` encodes (and, for tests, decodes) the wire format.
//! - `endpoint.rs` owns queueing, batching and retries.
//! - `metrics.rs` holds the counters.

mod endpoint;
mod metrics;
pub mod proto;

use std::sync::Arc;
use std::time::Duration;

pub use endpoint::Endpoint;
pub use metrics::{EndpointMetrics, MetricsSnapshot};

use crate::config::RemoteWriteConfig;
use crate::scrape::{Appender, Sample};

/// A running `prometheus.remote_write` component.
pub struct RemoteWrite {
    config: RemoteWriteConfig,
    endpoints: Vec<Endpoint>,
}

impl RemoteWrite {
    /// Starts one sender per endpoint on the current tokio runtime. Fails if an endpoint's
    /// client settings name a file that cannot be read or used.
    pub fn start(config: RemoteWriteConfig) -> Result<Arc<RemoteWrite>, String> {
        let external: Vec<(String, String)> = config
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let endpoints = config
            .endpoints
            .iter()
            .cloned()
            .map(|e| {
                let name = e.name.clone();
                Endpoint::with_external_labels(e, external.clone())
                    .map_err(|err| format!("endpoint {name:?}: {err}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Arc::new(RemoteWrite { config, endpoints }))
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

    /// Sends what is queued and stops; see [`Endpoint::shutdown`].
    pub async fn shutdown(&self, flush_timeout: Duration) {
        for e in &self.endpoints {
            e.shutdown(flush_timeout).await;
        }
    }
}

impl Appender for RemoteWrite {
    /// Queues the samples on every endpoint (sharing their labels; external labels are added
    /// when a batch is encoded).
    fn append(&self, samples: &[Sample]) {
        for e in &self.endpoints {
            e.enqueue(samples.iter().cloned());
        }
    }
}
