//! The source of the dashboards in `operations/dashboards/`: each dashboard as a list of
//! panels and their PromQL, rendered to Grafana JSON (`operations_mixin.rs` checks that the
//! committed files are this rendering, and rewrites them with `MIXIN_UPDATE=1`).
//!
//! Conventions (those of the public Agent Flow / Alloy mixins): every series is selected by
//! the scrape labels `cluster`, `namespace`, `job`, `instance`; the drop-downs are built on
//! `agent_component_controller_running_components`; `cluster` and `namespace` pick one value,
//! `job` and `instance` may pick all (`.*`). Only series every agent serves are queried, so
//! every panel has data on a running cluster.
#![allow(dead_code)] // the generator and the query test use different parts

use serde_json::{json, Value};

/// Label matchers of a dashboard without an instance drop-down.
pub const GROUP: &str = r#"cluster=~"$cluster", namespace=~"$namespace", job=~"$job""#;
/// Label matchers with the instance drop-down.
pub const INSTANCE: &str =
    r#"cluster=~"$cluster", namespace=~"$namespace", job=~"$job", instance=~"$instance""#;

/// The metric the drop-downs are built on (exported by every agent, always).
const VAR_METRIC: &str = "agent_component_controller_running_components";

pub struct Query {
    pub expr: String,
    pub legend: String,
    /// Evaluated once (tables, stats) rather than over the time range.
    pub instant: bool,
}

pub struct Panel {
    pub title: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub unit: &'static str,
    pub width: u32,
    pub queries: Vec<Query>,
}

pub enum Item {
    Row(&'static str),
    Panel(Panel),
}

pub struct Var {
    pub name: &'static str,
    /// `label_values(...)` query.
    pub query: String,
    pub multi: bool,
}

pub struct Dashboard {
    pub file: &'static str,
    pub uid: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub vars: Vec<Var>,
    pub items: Vec<Item>,
}

fn q(expr: impl Into<String>, legend: &str) -> Query {
    Query {
        expr: expr.into(),
        legend: legend.into(),
        instant: false,
    }
}

fn instant(expr: impl Into<String>, legend: &str) -> Query {
    Query {
        expr: expr.into(),
        legend: legend.into(),
        instant: true,
    }
}

fn panel(
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    width: u32,
    description: &'static str,
    queries: Vec<Query>,
) -> Item {
    Item::Panel(Panel {
        title,
        kind,
        description,
        unit,
        width,
        queries,
    })
}

fn vars(with_instance: bool, multi_instance: bool) -> Vec<Var> {
    let mut v = vec![
        Var {
            name: "cluster",
            query: format!("label_values({VAR_METRIC}, cluster)"),
            multi: false,
        },
        Var {
            name: "namespace",
            query: format!(r#"label_values({VAR_METRIC}{{cluster=~"$cluster"}}, namespace)"#),
            multi: false,
        },
        Var {
            name: "job",
            query: format!(
                r#"label_values({VAR_METRIC}{{cluster=~"$cluster", namespace=~"$namespace"}}, job)"#
            ),
            multi: true,
        },
    ];
    if with_instance {
        v.push(Var {
            name: "instance",
            query: format!("label_values({VAR_METRIC}{{{GROUP}}}, instance)"),
            multi: multi_instance,
        });
    }
    v
}

/// Whether the cluster has converged: 0 when every node sees every agent Prometheus scrapes
/// in the same states, 1 otherwise.
fn convergence(sel: &str) -> String {
    format!(
        "clamp_max(ceil(\n  max(stddev by (state) (cluster_node_peers{{{sel}}}))\n  + max(abs(sum without (state) (cluster_node_peers{{{sel}}}) - scalar(count(cluster_node_info{{{sel}}}))))\n), 1)"
    )
}

pub fn dashboards() -> Vec<Dashboard> {
    vec![
        cluster_overview(),
        cluster_node(),
        remote_write(),
        controller(),
        resources(),
    ]
}

fn cluster_overview() -> Dashboard {
    let g = GROUP;
    Dashboard {
        file: "agent-cluster-overview.json",
        uid: "agent-cluster-overview",
        title: "Agent / Cluster Overview",
        description: "The cluster as a whole: its nodes, whether they agree, and how the targets are shared.",
        vars: vars(false, false),
        items: vec![
            panel("Nodes", "stat", "none", 6, "Agents Prometheus scrapes in this cluster.", vec![instant(format!("count(cluster_node_info{{{g}}})"), "")]),
            panel("Node table", "table", "none", 18, "Each node and the state it reports (viewer, participant, terminating).", vec![instant(format!("cluster_node_info{{{g}}}"), "")]),
            panel("Convergence state", "stat", "none", 6, "0 (converged): every node sees every agent, in the same states. 1 (not converged): some nodes miss peers or have an old view of their states. Brief divergence while gossip spreads is normal; lasting divergence is not.", vec![instant(convergence(g), "")]),
            panel("Convergence state timeline", "state-timeline", "none", 18, "Convergence over time (0 converged, 1 not).", vec![q(convergence(g), "converged")]),
            panel("Peers seen by each node", "timeseries", "none", 12, "Live peers (alive or suspect, itself included) each node sees, and --cluster.wait-for-size.", vec![
                q(format!("sum without (state) (cluster_node_peers{{{g}}})"), "{{instance}}"),
                q(format!("max(cluster_minimum_size{{{g}}})"), "minimum size"),
            ]),
            panel("Nodes by state", "timeseries", "none", 12, "How many nodes report each state.", vec![q(format!("sum by (state) (cluster_node_info{{{g}}})"), "{{state}}")]),
            panel("Targets scraped by each node", "timeseries", "none", 12, "Targets each node scrapes for its clustered scrape components: a join or a loss moves ~1/N of them.", vec![
                q(format!("sum by (instance) (agent_scrape_targets_owned{{{g}}})"), "{{instance}}"),
                q(format!("sum(max by (component_id) (agent_scrape_targets{{{g}}}))"), "targets (all nodes)"),
            ]),
            panel("Nodes alone", "timeseries", "none", 12, "Nodes that were given --cluster.join-addresses but see no other member (with clustering they then scrape every target).", vec![q(format!("sum(cluster_node_alone{{{g}}})"), "alone")]),
        ],
    }
}

fn cluster_node() -> Dashboard {
    let i = INSTANCE;
    let rate = |m: &str| format!("rate({m}{{{i}}}[$__rate_interval])");
    let success = |failed: &str, total: &str| {
        format!(
            "1 - (\n  sum({}) /\n  sum({})\n)",
            rate(failed),
            rate(total)
        )
    };
    Dashboard {
        file: "agent-cluster-node.json",
        uid: "agent-cluster-node",
        title: "Agent / Cluster Node",
        description: "One node: its view of the cluster and its gossip transport.",
        vars: vars(true, false),
        items: vec![
            Item::Row("Node"),
            panel("Node info", "table", "none", 12, "Lamport time: the node's logical clock; nodes should be within a few ticks of each other. Observers: components that recompute their targets when the cluster changes. Health score: 0 is healthy, higher means missed probes. Protocol version: should match across nodes.", vec![
                instant(format!("sum(cluster_node_lamport_time{{{i}}})"), "Lamport time"),
                instant(format!("sum(cluster_node_update_observers{{{i}}})"), "Observers"),
                instant(format!("sum(cluster_node_gossip_health_score{{{i}}})"), "Health score"),
                instant(format!("max(cluster_node_gossip_proto_version{{{i}}})"), "Protocol version"),
            ]),
            panel("Gossip ops/s", "timeseries", "ops", 12, "Gossip messages handled, by event.", vec![q(format!("sum by (event) ({})", rate("cluster_node_gossip_received_events_total")), "{{event}}")]),
            panel("Known peers", "stat", "none", 8, "Live peers this node sees, itself included.", vec![instant(format!("sum(cluster_node_peers{{{i}}})"), "")]),
            panel("Peers by state", "timeseries", "none", 8, "Live peers by state (viewer, participant, terminating).", vec![q(format!("sum by (state) (cluster_node_peers{{{i}}})"), "{{state}}")]),
            panel("Members by status", "timeseries", "none", 8, "Members this node knows by membership status; dead and left ones stay a while as tombstones.", vec![q(format!("sum by (status) (cluster_node_members{{{i}}})"), "{{status}}")]),
            Item::Row("Gossip transport"),
            panel("Transport bandwidth", "timeseries", "Bps", 8, "Packet bytes received (up) and sent (down).", vec![
                q(format!("sum({})", rate("cluster_transport_rx_bytes_total")), "rx"),
                q(format!("-1 * sum({})", rate("cluster_transport_tx_bytes_total")), "tx"),
            ]),
            panel("Packet write success rate", "timeseries", "percentunit", 8, "Share of packets delivered (tx) and taken in (rx).", vec![
                q(success("cluster_transport_tx_packets_failed_total", "cluster_transport_tx_packets_total"), "tx success"),
                q(success("cluster_transport_rx_packets_failed_total", "cluster_transport_rx_packets_total"), "rx success"),
            ]),
            panel("Pending packet queue", "timeseries", "pkts", 8, "Packets waiting to be sent or handled; a growing queue means the node cannot keep up with the cluster's messages.", vec![
                q(format!("sum(cluster_transport_tx_packet_queue_length{{{i}}})"), "tx queue"),
                q(format!("sum(cluster_transport_rx_packet_queue_length{{{i}}})"), "rx queue"),
            ]),
            panel("Stream bandwidth", "timeseries", "Bps", 8, "Full-state (push/pull) bytes received (up) and sent (down).", vec![
                q(format!("sum({})", rate("cluster_transport_stream_rx_bytes_total")), "rx"),
                q(format!("-1 * sum({})", rate("cluster_transport_stream_tx_bytes_total")), "tx"),
            ]),
            panel("Stream write success rate", "timeseries", "percentunit", 8, "Share of full-state exchanges that succeeded.", vec![
                q(success("cluster_transport_stream_tx_packets_failed_total", "cluster_transport_stream_tx_packets_total"), "tx success"),
                q(success("cluster_transport_stream_rx_packets_failed_total", "cluster_transport_stream_rx_packets_total"), "rx success"),
            ]),
            panel("Open transport streams", "timeseries", "none", 8, "Push/pull exchanges in flight; they are short-lived.", vec![q(format!("sum(cluster_transport_streams{{{i}}})"), "open streams")]),
            Item::Row("Listener"),
            panel("Refused by the listener", "timeseries", "ops", 12, "Connections closed at accept (too many from one address) and transport messages answered 429 (rate limit per address).", vec![
                q(format!("sum({})", rate("cluster_server_connections_refused_total")), "connections refused"),
                q(format!("sum({})", rate("cluster_server_messages_rate_limited_total")), "messages rate-limited"),
            ]),
            panel("Refused messages", "timeseries", "ops", 12, "Messages from another --cluster.name, and updates beyond what their member could have reached.", vec![
                q(format!("sum({})", rate("cluster_node_cluster_name_mismatches_total")), "other cluster name"),
                q(format!("sum({})", rate("cluster_node_updates_out_of_bounds_total")), "out of bounds"),
            ]),
        ],
    }
}

fn remote_write() -> Dashboard {
    let i = INSTANCE;
    let c = r#"component_id=~"$component""#;
    let u = r#"url=~"$url""#;
    let rate = |m: &str| format!("rate({m}{{{i}, {c}, {u}}}[$__rate_interval])");
    let mut v = vars(true, true);
    v.push(Var {
        name: "component",
        query: format!(
            r#"label_values(prometheus_remote_write_wal_samples_appended_total{{{i}, component_id=~"prometheus.remote_write.*"}}, component_id)"#
        ),
        multi: true,
    });
    v.push(Var {
        name: "url",
        query: format!(
            "label_values(prometheus_remote_storage_sent_batch_duration_seconds_sum{{{i}, {c}}}, url)"
        ),
        multi: true,
    });
    let by = "instance, component_id";
    Dashboard {
        file: "agent-prometheus-remote-write.json",
        uid: "agent-prometheus-remote-write",
        title: "Agent / prometheus.remote_write",
        description: "The remote_write components: their write-ahead log and what they send.",
        vars: v,
        items: vec![
            panel("WAL delay", "timeseries", "s", 8, "How far the newest sample an endpoint accepted is behind the newest sample written to the WAL. 1-3 scrape intervals is normal; a delay that keeps growing means the endpoint cannot keep up (more max_shards) or fails.", vec![q(format!(
                "sum by ({by}) (\n  prometheus_remote_storage_highest_timestamp_in_seconds{{{i}, {c}}}\n  - ignoring (url) group_right (instance)\n  prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{{i}, {c}, {u}}}\n) < 31536000"
            ), "{{instance}} / {{component_id}}")]),
            panel("Data write throughput", "timeseries", "Bps", 8, "Compressed bytes the endpoints accepted (samples and metadata).", vec![q(format!(
                "sum by ({by}) (\n  {}\n  + {}\n)", rate("prometheus_remote_storage_bytes_total"), rate("prometheus_remote_storage_metadata_bytes_total")
            ), "{{instance}} / {{component_id}}")]),
            panel("Write latency", "timeseries", "s", 8, "Duration of each request to the endpoints.", vec![
                q(format!("histogram_quantile(0.99, sum by (le) ({}))", rate("prometheus_remote_storage_sent_batch_duration_seconds_bucket")), "99th percentile"),
                q(format!("histogram_quantile(0.50, sum by (le) ({}))", rate("prometheus_remote_storage_sent_batch_duration_seconds_bucket")), "50th percentile"),
                q(format!("sum({}) / sum({})", rate("prometheus_remote_storage_sent_batch_duration_seconds_sum"), rate("prometheus_remote_storage_sent_batch_duration_seconds_count")), "average"),
            ]),
            panel("Shards", "timeseries", "none", 8, "Shards sending in parallel, what the resharding rule asks for, and the queue_config bounds.", vec![
                q(format!("sum by ({by}) (prometheus_remote_storage_shards{{{i}, {c}, {u}}})"), "{{instance}} / {{component_id}}"),
                q(format!("sum by ({by}) (prometheus_remote_storage_shards_desired{{{i}, {c}, {u}}})"), "desired {{instance}} / {{component_id}}"),
                q(format!("min(prometheus_remote_storage_shards_min{{{i}, {c}, {u}}})"), "minimum"),
                q(format!("max(prometheus_remote_storage_shards_max{{{i}, {c}, {u}}})"), "maximum"),
            ]),
            panel("Sent samples / second", "timeseries", "cps", 8, "Samples the endpoints accepted.", vec![q(format!("sum by ({by}) ({})", rate("prometheus_remote_storage_samples_total")), "{{instance}} / {{component_id}}")]),
            panel("Pending samples", "timeseries", "short", 8, "Samples in the shards' queues or in flight.", vec![q(format!("sum by ({by}) (prometheus_remote_storage_samples_pending{{{i}, {c}, {u}}})"), "{{instance}} / {{component_id}}")]),
            panel("Failed samples / second", "timeseries", "cps", 8, "Samples given up on: the endpoint refused them (non-retryable answer).", vec![q(format!("sum by ({by}) ({})", rate("prometheus_remote_storage_samples_failed_total")), "{{instance}} / {{component_id}}")]),
            panel("Retried samples / second", "timeseries", "cps", 8, "Samples in batches sent again after a retryable error.", vec![q(format!("sum by ({by}) ({})", rate("prometheus_remote_storage_samples_retried_total")), "{{instance}} / {{component_id}}")]),
            panel("Dropped samples / second", "timeseries", "cps", 8, "Samples the WAL removed (age or size bound) before they were sent.", vec![q(format!("sum by ({by}) ({})", rate("prometheus_remote_storage_samples_dropped_total")), "{{instance}} / {{component_id}}")]),
            panel("Active series (total)", "timeseries", "short", 8, "Series the WALs keep.", vec![q(format!("sum(prometheus_remote_write_wal_storage_active_series{{{i}, {c}}})"), "series")]),
            panel("Active series (by instance/component)", "timeseries", "short", 8, "Series each WAL keeps.", vec![q(format!("prometheus_remote_write_wal_storage_active_series{{{i}, {c}}}"), "{{instance}} / {{component_id}}")]),
            panel("WAL size", "timeseries", "bytes", 8, "Bytes of WAL segments on disk.", vec![q(format!("sum by ({by}) (prometheus_tsdb_wal_storage_size_bytes{{{i}, {c}}})"), "{{instance}} / {{component_id}}")]),
        ],
    }
}

fn controller() -> Dashboard {
    let g = GROUP;
    let rate = |m: &str| format!("rate({m}{{{g}}}[$__rate_interval])");
    let health = |h: &str| format!(r#"sum({VAR_METRIC}{{{g}, health_type="{h}"}}) or vector(0)"#);
    Dashboard {
        file: "agent-controller.json",
        uid: "agent-controller",
        title: "Agent / Controller",
        description: "The components of every agent: health, evaluations and the configuration file.",
        vars: vars(false, false),
        items: vec![
            panel("Running agents", "stat", "none", 6, "Agents Prometheus scrapes.", vec![instant(format!("count(group by (instance) (agent_component_controller_evaluating{{{g}}}))"), "")]),
            panel("Running components", "stat", "none", 6, "Components of all agents together.", vec![instant(format!("sum({VAR_METRIC}{{{g}}})"), "")]),
            panel("Overall component health", "stat", "percentunit", 6, "Share of the components that are healthy.", vec![instant(format!(r#"sum({VAR_METRIC}{{{g}, health_type="healthy"}}) / sum({VAR_METRIC}{{{g}}})"#), "")]),
            panel("Components by health", "bargauge", "none", 6, "Healthy: running with their current arguments. Unhealthy: their last evaluation failed or their work fails (discovery or API errors; the agent's log says why). Unknown and exited are not used by this agent (always 0).", vec![
                instant(health("healthy"), "healthy"),
                instant(health("unhealthy"), "unhealthy"),
                instant(health("unknown"), "unknown"),
                instant(health("exited"), "exited"),
            ]),
            panel("Component evaluation rate", "timeseries", "ops", 8, "Component evaluations per second: every component at a configuration load, the scrape components whenever a discovery publishes new targets.", vec![q(format!("sum by (instance) ({})", rate("agent_component_evaluation_seconds_count")), "{{instance}}")]),
            panel("Component evaluation time", "timeseries", "s", 8, "How long an evaluation takes (computing a component's arguments and applying them).", vec![
                q(format!("histogram_quantile(0.99, sum by (le) ({}))", rate("agent_component_evaluation_seconds_bucket")), "99th percentile"),
                q(format!("histogram_quantile(0.50, sum by (le) ({}))", rate("agent_component_evaluation_seconds_bucket")), "50th percentile"),
                q(format!("sum({}) / sum({})", rate("agent_component_evaluation_seconds_sum"), rate("agent_component_evaluation_seconds_count")), "average"),
            ]),
            panel("Slow components evaluation times", "timeseries", "s", 8, "Seconds spent in evaluations that took over a minute, by component.", vec![q(format!("sum by (component_id) (increase(agent_component_evaluation_slow_seconds_total{{{g}}}[$__rate_interval]))"), "{{component_id}}")]),
            panel("Component evaluation histogram", "heatmap", "s", 12, "Evaluations by duration.", vec![q(format!("sum by (le) (increase(agent_component_evaluation_seconds_bucket{{{g}}}[$__rate_interval]))"), "{{le}}")]),
            panel("Component dependency wait histogram", "heatmap", "s", 12, "How long components waited to be evaluated after a discovery published new targets.", vec![q(format!("sum by (le) (increase(agent_component_dependencies_wait_seconds_bucket{{{g}}}[$__rate_interval]))"), "{{le}}")]),
            panel("Configuration files in use", "timeseries", "none", 12, "Distinct configuration files (sha256) the agents run; more than one means drift.", vec![q(format!("count(count by (sha256) (agent_config_hash{{{g}}}))"), "configurations")]),
            panel("Configuration loads", "timeseries", "none", 12, "Agents whose last load succeeded, and failed loads.", vec![
                q(format!("sum(agent_config_last_load_successful{{{g}}})"), "last load succeeded"),
                q(format!("sum(increase(agent_config_load_failures_total{{{g}}}[$__rate_interval]))"), "failed loads"),
            ]),
        ],
    }
}

fn resources() -> Dashboard {
    let i = INSTANCE;
    let rate = |m: &str| format!("rate({m}{{{i}}}[$__rate_interval])");
    Dashboard {
        file: "agent-resources.json",
        uid: "agent-resources",
        title: "Agent / Resources",
        description: "CPU, memory and network of the agents.",
        vars: vars(true, true),
        items: vec![
            panel("CPU usage", "timeseries", "percentunit", 12, "CPU time of the agent process relative to one core (100% = one whole core).", vec![q(format!("sum by (instance) ({})", rate("agent_resources_process_cpu_seconds_total")), "{{instance}}")]),
            panel("Memory (RSS)", "timeseries", "decbytes", 12, "Resident memory of the agent process.", vec![q(format!("sum by (instance) (agent_resources_process_resident_memory_bytes{{{i}}})"), "{{instance}}")]),
            panel("Virtual memory", "timeseries", "decbytes", 12, "Virtual memory of the agent process (address space reserved, not memory used).", vec![q(format!("sum by (instance) (agent_resources_process_virtual_memory_bytes{{{i}}})"), "{{instance}}")]),
            panel("Uptime", "timeseries", "s", 12, "Time since each agent process started.", vec![q(format!("time() - max by (instance) (agent_resources_process_start_time_seconds{{{i}}})"), "{{instance}}")]),
            panel("Network receive bandwidth", "timeseries", "Bps", 12, "Bytes received on every network interface of the machine (or the container's network namespace) the agent runs on; not the agent's alone.", vec![q(format!("sum by (instance) ({})", rate("agent_resources_machine_rx_bytes_total")), "{{instance}}")]),
            panel("Network send bandwidth", "timeseries", "Bps", 12, "Bytes sent on every network interface of the machine the agent runs on; not the agent's alone.", vec![q(format!("sum by (instance) ({})", rate("agent_resources_machine_tx_bytes_total")), "{{instance}}")]),
        ],
    }
}

/// The Grafana JSON of a dashboard.
pub fn render(d: &Dashboard) -> Value {
    let ds = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut templating = vec![json!({
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": false, "text": "default", "value": "default"},
        "hide": 0,
    })];
    for v in &d.vars {
        let mut var = json!({
            "name": v.name,
            "label": v.name,
            "type": "query",
            "datasource": ds,
            "query": {"query": v.query, "refId": format!("{}-variable", v.name)},
            "definition": v.query,
            "refresh": 2,
            "sort": 1,
            "hide": 0,
            "multi": v.multi,
            "includeAll": v.multi,
        });
        if v.multi {
            var["allValue"] = json!(".*");
            var["current"] = json!({"selected": true, "text": "All", "value": "$__all"});
        }
        templating.push(var);
    }
    let mut panels = Vec::new();
    let (mut x, mut y, mut row_height) = (0u32, 0u32, 0u32);
    for (n, item) in d.items.iter().enumerate() {
        let id = n as u32 + 1;
        match item {
            Item::Row(title) => {
                if x > 0 {
                    y += row_height;
                    x = 0;
                }
                panels.push(json!({
                    "type": "row", "id": id, "title": title, "collapsed": false,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
                }));
                y += 1;
                row_height = 0;
            }
            Item::Panel(p) => {
                let h = if matches!(p.kind, "stat" | "table" | "bargauge") && p.width <= 6 {
                    6
                } else {
                    8
                };
                if x + p.width > 24 {
                    y += row_height;
                    x = 0;
                    row_height = 0;
                }
                let targets: Vec<Value> = p
                    .queries
                    .iter()
                    .enumerate()
                    .map(|(k, q)| {
                        json!({
                            "datasource": ds,
                            "expr": q.expr,
                            "legendFormat": q.legend,
                            "instant": q.instant,
                            "range": !q.instant,
                            "format": if p.kind == "table" { "table" } else if p.kind == "heatmap" { "heatmap" } else { "time_series" },
                            "refId": ((b'A' + k as u8) as char).to_string(),
                        })
                    })
                    .collect();
                let mut panel = json!({
                    "type": p.kind, "id": id, "title": p.title, "description": p.description,
                    "datasource": ds,
                    "gridPos": {"h": h, "w": p.width, "x": x, "y": y},
                    "targets": targets,
                    "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                    "options": {},
                });
                if p.title.starts_with("Convergence state") {
                    panel["fieldConfig"]["defaults"]["mappings"] = json!([{
                        "type": "value",
                        "options": {
                            "0": {"text": "Converged", "color": "green", "index": 0},
                            "1": {"text": "Not converged", "color": "red", "index": 1},
                        },
                    }]);
                }
                if p.kind == "timeseries" && p.unit == "Bps" {
                    // rx above the axis, tx (negated) below.
                    panel["fieldConfig"]["defaults"]["custom"] = json!({"axisCenteredZero": true});
                }
                if p.kind == "heatmap" {
                    panel["options"] = json!({"calculate": false, "yAxis": {"unit": "s"}});
                }
                panels.push(panel);
                x += p.width;
                row_height = row_height.max(h);
            }
        }
    }
    json!({
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["agent-mixin"],
        "editable": true,
        "schemaVersion": 39,
        "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "links": [{
            "type": "dashboards", "title": "Agent dashboards", "tags": ["agent-mixin"],
            "asDropdown": true, "includeVars": true, "keepTime": true,
        }],
        "templating": {"list": templating},
        "annotations": {"list": []},
        "panels": panels,
    })
}
