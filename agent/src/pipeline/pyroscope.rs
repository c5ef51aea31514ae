//! The pipeline's side of `pyroscope.scrape` and `pyroscope.write`: starting, keeping and
//! replacing the components on a (re)load, and sharing each scrape component's targets
//! between the cluster's participants with the same sharder and rules as
//! `prometheus.scrape` (a viewer or terminating node owns nothing; without clustering every
//! node scrapes every target). A target's profile types all go to its owner.

use std::collections::BTreeMap;
use std::sync::Arc;

use cluster::shard::{Algorithm, Op, Peer, Sharder};

use crate::config::{Config, ProfileScrapeConfig};
use crate::discovery::Target;
use crate::pyroscope::scrape::ProfileScraper;
use crate::pyroscope::write::ProfileWriter;
use crate::pyroscope::ProfileSink;

use super::{one_per_shard_key, resolve_sources, Pipeline, ScrapeStats, State, Timer};

pub(super) struct ProfileScrapeComponent {
    scraper: ProfileScraper,
    sharder: Sharder,
    /// Every target, one per shard key, ordered by key.
    targets: Vec<Target>,
    pub(super) owned: usize,
}

impl ProfileScrapeComponent {
    fn config(&self) -> &ProfileScrapeConfig {
        self.scraper.config()
    }

    pub(super) fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            component_id: self.config().id(),
            clustering: self.config().clustering_enabled,
            targets: self.targets.len(),
            owned: self.owned,
        }
    }

    pub(super) fn clustering_enabled(&self) -> bool {
        self.config().clustering_enabled
    }

    pub(super) fn counters(&self) -> Arc<crate::pyroscope::scrape::ScrapeCounters> {
        self.scraper.counters.clone()
    }

    fn reassign(&mut self, node: &str, stopped: bool) {
        let owned: Vec<Target> = if stopped {
            Vec::new()
        } else if !self.config().clustering_enabled {
            self.targets.clone()
        } else {
            self.sharder
                .assign(Op::Write)
                .owned_by(node)
                .map(|i| self.targets[i].clone())
                .collect()
        };
        let before = self.owned;
        self.owned = owned.len();
        let loops = self.scraper.set_targets(&owned);
        if before != self.owned {
            tracing::info!(component = %self.config().id(), targets = self.targets.len(), owned = self.owned, loops, "profile targets assigned to this node");
        }
    }

    pub(super) fn set_peers(&mut self, peers: &[Peer], node: &str, stopped: bool) {
        self.sharder.set_peers(peers);
        self.reassign(node, stopped);
    }

    pub(super) fn stop(&mut self) {
        self.scraper.stop_all();
        self.owned = 0;
    }
}

fn sinks(
    cfg: &ProfileScrapeConfig,
    writes: &BTreeMap<String, Arc<ProfileWriter>>,
) -> Vec<Arc<dyn ProfileSink>> {
    cfg.forward_to
        .iter()
        .filter_map(|n| writes.get(n).map(|w| w.clone() as Arc<dyn ProfileSink>))
        .collect()
}

impl Pipeline {
    /// Starts, keeps or replaces the `pyroscope.*` components of `config`.
    pub(super) fn apply_pyroscope(&self, st: &mut State, config: &Config) {
        let mut old_writes = std::mem::take(&mut st.profile_writes);
        let mut renewed = Vec::new();
        for cfg in &config.profile_writes {
            let timer = Timer::start();
            let id = format!("pyroscope.write.{}", cfg.name);
            let w = match old_writes.remove(&cfg.name) {
                Some(w) if w.config() == cfg => w,
                old => match ProfileWriter::start(cfg.clone()) {
                    Ok(w) => {
                        renewed.push(cfg.name.clone());
                        Arc::new(w)
                    }
                    Err(e) => {
                        tracing::error!(component = %id, error = %e, "cannot start");
                        st.failed.insert(id.clone(), e);
                        match old {
                            Some(old) => old,
                            None => continue,
                        }
                    }
                },
            };
            st.profile_writes.insert(cfg.name.clone(), w);
            timer.done(&self.controller, &id);
        }
        let mut old_scrapes = std::mem::take(&mut st.profile_scrapes);
        for cfg in &config.profile_scrapes {
            let timer = Timer::start();
            let keep = old_scrapes.get(&cfg.name).is_some_and(|c| {
                c.config() == cfg && !cfg.forward_to.iter().any(|n| renewed.contains(n))
            });
            let comp = match old_scrapes.remove(&cfg.name) {
                Some(c) if keep => c,
                _ => match ProfileScraper::new(cfg.clone(), sinks(cfg, &st.profile_writes)) {
                    Ok(scraper) => {
                        let mut sharder = Sharder::new(Algorithm::default());
                        sharder.set_peers(&st.peers);
                        ProfileScrapeComponent {
                            scraper,
                            sharder,
                            targets: Vec::new(),
                            owned: 0,
                        }
                    }
                    Err(e) => {
                        tracing::error!(component = %cfg.id(), error = %e, "cannot start");
                        st.failed.insert(cfg.id(), e);
                        continue;
                    }
                },
            };
            st.profile_scrapes.insert(cfg.name.clone(), comp);
            timer.done(&self.controller, &cfg.id());
        }
    }

    /// Re-reads every profile scrape component's targets; reassigns those whose list changed.
    pub(super) fn sync_pyroscope(&self, st: &mut State) {
        for comp in st.profile_scrapes.values_mut() {
            let timer = Timer::start();
            let targets = one_per_shard_key(resolve_sources(
                &comp.config().targets,
                &st.discoveries,
                &st.discovery_relabels,
            ));
            if targets != comp.targets {
                let keys: Vec<u64> = targets.iter().map(Target::shard_key).collect();
                comp.sharder.set_keys(&keys);
                comp.targets = targets;
                comp.reassign(&self.node, st.stopped);
            }
            timer.done(&self.controller, &comp.config().id());
        }
    }
}
