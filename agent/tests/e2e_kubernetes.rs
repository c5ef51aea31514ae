//! End to end with Kubernetes discovery: a test API server of ours (kube_support: list and
//! watch with resourceVersion, bookmarks and 410 Gone, from objects shaped as the API reference
//! shows them), metrics endpoints of ours as the pods' containers, Prometheus (OS package) as
//! the remote-write receiver, and three clustered `agent` processes with one config:
//! `discovery.kubernetes` (role pod, namespace and label selectors, bearer token) feeding a
//! clustered `prometheus.scrape`, and `prometheus.operator.podmonitors` and
//! `servicemonitors` with clustering.
//!
//! The script: pods are added, one is relabeled out of the selector, one deleted, every watch
//! is dropped mid-stream, then the event history is compacted and the watches dropped again
//! (the agents must re-list on 410). After each step the receiver shows every current pod
//! arriving from exactly one agent and no sample of a removed pod. Checked through
//! Prometheus' HTTP API and the agents' /metrics, as a user would.

mod common;
mod kube_support;
mod ports;
mod scrape_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kube_support::KubeApi;
use scrape_support::*;
use serde_json::json;

const TOKEN: &str = "e2e-kube-token";
/// A discovered change must reach the receiver within this (debounce 1 s, scrape 1 s,
/// remote-write batches of 200 ms, plus the receiver's query freshness).
const PROPAGATION: Duration = Duration::from_secs(20);

fn pod(ns: &str, name: &str, app: &str, port: u16, port_name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": app},
            "annotations": {"example.com/owner": "e2e"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-rs"), "uid": "rs-1", "controller": true}]
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "app", "image": "example/app:1", "ports": [
                {"name": port_name, "containerPort": port, "protocol": "TCP"}
            ]}]
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "hostIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

fn config(api: &str, receiver_port: u16, name: &str) -> String {
    format!(
        r#"discovery.kubernetes "pods" {{
  role         = "pod"
  api_server   = "{api}"
  bearer_token = "{TOKEN}"
  namespaces {{ names = ["apps"] }}
  selectors {{
    role  = "pod"
    label = "app=demo"
  }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_controller_name"]
    target_label  = "controller"
  }}
}}

prometheus.scrape "pods" {{
  targets         = discovery.relabel.pods.output
  forward_to      = [prometheus.remote_write.local.receiver]
  job_name        = "pods"
  scrape_interval = "1s"
  scrape_timeout  = "1s"
  clustering {{ enabled = true }}
}}

prometheus.operator.podmonitors "monitors" {{
  forward_to = [prometheus.remote_write.local.receiver]
  client {{
    api_server   = "{api}"
    bearer_token = "{TOKEN}"
  }}
  scrape {{ default_scrape_interval = "1s" }}
  clustering {{ enabled = true }}
}}

prometheus.operator.servicemonitors "services" {{
  forward_to = [prometheus.remote_write.local.receiver]
  client {{
    api_server   = "{api}"
    bearer_token = "{TOKEN}"
  }}
  scrape {{ default_scrape_interval = "1s" }}
  clustering {{ enabled = true }}
}}

prometheus.remote_write "local" {{
  endpoint {{
    url = "http://127.0.0.1:{receiver_port}/api/v1/write"
    queue_config {{ batch_send_deadline = "200ms" }}
  }}
  external_labels = {{ agent = "{name}" }}
}}
"#
    )
}

/// For each value of `label` among `up{job=...}` series seen in the last 3 s: the agents that
/// sent them.
fn senders(port: u16, job: &str, label_name: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let q = format!("count by ({label_name}, agent) (count_over_time(up{{job=\"{job}\"}}[3s]))");
    for s in query(port, &q) {
        out.entry(label(&s, label_name))
            .or_default()
            .insert(label(&s, "agent"));
    }
    out
}

/// Waits until exactly `pods` arrive (recently), each from one agent.
fn wait_exactly(port: u16, job: &str, label_name: &str, pods: &[&str], what: &str) {
    let want: BTreeSet<String> = pods.iter().map(|p| p.to_string()).collect();
    let mut last = BTreeMap::new();
    let took = std::time::Instant::now();
    while took.elapsed() < PROPAGATION {
        last = senders(port, job, label_name);
        let got: BTreeSet<String> = last.keys().cloned().collect();
        if got == want && last.values().all(|a| a.len() == 1) {
            println!("{what}: {:?} after {:.1?}", want, took.elapsed());
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: wanted {want:?}, each from one agent; last seen {last:?}");
}

fn agent_counter(a: &Agent, series: &str) -> f64 {
    sample(&a.metrics(), series).unwrap_or(0.0)
}

#[test]
fn three_agents_share_discovered_pods_and_follow_adds_relabels_deletes_dropped_watches_and_gone() {
    let Some(prometheus) = installed(PROMETHEUS, "prometheus") else {
        println!("SKIPPED e2e_kubernetes: {PROMETHEUS} is missing and `apt-get install -y prometheus` failed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kube = rt.block_on(KubeApi::start());
    kube.require_bearer_token(TOKEN);
    let fleet = TargetFleet::start(13, 1, Arc::new(|_, n| format!("demo_scrapes_total {n}\n")));
    let port_of = |i: usize| -> u16 {
        fleet.addresses[i]
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let ports = free_ports(4);
    let (agent_ports, receiver_port) = (&ports[0..3], ports[3]);
    let mut receiver = start_receiver(&prometheus, dir.path(), receiver_port);

    // Six selected pods, one with another app label, one in another namespace; two pods and
    // a PodMonitor for the operator component.
    for i in 0..6 {
        kube.apply(pod(
            "apps",
            &format!("demo-{i}"),
            "demo",
            port_of(i),
            "metrics",
        ));
    }
    kube.apply(pod("apps", "other-0", "other", port_of(6), "metrics"));
    kube.apply(pod("elsewhere", "demo-x", "demo", port_of(7), "metrics"));
    kube.apply(pod("apps", "mon-0", "mon", port_of(8), "metrics"));
    kube.apply(pod("apps", "mon-1", "mon", port_of(9), "metrics"));
    kube.apply(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "mon", "namespace": "apps"},
        "spec": {
            "selector": {"matchLabels": {"app": "mon"}},
            "podMetricsEndpoints": [{"port": "metrics", "interval": "1s"}]
        }
    }));

    // A Service with its Endpoints (one address: a metrics endpoint of ours) and a
    // ServiceMonitor for the servicemonitors component.
    kube.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "svc-mon", "namespace": "apps", "labels": {"app": "svcmon"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}]}
    }));
    kube.apply(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "svc-mon", "namespace": "apps"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                     "ports": [{"name": "metrics", "port": port_of(12), "protocol": "TCP"}]}]
    }));
    kube.apply(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "svc-mon", "namespace": "apps"},
        "spec": {"selector": {"matchLabels": {"app": "svcmon"}}, "endpoints": [{"port": "metrics", "interval": "1s"}]}
    }));

    wait_http_ok(&mut receiver, receiver_port, "/-/ready");
    let mut agents: Vec<Agent> = Vec::new();
    for (i, name) in ["agent-1", "agent-2", "agent-3"].iter().enumerate() {
        let file = write_file(
            dir.path(),
            &format!("{name}.alloy"),
            &config(&kube.url(), receiver_port, name),
        );
        let mut flags = strings(&["--cluster.enabled"]);
        flags.extend(strings(FAST));
        if i > 0 {
            flags.push(format!(
                "--cluster.join-addresses=127.0.0.1:{}",
                agent_ports[0]
            ));
        }
        flags.push(file.display().to_string());
        agents.push(Agent::start(name, agent_ports[i], &flags));
    }
    for a in &mut agents {
        a.wait_healthy();
    }
    wait_for("a cluster of 3", Duration::from_secs(30), || {
        agents
            .iter()
            .all(|a| names_in_state(&a.peers(), "participant").len() == 3)
    });

    let demo = |ids: &[usize]| -> Vec<String> { ids.iter().map(|i| format!("demo-{i}")).collect() };
    let as_refs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let check = |ids: &[usize], what: &str| {
        let names = as_refs(&demo(ids));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        wait_exactly(receiver_port, "pods", "pod", &refs, what);
    };
    check(&[0, 1, 2, 3, 4, 5], "initial list");
    // Every agent sees the same six targets and together they own each once.
    wait_for("owned targets add up to 6", PROPAGATION, || {
        let owned: f64 = agents
            .iter()
            .map(|a| {
                agent_counter(
                    a,
                    "agent_scrape_targets_owned{component_id=\"prometheus.scrape.pods\"}",
                )
            })
            .sum();
        owned == 6.0
    });
    for a in &agents {
        let m = a.metrics();
        assert_eq!(
            sample(
                &m,
                "agent_scrape_targets{component_id=\"prometheus.scrape.pods\"}"
            ),
            Some(6.0),
            "{}",
            a.name
        );
    }
    // Labels from the pod's metadata reach the series.
    let s = query(receiver_port, "up{job=\"pods\",pod=\"demo-0\"}");
    assert_eq!(label(&s[0], "controller"), "demo-rs");

    // The operator component: the PodMonitor's pods, with the operator's job and labels.
    wait_exactly(
        receiver_port,
        "apps/mon",
        "pod",
        &["mon-0", "mon-1"],
        "podmonitor targets",
    );
    let s = query(receiver_port, "up{job=\"apps/mon\",pod=\"mon-0\"}");
    assert_eq!(label(&s[0], "namespace"), "apps");
    assert_eq!(label(&s[0], "container"), "app");
    assert_eq!(label(&s[0], "endpoint"), "metrics");

    wait_exactly(
        receiver_port,
        "svc-mon",
        "service",
        &["svc-mon"],
        "servicemonitor target",
    );
    let s = query(receiver_port, "up{job=\"svc-mon\"}");
    assert_eq!(label(&s[0], "endpoint"), "metrics");
    assert_eq!(label(&s[0], "namespace"), "apps");

    // A pod added appears.
    kube.apply(pod("apps", "demo-6", "demo", port_of(10), "metrics"));
    check(&[0, 1, 2, 3, 4, 5, 6], "pod added");
    // A pod relabeled out of the selector stops; a deleted pod stops.
    kube.apply(pod("apps", "demo-2", "retired", port_of(2), "metrics"));
    kube.delete("v1", "Pod", Some("apps"), "demo-3");
    check(&[0, 1, 4, 5, 6], "pod relabeled and pod deleted");

    // Every watch dropped mid-stream: the agents resume from the last resourceVersion and
    // lose nothing (the pod added right after the drop arrives).
    let before = kube.stats();
    kube.drop_watches();
    kube.apply(pod("apps", "demo-7", "demo", port_of(11), "metrics"));
    check(
        &[0, 1, 4, 5, 6, 7],
        "pod added after the watches were dropped",
    );
    let after = kube.stats();
    assert!(
        after.watches_started > before.watches_started,
        "{before:?} -> {after:?}"
    );

    // History compacted, watches dropped: resuming gets 410 Gone; the agents re-list. (A
    // change their watch does not select first, so the watch's last resourceVersion is
    // older than the compaction point, as on a busy real cluster.)
    kube.apply(pod(
        "elsewhere",
        "unrelated",
        "other",
        port_of(7),
        "metrics",
    ));
    kube.compact();
    kube.drop_watches();
    kube.delete("v1", "Pod", Some("apps"), "demo-0");
    check(&[1, 4, 5, 6, 7], "pod deleted across a 410 Gone");
    let gone = kube.stats();
    assert!(gone.watches_gone > 0, "{gone:?}");
    wait_for("every agent counted a re-list", PROPAGATION, || {
        agents.iter().all(|a| {
            agent_counter(
                a,
                "agent_kubernetes_watch_relists_total{component_id=\"discovery.kubernetes.pods\"}",
            ) >= 1.0
        })
    });
    for a in &agents {
        let events = agent_counter(
            a,
            "prometheus_sd_kubernetes_events_total{component_id=\"discovery.kubernetes.pods\",role=\"pod\",event=\"add\"}",
        );
        assert!(events >= 8.0, "{}: {events} pod add events", a.name);
    }
    // The unselected pods never showed up.
    assert!(query(receiver_port, "up{pod=~\"other-0|demo-x\"}").is_empty());
    println!("api server: {:?}", kube.stats());
}
