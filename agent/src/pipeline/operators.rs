//! The pipeline's side of `prometheus.operator.*`: one scrape component per monitor job,
//! created, updated and stopped as the operator discovery's job list changes, each sharded
//! over the live members like a `prometheus.scrape` with the same `clustering` setting. A job
//! whose settings change gets a new scrape component (its old targets are marked stale); a job
//! that vanishes is stopped with staleness markers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, OperatorConfig, RELABEL_CACHE_SIZE_DEFAULT};
use crate::operator::{configgen::Job, OperatorDiscovery};
use crate::relabel::MetricRelabel;
use crate::scrape::{Appender, StopMode};

use super::{one_per_shard_key, sinks_of, Pipeline, ScrapeComponent, ScrapeStats, State};

pub(super) struct OperatorComponent {
    config: OperatorConfig,
    discovery: OperatorDiscovery,
    /// Forwards job list changes to the pipeline's `targets_changed`.
    forward: tokio::task::JoinHandle<()>,
    /// The running scrape component of each job, with the job it was made from.
    pub(super) jobs: BTreeMap<String, ScrapeComponent>,
    defs: BTreeMap<String, Job>,
}

impl Drop for OperatorComponent {
    fn drop(&mut self) {
        self.forward.abort();
        for comp in self.jobs.values() {
            comp.manager.stop_all(StopMode::Gone);
        }
    }
}

impl OperatorComponent {
    pub(super) fn counters(&self) -> Arc<crate::kubernetes::watch::Counters> {
        self.discovery.counters.clone()
    }

    /// Monitors that could not be turned into jobs, with why.
    pub(super) fn errors(&self) -> Vec<String> {
        self.discovery.errors.lock().unwrap().clone()
    }

    pub(super) fn clustering_enabled(&self) -> bool {
        self.config.clustering_enabled
    }

    /// All jobs together, under the component's id.
    pub(super) fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            component_id: self.config.id(),
            clustering: self.config.clustering_enabled,
            targets: self.jobs.values().map(|j| j.targets.len()).sum(),
            owned: self.jobs.values().map(|j| j.owned).sum(),
        }
    }
}

fn job_sinks(job: &Job, st: &State) -> Vec<Arc<dyn Appender>> {
    let sinks = sinks_of(
        &job.scrape.forward_to,
        &st.remote_writes,
        &st.metric_relabels,
    );
    if job.metric_rules.is_empty() {
        return sinks;
    }
    let relabel = MetricRelabel::new(job.metric_rules.clone(), sinks, RELABEL_CACHE_SIZE_DEFAULT);
    vec![Arc::new(relabel) as Arc<dyn Appender>]
}

impl Pipeline {
    /// Starts the operator components of `config`, keeps the unchanged ones (their jobs get
    /// the current receivers), drops the others (their jobs' series are marked stale).
    pub(super) fn apply_operators(&self, st: &mut State, config: &Config) {
        let mut old = std::mem::take(&mut st.operators);
        for cfg in &config.operators {
            let id = cfg.id();
            let comp = match old.remove(&id) {
                Some(mut c) if c.config == *cfg => {
                    for (name, job) in &c.defs {
                        let sinks = job_sinks(job, st);
                        if let Some(comp) = c.jobs.get_mut(name) {
                            if let Err(e) = comp.manager.update(job.scrape.clone(), sinks) {
                                tracing::error!(component = %id, job = %name, error = %e, "settings not applied");
                                st.failed.insert(id.clone(), format!("job {name}: {e}"));
                            }
                        }
                    }
                    c
                }
                _ => {
                    let discovery = OperatorDiscovery::spawn(cfg.clone());
                    let forward = self.forward_changes(discovery.jobs.clone());
                    OperatorComponent {
                        config: cfg.clone(),
                        discovery,
                        forward,
                        jobs: BTreeMap::new(),
                        defs: BTreeMap::new(),
                    }
                }
            };
            st.operators.insert(id, comp);
        }
        for id in old.keys() {
            tracing::info!(component = %id, "removed from the configuration; its series are marked stale");
        }
    }

    /// Brings every operator component's scrape components in line with its job list.
    pub(super) fn sync_operators(&self, st: &mut State) {
        let ids: Vec<String> = st.operators.keys().cloned().collect();
        for id in ids {
            let timer = super::Timer::start();
            let jobs = st.operators[&id].discovery.jobs.borrow().clone();
            let mut wanted = BTreeMap::new();
            for j in jobs {
                wanted.insert(j.job.scrape.job_name.clone(), j);
            }
            let mut op = st.operators.remove(&id).expect("listed above");
            let stale: Vec<String> = op
                .defs
                .iter()
                .filter(|(n, d)| wanted.get(*n).is_none_or(|w| w.job != **d))
                .map(|(n, _)| n.clone())
                .collect();
            for name in stale {
                op.defs.remove(&name);
                if let Some(comp) = op.jobs.remove(&name) {
                    comp.manager.stop_all(StopMode::Gone);
                }
            }
            for (name, j) in wanted {
                if !op.jobs.contains_key(&name) {
                    let sinks = job_sinks(&j.job, st);
                    match ScrapeComponent::start(&j.job.scrape, sinks, &st.peers) {
                        Ok(c) => {
                            op.jobs.insert(name.clone(), c);
                            op.defs.insert(name.clone(), j.job.clone());
                        }
                        Err(e) => {
                            tracing::error!(component = %id, job = %name, error = %e, "cannot start");
                            st.failed.insert(id.clone(), format!("job {name}: {e}"));
                            continue;
                        }
                    }
                }
                let comp = op.jobs.get_mut(&name).expect("started above");
                let targets = one_per_shard_key(j.targets);
                if let Some(gone) = comp.set_target_list(targets) {
                    comp.reassign(&self.node, st.stopped, &gone);
                }
            }
            timer.done(&self.controller, &id);
            st.operators.insert(id, op);
        }
    }
}
