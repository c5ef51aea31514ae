//! The running components of one configuration — `prometheus.remote_write`,
//! `prometheus.relabel`, `discovery.file`, `discovery.relabel`, `prometheus.scrape` — and the
//! glue between them and the cluster.
//!
//! It owns: starting the components of a [`Config`], swapping them on reload (unchanged
//! components keep running), and ownership — which targets each scrape component scrapes on
//! this node. With `clustering { enabled = true }` a component keeps a [`Sharder`] over its
//! target list and the live members; the targets assigned to this node for writes are handed
//! to its [`ScrapeManager`]. Ownership is re-evaluated when the live members or their states
//! change, and when a target list changes. A viewer or terminating node owns nothing; a
//! component without clustering scrapes every target on every node (as upstream).
//!
//! Hand-over (alloy#249, #784) is the scrape manager's contract: a target that moves to
//! another node stops without staleness markers, a target handed to us is scraped at once.
//! Only a target that vanished from the component's target list is marked stale.
//!
//! It must not: parse the configuration (see [`crate::config`]), talk to the cluster (it only
//! reads the published [`ClusterView`]), or decide the node's lifecycle ([`crate::run`] does:
//! it calls [`Pipeline::stop_scraping`] and [`Pipeline::flush`] on shutdown).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::shard::{Algorithm, Op, Peer, Sharder};
use cluster::NodeState;
use runtime::ClusterView;
use tokio::sync::{watch, Notify};

use crate::config::RemoteWriteConfig;
use crate::config::{
    Config, DiscoveryRelabelConfig, FileDiscoveryConfig, KubernetesDiscoveryConfig,
    MetricRelabelConfig, Receiver, ScrapeConfig, TargetsSource,
};
use crate::discovery::{DiscoveryHandle, FileDiscovery, Target};
use crate::http_client::HttpClient;
use crate::relabel::{relabel_targets, MetricRelabel};
use crate::remote_write::RemoteWrite;
use crate::scrape::{Appender, ManagerOptions, ScrapeManager, StopMode};
use crate::wal::Wal;

pub mod controller;
mod operators;
mod pyroscope;
mod stats;

pub use stats::{MetricRelabelStats, PipelineStats, RemoteWriteStats, ScrapeStats};

use controller::{ControllerMetrics, Timer};

/// How long a graceful shutdown lets remote_write shards send what they hold; the rest stays
/// in the WAL and is sent after the restart.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a remote_write component removed or replaced by a reload may keep sending what its
/// shards hold (its replacement reads on from the same WAL once it stopped).
const RETIRED_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The running pipeline of one node.
pub struct Pipeline {
    /// This node's name, as the cluster knows it (the owner name in assignments).
    node: String,
    /// `--storage.path`: each remote_write component's WAL is under it.
    storage: PathBuf,
    state: Mutex<State>,
    /// Poked when a discovery publishes a new target list.
    targets_changed: Arc<Notify>,
    /// Evaluation timings and the "evaluating" flag (`agent_component_*`).
    controller: Arc<ControllerMetrics>,
}

struct State {
    remote_writes: BTreeMap<String, Arc<RemoteWrite>>,
    /// The open WAL of each remote_write component, kept while the component exists (a
    /// restarted component reuses it).
    wals: BTreeMap<String, Arc<Wal>>,
    /// `prometheus.relabel` components; kept across an apply while their settings and
    /// receivers are unchanged.
    metric_relabels: BTreeMap<String, (MetricRelabelConfig, Arc<MetricRelabel>)>,
    /// By component id (`discovery.file.NAME`, `discovery.kubernetes.NAME`).
    discoveries: BTreeMap<String, DiscoveryComponent>,
    /// `discovery.relabel` components: pure functions of their inputs.
    discovery_relabels: BTreeMap<String, DiscoveryRelabelConfig>,
    scrapes: BTreeMap<String, ScrapeComponent>,
    /// `prometheus.operator.*` components by id, each with a scrape component per job.
    operators: BTreeMap<String, operators::OperatorComponent>,
    /// Live members and their states, sorted by name, as last seen.
    peers: Vec<Peer>,
    /// Set by [`Pipeline::stop_scraping`]: from then on nothing is scraped.
    stopped: bool,
    /// Components whose last evaluation failed (could not start, settings not applied), by
    /// id, with why; they count as unhealthy.
    failed: BTreeMap<String, String>,
    /// `pyroscope.write` components by name.
    profile_writes: BTreeMap<String, Arc<crate::pyroscope::write::ProfileWriter>>,
    /// `pyroscope.scrape` components by name.
    profile_scrapes: BTreeMap<String, pyroscope::ProfileScrapeComponent>,
}

/// What a discovery component runs, with its settings (an unchanged component keeps running
/// across a reload).
#[derive(PartialEq)]
enum DiscoverySettings {
    File(FileDiscoveryConfig),
    Kubernetes(KubernetesDiscoveryConfig),
}

struct DiscoveryComponent {
    settings: DiscoverySettings,
    handle: DiscoveryHandle,
    /// API counters of a `discovery.kubernetes` component.
    kubernetes: Option<Arc<crate::kubernetes::watch::Counters>>,
    /// Forwards the handle's changes to `targets_changed`.
    forward: tokio::task::JoinHandle<()>,
}

impl Drop for DiscoveryComponent {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

struct ScrapeComponent {
    config: ScrapeConfig,
    manager: ScrapeManager,
    /// Only used with `clustering { enabled = true }`.
    sharder: Sharder,
    /// Every target of the component, one per shard key, ordered by key (the sharder's keys).
    targets: Vec<Target>,
    owned: usize,
}

/// Builds the HTTP client of every component of `config` and drops them: reads every
/// certificate, key and credentials file once, so a configuration that names a missing or
/// bad file is refused at load (and a reload keeps the running one) with the component named.
pub fn check_clients(config: &Config) -> Result<(), String> {
    match client_errors(config).into_iter().next() {
        Some((id, e)) => Err(format!("{id}: {e}")),
        None => Ok(()),
    }
}

/// Every client that cannot be built, as (component id, what is wrong), in configuration
/// order ([`check_clients`] reports the first; `agent validate` all of them).
pub fn client_errors(config: &Config) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for s in &config.scrapes {
        if let Err(e) = HttpClient::new(&s.client, crate::http_client::USER_AGENT) {
            errors.push((s.id(), e.to_string()));
        }
    }
    for s in &config.profile_scrapes {
        if let Err(e) = HttpClient::new(&s.client, crate::http_client::USER_AGENT) {
            errors.push((s.id(), e.to_string()));
        }
    }
    for w in &config.profile_writes {
        for e in &w.endpoints {
            if let Err(err) = HttpClient::new(&e.client, crate::http_client::USER_AGENT) {
                errors.push((
                    format!("pyroscope.write.{}", w.name),
                    format!("endpoint {:?}: {err}", e.name),
                ));
            }
        }
    }
    for rw in &config.remote_writes {
        for e in &rw.endpoints {
            if let Err(err) = HttpClient::new(&e.client, crate::http_client::USER_AGENT) {
                errors.push((
                    format!("prometheus.remote_write.{}", rw.name),
                    format!("endpoint {:?}: {err}", e.name),
                ));
            }
        }
    }
    errors
}

/// The WAL directory of a remote_write component: Alloy's layout,
/// `STORAGE/prometheus.remote_write.NAME/wal`.
pub fn wal_dir(storage: &Path, component: &str) -> PathBuf {
    storage
        .join(format!("prometheus.remote_write.{component}"))
        .join("wal")
}

fn open_wal(storage: &Path, cfg: &RemoteWriteConfig) -> Result<Arc<Wal>, String> {
    Wal::open(&wal_dir(storage, &cfg.name), (&cfg.wal).into())
        .map_err(|e| format!("prometheus.remote_write.{}: {e}", cfg.name))
}

impl Pipeline {
    /// Starts every component of `config` on the current tokio runtime. Clustered scrape
    /// components own nothing until [`Pipeline::set_members`] says this node is a
    /// participant; the others start scraping at once.
    ///
    /// Each `prometheus.remote_write` opens (and replays) its WAL under `storage` first; a
    /// WAL that cannot be opened (unwritable path, another agent on it) is an error.
    pub fn start(config: Config, node: &str, storage: &Path) -> Result<Arc<Pipeline>, String> {
        let mut wals = BTreeMap::new();
        for rw in &config.remote_writes {
            wals.insert(rw.name.clone(), open_wal(storage, rw)?);
        }
        let pipeline = Arc::new(Pipeline {
            node: node.to_string(),
            storage: storage.to_path_buf(),
            state: Mutex::new(State {
                remote_writes: BTreeMap::new(),
                wals,
                metric_relabels: BTreeMap::new(),
                discoveries: BTreeMap::new(),
                discovery_relabels: BTreeMap::new(),
                scrapes: BTreeMap::new(),
                operators: BTreeMap::new(),
                peers: Vec::new(),
                stopped: false,
                failed: BTreeMap::new(),
                profile_writes: BTreeMap::new(),
                profile_scrapes: BTreeMap::new(),
            }),
            targets_changed: Arc::new(Notify::new()),
            controller: Arc::default(),
        });
        pipeline.apply(config);
        Ok(pipeline)
    }

    /// Follows the cluster view and the discoveries until the view's sender is dropped.
    pub async fn run(self: Arc<Self>, mut views: watch::Receiver<Arc<ClusterView>>) {
        loop {
            let live = views.borrow_and_update().live();
            self.set_members(&live);
            tokio::select! {
                changed = views.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = self.targets_changed.notified() => self.refresh_targets(),
            }
        }
    }

    /// Applies a (reloaded) configuration. Components whose settings are unchanged keep
    /// running untouched; changed ones are updated or restarted; removed scrape components
    /// mark their series stale (their targets are gone), removed remote_write components
    /// send what they had queued (bounded) and stop.
    pub fn apply(&self, config: Config) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        let _evaluating = self.controller.evaluating();
        self.controller.dependencies_taken();
        st.failed.clear();

        // 1. remote_write first: scrape components forward to them.
        let mut old_rw = std::mem::take(&mut st.remote_writes);
        let mut retired: Vec<Arc<RemoteWrite>> = Vec::new();
        // Receivers that are not the running instance of before (new or restarted): a
        // prometheus.relabel forwarding to one of them must be rebuilt.
        let mut renewed: BTreeSet<Receiver> = BTreeSet::new();
        for cfg in &config.remote_writes {
            let timer = Timer::start();
            let rw = match old_rw.remove(&cfg.name) {
                Some(rw) if rw.config() == cfg => rw,
                old => {
                    let id = format!("prometheus.remote_write.{}", cfg.name);
                    let wal = match st.wals.get(&cfg.name) {
                        Some(w) => Ok(w.clone()),
                        None => open_wal(&self.storage, cfg),
                    };
                    let started = wal.and_then(|wal| {
                        st.wals.insert(cfg.name.clone(), wal.clone());
                        RemoteWrite::start(cfg.clone(), wal, old.as_deref())
                    });
                    match started {
                        Ok(rw) => {
                            retired.extend(old);
                            tracing::info!(component = %id, "starting");
                            renewed.insert(Receiver::RemoteWrite(cfg.name.clone()));
                            rw
                        }
                        // Checked at load (check_clients); a file that went bad since keeps
                        // the running component, if any.
                        Err(e) => {
                            tracing::error!(component = %id, error = %e, "cannot start");
                            st.failed.insert(id, e.to_string());
                            match old {
                                Some(old) => old,
                                None => continue,
                            }
                        }
                    }
                }
            };
            st.remote_writes.insert(cfg.name.clone(), rw);
            timer.done(
                &self.controller,
                &format!("prometheus.remote_write.{}", cfg.name),
            );
        }
        for name in old_rw.keys() {
            st.wals.remove(name);
        }
        retired.extend(old_rw.into_values());

        // 1b. prometheus.relabel, each after the relabels it forwards to (no loops: checked
        // at load). One whose settings and receivers are unchanged keeps running (its cache
        // and counters); the others are built anew.
        let mut old_relabels = std::mem::take(&mut st.metric_relabels);
        let mut pending: Vec<&MetricRelabelConfig> = config.metric_relabels.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|cfg| {
                let ready = cfg.forward_to.iter().all(|r| match r {
                    Receiver::Relabel(n) => st.metric_relabels.contains_key(n),
                    Receiver::RemoteWrite(_) => true,
                });
                if !ready {
                    return true;
                }
                let timer = Timer::start();
                let unchanged = old_relabels
                    .get(&cfg.name)
                    .is_some_and(|(old, _)| old == *cfg)
                    && cfg.forward_to.iter().all(|r| !renewed.contains(r));
                let component = match old_relabels.remove(&cfg.name) {
                    Some((_, running)) if unchanged => running,
                    _ => {
                        renewed.insert(Receiver::Relabel(cfg.name.clone()));
                        let sinks =
                            sinks_of(&cfg.forward_to, &st.remote_writes, &st.metric_relabels);
                        Arc::new(MetricRelabel::new(
                            cfg.rules.clone(),
                            sinks,
                            cfg.max_cache_size,
                        ))
                    }
                };
                st.metric_relabels
                    .insert(cfg.name.clone(), ((*cfg).clone(), component));
                timer.done(
                    &self.controller,
                    &format!("prometheus.relabel.{}", cfg.name),
                );
                false
            });
            assert!(
                pending.len() < before,
                "prometheus.relabel loop passed the config check"
            );
        }
        st.discovery_relabels = config
            .discovery_relabels
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();

        // 2. discovery.file and discovery.kubernetes.
        let mut old_disc = std::mem::take(&mut st.discoveries);
        let wanted = config
            .file_discoveries
            .iter()
            .map(|c| {
                (
                    format!("discovery.file.{}", c.name),
                    DiscoverySettings::File(c.clone()),
                )
            })
            .chain(config.kubernetes_discoveries.iter().map(|c| {
                (
                    format!("discovery.kubernetes.{}", c.name),
                    DiscoverySettings::Kubernetes(c.clone()),
                )
            }));
        for (id, settings) in wanted {
            let timer = Timer::start();
            let comp = match old_disc.remove(&id) {
                Some(d) if d.settings == settings => d,
                _ => {
                    let (handle, kubernetes) = match &settings {
                        DiscoverySettings::File(cfg) => (FileDiscovery::spawn(cfg.clone()), None),
                        DiscoverySettings::Kubernetes(cfg) => {
                            let k = crate::kubernetes::KubernetesDiscovery::spawn(cfg.clone());
                            (k.handle, Some(k.counters))
                        }
                    };
                    for e in handle.errors() {
                        tracing::warn!(component = %id, error = %e, "discovery failed");
                    }
                    let forward = self.forward_changes(handle.targets());
                    DiscoveryComponent {
                        settings,
                        handle,
                        kubernetes,
                        forward,
                    }
                }
            };
            timer.done(&self.controller, &id);
            st.discoveries.insert(id, comp);
        }
        drop(old_disc);

        // 3. prometheus.scrape.
        let mut old_scrapes = std::mem::take(&mut st.scrapes);
        let mut timers = BTreeMap::new();
        for cfg in &config.scrapes {
            timers.insert(cfg.id(), Timer::start());
            let sinks = sinks_of(&cfg.forward_to, &st.remote_writes, &st.metric_relabels);
            let comp = match old_scrapes.remove(&cfg.name) {
                Some(mut comp) if comp.config.clustering_enabled == cfg.clustering_enabled => {
                    if let Err(e) = comp.manager.update(cfg.clone(), sinks) {
                        tracing::error!(component = %cfg.id(), error = %e, "settings not applied; the previous ones stay");
                        st.failed.insert(cfg.id(), e.to_string());
                    } else {
                        comp.config = cfg.clone();
                    }
                    comp
                }
                // New, or clustering switched (the hand-over options differ): a new manager;
                // the old one's loops stop without staleness markers when it drops.
                _ => match ScrapeComponent::start(cfg, sinks, &st.peers) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(component = %cfg.id(), error = %e, "cannot start");
                        st.failed.insert(cfg.id(), e.to_string());
                        continue;
                    }
                },
            };
            st.scrapes.insert(cfg.name.clone(), comp);
        }
        for (name, comp) in old_scrapes {
            tracing::info!(component = %format!("prometheus.scrape.{name}"), "removed from the configuration; its series are marked stale");
            comp.manager.stop_all(StopMode::Gone);
        }

        // 4. prometheus.operator.*, pyroscope.*.
        self.apply_operators(st, &config);
        self.apply_pyroscope(st, &config);

        // 5. Targets and ownership under the new configuration.
        for comp in st.scrapes.values_mut() {
            let targets = current_targets(&comp.config, &st.discoveries, &st.discovery_relabels);
            let gone = comp.set_target_list(targets).unwrap_or_default();
            comp.reassign(&self.node, st.stopped, &gone);
            if let Some(timer) = timers.remove(&comp.config.id()) {
                timer.done(&self.controller, &comp.config.id());
            }
        }
        self.sync_operators(st);
        self.sync_pyroscope(st);
        drop(_evaluating);
        drop(guard);

        // Old remote_write components get no new samples now; let them drain.
        for rw in retired {
            tracing::info!(component = %format!("prometheus.remote_write.{}", rw.config().name), "replaced or removed; stopping its senders");
            tokio::spawn(async move { rw.shutdown(RETIRED_FLUSH_TIMEOUT).await });
        }
    }

    /// Takes a new member list (`ClusterView::live()`: name and state of every alive or
    /// suspect member, this node included). Re-evaluates ownership only if it changed.
    pub fn set_members(&self, live: &[(String, NodeState)]) {
        let mut peers: Vec<Peer> = live
            .iter()
            .map(|(name, state)| Peer::new(name.clone(), *state))
            .collect();
        peers.sort();
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        if st.peers == peers {
            return;
        }
        tracing::debug!(?peers, "members changed; re-evaluating target ownership");
        st.peers = peers;
        let jobs = st.operators.values_mut().flat_map(|o| o.jobs.values_mut());
        for comp in st.scrapes.values_mut().chain(jobs) {
            comp.sharder.set_peers(&st.peers);
            comp.reassign(&self.node, st.stopped, &[]);
        }
        for comp in st.profile_scrapes.values_mut() {
            comp.set_peers(&st.peers, &self.node, st.stopped);
        }
    }

    /// Re-reads every component's targets from the discoveries; re-evaluates ownership of the
    /// components whose list changed.
    pub fn refresh_targets(&self) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        let _evaluating = self.controller.evaluating();
        self.controller.dependencies_taken();
        for comp in st.scrapes.values_mut() {
            let timer = Timer::start();
            let targets = current_targets(&comp.config, &st.discoveries, &st.discovery_relabels);
            if let Some(gone) = comp.set_target_list(targets) {
                comp.reassign(&self.node, st.stopped, &gone);
            }
            timer.done(&self.controller, &comp.config.id());
        }
        self.sync_operators(st);
        self.sync_pyroscope(st);
    }

    /// A task that tells the pipeline (and the controller metrics) each time `rx` changes:
    /// how a discovery component's new exports reach the components that read them.
    fn forward_changes<T: Send + Sync + 'static>(
        &self,
        mut rx: watch::Receiver<T>,
    ) -> tokio::task::JoinHandle<()> {
        let wake = self.targets_changed.clone();
        let controller = self.controller.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                controller.dependency_updated();
                wake.notify_one();
            }
        })
    }

    /// Stops every scrape loop as a hand-over (no staleness markers: the other nodes take the
    /// targets over) and starts nothing from now on. For a graceful shutdown.
    pub fn stop_scraping(&self) {
        let mut st = self.state.lock().unwrap();
        st.stopped = true;
        let st = &mut *st;
        let jobs = st.operators.values_mut().flat_map(|o| o.jobs.values_mut());
        for comp in st.scrapes.values_mut().chain(jobs) {
            comp.manager.stop_all(StopMode::Moved);
            comp.owned = 0;
        }
        for comp in st.profile_scrapes.values_mut() {
            comp.stop();
        }
    }

    /// Sends what the remote_write components have queued and stops them; gives up after
    /// `timeout` (what is left is counted as failed).
    pub async fn flush(&self, timeout: Duration) {
        let rws: Vec<Arc<RemoteWrite>> = self
            .state
            .lock()
            .unwrap()
            .remote_writes
            .values()
            .cloned()
            .collect();
        let tasks: Vec<_> = rws
            .into_iter()
            .map(|rw| tokio::spawn(async move { rw.shutdown(timeout).await }))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The targets this node scrapes for the component `prometheus.scrape.NAME`.
    pub fn owned_targets(&self, name: &str) -> Vec<Target> {
        let st = self.state.lock().unwrap();
        st.scrapes
            .get(name)
            .map(|c| c.owned_targets(&self.node, st.stopped))
            .unwrap_or_default()
    }
}

impl ScrapeComponent {
    /// A component with no targets yet, its sharder over `peers`.
    fn start(
        cfg: &ScrapeConfig,
        sinks: Vec<Arc<dyn Appender>>,
        peers: &[Peer],
    ) -> Result<ScrapeComponent, String> {
        let mut sharder = Sharder::new(Algorithm::default());
        sharder.set_peers(peers);
        let options = ManagerOptions {
            // Only with clustering do targets arrive from another node.
            scrape_new_targets_immediately: cfg.clustering_enabled,
            ..ManagerOptions::default()
        };
        let manager =
            ScrapeManager::with_options(cfg.clone(), sinks, options).map_err(|e| e.to_string())?;
        Ok(ScrapeComponent {
            config: cfg.clone(),
            manager,
            sharder,
            targets: Vec::new(),
            owned: 0,
        })
    }

    /// Replaces the target list. Returns `None` if it is unchanged, else the targets that
    /// vanished from it (to be marked stale if this node scraped them).
    fn set_target_list(&mut self, targets: Vec<Target>) -> Option<Vec<Target>> {
        if targets == self.targets {
            return None;
        }
        let keys: Vec<u64> = targets.iter().map(Target::shard_key).collect();
        self.sharder.set_keys(&keys);
        let now: HashSet<&Target> = targets.iter().collect();
        let gone: Vec<Target> = self
            .targets
            .iter()
            .filter(|t| !now.contains(t))
            .cloned()
            .collect();
        self.targets = targets;
        Some(gone)
    }

    /// The targets `node` should scrape now.
    fn owned_targets(&self, node: &str, stopped: bool) -> Vec<Target> {
        if stopped {
            return Vec::new();
        }
        if !self.config.clustering_enabled {
            return self.targets.clone();
        }
        self.sharder
            .assign(Op::Write)
            .owned_by(node)
            .map(|i| self.targets[i].clone())
            .collect()
    }

    /// Hands the manager the targets this node owns now; those of `gone` it stops scraping
    /// get staleness markers, every other target it stops is a hand-over (none).
    fn reassign(&mut self, node: &str, stopped: bool, gone: &[Target]) {
        let owned = self.owned_targets(node, stopped);
        let count = owned.len();
        let report = self.manager.set_targets_marking_gone(owned, gone);
        if report.started > 0 || report.stopped > 0 || count != self.owned {
            tracing::info!(
                component = %self.config.id(),
                targets = self.targets.len(),
                owned = count,
                started = report.started,
                stopped = report.stopped,
                clustering = self.config.clustering_enabled,
                "scrape targets assigned to this node"
            );
        }
        self.owned = count;
    }
}

/// The receivers named by `forward_to` that are running.
fn sinks_of(
    forward_to: &[Receiver],
    remote_writes: &BTreeMap<String, Arc<RemoteWrite>>,
    relabels: &BTreeMap<String, (MetricRelabelConfig, Arc<MetricRelabel>)>,
) -> Vec<Arc<dyn Appender>> {
    forward_to
        .iter()
        .filter_map(|r| match r {
            Receiver::RemoteWrite(n) => remote_writes.get(n).map(|rw| rw.receiver()),
            Receiver::Relabel(n) => relabels.get(n).map(|(_, c)| c.clone() as Arc<dyn Appender>),
        })
        .collect()
}

/// The targets of `sources` now: static ones, the current exports of the `discovery.file`
/// components, and the outputs of the `discovery.relabel` components (their own sources
/// resolved the same way; loops were refused at load).
fn resolve_sources(
    sources: &[TargetsSource],
    discoveries: &BTreeMap<String, DiscoveryComponent>,
    relabels: &BTreeMap<String, DiscoveryRelabelConfig>,
) -> Vec<Target> {
    let mut out = Vec::new();
    for source in sources {
        match source {
            TargetsSource::Static(t) => out.push(t.clone()),
            TargetsSource::DiscoveryFile(name) => {
                if let Some(d) = discoveries.get(&format!("discovery.file.{name}")) {
                    out.extend(d.handle.targets().borrow().iter().cloned());
                }
            }
            TargetsSource::DiscoveryKubernetes(name) => {
                if let Some(d) = discoveries.get(&format!("discovery.kubernetes.{name}")) {
                    out.extend(d.handle.targets().borrow().iter().cloned());
                }
            }
            TargetsSource::DiscoveryRelabel(name) => {
                if let Some(r) = relabels.get(name) {
                    let input = resolve_sources(&r.targets, discoveries, relabels);
                    out.extend(relabel_targets(input, &r.rules));
                }
            }
        }
    }
    out
}

/// The component's targets now, one per shard key (the first wins), ordered by key. Targets
/// without `__address__` (a relabel rule emptied it) are dropped here, before sharding, as
/// Prometheus drops them.
fn current_targets(
    config: &ScrapeConfig,
    discoveries: &BTreeMap<String, DiscoveryComponent>,
    relabels: &BTreeMap<String, DiscoveryRelabelConfig>,
) -> Vec<Target> {
    one_per_shard_key(resolve_sources(&config.targets, discoveries, relabels))
}

/// The targets with an `__address__`, one per shard key (the first wins), ordered by key.
fn one_per_shard_key(all: Vec<Target>) -> Vec<Target> {
    let mut keyed: Vec<(u64, Target)> = all
        .into_iter()
        .filter(|t| !t.address().is_empty())
        .map(|t| (t.shard_key(), t))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.dedup_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests;
