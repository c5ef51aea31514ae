//! `discovery.kubernetes`: targets from the Kubernetes API, with Prometheus' kubernetes_sd
//! roles (`pod`, `service`, `endpoints`, `endpointslice`, `node`, `ingress`), labels and
//! addresses.
//!
//! It owns: the API client ([`client`], kube-rs), the list-then-watch of every resource a role
//! needs in every selected namespace ([`watch`]), the object-to-target rules ([`roles`],
//! [`endpoints`]), and publishing: after a change it waits [`KUBERNETES_DEBOUNCE`], rebuilds
//! the whole target list from the watched objects and publishes it only if it differs, so a
//! burst of pod events costs one ownership recomputation downstream. Nothing is published
//! until every watch has completed its first list.
//!
//! It must not decide ownership (the pipeline shards what it publishes) nor scrape.

pub mod client;
pub mod endpoints;
pub mod roles;
pub mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::{Api, Client, Resource};
use tokio::sync::{watch as tokio_watch, Notify};

use crate::config::{KubernetesDiscoveryConfig, KubernetesRole, KUBERNETES_DEBOUNCE};
use crate::discovery::{DiscoveryError, DiscoveryHandle, Target};
use watch::{merged, Counters, Slot, WatchSpec};

/// A failed client setup (no in-cluster config, unreadable kubeconfig) is retried this often.
const CLIENT_RETRY: Duration = Duration::from_secs(10);

/// Runs `attempt` (building the API client) until it succeeds, every [`CLIENT_RETRY`]; each
/// failure is logged, counted in `counters` and handed to `on_error`.
pub async fn connect<T, Fut>(
    id: &str,
    counters: &Counters,
    mut attempt: impl FnMut() -> Fut,
    mut on_error: impl FnMut(String),
) -> T
where
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        match attempt().await {
            Ok(t) => return t,
            Err(e) => {
                tracing::error!(component = %id, error = %e, "cannot reach the Kubernetes API; retrying");
                counters
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                on_error(e);
                tokio::time::sleep(CLIENT_RETRY).await;
            }
        }
    }
}

/// The namespaces to watch: `None` means all.
pub fn namespaces(names: &[String], own: bool) -> Result<Option<Vec<String>>, String> {
    let mut out = names.to_vec();
    if own {
        out.push(client::own_namespace()?);
    }
    out.sort();
    out.dedup();
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// The slots of every watch of one discovery, by kind.
#[derive(Default)]
pub struct Slots {
    pub pods: Vec<Slot<Pod>>,
    pub services: Vec<Slot<Service>>,
    pub endpoints: Vec<Slot<Endpoints>>,
    pub slices: Vec<Slot<EndpointSlice>>,
    pub nodes: Vec<Slot<Node>>,
    pub ingresses: Vec<Slot<Ingress>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Slots {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts watches of `K` in each namespace (or cluster-wide).
pub fn watch_kind<K>(
    client: &Client,
    namespaces: &Option<Vec<String>>,
    resource: &'static str,
    label: &str,
    field: &str,
    notify: &Arc<Notify>,
    counters: &Arc<Counters>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Vec<Slot<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + watch::Strip
        + 'static,
    K::DynamicType: Default,
{
    let apis: Vec<Api<K>> = match namespaces {
        None => vec![Api::all(client.clone())],
        Some(ns) => ns
            .iter()
            .map(|n| Api::namespaced(client.clone(), n))
            .collect(),
    };
    apis.into_iter()
        .map(|api| {
            let spec = WatchSpec {
                api,
                resource,
                label: label.to_string(),
                field: field.to_string(),
            };
            let (slot, task) = watch::spawn(spec, notify.clone(), counters.clone());
            tasks.push(task);
            slot
        })
        .collect()
}

fn watch_nodes(
    client: &Client,
    label: &str,
    field: &str,
    notify: &Arc<Notify>,
    counters: &Arc<Counters>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Vec<Slot<Node>> {
    let spec = WatchSpec {
        api: Api::all(client.clone()),
        resource: "node",
        label: label.to_string(),
        field: field.to_string(),
    };
    let (slot, task) = watch::spawn(spec, notify.clone(), counters.clone());
    tasks.push(task);
    vec![slot]
}

/// Starts every watch `config`'s role needs.
fn start_watches(
    config: &KubernetesDiscoveryConfig,
    client: &Client,
    namespaces: &Option<Vec<String>>,
    notify: &Arc<Notify>,
    counters: &Arc<Counters>,
) -> Slots {
    use KubernetesRole as R;
    let sel = |r: R| {
        config
            .selector(r)
            .map(|s| (s.label.clone(), s.field.clone()))
            .unwrap_or_default()
    };
    let mut s = Slots::default();
    let t = &mut s.tasks;
    let (pl, pf) = sel(R::Pod);
    let (sl, sf) = sel(R::Service);
    let (nl, nf) = sel(R::Node);
    match config.role {
        R::Pod => {
            s.pods = watch_kind(client, namespaces, "pod", &pl, &pf, notify, counters, t);
        }
        R::Service => {
            s.services = watch_kind(client, namespaces, "service", &sl, &sf, notify, counters, t);
        }
        R::Endpoints | R::EndpointSlice => {
            let (el, ef) = sel(config.role);
            if config.role == R::Endpoints {
                s.endpoints = watch_kind(
                    client,
                    namespaces,
                    "endpoints",
                    &el,
                    &ef,
                    notify,
                    counters,
                    t,
                );
            } else {
                s.slices = watch_kind(
                    client,
                    namespaces,
                    "endpointslice",
                    &el,
                    &ef,
                    notify,
                    counters,
                    t,
                );
            }
            s.services = watch_kind(client, namespaces, "service", &sl, &sf, notify, counters, t);
            s.pods = watch_kind(client, namespaces, "pod", &pl, &pf, notify, counters, t);
        }
        R::Node => {}
        R::Ingress => {
            let (il, if_) = sel(R::Ingress);
            s.ingresses = watch_kind(
                client, namespaces, "ingress", &il, &if_, notify, counters, t,
            );
        }
    }
    if config.role == R::Node
        || config.attach_node_metadata && config.role != R::Service && config.role != R::Ingress
    {
        s.nodes = watch_nodes(client, &nl, &nf, notify, counters, t);
    }
    s
}

/// The targets of every watched object; `None` until every watch has listed once.
pub fn build(role: KubernetesRole, attach_node: bool, s: &Slots) -> Option<Vec<Target>> {
    use KubernetesRole as R;
    let nodes = merged(&s.nodes)?;
    let groups: Vec<roles::Group> = match role {
        R::Pod => {
            let pods = merged(&s.pods)?;
            pods.values()
                .map(|p| {
                    let node = attach_node.then(|| {
                        let name = p.spec.as_ref().and_then(|s| s.node_name.clone());
                        name.and_then(|n| nodes.get(&n)).map(|n| &**n)
                    });
                    roles::pod(p, node)
                })
                .collect()
        }
        R::Service => merged(&s.services)?
            .values()
            .map(|v| roles::service(v))
            .collect(),
        R::Node => nodes.values().map(|n| roles::node(n)).collect(),
        R::Ingress => merged(&s.ingresses)?
            .values()
            .map(|v| roles::ingress(v))
            .collect(),
        R::Endpoints | R::EndpointSlice => {
            let lookup = endpoints::Lookup {
                pods: merged(&s.pods)?,
                services: merged(&s.services)?,
                nodes: attach_node.then_some(nodes.clone()),
            };
            if role == R::Endpoints {
                merged(&s.endpoints)?
                    .values()
                    .map(|e| endpoints::endpoints(e, &lookup))
                    .collect()
            } else {
                merged(&s.slices)?
                    .values()
                    .map(|e| endpoints::endpointslice(e, &lookup))
                    .collect()
            }
        }
    };
    let mut targets: Vec<Target> = groups.into_iter().flat_map(|g| g.into_targets()).collect();
    targets.sort();
    targets.dedup();
    Some(targets)
}

/// A running `discovery.kubernetes` component.
pub struct KubernetesDiscovery {
    pub handle: DiscoveryHandle,
    pub counters: Arc<Counters>,
}

impl KubernetesDiscovery {
    /// Connects, watches and publishes on the current runtime; dropping the handle stops it.
    pub fn spawn(config: KubernetesDiscoveryConfig) -> KubernetesDiscovery {
        Self::spawn_with(config, KUBERNETES_DEBOUNCE)
    }

    pub fn spawn_with(
        config: KubernetesDiscoveryConfig,
        debounce: Duration,
    ) -> KubernetesDiscovery {
        let (tx, rx) = tokio_watch::channel(Vec::new());
        let errors: Arc<Mutex<Vec<DiscoveryError>>> = Arc::default();
        let counters = Arc::new(Counters::default());
        let task_errors = errors.clone();
        let task_counters = counters.clone();
        let id = format!("discovery.kubernetes.{}", config.name);
        let task = tokio::spawn(async move {
            let set_error = |message: String| {
                *task_errors.lock().unwrap() = vec![DiscoveryError {
                    path: PathBuf::from(
                        config
                            .api
                            .api_server
                            .clone()
                            .unwrap_or_else(|| "kubernetes".into()),
                    ),
                    message,
                }];
            };
            let cfg = &config;
            let (client, namespaces) = connect(
                &id,
                &task_counters,
                move || async move {
                    let ns = namespaces(&cfg.namespaces, cfg.own_namespace)?;
                    Ok((client::client(&cfg.api).await?, ns))
                },
                set_error,
            )
            .await;
            task_errors.lock().unwrap().clear();
            let notify = Arc::new(Notify::new());
            let slots = start_watches(&config, &client, &namespaces, &notify, &task_counters);
            loop {
                notify.notified().await;
                tokio::time::sleep(debounce).await;
                match task_counters.last_error.lock().unwrap().take() {
                    Some(e) => set_error(e),
                    None => task_errors.lock().unwrap().clear(),
                }
                if let Some(targets) = build(config.role, config.attach_node_metadata, &slots) {
                    tx.send_if_modified(|cur| {
                        if *cur != targets {
                            tracing::debug!(component = %id, targets = targets.len(), "targets changed");
                            *cur = targets;
                            true
                        } else {
                            false
                        }
                    });
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        KubernetesDiscovery {
            handle: DiscoveryHandle::from_parts(rx, errors, task),
            counters,
        }
    }
}

#[cfg(test)]
mod tests;
