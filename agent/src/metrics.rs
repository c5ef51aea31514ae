//! `/metrics`: the agent's own metrics in Prometheus text format (or OpenMetrics when asked),
//! through the `prometheus-client` crate.
//!
//! Names are the ones the public Grafana Agent / Alloy dashboards and alerts query
//! (`cluster_node_*`, `cluster_transport_*`, `agent_config_*`). Nothing is counted here: a
//! custom collector samples the cluster core's counters ([`cluster::Stats`] in the published
//! view) and the transport's atomics ([`runtime::TransportStats`]) at scrape time, so every
//! event is counted once, where it happens, and counters stay counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cluster::{NodeState, Status as MemberStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::pipeline::Pipeline;
use crate::remote_write::MetricsSnapshot;
use crate::status::Status;

/// Content type of the classic text format.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Build the registry served at `/metrics`.
pub fn registry(status: Arc<Status>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(AgentCollector { status }));
    r
}

/// Adds the per-component series of the running pipeline (`agent_scrape_targets*`,
/// `prometheus_remote_storage_*`, with `component_id` as in Alloy) to `registry`.
pub fn register_pipeline(registry: &mut Registry, pipeline: Arc<Pipeline>) {
    registry.register_collector(Box::new(PipelineCollector { pipeline }));
}

/// Encode `registry`; OpenMetrics when the scraper asked for it in `Accept`.
pub fn render(registry: &Registry, accept: &str) -> (String, &'static str) {
    let mut out = String::new();
    if accept.contains("application/openmetrics-text") {
        prometheus_client::encoding::text::encode(&mut out, registry)
            .expect("writing to a String cannot fail");
        (out, OPENMETRICS_CONTENT_TYPE)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
            .expect("writing to a String cannot fail");
        (out, TEXT_CONTENT_TYPE)
    }
}

#[derive(Debug)]
struct AgentCollector {
    status: Arc<Status>,
}

type Labels = Vec<(&'static str, String)>;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter; `name` without `_total` (the encoder adds it).
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge_family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, i64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, v) in series {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter_family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, v) in series {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for AgentCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = &self.status;
        let view = status.handle.view();
        let t = &status.handle.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let load_i = |a: &std::sync::atomic::AtomicI64| a.load(Ordering::Relaxed).max(0);

        // --- cluster_node_* (ckit names)
        gauge_family(
            &mut e,
            "cluster_node_info",
            "Info about the local node. Label values will change as the node changes state.",
            &[(vec![("state", view.state.as_str().to_string())], 1)],
        )?;
        let live = view
            .members
            .iter()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect));
        let mut by_state = [0i64; 3];
        for m in live {
            by_state[m.state as usize] += 1;
        }
        gauge_family(
            &mut e,
            "cluster_node_peers",
            "Current number of healthy peers (alive or suspect, this node included) by state.",
            &[
                NodeState::Viewer,
                NodeState::Participant,
                NodeState::Terminating,
            ]
            .iter()
            .map(|s| {
                (
                    vec![("state", s.as_str().to_string())],
                    by_state[*s as usize],
                )
            })
            .collect::<Vec<_>>(),
        )?;
        let mut by_status = [0i64; 4];
        for m in &view.members {
            by_status[m.status as usize] += 1;
        }
        gauge_family(
            &mut e,
            "cluster_node_members",
            "Members this node knows, by membership status; dead and left ones are kept for a while as tombstones.",
            &[
                MemberStatus::Alive,
                MemberStatus::Suspect,
                MemberStatus::Dead,
                MemberStatus::Left,
            ]
            .iter()
            .map(|s| (vec![("status", s.as_str().to_string())], by_status[*s as usize]))
            .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            "cluster_node_lamport_time",
            "The current Lamport time of the node.",
            view.lamport as i64,
        )?;
        gauge(
            &mut e,
            "cluster_node_gossip_health_score",
            "Health value of a node; lower values means healthier. 0 is the minimum.",
            view.health_score as i64,
        )?;
        let mut events: Vec<(Labels, u64)> = view
            .stats
            .events_received
            .iter()
            .map(|(k, v)| (vec![("event", k.to_string())], *v))
            .collect();
        // The public mixin's name-conflict alert reads this series.
        if !view.stats.events_received.contains_key("node_conflict") {
            events.push((
                vec![("event", "node_conflict".to_string())],
                view.stats.name_conflicts,
            ));
        }
        counter_family(
            &mut e,
            "cluster_node_gossip_received_events",
            "Total number of gossip messages handled by the node, by event.",
            &events,
        )?;
        counter(
            &mut e,
            "cluster_node_name_conflicts",
            "Joins refused (by this node or by the cluster to this node) because the node name was held by a live member at another address.",
            view.stats.name_conflicts,
        )?;
        counter(
            &mut e,
            "cluster_node_updates_out_of_bounds",
            "Gossip updates refused because their incarnation or Lamport time is beyond what the member could have reached (a buggy or lying peer).",
            view.stats.updates_out_of_bounds,
        )?;
        counter(
            &mut e,
            "cluster_node_cluster_name_mismatches",
            "Messages refused because they came from a node with another --cluster.name.",
            view.stats.cluster_mismatches,
        )?;
        gauge(
            &mut e,
            "cluster_node_alone",
            "1 when join addresses were given but this node sees no other live member (peers unreachable or split brain).",
            i64::from(status.alone(&view)),
        )?;
        gauge(
            &mut e,
            "cluster_node_ready",
            "1 when the node is a participant and not waiting for --cluster.wait-for-size.",
            i64::from(status.phase().readiness().is_ok()),
        )?;

        // --- cluster_transport_* (ckit HTTP/2 transport names)
        counter(
            &mut e,
            "cluster_transport_rx_packets",
            "Total number of packets received.",
            load(&t.rx_packets),
        )?;
        counter(
            &mut e,
            "cluster_transport_rx_bytes",
            "Total number of packet bytes received.",
            load(&t.rx_bytes),
        )?;
        counter(
            &mut e,
            "cluster_transport_rx_unauthenticated",
            "Transport requests refused on the TLS listener because the client had no certificate signed by the cluster CA.",
            load(&t.rx_unauthenticated),
        )?;
        counter(
            &mut e,
            "cluster_server_connections_refused",
            "Connections closed at accept: too many from one address, or in all.",
            load(&status.server.connections_refused),
        )?;
        counter(
            &mut e,
            "cluster_server_messages_rate_limited",
            "Cluster transport requests answered 429 because their address exceeded its messages-per-second budget.",
            load(&status.server.messages_rate_limited),
        )?;
        counter(
            &mut e,
            "cluster_transport_rx_identity_mismatches",
            "Transport messages refused because their sender is not a name of the client's certificate (--cluster.tls-bind-node-name).",
            load(&t.rx_identity_mismatches),
        )?;
        if let Some(tls) = status.tls.get() {
            counter(
                &mut e,
                "cluster_tls_handshakes_failed",
                "TLS handshakes with the cluster listener or a peer that failed (unknown CA, bad certificate, timeout).",
                load(&tls.handshakes_failed),
            )?;
            counter(
                &mut e,
                "cluster_tls_plaintext_mismatches",
                "Connections refused because one side spoke plaintext (h2c) and the other TLS.",
                load(&tls.plaintext_mismatches),
            )?;
            counter(
                &mut e,
                "cluster_tls_reloads",
                "Times the cluster certificate files changed and were reloaded.",
                load(&tls.reloads),
            )?;
            counter(
                &mut e,
                "cluster_tls_reload_errors",
                "Times the cluster certificate files changed but could not be used (the previous ones stay).",
                load(&tls.reload_errors),
            )?;
            gauge(
                &mut e,
                "cluster_tls_certificate_expiry_timestamp_seconds",
                "When this node's cluster certificate expires (Unix time).",
                load(&tls.cert_not_after) as i64,
            )?;
        }
        counter(
            &mut e,
            "cluster_transport_rx_packets_failed",
            "Total number of incoming packets rejected (too large, undecodable, node overloaded).",
            load(&t.rx_packets_failed),
        )?;
        counter(
            &mut e,
            "cluster_transport_tx_packets",
            "Total number of packets delivered to peers.",
            load(&t.tx_packets),
        )?;
        counter(
            &mut e,
            "cluster_transport_tx_bytes",
            "Total number of packet bytes delivered to peers.",
            load(&t.tx_bytes),
        )?;
        counter(
            &mut e,
            "cluster_transport_tx_packets_failed",
            "Total number of outgoing packets that could not be delivered (queue full, connect error, timeout, error answer).",
            load(&t.tx_packets_failed),
        )?;
        gauge(
            &mut e,
            "cluster_transport_rx_packet_queue_length",
            "Current number of received packets not yet handled by the node.",
            load_i(&t.rx_queue_len),
        )?;
        gauge(
            &mut e,
            "cluster_transport_tx_packet_queue_length",
            "Current number of packets waiting in per-peer send queues.",
            load_i(&t.tx_queue_len),
        )?;
        gauge(
            &mut e,
            "cluster_transport_streams",
            "Number of push/pull streams (full-state exchanges) in flight, both directions.",
            load_i(&t.streams),
        )?;
        counter(
            &mut e,
            "cluster_transport_streams_opened",
            "Total number of push/pull streams opened, both directions.",
            load(&t.streams_opened),
        )?;
        counter(
            &mut e,
            "cluster_transport_streams_failed",
            "Total number of push/pull streams that failed, both directions.",
            load(&t.streams_failed),
        )?;

        // --- agent_config_* (configuration-drift alert)
        let cfg = status.config_status();
        if let Some(hash) = &cfg.sha256 {
            gauge_family(
                &mut e,
                "agent_config_hash",
                "Hash of the currently active configuration file.",
                &[(vec![("sha256", hash.clone())], 1)],
            )?;
        }
        gauge(
            &mut e,
            "agent_config_last_load_successful",
            "1 if the last attempt to load the configuration file succeeded.",
            i64::from(cfg.last_load_ok),
        )?;
        counter(
            &mut e,
            "agent_config_load_failures",
            "Total number of configuration file loads that failed.",
            cfg.load_failures,
        )?;

        process_metrics(&mut e)
    }
}

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

struct PipelineCollector {
    pipeline: Arc<Pipeline>,
}

impl std::fmt::Debug for PipelineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineCollector").finish_non_exhaustive()
    }
}

impl Collector for PipelineCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.pipeline.stats();
        if !stats.scrapes.is_empty() {
            let id =
                |c: &crate::pipeline::ScrapeStats| vec![("component_id", c.component_id.clone())];
            gauge_family(
                &mut e,
                "agent_scrape_targets",
                "Targets of a prometheus.scrape component, all nodes together.",
                &stats
                    .scrapes
                    .iter()
                    .map(|c| (id(c), c.targets as i64))
                    .collect::<Vec<_>>(),
            )?;
            gauge_family(
                &mut e,
                "agent_scrape_targets_owned",
                "Targets of a prometheus.scrape component that this node scrapes (all of them without clustering; none while viewer or terminating with clustering).",
                &stats
                    .scrapes
                    .iter()
                    .map(|c| (id(c), c.owned as i64))
                    .collect::<Vec<_>>(),
            )?;
        }
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
        let counters: [CounterOf<MetricsSnapshot>; 8] = [
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
    let counters: [CounterOf<crate::wal::WalMetrics>; 8] = [
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
    let gauges: [GaugeOf<crate::wal::WalMetrics>; 4] = [
        (
            "prometheus_remote_write_wal_storage_active_series",
            "Series the WAL keeps.",
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

/// `process_*` from /proc (Linux only; elsewhere nothing).
fn process_metrics(e: &mut DescriptorEncoder) -> std::fmt::Result {
    let Some(p) = read_proc_self() else {
        return Ok(());
    };
    gauge(
        e,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        p.rss_bytes as i64,
    )?;
    let c = ConstCounter::new(p.cpu_seconds);
    c.encode(e.encode_descriptor(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        None,
        c.metric_type(),
    )?)?;
    gauge(
        e,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        p.start_time_seconds as i64,
    )
}

struct ProcSelf {
    rss_bytes: u64,
    cpu_seconds: f64,
    start_time_seconds: u64,
}

fn read_proc_self() -> Option<ProcSelf> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime is field 14, stime 15, starttime 22.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let start_ticks: f64 = f.get(19)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<u64>().ok())
        })?;
    Some(ProcSelf {
        rss_bytes: rss_pages * page,
        cpu_seconds: (utime + stime) / ticks,
        start_time_seconds: btime + (start_ticks / ticks) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::JoinReport;

    /// The names the public dashboards and alerts query are all exposed, with the right
    /// types, and every counter ends in `_total`.
    #[tokio::test]
    async fn every_dashboard_metric_is_exposed_with_its_type() {
        let opts = runtime::NodeOptions::new("m", "127.0.0.1:1", cluster::Config::default());
        let (handle, _task) = runtime::start(runtime::TokioNet, opts).unwrap();
        let status = Arc::new(Status::new(
            handle,
            true,
            String::new(),
            Vec::new(),
            None,
            Arc::new(JoinReport::default()),
            None,
        ));
        status.config.lock().unwrap().sha256 = Some("abc".into());
        let registry = registry(status);
        let (text, content_type) = render(&registry, "");
        assert_eq!(content_type, TEXT_CONTENT_TYPE);
        for (name, kind) in [
            ("cluster_node_info", "gauge"),
            ("cluster_node_peers", "gauge"),
            ("cluster_node_lamport_time", "gauge"),
            ("cluster_node_gossip_health_score", "gauge"),
            ("cluster_node_gossip_received_events_total", "counter"),
            ("cluster_node_name_conflicts_total", "counter"),
            ("cluster_transport_rx_packets_total", "counter"),
            ("cluster_transport_rx_bytes_total", "counter"),
            ("cluster_transport_rx_packets_failed_total", "counter"),
            ("cluster_transport_tx_packets_total", "counter"),
            ("cluster_transport_tx_bytes_total", "counter"),
            ("cluster_transport_tx_packets_failed_total", "counter"),
            ("cluster_transport_rx_packet_queue_length", "gauge"),
            ("cluster_transport_tx_packet_queue_length", "gauge"),
            ("cluster_transport_streams", "gauge"),
            ("cluster_transport_streams_opened_total", "counter"),
            ("cluster_transport_streams_failed_total", "counter"),
            ("agent_config_hash", "gauge"),
            ("agent_config_last_load_successful", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} as {kind} in:\n{text}"
            );
        }
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            if l.ends_with(" counter") {
                let name = l.split_whitespace().nth(2).unwrap();
                assert!(name.ends_with("_total"), "{l}");
            }
        }
        assert!(
            text.contains("cluster_node_info{state=\"viewer\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("cluster_node_peers{state=\"viewer\"} 1\n"));
        assert!(text.contains("cluster_node_peers{state=\"participant\"} 0\n"));
        assert!(text.contains("agent_config_hash{sha256=\"abc\"} 1\n"));
        let (om, om_type) = render(&registry, "application/openmetrics-text; version=1.0.0");
        assert_eq!(om_type, OPENMETRICS_CONTENT_TYPE);
        assert!(om.ends_with("# EOF\n"));
        assert!(
            om.contains("# TYPE cluster_transport_rx_packets counter\n"),
            "{om}"
        );
    }
}
