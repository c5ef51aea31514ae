//! `prometheus.operator.podmonitors` and `prometheus.operator.servicemonitors`: scrape what
//! prometheus-operator monitor objects describe, as Alloy's components of the same names do.
//!
//! It owns: watching the monitors (`monitoring.coreos.com/v1`, in the component's
//! `namespaces`, filtered by its `selector`) and the objects their targets come from (pods for
//! PodMonitors; endpoints or endpointslices, services and pods for ServiceMonitors), turning
//! each monitor endpoint into a [`configgen::Job`] and its targets, and publishing the whole
//! job list (debounced like `discovery.kubernetes`). The pipeline runs one scrape component
//! per job, sharded with `clustering { enabled = true }` like `prometheus.scrape`.
//!
//! It must not scrape or decide ownership (the pipeline does), nor read Secrets.

pub mod configgen;
pub mod monitor;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Api;
use tokio::sync::{watch as tokio_watch, Notify};

use crate::config::{KubernetesRole, MonitorKind, OperatorConfig, KUBERNETES_DEBOUNCE};
use crate::discovery::Target;
use crate::kubernetes::watch::{self, merged, Counters, Slot, WatchSpec};
use crate::kubernetes::{client, connect, watch_kind, Slots};
use configgen::Job;
use monitor::Monitor;

/// One job of an operator component, with its targets now.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorJob {
    pub job: Job,
    pub targets: Vec<Target>,
}

/// A running operator component: its job list, API counters and task.
pub struct OperatorDiscovery {
    pub jobs: tokio_watch::Receiver<Vec<OperatorJob>>,
    pub counters: Arc<Counters>,
    /// The last monitor that could not be turned into jobs, and why.
    pub errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OperatorDiscovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn api_resource(kind: MonitorKind) -> ApiResource {
    let k = match kind {
        MonitorKind::PodMonitors => "PodMonitor",
        MonitorKind::ServiceMonitors => "ServiceMonitor",
    };
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", k);
    ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", k.to_lowercase()))
}

/// The component's monitor selector as a Kubernetes label selector string.
fn selector_string(op: &OperatorConfig) -> String {
    let mut terms: Vec<String> = op
        .selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for (k, o, values) in &op.selector.match_expressions {
        terms.push(match o.as_str() {
            "In" => format!("{k} in ({})", values.join(",")),
            "NotIn" => format!("{k} notin ({})", values.join(",")),
            "Exists" => k.clone(),
            _ => format!("!{k}"),
        });
    }
    terms.join(",")
}

/// The jobs of every monitor and their targets; `None` until every watch has listed.
fn build(
    op: &OperatorConfig,
    monitors: &[Slot<DynamicObject>],
    slots: &Slots,
    errors: &Mutex<Vec<String>>,
) -> Option<Vec<OperatorJob>> {
    let monitors = merged(monitors)?;
    let role = match op.kind {
        MonitorKind::PodMonitors => KubernetesRole::Pod,
        MonitorKind::ServiceMonitors => op.endpoint_role,
    };
    let discovered = crate::kubernetes::build(role, false, slots)?;
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for obj in monitors.values() {
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let name = obj.metadata.name.clone().unwrap_or_default();
        let spec = obj.data.get("spec").cloned().unwrap_or_default();
        let jobs = Monitor::from_object(&ns, &name, &spec).and_then(|m| configgen::jobs(&m, op));
        match jobs {
            Ok(jobs) => out.extend(jobs.into_iter().map(|job| OperatorJob {
                targets: job.targets(&discovered),
                job,
            })),
            Err(e) => errs.push(e),
        }
    }
    *errors.lock().unwrap() = errs;
    Some(out)
}

impl OperatorDiscovery {
    pub fn spawn(op: OperatorConfig) -> OperatorDiscovery {
        Self::spawn_with(op, KUBERNETES_DEBOUNCE)
    }

    pub fn spawn_with(op: OperatorConfig, debounce: Duration) -> OperatorDiscovery {
        let (tx, rx) = tokio_watch::channel(Vec::new());
        let counters = Arc::new(Counters::default());
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (task_counters, task_errors) = (counters.clone(), errors.clone());
        let task = tokio::spawn(async move {
            let id = op.id();
            let client = connect(
                &id,
                &task_counters,
                {
                    let api = &op.api;
                    move || client::client(api)
                },
                |e| *task_errors.lock().unwrap() = vec![e],
            )
            .await;
            let notify = Arc::new(Notify::new());
            let ar = api_resource(op.kind);
            let resource = match op.kind {
                MonitorKind::PodMonitors => "podmonitor",
                MonitorKind::ServiceMonitors => "servicemonitor",
            };
            let apis: Vec<Api<DynamicObject>> = if op.namespaces.is_empty() {
                vec![Api::all_with(client.clone(), &ar)]
            } else {
                op.namespaces
                    .iter()
                    .map(|n| Api::namespaced_with(client.clone(), n, &ar))
                    .collect()
            };
            let mut slots = Slots::default();
            let mut monitor_slots = Vec::new();
            for api in apis {
                let spec = WatchSpec {
                    api,
                    resource,
                    label: selector_string(&op),
                    field: String::new(),
                };
                let (slot, task) = watch::spawn(spec, notify.clone(), task_counters.clone());
                slots.tasks.push(task);
                monitor_slots.push(slot);
            }
            // Targets come from every namespace; each job keeps its monitor's namespaces.
            let (n, c, t) = (&notify, &task_counters, &mut slots.tasks);
            let pods = watch_kind(&client, &None, "pod", "", "", n, c, t);
            let (mut services, mut endpoints, mut slices) = (Vec::new(), Vec::new(), Vec::new());
            if op.kind == MonitorKind::ServiceMonitors {
                services = watch_kind(&client, &None, "service", "", "", n, c, t);
                if op.endpoint_role == KubernetesRole::EndpointSlice {
                    slices = watch_kind(&client, &None, "endpointslice", "", "", n, c, t);
                } else {
                    endpoints = watch_kind(&client, &None, "endpoints", "", "", n, c, t);
                }
            }
            slots.pods = pods;
            slots.services = services;
            slots.endpoints = endpoints;
            slots.slices = slices;
            loop {
                notify.notified().await;
                tokio::time::sleep(debounce).await;
                if let Some(jobs) = build(&op, &monitor_slots, &slots, &task_errors) {
                    for e in task_errors.lock().unwrap().iter() {
                        tracing::warn!(component = %id, error = %e, "monitor not used");
                    }
                    tx.send_if_modified(|cur| {
                        let changed = *cur != jobs;
                        if changed {
                            *cur = jobs;
                        }
                        changed
                    });
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        OperatorDiscovery {
            jobs: rx,
            counters,
            errors,
            task,
        }
    }
}

#[cfg(test)]
mod tests;
