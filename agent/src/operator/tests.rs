//! Monitor objects (shaped as the monitoring.coreos.com/v1 CRDs document them) to jobs and
//! targets, over targets the Kubernetes roles build from real-shaped pods and endpoints.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde_json::json;

use super::configgen::jobs;
use super::monitor::Monitor;
use crate::config::{Config, OperatorConfig};
use crate::discovery::Target;
use crate::kubernetes::endpoints::{endpoints, Lookup};
use crate::kubernetes::roles::pod;

fn operator(src: &str) -> OperatorConfig {
    Config::from_str(src, "t.alloy")
        .unwrap()
        .operators
        .remove(0)
}

fn a_pod(name: &str, ip: &str, app: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app, "team": "payments"}},
        "spec": {"containers": [{"name": "app", "image": "i", "ports": [
            {"name": "metrics", "containerPort": 9100, "protocol": "TCP"},
            {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"podIP": ip, "phase": phase}
    }))
    .unwrap()
}

fn addresses(ts: &[Target]) -> Vec<&str> {
    let mut a: Vec<&str> = ts.iter().map(|t| t.address()).collect();
    a.sort();
    a
}

#[test]
fn a_pod_monitor_endpoint_keeps_its_pods_port_and_sets_the_operator_labels() {
    let op = operator(
        r#"prometheus.operator.podmonitors "pm" {
  forward_to = []
  scrape { default_scrape_interval = "30s" }
  rule { target_label = "cluster"  replacement = "eu1" }
}"#,
    );
    let m = Monitor::from_object(
        "shop",
        "web",
        &json!({
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "team", "operator": "In", "values": ["payments"]}]},
            "podTargetLabels": ["team"],
            "podMetricsEndpoints": [{"port": "metrics", "interval": "15s", "path": "/m",
                "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance", "action": "Replace"}],
                "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}]}]
        }),
    )
    .unwrap();
    let js = jobs(&m, &op).unwrap();
    assert_eq!(js.len(), 1);
    let job = &js[0];
    assert_eq!(job.scrape.job_name, "podMonitor/shop/web/0");
    assert_eq!(job.scrape.scrape_interval, Duration::from_secs(15));
    assert_eq!(job.scrape.metrics_path, "/m");
    assert_eq!(job.metric_rules.len(), 1);
    let discovered: Vec<Target> = [
        a_pod("web-1", "10.0.0.1", "web", "Running"),
        a_pod("web-2", "10.0.0.2", "web", "Succeeded"),
        a_pod("db-1", "10.0.0.3", "db", "Running"),
    ]
    .iter()
    .flat_map(|p| pod(p, None).into_targets())
    .collect();
    let ts = job.targets(&discovered);
    assert_eq!(addresses(&ts), ["10.0.0.1:9100"]);
    let t = &ts[0];
    for (k, v) in [
        ("job", "shop/web"),
        ("namespace", "shop"),
        ("pod", "web-1"),
        ("container", "app"),
        ("endpoint", "metrics"),
        ("team", "payments"),
        ("instance", "web-1"),
        ("cluster", "eu1"),
        ("__tmp_prometheus_job_name", "podMonitor/shop/web/0"),
    ] {
        assert_eq!(t.get(k), Some(v), "{k}");
    }
    // The monitor's own namespace only, by default.
    let mut other_ns = discovered[0].clone();
    other_ns.insert("__meta_kubernetes_namespace", "other");
    assert!(job.targets(&[other_ns]).is_empty());
}

#[test]
fn a_service_monitor_selects_by_service_labels_and_names_the_job_after_the_service() {
    let op = operator(r#"prometheus.operator.servicemonitors "sm" { forward_to = [] }"#);
    let m = Monitor::from_object(
        "shop",
        "web",
        &json!({
            "selector": {"matchLabels": {"app": "web"}},
            "namespaceSelector": {"any": true},
            "jobLabel": "app.kubernetes.io/name",
            "targetLabels": ["tier"],
            "endpoints": [{"port": "metrics"}, {"targetPort": 8080, "scheme": "HTTPS"}]
        }),
    )
    .unwrap();
    let js = jobs(&m, &op).unwrap();
    assert_eq!(js.len(), 2);
    assert_eq!(js[1].scrape.job_name, "serviceMonitor/shop/web/1");
    assert_eq!(js[1].scrape.scheme, "https");
    assert_eq!(js[0].namespaces, None);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web-svc", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
        "spec": {"ports": [{"name": "metrics", "port": 9100}]}
    }))
    .unwrap();
    let eps: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "web-svc", "namespace": "shop"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}],
                     "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}, {"name": "http", "port": 8080, "protocol": "TCP"}]}]
    }))
    .unwrap();
    let mut lookup = Lookup::default();
    lookup.services.insert("shop/web-svc".into(), Arc::new(svc));
    lookup.pods.insert(
        "shop/web-1".into(),
        Arc::new(a_pod("web-1", "10.0.0.1", "web", "Running")),
    );
    let discovered: Vec<Target> = endpoints(&eps, &lookup).into_targets().collect();
    let ts = js[0].targets(&discovered);
    assert_eq!(addresses(&ts), ["10.0.0.1:9100"]);
    for (k, v) in [
        ("job", "web-svc"),
        ("service", "web-svc"),
        ("pod", "web-1"),
        ("namespace", "shop"),
        ("tier", "front"),
        ("endpoint", "metrics"),
    ] {
        assert_eq!(ts[0].get(k), Some(v), "{k}");
    }
    // targetPort 8080: the container port number, endpoint label "8080".
    let ts = js[1].targets(&discovered);
    assert_eq!(addresses(&ts), ["10.0.0.1:8080"]);
    assert_eq!(ts[0].get("endpoint"), Some("8080"));
}

#[test]
fn a_broken_monitor_is_refused_with_its_name() {
    let op = operator(r#"prometheus.operator.podmonitors "pm" { forward_to = [] }"#);
    let m = Monitor::from_object(
        "shop",
        "bad",
        &json!({"podMetricsEndpoints": [{"port": "m", "interval": "soon"}]}),
    )
    .unwrap();
    let e = jobs(&m, &op).unwrap_err();
    assert!(
        e.contains("podMonitor shop/bad") && e.contains("interval"),
        "{e}"
    );
    let e =
        Monitor::from_object("shop", "worse", &json!({"podMetricsEndpoints": "x"})).unwrap_err();
    assert!(e.contains("shop/worse"), "{e}");
}
