//! `role = "endpoints"` and `role = "endpointslice"`: one target per address and port, enriched
//! with the labels of the service of the same name (endpoints) or of the
//! `kubernetes.io/service-name` label (endpointslice), of the pod an address points at (and its
//! container port), and of the node with `attach_metadata { node = true }`; the ports of those
//! pods that no endpoint port covers become targets of their own. Prometheus' facts, our code.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::roles::{
    add_object_meta, address, container_port_labels, containers, node_meta_labels, pod_labels,
    service_labels, Group, Labels, NAMESPACE,
};

/// The objects the endpoints roles look up, keyed `namespace/name` (nodes by name).
#[derive(Default)]
pub struct Lookup {
    pub pods: BTreeMap<String, Arc<Pod>>,
    pub services: BTreeMap<String, Arc<Service>>,
    /// `Some` with `attach_metadata { node = true }`.
    pub nodes: Option<BTreeMap<String, Arc<Node>>>,
}

impl Lookup {
    fn pod(&self, r: Option<&ObjectReference>) -> Option<&Pod> {
        let r = r.filter(|r| r.kind.as_deref() == Some("Pod"))?;
        let key = format!(
            "{}/{}",
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default()
        );
        self.pods.get(&key).map(|p| &**p)
    }

    fn add_node(&self, t: &mut Labels, name: Option<&str>) {
        if let (Some(nodes), Some(name)) = (&self.nodes, name) {
            if let Some(n) = nodes.get(name) {
                t.extend(node_meta_labels(n));
            }
        }
    }
}

fn set(ls: &mut Labels, name: &str, value: impl Into<String>) {
    ls.insert(name.to_string(), value.into());
}

/// Pods seen through an address, with the ports that reached them; their other container
/// ports become targets too.
#[derive(Default)]
struct SeenPods<'a> {
    pods: BTreeMap<String, (&'a Pod, Vec<i32>)>,
}

impl<'a> SeenPods<'a> {
    /// Merges the pod's labels and the matching container port into `t`.
    fn enrich(&mut self, t: &mut Labels, pod: &'a Pod, port: Option<i32>) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let entry = self.pods.entry(key).or_insert((pod, Vec::new()));
        t.extend(pod_labels(pod));
        if let Some(port) = port {
            'found: for (c, init) in containers(pod) {
                for cp in c.ports.iter().flatten() {
                    if cp.container_port == port {
                        container_port_labels(t, c, init, cp);
                        break 'found;
                    }
                }
            }
            entry.1.push(port);
        }
    }

    /// One target per container port of a seen pod that no endpoint port covered.
    fn remaining(self, targets: &mut Vec<Labels>) {
        for (pod, seen) in self.pods.into_values() {
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            if ip.is_empty() {
                continue;
            }
            for (c, init) in containers(pod) {
                for cp in c.ports.iter().flatten() {
                    if seen.contains(&cp.container_port) {
                        continue;
                    }
                    let mut t = Labels::new();
                    set(&mut t, "__address__", address(&ip, cp.container_port));
                    container_port_labels(&mut t, c, init, cp);
                    t.extend(pod_labels(pod));
                    targets.push(t);
                }
            }
        }
    }
}

/// `role = "endpoints"`.
pub fn endpoints(eps: &Endpoints, lookup: &Lookup) -> Group {
    let ns = eps.metadata.namespace.clone().unwrap_or_default();
    let name = eps.metadata.name.clone().unwrap_or_default();
    let mut labels = Labels::new();
    set(&mut labels, NAMESPACE, &ns);
    if let Some(svc) = lookup.services.get(&format!("{ns}/{name}")) {
        labels.extend(service_labels(svc));
    }
    add_object_meta(&mut labels, &eps.metadata, "endpoints");
    let mut seen = SeenPods::default();
    let mut targets = Vec::new();
    for subset in eps.subsets.iter().flatten() {
        for port in subset.ports.iter().flatten() {
            let ready = subset.addresses.iter().flatten().map(|a| (a, "true"));
            let not_ready = subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, "false"));
            for (addr, ready) in ready.chain(not_ready) {
                let mut t = Labels::new();
                set(&mut t, "__address__", address(&addr.ip, port.port));
                set(
                    &mut t,
                    "__meta_kubernetes_endpoint_port_name",
                    port.name.clone().unwrap_or_default(),
                );
                set(
                    &mut t,
                    "__meta_kubernetes_endpoint_port_protocol",
                    port.protocol.clone().unwrap_or_default(),
                );
                set(&mut t, "__meta_kubernetes_endpoint_ready", ready);
                if let Some(r) = &addr.target_ref {
                    set(
                        &mut t,
                        "__meta_kubernetes_endpoint_address_target_kind",
                        r.kind.clone().unwrap_or_default(),
                    );
                    set(
                        &mut t,
                        "__meta_kubernetes_endpoint_address_target_name",
                        r.name.clone().unwrap_or_default(),
                    );
                }
                if let Some(n) = &addr.node_name {
                    set(&mut t, "__meta_kubernetes_endpoint_node_name", n);
                }
                if let Some(h) = addr.hostname.as_ref().filter(|h| !h.is_empty()) {
                    set(&mut t, "__meta_kubernetes_endpoint_hostname", h);
                }
                let node_ref = addr.node_name.clone().or_else(|| {
                    addr.target_ref
                        .as_ref()
                        .filter(|r| r.kind.as_deref() == Some("Node"))
                        .and_then(|r| r.name.clone())
                });
                lookup.add_node(&mut t, node_ref.as_deref());
                if let Some(pod) = lookup.pod(addr.target_ref.as_ref()) {
                    seen.enrich(&mut t, pod, Some(port.port));
                }
                targets.push(t);
            }
        }
    }
    seen.remaining(&mut targets);
    Group { labels, targets }
}

/// `role = "endpointslice"`. A slice of a dual-stack service's secondary IP family gives no
/// targets (its addresses are the same endpoints again), as in Prometheus.
pub fn endpointslice(eps: &EndpointSlice, lookup: &Lookup) -> Group {
    let ns = eps.metadata.namespace.clone().unwrap_or_default();
    let mut labels = Labels::new();
    set(&mut labels, NAMESPACE, &ns);
    set(
        &mut labels,
        "__meta_kubernetes_endpointslice_address_type",
        &eps.address_type,
    );
    add_object_meta(&mut labels, &eps.metadata, "endpointslice");
    let svc = eps
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .and_then(|name| lookup.services.get(&format!("{ns}/{name}")));
    if let Some(svc) = svc {
        labels.extend(service_labels(svc));
        if secondary_family(svc, &eps.address_type) {
            return Group {
                labels,
                targets: Vec::new(),
            };
        }
    }
    let mut seen = SeenPods::default();
    let mut targets = Vec::new();
    for ep in &eps.endpoints {
        for port in eps.ports.iter().flatten() {
            for addr in &ep.addresses {
                let mut t = Labels::new();
                let a = match port.port {
                    Some(p) => address(addr, p),
                    None => addr.clone(),
                };
                set(&mut t, "__address__", a);
                let p = "__meta_kubernetes_endpointslice_";
                if let Some(v) = &port.name {
                    t.insert(format!("{p}port_name"), v.clone());
                }
                if let Some(v) = &port.protocol {
                    t.insert(format!("{p}port_protocol"), v.clone());
                }
                if let Some(v) = port.port {
                    t.insert(format!("{p}port"), v.to_string());
                }
                if let Some(v) = &port.app_protocol {
                    t.insert(format!("{p}port_app_protocol"), v.clone());
                }
                let cond = ep.conditions.clone().unwrap_or_default();
                for (name, v) in [
                    ("ready", cond.ready),
                    ("serving", cond.serving),
                    ("terminating", cond.terminating),
                ] {
                    if let Some(v) = v {
                        t.insert(format!("{p}endpoint_conditions_{name}"), v.to_string());
                    }
                }
                if let Some(v) = &ep.hostname {
                    t.insert(format!("{p}endpoint_hostname"), v.clone());
                }
                if let Some(r) = &ep.target_ref {
                    t.insert(
                        format!("{p}address_target_kind"),
                        r.kind.clone().unwrap_or_default(),
                    );
                    t.insert(
                        format!("{p}address_target_name"),
                        r.name.clone().unwrap_or_default(),
                    );
                }
                if let Some(v) = &ep.node_name {
                    t.insert(format!("{p}endpoint_node_name"), v.clone());
                }
                if let Some(v) = &ep.zone {
                    t.insert(format!("{p}endpoint_zone"), v.clone());
                }
                for (k, v) in ep.deprecated_topology.iter().flatten() {
                    let n = super::roles::sanitize(k);
                    t.insert(format!("{p}endpoint_topology_{n}"), v.clone());
                    t.insert(format!("{p}endpoint_topology_present_{n}"), "true".into());
                }
                let node_ref = match &ep.target_ref {
                    Some(r) if r.kind.as_deref() == Some("Node") => r.name.clone(),
                    _ => ep.node_name.clone(),
                };
                lookup.add_node(&mut t, node_ref.as_deref());
                if let Some(pod) = lookup.pod(ep.target_ref.as_ref()) {
                    seen.enrich(&mut t, pod, port.port);
                }
                targets.push(t);
            }
        }
    }
    seen.remaining(&mut targets);
    Group { labels, targets }
}

/// Whether a slice holds the non-primary family of a dual-stack service.
fn secondary_family(svc: &Service, address_type: &str) -> bool {
    let Some(spec) = &svc.spec else { return false };
    let dual = matches!(
        spec.ip_family_policy.as_deref(),
        Some("PreferDualStack" | "RequireDualStack")
    );
    match spec.ip_families.as_deref() {
        Some([primary, ..]) if dual => primary != address_type,
        _ => false,
    }
}
