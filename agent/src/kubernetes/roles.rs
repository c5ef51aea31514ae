//! Kubernetes objects to targets, role by role, with Prometheus' `kubernetes_sd_configs`
//! labels and addresses (the facts of prometheus/discovery/kubernetes; the code is ours):
//! `pod`, `service`, `node` and `ingress` here, `endpoints` and `endpointslice` in
//! [`super::endpoints`]. Pure functions of the objects: no I/O, no clock.
//!
//! A [`Group`] is Prometheus' target group: labels shared by its targets plus one label set per
//! target; [`Group::into_targets`] merges them (a target's own label wins).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::discovery::Target;

pub(super) const PREFIX: &str = "__meta_kubernetes_";
pub(super) const NAMESPACE: &str = "__meta_kubernetes_namespace";

pub(super) type Labels = BTreeMap<String, String>;

/// Prometheus' target group of one object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    pub labels: Labels,
    pub targets: Vec<Labels>,
}

impl Group {
    pub fn into_targets(self) -> impl Iterator<Item = Target> {
        let shared = self.labels;
        self.targets.into_iter().map(move |own| {
            let mut all = shared.clone();
            all.extend(own);
            Target::from_map(all)
        })
    }
}

/// Prometheus' `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes
/// `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn set(ls: &mut Labels, name: &str, value: impl Into<String>) {
    ls.insert(name.to_string(), value.into());
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// `__meta_kubernetes_<kind>_label_*`, `_labelpresent_*`, `_annotation_*`,
/// `_annotationpresent_*`.
pub(super) fn add_labels_and_annotations(ls: &mut Labels, meta: &ObjectMeta, kind: &str) {
    for (k, v) in meta.labels.iter().flatten() {
        let n = sanitize(k);
        ls.insert(format!("{PREFIX}{kind}_label_{n}"), v.clone());
        ls.insert(format!("{PREFIX}{kind}_labelpresent_{n}"), "true".into());
    }
    for (k, v) in meta.annotations.iter().flatten() {
        let n = sanitize(k);
        ls.insert(format!("{PREFIX}{kind}_annotation_{n}"), v.clone());
        ls.insert(
            format!("{PREFIX}{kind}_annotationpresent_{n}"),
            "true".into(),
        );
    }
}

/// `__meta_kubernetes_<kind>_name` and the label/annotation labels.
pub(super) fn add_object_meta(ls: &mut Labels, meta: &ObjectMeta, kind: &str) {
    ls.insert(format!("{PREFIX}{kind}_name"), opt(&meta.name));
    add_labels_and_annotations(ls, meta, kind);
}

/// The node labels `attach_metadata { node = true }` adds (name, labels, annotations).
pub(super) fn node_meta_labels(node: &Node) -> Labels {
    let mut ls = Labels::new();
    add_object_meta(&mut ls, &node.metadata, "node");
    ls
}

fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) fn address(host: &str, port: i32) -> String {
    join_host_port(host, port)
}

/// The pod-level labels (Prometheus' `podLabels`), shared by the pod, endpoints and
/// endpointslice roles.
pub(super) fn pod_labels(pod: &Pod) -> Labels {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut ls = Labels::new();
    set(&mut ls, "__meta_kubernetes_pod_ip", opt(&status.pod_ip));
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.to_lowercase())
        .unwrap_or_else(|| "unknown".into());
    set(&mut ls, "__meta_kubernetes_pod_ready", ready);
    set(&mut ls, "__meta_kubernetes_pod_phase", opt(&status.phase));
    set(
        &mut ls,
        "__meta_kubernetes_pod_node_name",
        spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
    );
    set(
        &mut ls,
        "__meta_kubernetes_pod_host_ip",
        opt(&status.host_ip),
    );
    set(&mut ls, "__meta_kubernetes_pod_uid", opt(&pod.metadata.uid));
    add_object_meta(&mut ls, &pod.metadata, "pod");
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(c) = controller {
        if !c.kind.is_empty() {
            set(&mut ls, "__meta_kubernetes_pod_controller_kind", &c.kind);
        }
        if !c.name.is_empty() {
            set(&mut ls, "__meta_kubernetes_pod_controller_name", &c.name);
        }
    }
    ls
}

/// The pod's containers then its init containers, each with whether it is an init container.
pub(super) fn containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    let spec = pod.spec.as_ref();
    let main = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    main.iter()
        .map(|c| (c, false))
        .chain(init.iter().map(|c| (c, true)))
}

/// The container labels of one container port (the endpoints roles' pod enrichment).
pub(super) fn container_port_labels(
    ls: &mut Labels,
    c: &Container,
    init: bool,
    port: &k8s_openapi::api::core::v1::ContainerPort,
) {
    set(ls, "__meta_kubernetes_pod_container_name", &c.name);
    set(ls, "__meta_kubernetes_pod_container_image", opt(&c.image));
    set(
        ls,
        "__meta_kubernetes_pod_container_port_name",
        opt(&port.name),
    );
    set(
        ls,
        "__meta_kubernetes_pod_container_port_number",
        port.container_port.to_string(),
    );
    set(
        ls,
        "__meta_kubernetes_pod_container_port_protocol",
        opt(&port.protocol),
    );
    set(ls, "__meta_kubernetes_pod_container_init", init.to_string());
}

/// `role = "pod"`: one target per container port (`podIP:port`), one per container without
/// ports (`podIP`); nothing for a pod without an IP. With `node`, the pod's node labels are
/// added; `None` inside means the node is not known (yet), and the pod gives no targets, as in
/// Prometheus.
pub fn pod(pod: &Pod, node: Option<Option<&Node>>) -> Group {
    let status = pod.status.as_ref();
    let Some(ip) = status
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
    else {
        return Group::default();
    };
    let mut labels = pod_labels(pod);
    set(&mut labels, NAMESPACE, opt(&pod.metadata.namespace));
    match node {
        Some(None) => return Group::default(),
        Some(Some(n)) => labels.extend(node_meta_labels(n)),
        None => {}
    }
    let mut targets = Vec::new();
    for (c, init) in containers(pod) {
        let statuses = status.and_then(|s| {
            if init {
                s.init_container_statuses.as_ref()
            } else {
                s.container_statuses.as_ref()
            }
        });
        let id = statuses
            .into_iter()
            .flatten()
            .find(|s| s.name == c.name)
            .and_then(|s| s.container_id.clone())
            .unwrap_or_default();
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            let mut t = Labels::new();
            set(&mut t, "__address__", &ip);
            set(&mut t, "__meta_kubernetes_pod_container_name", &c.name);
            set(&mut t, "__meta_kubernetes_pod_container_id", &id);
            set(
                &mut t,
                "__meta_kubernetes_pod_container_image",
                opt(&c.image),
            );
            set(
                &mut t,
                "__meta_kubernetes_pod_container_init",
                init.to_string(),
            );
            targets.push(t);
            continue;
        }
        for p in ports {
            let mut t = Labels::new();
            set(&mut t, "__address__", address(&ip, p.container_port));
            container_port_labels(&mut t, c, init, p);
            set(&mut t, "__meta_kubernetes_pod_container_id", &id);
            targets.push(t);
        }
    }
    Group { labels, targets }
}

/// The service labels (namespace, name, labels, annotations), also added by the endpoints
/// roles.
pub(super) fn service_labels(svc: &Service) -> Labels {
    let mut ls = Labels::new();
    set(&mut ls, NAMESPACE, opt(&svc.metadata.namespace));
    add_object_meta(&mut ls, &svc.metadata, "service");
    ls
}

/// `role = "service"`: one target per service port, `NAME.NAMESPACE.svc:PORT`.
pub fn service(svc: &Service) -> Group {
    let labels = service_labels(svc);
    let spec = svc.spec.clone().unwrap_or_default();
    let name = opt(&svc.metadata.name);
    let ns = opt(&svc.metadata.namespace);
    let type_ = opt(&spec.type_);
    let mut targets = Vec::new();
    for p in spec.ports.iter().flatten() {
        let mut t = Labels::new();
        set(
            &mut t,
            "__address__",
            address(&format!("{name}.{ns}.svc"), p.port),
        );
        set(&mut t, "__meta_kubernetes_service_port_name", opt(&p.name));
        set(
            &mut t,
            "__meta_kubernetes_service_port_number",
            p.port.to_string(),
        );
        set(
            &mut t,
            "__meta_kubernetes_service_port_protocol",
            opt(&p.protocol),
        );
        set(&mut t, "__meta_kubernetes_service_type", &type_);
        if type_ == "ExternalName" {
            set(
                &mut t,
                "__meta_kubernetes_service_external_name",
                opt(&spec.external_name),
            );
        } else {
            set(
                &mut t,
                "__meta_kubernetes_service_cluster_ip",
                opt(&spec.cluster_ip),
            );
        }
        if type_ == "LoadBalancer" {
            let ips: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.clone().filter(|ip| !ip.is_empty()))
                .collect();
            let value = if ips.is_empty() {
                opt(&spec.load_balancer_ip)
            } else {
                ips.join(",")
            };
            set(&mut t, "__meta_kubernetes_service_loadbalancer_ip", value);
        }
        targets.push(t);
    }
    Group { labels, targets }
}

/// Address types in the order Prometheus picks the node's address.
const NODE_ADDRESS_ORDER: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// `role = "node"`: one target, the first address by type priority and the kubelet port;
/// `instance` is the node name; `__meta_kubernetes_node_address_<type>` is the first address of
/// each type. A node without an address gives no target.
pub fn node(node: &Node) -> Group {
    let mut labels = Labels::new();
    let status = node.status.clone().unwrap_or_default();
    set(
        &mut labels,
        "__meta_kubernetes_node_provider_id",
        node.spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default(),
    );
    for c in status.conditions.iter().flatten() {
        let name = sanitize(&c.type_.to_lowercase());
        labels.insert(
            format!("{PREFIX}node_condition_{name}"),
            c.status.to_lowercase(),
        );
    }
    add_object_meta(&mut labels, &node.metadata, "node");
    let mut by_type: BTreeMap<&str, &str> = BTreeMap::new();
    for a in status.addresses.iter().flatten() {
        by_type
            .entry(a.type_.as_str())
            .or_insert(a.address.as_str());
    }
    let Some(host) = NODE_ADDRESS_ORDER.iter().find_map(|t| by_type.get(t)) else {
        return Group {
            labels,
            targets: Vec::new(),
        };
    };
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|k| k.port)
        .unwrap_or(0);
    let mut t = Labels::new();
    set(&mut t, "__address__", address(host, port));
    set(&mut t, "instance", opt(&node.metadata.name));
    for (ty, a) in &by_type {
        t.insert(
            sanitize(&format!("{PREFIX}node_address_{ty}")),
            a.to_string(),
        );
    }
    Group {
        labels,
        targets: vec![t],
    }
}

/// A TLS host pattern matches a host exactly or as `*.rest` with the same number of parts.
fn matches_host_pattern(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p[0] == "*" && p.len() == h.len() && p[1..] == h[1..]
}

/// `role = "ingress"`: one target per rule and path, the rule's host as address; the scheme
/// is https when a TLS entry covers the host; a rule without paths gives `/`.
pub fn ingress(ing: &Ingress) -> Group {
    let mut labels = Labels::new();
    set(&mut labels, NAMESPACE, opt(&ing.metadata.namespace));
    let spec = ing.spec.clone().unwrap_or_default();
    if let Some(class) = &spec.ingress_class_name {
        set(&mut labels, "__meta_kubernetes_ingress_class_name", class);
    }
    add_object_meta(&mut labels, &ing.metadata, "ingress");
    let tls_hosts: Vec<String> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.clone().unwrap_or_default())
        .collect();
    let mut targets = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let host = opt(&rule.host);
        let scheme = if tls_hosts.iter().any(|p| matches_host_pattern(p, &host)) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<String> = match &rule.http {
            None => vec!["/".into()],
            Some(h) => h
                .paths
                .iter()
                .map(|p| opt(&p.path))
                .map(|p| if p.is_empty() { "/".into() } else { p })
                .collect(),
        };
        for path in paths {
            let mut t = Labels::new();
            set(&mut t, "__address__", &host);
            set(&mut t, "__meta_kubernetes_ingress_scheme", scheme);
            set(&mut t, "__meta_kubernetes_ingress_host", &host);
            set(&mut t, "__meta_kubernetes_ingress_path", path);
            targets.push(t);
        }
    }
    Group { labels, targets }
}
