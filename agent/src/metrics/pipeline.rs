//! The per-component series of the running pipeline: scrape target counts, Kubernetes
//! discovery counters, `prometheus.relabel`, `prometheus.remote_write` (Prometheus' queue
//! manager names, with `component_id` and `url` as in Alloy) and the WALs, plus the component
//! controller series ([`super::controller`]) and `cluster_node_update_observers`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};

use crate::pipeline::Pipeline;
use crate::remote_write::MetricsSnapshot;
use crate::status::Status;

use super::{controller, counter_family, gauge, gauge_family, Labels};

/// A counter's name (without `_total`), help text and how to read it from `T`.
type CounterOf<T> = (&'static str, &'static str, fn(&T) -> u64);
type GaugeOf<T> = (&'static str, &'static str, fn(&T) -> i64);

/// Prometheus' kubernetes_sd metric names, per component; re-lists are ours.
fn kubernetes_families(
    e: &mut DescriptorEncoder,
    comps: &[(String, Arc<crate::kubernetes::watch::Counters>)],
) -> std::fmt::Result {
    use std::sync::atomic::Ordering::Relaxed;
    let mut events = Vec::new();
    for (id, c) in comps {
        for ((role, event), n) in c.events.lock().unwrap().iter() {
            let labels = vec![
                ("component_id", id.clone()),
                ("role", role.to_string()),
                ("event", event.to_string()),
            ];
            events.push((labels, *n));
        }
    }
    counter_family(
        e,
        "prometheus_sd_kubernetes_events",
        "Kubernetes objects added, updated or deleted, as the watches saw them.",
        &events,
    )?;
    let id = |c: &String| vec![("component_id", c.clone())];
    counter_family(
        e,
        "prometheus_sd_kubernetes_failures",
        "Failed requests to the Kubernetes API (lists, watches, client setup).",
        &comps
            .iter()
            .map(|(n, c)| (id(n), c.failures.load(Relaxed)))
            .collect::<Vec<_>>(),
    )?;
    counter_family(
        e,
        "agent_kubernetes_watch_relists",
        "Watches restarted from a full list (410 Gone or a failed resume).",
        &comps
            .iter()
            .map(|(n, c)| (id(n), c.relists.load(Relaxed)))
            .collect::<Vec<_>>(),
    )
}

pub(super) struct PipelineCollector {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) status: Arc<Status>,
}

impl std::fmt::Debug for PipelineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineCollector").finish_non_exhaustive()
    }
}

impl Collector for PipelineCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.pipeline.stats();
        controller::encode(&mut e, &stats)?;
        let base: Labels = match self.status.cluster_name.as_str() {
            "" => Vec::new(),
            name => vec![("cluster_name", name.to_string())],
        };
        gauge(
            &mut e,
            &base,
            "cluster_node_update_observers",
            "Components that recompute their share of the targets when the cluster changes (clustering enabled).",
            stats.cluster_observers as i64,
        )?;
        if !stats.scrapes.is_empty() {
            let id =
                |c: &crate::pipeline::ScrapeStats| vec![("component_id", c.component_id.clone())];
            gauge_family(
                &mut e,
                "agent_scrape_targets",
                "Targets of a scrape component (prometheus.scrape, prometheus.operator.*, pyroscope.scrape), all nodes together.",
                &stats
                    .scrapes
                    .iter()
                    .map(|c| (id(c), c.targets as i64))
                    .collect::<Vec<_>>(),
            )?;
            gauge_family(
                &mut e,
                "agent_scrape_targets_owned",
                "Targets of a scrape component that this node scrapes (all of them without clustering; none while viewer or terminating with clustering).",
                &stats
                    .scrapes
                    .iter()
                    .map(|c| (id(c), c.owned as i64))
                    .collect::<Vec<_>>(),
            )?;
        }
        profile_families(&mut e, &stats)?;
        if !stats.kubernetes.is_empty() {
            kubernetes_families(&mut e, &stats.kubernetes)?;
        }
        if !stats.metric_relabels.is_empty() {
            use std::sync::atomic::Ordering::Relaxed;
            let relabels = &stats.metric_relabels;
            let id = |c: &crate::pipeline::MetricRelabelStats| {
                vec![("component_id", c.component_id.clone())]
            };
            let counters: [CounterOf<crate::relabel::MetricRelabelMetrics>; 4] = [
                (
                    "prometheus_relabel_metrics_processed",
                    "Samples a prometheus.relabel component received.",
                    |m| m.processed.load(Relaxed),
                ),
                (
                    "prometheus_relabel_metrics_written",
                    "Samples a prometheus.relabel component forwarded (not dropped by its rules).",
                    |m| m.written.load(Relaxed),
                ),
                (
                    "prometheus_relabel_cache_hits",
                    "Series whose relabel result came from the cache.",
                    |m| m.cache_hits.load(Relaxed),
                ),
                (
                    "prometheus_relabel_cache_misses",
                    "Series relabeled because their result was not cached.",
                    |m| m.cache_misses.load(Relaxed),
                ),
            ];
            for (name, help, value) in counters {
                counter_family(
                    &mut e,
                    name,
                    help,
                    &relabels
                        .iter()
                        .map(|c| (id(c), value(&c.metrics)))
                        .collect::<Vec<_>>(),
                )?;
            }
            gauge_family(
                &mut e,
                "prometheus_relabel_cache_size",
                "Series whose relabel result is cached.",
                &relabels
                    .iter()
                    .map(|c| (id(c), c.metrics.cache_size.load(Relaxed) as i64))
                    .collect::<Vec<_>>(),
            )?;
        }
        if stats.remote_writes.is_empty() {
            return Ok(());
        }
        let labels = |r: &crate::pipeline::RemoteWriteStats| {
            vec![
                ("component_id", r.component_id.clone()),
                ("url", r.endpoint.clone()),
            ]
        };
        let rws = &stats.remote_writes;
        let counters: [CounterOf<MetricsSnapshot>; 9] = [
            (
                "prometheus_remote_storage_samples_in",
                "Samples this endpoint read from the WAL.",
                |m| m.samples_in_total,
            ),
            (
                "prometheus_remote_storage_samples",
                "Samples the remote endpoint accepted.",
                |m| m.samples_sent_total,
            ),
            (
                "prometheus_remote_storage_samples_failed",
                "Samples given up on: the endpoint refused them (non-retryable answer).",
                |m| m.samples_failed_total,
            ),
            (
                "prometheus_remote_storage_samples_dropped",
                "Samples the WAL removed (age or size bound) before this endpoint sent them.",
                |m| m.samples_dropped_total,
            ),
            (
                "prometheus_remote_storage_samples_retried",
                "Samples in batches that were retried, once per retry.",
                |m| m.samples_retried_total,
            ),
            (
                "prometheus_remote_storage_bytes",
                "Compressed request bytes the remote endpoint accepted.",
                |m| m.bytes_sent_total,
            ),
            (
                "prometheus_remote_storage_metadata",
                "Metric metadata entries the remote endpoint accepted.",
                |m| m.metadata_sent_total,
            ),
            (
                "prometheus_remote_storage_metadata_failed",
                "Metric metadata entries given up on (non-retryable answer).",
                |m| m.metadata_failed_total,
            ),
            (
                "prometheus_remote_storage_metadata_bytes",
                "Compressed metadata request bytes the remote endpoint accepted.",
                |m| m.metadata_bytes_total,
            ),
        ];
        for (name, help, value) in counters {
            counter_family(
                &mut e,
                name,
                help,
                &rws.iter()
                    .map(|r| (labels(r), value(&r.metrics)))
                    .collect::<Vec<_>>(),
            )?;
        }
        let mut m = e.encode_descriptor(
            "prometheus_remote_storage_sent_batch_duration_seconds",
            "Duration of each request to the remote endpoint (a batch, retries counted apart).",
            None,
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        for r in rws {
            r.sent_batch_duration.encode(m.encode_family(&labels(r))?)?;
        }
        drop(m);
        gauge_family(
            &mut e,
            "prometheus_remote_storage_samples_pending",
            "Samples in the shards' queues or in flight to the remote endpoint.",
            &rws.iter()
                .map(|r| (labels(r), r.metrics.samples_pending.max(0)))
                .collect::<Vec<_>>(),
        )?;
        gauge_family(
            &mut e,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "Newest sample timestamp the remote endpoint accepted, in seconds since the epoch.",
            &rws.iter()
                .map(|r| (labels(r), r.metrics.highest_sent_timestamp_ms / 1000))
                .collect::<Vec<_>>(),
        )?;
        let shard_gauges: [GaugeOf<MetricsSnapshot>; 4] = [
            (
                "prometheus_remote_storage_shards",
                "Shards sending in parallel.",
                |m| m.shards,
            ),
            (
                "prometheus_remote_storage_shards_desired",
                "Shards the resharding rule asks for.",
                |m| m.shards_desired,
            ),
            (
                "prometheus_remote_storage_shards_min",
                "queue_config min_shards.",
                |m| m.shards_min,
            ),
            (
                "prometheus_remote_storage_shards_max",
                "queue_config max_shards.",
                |m| m.shards_max,
            ),
        ];
        for (name, help, value) in shard_gauges {
            gauge_family(
                &mut e,
                name,
                help,
                &rws.iter()
                    .map(|r| (labels(r), value(&r.metrics)))
                    .collect::<Vec<_>>(),
            )?;
        }
        wal_metrics(&mut e, &stats.wals)
    }
}

/// The WAL of each remote_write component (Alloy's and Prometheus' TSDB names).
fn wal_metrics(
    e: &mut DescriptorEncoder,
    wals: &[(String, Arc<crate::wal::WalMetrics>)],
) -> std::fmt::Result {
    use std::sync::atomic::Ordering::Relaxed;
    let id = |c: &str| vec![("component_id", c.to_string())];
    let counters: [CounterOf<crate::wal::WalMetrics>; 9] = [
        (
            "prometheus_remote_write_wal_samples_appended",
            "Samples written to the WAL.",
            |m| m.samples_appended.load(Relaxed),
        ),
        (
            "agent_remote_write_samples_before_start",
            "Samples not written to the WAL: timestamped no later than the component's start (Prometheus never sends those).",
            |m| m.samples_before_start.load(Relaxed),
        ),
        // Grafana Agent Flow's name of the same counter (the seed's mixin reads it).
        (
            "agent_wal_samples_appended",
            "Samples written to the WAL (Grafana Agent Flow's name of prometheus_remote_write_wal_samples_appended_total).",
            |m| m.samples_appended.load(Relaxed),
        ),
        (
            "prometheus_remote_write_wal_storage_created_series",
            "Series created in the WAL.",
            |m| m.series_created.load(Relaxed),
        ),
        (
            "prometheus_remote_write_wal_replayed_records",
            "Records read back from the WAL at start.",
            |m| m.replayed_records.load(Relaxed),
        ),
        (
            "prometheus_tsdb_wal_corruptions",
            "Damaged or torn WAL records found (replay stops at them in their segment).",
            |m| m.corruptions.load(Relaxed),
        ),
        (
            "prometheus_tsdb_wal_writes_failed",
            "WAL writes that failed; their samples are lost.",
            |m| m.writes_failed.load(Relaxed),
        ),
        ("prometheus_tsdb_wal_truncations", "WAL truncations.", |m| {
            m.truncations.load(Relaxed)
        }),
        (
            "prometheus_tsdb_checkpoint_creations",
            "WAL checkpoints written.",
            |m| m.checkpoints.load(Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        counter_family(
            e,
            name,
            help,
            &wals
                .iter()
                .map(|(c, m)| (id(c), value(m)))
                .collect::<Vec<_>>(),
        )?;
    }
    let gauges: [GaugeOf<crate::wal::WalMetrics>; 5] = [
        (
            "prometheus_remote_write_wal_storage_active_series",
            "Series the WAL keeps.",
            |m| m.active_series.load(Relaxed),
        ),
        (
            "agent_wal_storage_active_series",
            "Series the WAL keeps (Grafana Agent Flow's name of prometheus_remote_write_wal_storage_active_series).",
            |m| m.active_series.load(Relaxed),
        ),
        (
            "prometheus_tsdb_wal_storage_size_bytes",
            "Bytes of WAL segments on disk.",
            |m| m.size_bytes.load(Relaxed),
        ),
        (
            "prometheus_tsdb_wal_segment_current",
            "The WAL segment being written.",
            |m| m.segment_current.load(Relaxed),
        ),
        (
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Newest sample timestamp written to the WAL, in seconds since the epoch.",
            |m| m.highest_timestamp_ms.load(Relaxed) / 1000,
        ),
    ];
    for (name, help, value) in gauges {
        gauge_family(
            e,
            name,
            help,
            &wals
                .iter()
                .map(|(c, m)| (id(c), value(m)))
                .collect::<Vec<_>>(),
        )?;
    }
    Ok(())
}

/// `pyroscope.scrape` and `pyroscope.write` counters (Alloy's `pyroscope_write_*` names,
/// with `component_id` and `endpoint`).
fn profile_families(
    e: &mut DescriptorEncoder,
    stats: &crate::pipeline::PipelineStats,
) -> std::fmt::Result {
    use std::sync::atomic::Ordering::Relaxed;
    if !stats.profile_scrapes.is_empty() {
        let id = |c: &String| vec![("component_id", c.clone())];
        counter_family(
            e,
            "agent_pyroscope_scrape_profiles",
            "Profiles a pyroscope.scrape component fetched and forwarded.",
            &stats
                .profile_scrapes
                .iter()
                .map(|(c, n)| (id(c), n.profiles.load(Relaxed)))
                .collect::<Vec<_>>(),
        )?;
        counter_family(
            e,
            "agent_pyroscope_scrape_failures",
            "Profile scrapes that failed (connection, status, not a pprof profile).",
            &stats
                .profile_scrapes
                .iter()
                .map(|(c, n)| (id(c), n.failures.load(Relaxed)))
                .collect::<Vec<_>>(),
        )?;
    }
    if stats.profile_writes.is_empty() {
        return Ok(());
    }
    type Read = fn(&crate::pyroscope::write::EndpointCounters) -> u64;
    let families: [(&str, &str, Read); 5] = [
        (
            "pyroscope_write_sent_bytes",
            "Profile bytes sent to Pyroscope.",
            |c| c.sent_bytes.load(Relaxed),
        ),
        (
            "pyroscope_write_sent_profiles",
            "Profiles sent to Pyroscope.",
            |c| c.sent_profiles.load(Relaxed),
        ),
        (
            "pyroscope_write_dropped_bytes",
            "Profile bytes given up on (queue full, refused, retries exhausted).",
            |c| c.dropped_bytes.load(Relaxed),
        ),
        (
            "pyroscope_write_dropped_profiles",
            "Profiles given up on (queue full, refused, retries exhausted).",
            |c| c.dropped_profiles.load(Relaxed),
        ),
        (
            "pyroscope_write_retries",
            "Pushes to Pyroscope retried.",
            |c| c.retries.load(Relaxed),
        ),
    ];
    for (name, help, read) in families {
        counter_family(
            e,
            name,
            help,
            &stats
                .profile_writes
                .iter()
                .map(|(c, ep, n)| {
                    (
                        vec![("component_id", c.clone()), ("endpoint", ep.clone())],
                        read(n),
                    )
                })
                .collect::<Vec<_>>(),
        )?;
    }
    Ok(())
}
