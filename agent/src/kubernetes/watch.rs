//! List-then-watch of one resource in one namespace (or all), with kube-rs' `watcher`: it lists
//! in pages, watches from the list's resourceVersion with bookmarks, resumes a broken stream
//! from the last resourceVersion it saw, and re-lists on `410 Gone`. Each watch keeps its
//! objects in a [`Slot`], stripped to the fields the target builders read (the memory bound:
//! no managed fields, no pod volumes or env), and pokes a [`Notify`] on every change. Counts
//! events, API errors and re-lists in [`Counters`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

/// Objects of one watch, keyed `namespace/name` (cluster-scoped: `name`).
pub struct SlotInner<K> {
    pub objects: BTreeMap<String, Arc<K>>,
    /// Set once the first list is complete; targets are published only when every slot of
    /// a discovery is synced (as Prometheus waits for its informers' caches).
    pub synced: bool,
}

pub type Slot<K> = Arc<Mutex<SlotInner<K>>>;

/// Counters of one component's watches, as `/metrics` shows them.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events by (resource, `add`|`update`|`delete`): Prometheus'
    /// `prometheus_sd_kubernetes_events_total{role,event}`.
    pub events: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// API errors (failed lists, watches, decodes): `prometheus_sd_kubernetes_failures_total`.
    pub failures: AtomicU64,
    /// Lists after the first one (a 410 Gone or a failed resume).
    pub relists: AtomicU64,
    /// The last API error, for the log and the status.
    pub last_error: Mutex<Option<String>>,
}

impl Counters {
    fn event(&self, resource: &'static str, kind: &'static str, n: u64) {
        if n > 0 {
            *self
                .events
                .lock()
                .unwrap()
                .entry((resource, kind))
                .or_default() += n;
        }
    }
}

/// The store key of an object.
pub fn key<K: Resource>(o: &K) -> String {
    match o.meta().namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", o.name_any()),
        _ => o.name_any(),
    }
}

/// Drops what no target builder reads, so a large cluster costs little memory per object.
pub trait Strip {
    fn strip(&mut self);
}

macro_rules! strip_meta_only {
    ($($t:ty),*) => {$(
        impl Strip for $t {
            fn strip(&mut self) {
                self.metadata.managed_fields = None;
            }
        }
    )*};
}

strip_meta_only!(
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::Endpoints,
    k8s_openapi::api::core::v1::Node,
    k8s_openapi::api::discovery::v1::EndpointSlice,
    k8s_openapi::api::networking::v1::Ingress,
    kube::core::DynamicObject
);

fn strip_container(c: &Container) -> Container {
    Container {
        name: c.name.clone(),
        image: c.image.clone(),
        ports: c.ports.clone(),
        ..Container::default()
    }
}

fn strip_statuses(s: &Option<Vec<ContainerStatus>>) -> Option<Vec<ContainerStatus>> {
    s.as_ref().map(|v| {
        v.iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                container_id: c.container_id.clone(),
                ..ContainerStatus::default()
            })
            .collect()
    })
}

impl Strip for Pod {
    fn strip(&mut self) {
        self.metadata.managed_fields = None;
        if let Some(spec) = &self.spec {
            self.spec = Some(PodSpec {
                containers: spec.containers.iter().map(strip_container).collect(),
                init_containers: spec
                    .init_containers
                    .as_ref()
                    .map(|v| v.iter().map(strip_container).collect()),
                node_name: spec.node_name.clone(),
                ..PodSpec::default()
            });
        }
        if let Some(st) = &self.status {
            self.status = Some(PodStatus {
                pod_ip: st.pod_ip.clone(),
                host_ip: st.host_ip.clone(),
                phase: st.phase.clone(),
                conditions: st
                    .conditions
                    .as_ref()
                    .map(|c| c.iter().filter(|c| c.type_ == "Ready").cloned().collect()),
                container_statuses: strip_statuses(&st.container_statuses),
                init_container_statuses: strip_statuses(&st.init_container_statuses),
                ..PodStatus::default()
            });
        }
    }
}

/// One watch to start: its API handle (namespace already chosen) and selectors.
pub struct WatchSpec<K: Resource> {
    pub api: Api<K>,
    pub resource: &'static str,
    pub label: String,
    pub field: String,
}

/// Starts the watch of `spec` on the current runtime; its objects land in the returned slot.
/// The task ends when `stop` is dropped... it is aborted with the component.
pub fn spawn<K>(
    spec: WatchSpec<K>,
    notify: Arc<Notify>,
    counters: Arc<Counters>,
) -> (Slot<K>, tokio::task::JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + Strip + 'static,
{
    let slot: Slot<K> = Arc::new(Mutex::new(SlotInner {
        objects: BTreeMap::new(),
        synced: false,
    }));
    let task_slot = slot.clone();
    let task = tokio::spawn(async move {
        let mut cfg = watcher::Config::default();
        if !spec.label.is_empty() {
            cfg = cfg.labels(&spec.label);
        }
        if !spec.field.is_empty() {
            cfg = cfg.fields(&spec.field);
        }
        let resource = spec.resource;
        let mut stream = watcher::watcher(spec.api, cfg).default_backoff().boxed();
        let mut init: Option<BTreeMap<String, Arc<K>>> = None;
        let mut lists = 0u64;
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => {
                    lists += 1;
                    if lists > 1 {
                        counters.relists.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            resource,
                            "re-listing (watch history expired or resume failed)"
                        );
                    }
                    init = Some(BTreeMap::new());
                }
                Ok(Event::InitApply(mut o)) => {
                    o.strip();
                    init.get_or_insert_with(BTreeMap::new)
                        .insert(key(&o), Arc::new(o));
                }
                Ok(Event::InitDone) => {
                    let fresh = init.take().unwrap_or_default();
                    let mut s = task_slot.lock().unwrap();
                    let added = fresh.keys().filter(|k| !s.objects.contains_key(*k)).count();
                    let deleted = s.objects.keys().filter(|k| !fresh.contains_key(*k)).count();
                    counters.event(resource, "add", added as u64);
                    counters.event(resource, "update", (fresh.len() - added) as u64);
                    counters.event(resource, "delete", deleted as u64);
                    s.objects = fresh;
                    s.synced = true;
                    drop(s);
                    notify.notify_one();
                }
                Ok(Event::Apply(mut o)) => {
                    o.strip();
                    let k = key(&o);
                    let old = task_slot.lock().unwrap().objects.insert(k, Arc::new(o));
                    counters.event(resource, if old.is_some() { "update" } else { "add" }, 1);
                    notify.notify_one();
                }
                Ok(Event::Delete(o)) => {
                    task_slot.lock().unwrap().objects.remove(&key(&o));
                    counters.event(resource, "delete", 1);
                    notify.notify_one();
                }
                Err(e) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    let msg = format!("{resource}: {e}");
                    tracing::warn!(error = %msg, "Kubernetes API error; the watch retries with backoff");
                    *counters.last_error.lock().unwrap() = Some(msg);
                    // Wakes the publisher, which reports the error on the component.
                    notify.notify_one();
                }
            }
        }
    });
    (slot, task)
}

/// Every object of `slots`, merged by key; `None` while any slot has not listed yet.
pub fn merged<K>(slots: &[Slot<K>]) -> Option<BTreeMap<String, Arc<K>>> {
    let mut out = BTreeMap::new();
    for s in slots {
        let s = s.lock().unwrap();
        if !s.synced {
            return None;
        }
        out.extend(s.objects.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Some(out)
}
