//! `/metrics`: the agent's own metrics in Prometheus text format (or OpenMetrics when asked),
//! through the `prometheus-client` crate.
//!
//! Names are the ones the public Grafana Agent / Alloy dashboards and alerts query
//! (`cluster_node_*`, `cluster_transport_*`, `agent_config_*`; the component controller,
//! resources and remote-write series in the submodules), and those of our own mixin in
//! `operations/`. With `--cluster.name`, the cluster series and `agent_config_hash` carry it
//! as `cluster_name` (as Alloy does). Nothing is counted here: custom collectors sample the
//! cluster core's counters ([`cluster::Stats`] in the published view), the transport's
//! atomics ([`runtime::TransportStats`]) and the pipeline at scrape time, so every event is
//! counted once, where it happens, and counters stay counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cluster::{NodeState, Status as MemberStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::pipeline::Pipeline;
use crate::status::Status;

mod controller;
mod pipeline;
mod resources;

use pipeline::PipelineCollector;

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
pub fn register_pipeline(registry: &mut Registry, pipeline: Arc<Pipeline>, status: Arc<Status>) {
    registry.register_collector(Box::new(PipelineCollector { pipeline, status }));
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

/// One gauge with the `base` labels (none, or `cluster_name`).
fn gauge(
    e: &mut DescriptorEncoder,
    base: &[(&'static str, String)],
    name: &str,
    help: &str,
    v: i64,
) -> std::fmt::Result {
    gauge_family(e, name, help, &[(base.to_vec(), v)])
}

/// One counter with the `base` labels; `name` without `_total` (the encoder adds it).
fn counter(
    e: &mut DescriptorEncoder,
    base: &[(&'static str, String)],
    name: &str,
    help: &str,
    v: u64,
) -> std::fmt::Result {
    counter_family(e, name, help, &[(base.to_vec(), v)])
}

/// `base` followed by `more`.
fn with(base: &[(&'static str, String)], more: Labels) -> Labels {
    base.iter().cloned().chain(more).collect()
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
        // Alloy's `cluster_name` label (`--cluster.name`) on the cluster series and the
        // configuration hash, so that the alerts tell two clusters of one job apart.
        let base: Labels = match status.cluster_name.as_str() {
            "" => Vec::new(),
            name => vec![("cluster_name", name.to_string())],
        };

        // --- cluster_node_* (ckit names)
        gauge_family(
            &mut e,
            "cluster_node_info",
            "Info about the local node. Label values will change as the node changes state.",
            &[(
                with(&base, vec![("state", view.state.as_str().to_string())]),
                1,
            )],
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
                    with(&base, vec![("state", s.as_str().to_string())]),
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
            .map(|s| {
                (
                    with(&base, vec![("status", s.as_str().to_string())]),
                    by_status[*s as usize],
                )
            })
            .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_node_lamport_time",
            "The current Lamport time of the node.",
            view.lamport as i64,
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_node_gossip_health_score",
            "Health value of a node; lower values means healthier. 0 is the minimum.",
            view.health_score as i64,
        )?;
        let mut events: Vec<(Labels, u64)> = view
            .stats
            .events_received
            .iter()
            .map(|(k, v)| (with(&base, vec![("event", k.to_string())]), *v))
            .collect();
        // The public mixin's name-conflict alert reads this series.
        if !view.stats.events_received.contains_key("node_conflict") {
            events.push((
                with(&base, vec![("event", "node_conflict".to_string())]),
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
            &base,
            "cluster_node_name_conflicts",
            "Joins refused (by this node or by the cluster to this node) because the node name was held by a live member at another address.",
            view.stats.name_conflicts,
        )?;
        counter(
            &mut e,
            &base,
            "cluster_node_updates_out_of_bounds",
            "Gossip updates refused because their incarnation or Lamport time is beyond what the member could have reached (a buggy or lying peer).",
            view.stats.updates_out_of_bounds,
        )?;
        let detection: [(&str, &str, u64); 8] = [
            (
                "cluster_node_probes_failed",
                "Probes of this node's cycle that got no ack, directly or indirectly.",
                view.stats.probes_failed,
            ),
            (
                "cluster_node_peers_refused",
                "Connections to a member's address that were refused (nothing listening there: strong evidence of a killed process).",
                view.stats.peers_refused,
            ),
            (
                "cluster_node_peers_closed",
                "Connections to a member that the member closed (prompts a check).",
                view.stats.peers_closed,
            ),
            (
                "cluster_node_peers_timed_out",
                "Requests to a member that got no answer in time (prompts a check).",
                view.stats.peers_timed_out,
            ),
            (
                "cluster_node_checks",
                "Out-of-cycle probes: verifying a suspicion someone raised, or a member whose connection closed or timed out.",
                view.stats.checks,
            ),
            (
                "cluster_node_checks_failed",
                "Out-of-cycle probes that got no ack.",
                view.stats.checks_failed,
            ),
            (
                "cluster_node_deaths_by_refusal",
                "Members declared dead because two members' connections to them were refused.",
                view.stats.deaths_by_refusal,
            ),
            (
                "cluster_node_suspicions_withdrawn",
                "Suspicions of this node withdrawn because the suspect answered the last-chance probe.",
                view.stats.suspicions_withdrawn,
            ),
        ];
        for (name, help, value) in detection {
            counter(&mut e, &base, name, help, value)?;
        }
        counter(
            &mut e,
            &base,
            "cluster_node_cluster_name_mismatches",
            "Messages refused because they came from a node with another --cluster.name.",
            view.stats.cluster_mismatches,
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_node_alone",
            "1 when join addresses were given but this node sees no other live member (peers unreachable or split brain).",
            i64::from(status.alone(&view)),
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_node_ready",
            "1 when the node is a participant and not waiting for --cluster.wait-for-size.",
            i64::from(status.phase().readiness().is_ok()),
        )?;

        // --- cluster_transport_* (ckit HTTP/2 transport names)
        counter(
            &mut e,
            &base,
            "cluster_transport_rx_packets",
            "Total number of packets received.",
            load(&t.rx_packets),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_rx_bytes",
            "Total number of packet bytes received.",
            load(&t.rx_bytes),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_rx_unauthenticated",
            "Transport requests refused on the TLS listener because the client had no certificate signed by the cluster CA.",
            load(&t.rx_unauthenticated),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_server_connections_refused",
            "Connections closed at accept: too many from one address, or in all.",
            load(&status.server.connections_refused),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_server_messages_rate_limited",
            "Cluster transport requests answered 429 because their address exceeded its messages-per-second budget.",
            load(&status.server.messages_rate_limited),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_rx_identity_mismatches",
            "Transport messages refused because their sender is not a name of the client's certificate (--cluster.tls-bind-node-name).",
            load(&t.rx_identity_mismatches),
        )?;
        if let Some(tls) = status.tls.get() {
            counter(
                &mut e,
                &base,
                "cluster_tls_handshakes_failed",
                "TLS handshakes with the cluster listener or a peer that failed (unknown CA, bad certificate, timeout).",
                load(&tls.handshakes_failed),
            )?;
            counter(
                &mut e,
                &base,
                "cluster_tls_plaintext_mismatches",
                "Connections refused because one side spoke plaintext (h2c) and the other TLS.",
                load(&tls.plaintext_mismatches),
            )?;
            counter(
                &mut e,
                &base,
                "cluster_tls_reloads",
                "Times the cluster certificate files changed and were reloaded.",
                load(&tls.reloads),
            )?;
            counter(
                &mut e,
                &base,
                "cluster_tls_reload_errors",
                "Times the cluster certificate files changed but could not be used (the previous ones stay).",
                load(&tls.reload_errors),
            )?;
            gauge(
                &mut e,
                &base,
                "cluster_tls_certificate_expiry_timestamp_seconds",
                "When this node's cluster certificate expires (Unix time).",
                load(&tls.cert_not_after) as i64,
            )?;
        }
        counter(
            &mut e,
            &base,
            "cluster_transport_rx_packets_failed",
            "Total number of incoming packets rejected (too large, undecodable, node overloaded).",
            load(&t.rx_packets_failed),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_tx_packets",
            "Total number of packets delivered to peers.",
            load(&t.tx_packets),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_tx_bytes",
            "Total number of packet bytes delivered to peers.",
            load(&t.tx_bytes),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_rx_answers",
            "Of the packets received, those a peer sent back in the response to one of ours (acks, join answers).",
            load(&t.rx_answers),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_tx_answers",
            "Of the packets sent, those sent back in the response to a peer's request instead of as a request.",
            load(&t.tx_answers),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_tx_packets_failed",
            "Total number of outgoing packets that could not be delivered (queue full, connect error, timeout, error answer).",
            load(&t.tx_packets_failed),
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_transport_rx_packet_queue_length",
            "Current number of received packets not yet handled by the node.",
            load_i(&t.rx_queue_len),
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_transport_tx_packet_queue_length",
            "Current number of packets waiting in per-peer send queues.",
            load_i(&t.tx_queue_len),
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_transport_streams",
            "Number of push/pull streams (full-state exchanges) in flight, both directions.",
            load_i(&t.streams),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_streams_opened",
            "Total number of push/pull streams opened, both directions.",
            load(&t.streams_opened),
        )?;
        counter(
            &mut e,
            &base,
            "cluster_transport_streams_failed",
            "Total number of push/pull streams that failed, both directions.",
            load(&t.streams_failed),
        )?;
        let stream_counters: [(&str, &str, u64); 6] = [
            (
                "cluster_transport_stream_tx_packets",
                "Full states sent over push/pull streams (ours delivered, or our answer written).",
                load(&t.stream_tx_packets),
            ),
            (
                "cluster_transport_stream_tx_bytes",
                "Bytes of the full states sent over push/pull streams.",
                load(&t.stream_tx_bytes),
            ),
            (
                "cluster_transport_stream_tx_packets_failed",
                "Push/pull exchanges this node started that failed (its state not delivered).",
                load(&t.stream_tx_packets_failed),
            ),
            (
                "cluster_transport_stream_rx_packets",
                "Full states received over push/pull streams (a request or an answer).",
                load(&t.stream_rx_packets),
            ),
            (
                "cluster_transport_stream_rx_bytes",
                "Bytes of the full states received over push/pull streams.",
                load(&t.stream_rx_bytes),
            ),
            (
                "cluster_transport_stream_rx_packets_failed",
                "Full states received that could not be taken in (node overloaded, bad payload, timeout).",
                load(&t.stream_rx_packets_failed),
            ),
        ];
        for (name, help, v) in stream_counters {
            counter(&mut e, &base, name, help, v)?;
        }
        gauge(
            &mut e,
            &base,
            "cluster_node_gossip_proto_version",
            "Version of the wire format this node speaks; it should match across the cluster.",
            i64::from(cluster::wire::VERSION),
        )?;
        gauge(
            &mut e,
            &base,
            "cluster_minimum_size",
            "--cluster.wait-for-size: the nodes the cluster needs before this node takes work (0: no minimum).",
            status.minimum_size.load(Ordering::Relaxed) as i64,
        )?;

        // --- agent_config_* (configuration-drift alert)
        let cfg = status.config_status();
        if let Some(hash) = &cfg.sha256 {
            gauge_family(
                &mut e,
                "agent_config_hash",
                "Hash of the currently active configuration file.",
                &[(with(&base, vec![("sha256", hash.clone())]), 1)],
            )?;
        }
        gauge(
            &mut e,
            &[],
            "agent_config_last_load_successful",
            "1 if the last attempt to load the configuration file succeeded.",
            i64::from(cfg.last_load_ok),
        )?;
        counter(
            &mut e,
            &[],
            "agent_config_load_failures",
            "Total number of configuration file loads that failed.",
            cfg.load_failures,
        )?;

        resources::encode(&mut e)?;
        controller::build_info(&mut e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::JoinReport;

    /// With `--cluster.name`, every cluster series and the configuration hash carry it as
    /// `cluster_name`, so alerts tell two clusters of one job apart.
    #[tokio::test]
    async fn the_cluster_name_labels_the_cluster_series_and_the_config_hash() {
        let opts = runtime::NodeOptions::new("m", "127.0.0.1:1", cluster::Config::default());
        let (handle, _task) = runtime::start(runtime::TokioNet, opts).unwrap();
        let status = Arc::new(Status::new(
            handle,
            true,
            "prod".into(),
            Vec::new(),
            None,
            Arc::new(JoinReport::default()),
            None,
        ));
        status.config.lock().unwrap().sha256 = Some("abc".into());
        status
            .minimum_size
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let (text, _) = render(&registry(status), "");
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            if l.starts_with("cluster_") {
                assert!(l.contains("cluster_name=\"prod\""), "{l}");
            }
        }
        assert!(text.contains("agent_config_hash{cluster_name=\"prod\",sha256=\"abc\"} 1\n"));
        assert!(text.contains("cluster_minimum_size{cluster_name=\"prod\"} 3\n"));
        assert!(
            text.contains("agent_config_last_load_successful 0\n"),
            "no label elsewhere"
        );
    }

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
            ("cluster_transport_rx_answers_total", "counter"),
            ("cluster_transport_tx_answers_total", "counter"),
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
        for name in [
            "cluster_node_gossip_proto_version",
            "cluster_minimum_size",
            "cluster_transport_stream_rx_bytes_total",
            "cluster_transport_stream_tx_packets_failed_total",
            "agent_build_info",
            "agent_resources_process_cpu_seconds_total",
            "agent_resources_machine_rx_bytes_total",
        ] {
            assert!(text.contains(&format!("\n{name}")), "{name} in:\n{text}");
        }
        let (om, om_type) = render(&registry, "application/openmetrics-text; version=1.0.0");
        assert_eq!(om_type, OPENMETRICS_CONTENT_TYPE);
        assert!(om.ends_with("# EOF\n"));
        assert!(
            om.contains("# TYPE cluster_transport_rx_packets counter\n"),
            "{om}"
        );
    }
}
