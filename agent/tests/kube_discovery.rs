//! `discovery.kubernetes` as a library against the test API server (kube_support): a
//! kubeconfig file as the client configuration, the endpoints role joining endpoints, services,
//! pods and nodes from four watches, a burst of pod events passed on as one list, and an API
//! server that refuses or is gone counted as failures without publishing anything.

mod kube_support;

use std::time::{Duration, Instant};

use agent::config::Config;
use agent::discovery::Target;
use agent::kubernetes::KubernetesDiscovery;
use kube_support::KubeApi;
use serde_json::json;
use tokio::sync::watch;

fn discovery_config(src: &str) -> agent::config::KubernetesDiscoveryConfig {
    let src = format!("{src}\nprometheus.scrape \"s\" {{\n  targets = discovery.kubernetes.k.targets\n  forward_to = []\n}}\n");
    Config::from_str(&src, "k.alloy")
        .unwrap_or_else(|e| panic!("{e}"))
        .kubernetes_discoveries
        .remove(0)
}

async fn wait_targets(
    rx: &mut watch::Receiver<Vec<Target>>,
    what: &str,
    pred: impl Fn(&[Target]) -> bool,
) -> Vec<Target> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if pred(&rx.borrow()) {
            return rx.borrow().clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, rx.changed()).await.is_err() {
            panic!("{what}: not reached; last targets {:?}", rx.borrow());
        }
    }
}

fn pod(name: &str, ip: &str, port: u16) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "web:1",
                 "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "False"}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_role_from_a_kubeconfig_joins_services_pods_and_nodes() {
    let kube = KubeApi::start().await;
    kube.require_bearer_token("kc-token");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: u\n  user:\n    token: kc-token\ncontexts:\n- name: c\n  context:\n    cluster: test\n    user: u\ncurrent-context: c\n",
            kube.url()
        ),
    )
    .unwrap();
    kube.apply(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]}}));
    kube.apply(pod("web-0", "10.0.0.1", 8080));
    kube.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "apps", "labels": {"tier": "front"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 80, "protocol": "TCP"}]}}));
    kube.apply(json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "apps"},
        "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1", "nodeName": "node-1",
                        "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "apps"}}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}));
    let cfg = discovery_config(&format!(
        "discovery.kubernetes \"k\" {{\n  role = \"endpoints\"\n  kubeconfig_file = \"{}\"\n  attach_metadata {{ node = true }}\n}}",
        kubeconfig.display()
    ));
    let d = KubernetesDiscovery::spawn(cfg);
    let mut rx = d.handle.targets();
    let ts = wait_targets(&mut rx, "the endpoint target", |t| t.len() == 1).await;
    let t = &ts[0];
    for (k, v) in [
        ("__address__", "10.0.0.1:8080"),
        ("__meta_kubernetes_endpoint_ready", "false"),
        ("__meta_kubernetes_service_label_tier", "front"),
        ("__meta_kubernetes_pod_name", "web-0"),
        ("__meta_kubernetes_pod_ready", "false"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        (
            "__meta_kubernetes_node_label_topology_kubernetes_io_zone",
            "z1",
        ),
    ] {
        assert_eq!(t.get(k), Some(v), "{k} in {t:?}");
    }
    // A change to the pod (another watch) reaches the endpoint target.
    let mut ready = pod("web-0", "10.0.0.1", 8080);
    ready["metadata"]["labels"]["version"] = json!("2");
    kube.apply(ready);
    wait_targets(&mut rx, "the pod's new label", |t| {
        t.first()
            .and_then(|t| t.get("__meta_kubernetes_pod_label_version"))
            == Some("2")
    })
    .await;
    let reqs = kube.requests();
    for path in [
        "/api/v1/endpoints",
        "/api/v1/services",
        "/api/v1/pods",
        "/api/v1/nodes",
    ] {
        assert!(
            reqs.iter()
                .any(|r| r.contains(&format!("{path}?")) && r.contains("watch=true")),
            "no watch of {path} in {reqs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pod_events_becomes_one_new_target_list() {
    let kube = KubeApi::start().await;
    let cfg = discovery_config(&format!(
        "discovery.kubernetes \"k\" {{\n  role = \"pod\"\n  api_server = \"{}\"\n}}",
        kube.url()
    ));
    kube.apply(pod("seed", "10.1.0.0", 80));
    let d = KubernetesDiscovery::spawn(cfg);
    let mut rx = d.handle.targets();
    wait_targets(&mut rx, "the first pod", |t| t.len() == 1).await;
    rx.mark_unchanged();
    for i in 0..300 {
        kube.apply(pod(
            &format!("p-{i}"),
            &format!("10.1.{}.{}", i / 250, i % 250 + 1),
            80,
        ));
    }
    let mut lists = 0;
    let end = Instant::now() + Duration::from_secs(4);
    while let Ok(Ok(())) = tokio::time::timeout(end - Instant::now(), rx.changed()).await {
        lists += 1;
    }
    assert_eq!(rx.borrow().len(), 301);
    // The default debounce is 1 s: a burst within it is one list (two if it straddles).
    assert!((1..=2).contains(&lists), "{lists} lists for one burst");
    let events = d
        .counters
        .events
        .lock()
        .unwrap()
        .get(&("pod", "add"))
        .copied();
    assert_eq!(events, Some(301));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_or_missing_api_server_is_counted_and_publishes_nothing() {
    let kube = KubeApi::start().await;
    kube.require_bearer_token("right");
    kube.apply(pod("p", "10.2.0.1", 80));
    let wrong = discovery_config(&format!(
        "discovery.kubernetes \"k\" {{\n  role = \"pod\"\n  api_server = \"{}\"\n  bearer_token = \"wrong\"\n}}",
        kube.url()
    ));
    let gone = discovery_config(
        "discovery.kubernetes \"k\" {\n  role = \"pod\"\n  api_server = \"http://127.0.0.1:9\"\n}",
    );
    let a = KubernetesDiscovery::spawn(wrong);
    let b = KubernetesDiscovery::spawn(gone);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a
        .counters
        .failures
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        || b.counters
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    {
        assert!(Instant::now() < deadline, "failures not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kube.stats().unauthorized > 0);
    // The error reaches the component (as the status page and logs show it), without the
    // token.
    while a.handle.errors().is_empty() {
        assert!(Instant::now() < deadline, "no error on the component");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = a.handle.errors()[0].message.clone();
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the token leaked into an error: {err}"
    );
    assert!(a.handle.targets().borrow().is_empty());
    assert!(b.handle.targets().borrow().is_empty());
}
