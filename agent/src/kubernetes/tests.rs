//! Each role's targets and labels from objects shaped as the Kubernetes API reference shows
//! them (v1 Pod, Service, Endpoints, Node; discovery.k8s.io/v1 EndpointSlice;
//! networking.k8s.io/v1 Ingress), against the labels Prometheus' kubernetes_sd documents.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;

use super::endpoints::{endpoints, endpointslice, Lookup};
use super::roles::{ingress, node, pod, service};
use super::watch::Strip;
use crate::discovery::Target;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn targets(g: super::roles::Group) -> Vec<Target> {
    let mut t: Vec<Target> = g.into_targets().collect();
    t.sort_by(|a, b| a.address().cmp(b.address()));
    t
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn web_pod() -> Pod {
    obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9-x2x", "namespace": "shop", "uid": "1d3c-77",
            "labels": {"app.kubernetes.io/name": "web"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9", "uid": "9", "controller": true}],
            "managedFields": [{"manager": "kubelet", "operation": "Update"}]
        },
        "spec": {
            "nodeName": "node-a",
            "containers": [
                {"name": "app", "image": "shop/web:1.2", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9100, "protocol": "TCP"}
                ], "env": [{"name": "A", "value": "b"}]},
                {"name": "sidecar", "image": "envoy:1"}
            ],
            "initContainers": [{"name": "migrate", "image": "shop/migrate:1", "ports": [{"containerPort": 9999, "protocol": "TCP"}]}],
            "volumes": [{"name": "v", "emptyDir": {}}]
        },
        "status": {
            "phase": "Running", "podIP": "10.1.2.3", "hostIP": "192.168.0.10",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "containerID": "containerd://abc", "image": "shop/web:1.2", "imageID": "x", "ready": true, "restartCount": 0},
                {"name": "sidecar", "containerID": "containerd://def", "image": "envoy:1", "imageID": "y", "ready": true, "restartCount": 0}
            ]
        }
    }))
}

const POD_SHARED: &[(&str, &str)] = &[
    ("__meta_kubernetes_namespace", "shop"),
    (
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "true",
    ),
    (
        "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
        "true",
    ),
    ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
    ("__meta_kubernetes_pod_controller_name", "web-7d4b9"),
    ("__meta_kubernetes_pod_host_ip", "192.168.0.10"),
    ("__meta_kubernetes_pod_ip", "10.1.2.3"),
    ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "web"),
    (
        "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
        "true",
    ),
    ("__meta_kubernetes_pod_name", "web-7d4b9-x2x"),
    ("__meta_kubernetes_pod_node_name", "node-a"),
    ("__meta_kubernetes_pod_phase", "Running"),
    ("__meta_kubernetes_pod_ready", "true"),
    ("__meta_kubernetes_pod_uid", "1d3c-77"),
];

#[test]
fn pod_role_gives_one_target_per_container_port_and_one_per_portless_container() {
    let mut p = web_pod();
    p.strip(); // what the watch keeps must be enough
    let t = targets(pod(&p, None));
    let addrs: Vec<&str> = t.iter().map(|t| t.address()).collect();
    assert_eq!(
        addrs,
        [
            "10.1.2.3",
            "10.1.2.3:8080",
            "10.1.2.3:9100",
            "10.1.2.3:9999"
        ]
    );
    let mut want = labels(POD_SHARED);
    want.extend(labels(&[
        ("__address__", "10.1.2.3:9100"),
        ("__meta_kubernetes_pod_container_id", "containerd://abc"),
        ("__meta_kubernetes_pod_container_image", "shop/web:1.2"),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ("__meta_kubernetes_pod_container_port_number", "9100"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]));
    assert_eq!(t[2].labels(), &want);
    // The portless sidecar: address without port, no port labels.
    assert_eq!(
        t[0].get("__meta_kubernetes_pod_container_name"),
        Some("sidecar")
    );
    assert_eq!(
        t[0].get("__meta_kubernetes_pod_container_port_number"),
        None
    );
    assert_eq!(
        t[0].get("__meta_kubernetes_pod_container_id"),
        Some("containerd://def")
    );
    // The init container, with an empty port name and id (no status yet).
    assert_eq!(
        t[3].get("__meta_kubernetes_pod_container_init"),
        Some("true")
    );
    assert_eq!(
        t[3].get("__meta_kubernetes_pod_container_port_name"),
        Some("")
    );
    assert_eq!(t[3].get("__meta_kubernetes_pod_container_id"), Some(""));
}

#[test]
fn a_pod_without_ip_or_with_an_unknown_node_gives_nothing() {
    let mut p = web_pod();
    p.status.as_mut().unwrap().pod_ip = None;
    assert!(pod(&p, None).targets.is_empty());
    let p = web_pod();
    assert!(pod(&p, Some(None)).targets.is_empty());
    let n: Node = obj(
        json!({"metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "z1"}}}),
    );
    let t = targets(pod(&p, Some(Some(&n))));
    assert_eq!(t[0].get("__meta_kubernetes_node_name"), Some("node-a"));
    assert_eq!(
        t[0].get("__meta_kubernetes_node_label_topology_kubernetes_io_zone"),
        Some("z1")
    );
}

#[test]
fn service_role_addresses_the_service_dns_name_per_port() {
    let svc: Service = obj(json!({
        "metadata": {"name": "web", "namespace": "shop", "labels": {"team": "a"}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.7", "loadBalancerIP": "1.1.1.1",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "34.1.1.1"}, {"hostname": "lb.example"}, {"ip": "34.1.1.2"}]}}
    }));
    let t = targets(service(&svc));
    let want = labels(&[
        ("__address__", "web.shop.svc:80"),
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_service_cluster_ip", "10.96.0.7"),
        ("__meta_kubernetes_service_label_team", "a"),
        ("__meta_kubernetes_service_labelpresent_team", "true"),
        (
            "__meta_kubernetes_service_loadbalancer_ip",
            "34.1.1.1,34.1.1.2",
        ),
        ("__meta_kubernetes_service_name", "web"),
        ("__meta_kubernetes_service_port_name", "http"),
        ("__meta_kubernetes_service_port_number", "80"),
        ("__meta_kubernetes_service_port_protocol", "TCP"),
        ("__meta_kubernetes_service_type", "LoadBalancer"),
    ]);
    assert_eq!(t[0].labels(), &want);
    let ext: Service = obj(json!({
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com", "ports": [{"port": 5432, "protocol": "TCP"}]}
    }));
    let t = targets(service(&ext));
    assert_eq!(
        t[0].get("__meta_kubernetes_service_external_name"),
        Some("db.example.com")
    );
    assert_eq!(t[0].get("__meta_kubernetes_service_cluster_ip"), None);
}

fn lookup_with(pod: Pod, svc: Service) -> Lookup {
    let mut l = Lookup::default();
    l.pods.insert("shop/web-7d4b9-x2x".into(), Arc::new(pod));
    l.services.insert("shop/web".into(), Arc::new(svc));
    l
}

fn web_service() -> Service {
    obj(
        json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"team": "a"}},
               "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.7", "ports": [{"port": 80, "protocol": "TCP"}]}}),
    )
}

#[test]
fn endpoints_role_merges_service_pod_and_container_port_labels() {
    let eps: Endpoints = obj(json!({
        "metadata": {"name": "web", "namespace": "shop", "labels": {"svc": "web"}},
        "subsets": [{
            "addresses": [{"ip": "10.1.2.3", "nodeName": "node-a",
                           "targetRef": {"kind": "Pod", "name": "web-7d4b9-x2x", "namespace": "shop", "uid": "1d3c-77"}}],
            "notReadyAddresses": [{"ip": "10.1.9.9", "hostname": "web-1"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }]
    }));
    let t = targets(endpoints(&eps, &lookup_with(web_pod(), web_service())));
    let addrs: Vec<&str> = t.iter().map(|t| t.address()).collect();
    // 9100 and the init container's 9999 are pod ports no endpoint port covers.
    assert_eq!(
        addrs,
        [
            "10.1.2.3:8080",
            "10.1.2.3:9100",
            "10.1.2.3:9999",
            "10.1.9.9:8080"
        ]
    );
    let mut want = labels(POD_SHARED);
    want.remove("__meta_kubernetes_namespace");
    want.extend(labels(&[
        ("__address__", "10.1.2.3:8080"),
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
        (
            "__meta_kubernetes_endpoint_address_target_name",
            "web-7d4b9-x2x",
        ),
        ("__meta_kubernetes_endpoint_node_name", "node-a"),
        ("__meta_kubernetes_endpoint_port_name", "http"),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_ready", "true"),
        ("__meta_kubernetes_endpoints_label_svc", "web"),
        ("__meta_kubernetes_endpoints_labelpresent_svc", "true"),
        ("__meta_kubernetes_endpoints_name", "web"),
        ("__meta_kubernetes_pod_container_image", "shop/web:1.2"),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
        ("__meta_kubernetes_pod_container_port_number", "8080"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ("__meta_kubernetes_service_label_team", "a"),
        ("__meta_kubernetes_service_labelpresent_team", "true"),
        ("__meta_kubernetes_service_name", "web"),
    ]));
    assert_eq!(t[0].labels(), &want);
    assert_eq!(t[3].get("__meta_kubernetes_endpoint_ready"), Some("false"));
    assert_eq!(
        t[3].get("__meta_kubernetes_endpoint_hostname"),
        Some("web-1")
    );
    assert_eq!(t[3].get("__meta_kubernetes_pod_name"), None);
    assert_eq!(t[1].get("__meta_kubernetes_endpoint_port_name"), None);
    assert_eq!(
        t[1].get("__meta_kubernetes_pod_container_port_name"),
        Some("metrics")
    );
}

#[test]
fn endpointslice_role_has_conditions_zone_and_skips_a_dual_stack_secondary_family() {
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc12", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": true, "serving": true, "terminating": false},
                       "hostname": "h", "nodeName": "node-a", "zone": "z1",
                       "targetRef": {"kind": "Pod", "name": "web-7d4b9-x2x", "namespace": "shop"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
    });
    let eps: EndpointSlice = obj(slice.clone());
    let t = targets(endpointslice(&eps, &lookup_with(web_pod(), web_service())));
    assert_eq!(t.len(), 3);
    let p = "__meta_kubernetes_endpointslice_";
    let t0 = &t[0];
    for (k, v) in [
        ("address_type", "IPv4"),
        ("name", "web-abc12"),
        ("port", "8080"),
        ("port_name", "http"),
        ("port_protocol", "TCP"),
        ("port_app_protocol", "http"),
        ("endpoint_conditions_ready", "true"),
        ("endpoint_conditions_serving", "true"),
        ("endpoint_conditions_terminating", "false"),
        ("endpoint_hostname", "h"),
        ("endpoint_node_name", "node-a"),
        ("endpoint_zone", "z1"),
        ("address_target_kind", "Pod"),
        ("address_target_name", "web-7d4b9-x2x"),
        ("label_kubernetes_io_service_name", "web"),
    ] {
        assert_eq!(t0.get(&format!("{p}{k}")), Some(v), "{k}");
    }
    assert_eq!(t0.get("__meta_kubernetes_service_name"), Some("web"));
    assert_eq!(
        t0.get("__meta_kubernetes_pod_container_port_name"),
        Some("http")
    );

    let mut dual = web_service();
    let spec = dual.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("PreferDualStack".into());
    spec.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
    let t = targets(endpointslice(&eps, &lookup_with(web_pod(), dual)));
    assert!(t.is_empty());
}

#[test]
fn node_role_picks_the_address_by_type_priority_and_the_kubelet_port() {
    let n: Node = obj(json!({
        "metadata": {"name": "node-a", "labels": {"kubernetes.io/os": "linux"}},
        "spec": {"providerID": "aws:///eu-west-1a/i-1"},
        "status": {
            "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "ExternalIP", "address": "34.0.0.1"},
                          {"type": "InternalIP", "address": "192.168.0.10"}, {"type": "InternalIP", "address": "192.168.0.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]
        }
    }));
    let t = targets(node(&n));
    let want = labels(&[
        ("__address__", "192.168.0.10:10250"),
        ("instance", "node-a"),
        ("__meta_kubernetes_node_address_ExternalIP", "34.0.0.1"),
        ("__meta_kubernetes_node_address_Hostname", "node-a"),
        ("__meta_kubernetes_node_address_InternalIP", "192.168.0.10"),
        ("__meta_kubernetes_node_condition_memorypressure", "false"),
        ("__meta_kubernetes_node_condition_ready", "true"),
        ("__meta_kubernetes_node_label_kubernetes_io_os", "linux"),
        (
            "__meta_kubernetes_node_labelpresent_kubernetes_io_os",
            "true",
        ),
        ("__meta_kubernetes_node_name", "node-a"),
        (
            "__meta_kubernetes_node_provider_id",
            "aws:///eu-west-1a/i-1",
        ),
    ]);
    assert_eq!(t[0].labels(), &want);
    let bare: Node = obj(json!({"metadata": {"name": "x"}}));
    assert!(node(&bare).targets.is_empty());
}

#[test]
fn ingress_role_gives_one_target_per_rule_path_with_the_tls_scheme() {
    let ing: Ingress = obj(json!({
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["*.example.com"], "secretName": "tls"}],
            "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                {"host": "a.b.example.com"}
            ]
        }
    }));
    let t: Vec<Target> = ingress(&ing).into_targets().collect();
    let got: Vec<(&str, &str, &str)> = t
        .iter()
        .map(|t| {
            (
                t.address(),
                t.get("__meta_kubernetes_ingress_scheme").unwrap(),
                t.get("__meta_kubernetes_ingress_path").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("shop.example.com", "https", "/api"),
            ("shop.example.com", "https", "/"),
            ("a.b.example.com", "http", "/"),
        ]
    );
    assert_eq!(
        t[0].get("__meta_kubernetes_ingress_class_name"),
        Some("nginx")
    );
    assert_eq!(t[0].get("__meta_kubernetes_ingress_name"), Some("shop"));
}

#[test]
fn stripping_keeps_what_the_labels_need_and_drops_the_rest() {
    let full = web_pod();
    let mut stripped = full.clone();
    stripped.strip();
    assert!(stripped.metadata.managed_fields.is_none());
    assert!(stripped.spec.as_ref().unwrap().volumes.is_none());
    assert!(stripped.spec.as_ref().unwrap().containers[0].env.is_none());
    assert_eq!(pod(&full, None), pod(&stripped, None));
    let before = serde_json::to_vec(&full).unwrap().len();
    let after = serde_json::to_vec(&stripped).unwrap().len();
    assert!(after < before, "{after} >= {before}");
}
