//! Counters of one remote write endpoint, as plain atomics for the metrics layer to read.
//! Each is counted once, where the event happens. The Prometheus/Alloy metric each one
//! corresponds to is named on the field.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use prometheus_client::metrics::histogram::Histogram;

/// Prometheus' buckets for `prometheus_remote_storage_sent_batch_duration_seconds`: its
/// default buckets and 25 s, 60 s, 120 s, 300 s.
pub const SENT_BATCH_DURATION_BUCKETS_SECONDS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0,
];

/// Duration of each request to the endpoint, retries included
/// (`prometheus_remote_storage_sent_batch_duration_seconds`).
#[derive(Debug, Clone)]
pub struct BatchDurations(pub Histogram);

impl Default for BatchDurations {
    fn default() -> Self {
        BatchDurations(Histogram::new(SENT_BATCH_DURATION_BUCKETS_SECONDS))
    }
}

#[derive(Debug, Default)]
pub struct EndpointMetrics {
    /// Samples handed to the queue, accepted or not (`prometheus_remote_storage_samples_in_total`).
    pub samples_in_total: AtomicU64,
    /// Samples the endpoint accepted (`prometheus_remote_storage_samples_total`).
    pub samples_sent_total: AtomicU64,
    /// Samples given up on: non-retryable response or shutdown
    /// (`prometheus_remote_storage_samples_failed_total`).
    pub samples_failed_total: AtomicU64,
    /// Samples this endpoint never sent because the WAL removed them first (age or size
    /// bound) (`prometheus_remote_storage_samples_dropped_total`).
    pub samples_dropped_total: AtomicU64,
    /// Samples in a batch that was retried, once per retry
    /// (`prometheus_remote_storage_samples_retried_total`).
    pub samples_retried_total: AtomicU64,
    /// Samples in the shards' queues or in flight, a gauge (`prometheus_remote_storage_samples_pending`).
    pub samples_pending: AtomicI64,
    /// Compressed request bytes accepted by the endpoint (`prometheus_remote_storage_bytes_total`).
    pub bytes_sent_total: AtomicU64,
    /// HTTP requests made, including retries.
    pub requests_total: AtomicU64,
    /// Newest sample timestamp accepted, ms
    /// (`prometheus_remote_storage_queue_highest_sent_timestamp_seconds` x 1000).
    pub highest_sent_timestamp_ms: AtomicI64,
    /// Shards running (`prometheus_remote_storage_shards`).
    pub shards: AtomicI64,
    /// What the resharding rule asks for (`prometheus_remote_storage_shards_desired`).
    pub shards_desired: AtomicI64,
    /// `prometheus_remote_storage_shards_min` / `_max`.
    pub shards_min: AtomicI64,
    pub shards_max: AtomicI64,
    /// Time spent in requests, for the resharding rule.
    pub send_nanos_total: AtomicU64,
    /// The last request attempt was to be retried.
    pub failing: AtomicBool,
    /// Metadata entries the endpoint accepted (`prometheus_remote_storage_metadata_total`).
    pub metadata_sent_total: AtomicU64,
    /// Metadata entries given up on (`prometheus_remote_storage_metadata_failed_total`).
    pub metadata_failed_total: AtomicU64,
    /// Compressed metadata request bytes the endpoint accepted
    /// (`prometheus_remote_storage_metadata_bytes_total`).
    pub metadata_bytes_total: AtomicU64,
    pub sent_batch_duration: BatchDurations,
}

/// A plain copy of [`EndpointMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub samples_in_total: u64,
    pub samples_sent_total: u64,
    pub samples_failed_total: u64,
    pub samples_dropped_total: u64,
    pub samples_retried_total: u64,
    pub samples_pending: i64,
    pub bytes_sent_total: u64,
    pub requests_total: u64,
    pub highest_sent_timestamp_ms: i64,
    pub shards: i64,
    pub shards_desired: i64,
    pub shards_min: i64,
    pub shards_max: i64,
    pub metadata_sent_total: u64,
    pub metadata_failed_total: u64,
    pub metadata_bytes_total: u64,
}

impl EndpointMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let r = Ordering::Relaxed;
        MetricsSnapshot {
            samples_in_total: self.samples_in_total.load(r),
            samples_sent_total: self.samples_sent_total.load(r),
            samples_failed_total: self.samples_failed_total.load(r),
            samples_dropped_total: self.samples_dropped_total.load(r),
            samples_retried_total: self.samples_retried_total.load(r),
            samples_pending: self.samples_pending.load(r),
            bytes_sent_total: self.bytes_sent_total.load(r),
            requests_total: self.requests_total.load(r),
            highest_sent_timestamp_ms: self.highest_sent_timestamp_ms.load(r),
            shards: self.shards.load(r),
            shards_desired: self.shards_desired.load(r),
            shards_min: self.shards_min.load(r),
            shards_max: self.shards_max.load(r),
            metadata_sent_total: self.metadata_sent_total.load(r),
            metadata_failed_total: self.metadata_failed_total.load(r),
            metadata_bytes_total: self.metadata_bytes_total.load(r),
        }
    }
}
