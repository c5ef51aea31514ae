//! What the running pipeline shows on `/metrics`: per component its counters and health,
//! taken under the pipeline's lock at scrape time. Owns no counting (each component counts
//! where things happen) and changes nothing.

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;

use crate::relabel::MetricRelabelMetrics;
use crate::remote_write::MetricsSnapshot;

use super::controller::{ControllerMetrics, Health};
use super::Pipeline;

/// One scrape component as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeStats {
    /// `prometheus.scrape.NAME`.
    pub component_id: String,
    pub clustering: bool,
    /// Targets the component has (all nodes together).
    pub targets: usize,
    /// Targets this node scrapes.
    pub owned: usize,
}

/// One remote_write endpoint as `/metrics` shows it.
#[derive(Debug, Clone)]
pub struct RemoteWriteStats {
    /// `prometheus.remote_write.NAME`.
    pub component_id: String,
    /// The endpoint's name (its URL unless named).
    pub endpoint: String,
    pub metrics: MetricsSnapshot,
    /// Duration of each request to the endpoint, retries included.
    pub sent_batch_duration: Histogram,
}

/// One `prometheus.relabel` component as `/metrics` shows it.
#[derive(Debug, Clone)]
pub struct MetricRelabelStats {
    /// `prometheus.relabel.NAME`.
    pub component_id: String,
    pub metrics: Arc<MetricRelabelMetrics>,
}

/// What the pipeline is doing, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    pub scrapes: Vec<ScrapeStats>,
    pub remote_writes: Vec<RemoteWriteStats>,
    /// Each remote_write component's WAL counters, by component id.
    pub wals: Vec<(String, Arc<crate::wal::WalMetrics>)>,
    pub metric_relabels: Vec<MetricRelabelStats>,
    /// The API counters of each Kubernetes component, by component id.
    pub kubernetes: Vec<(String, Arc<crate::kubernetes::watch::Counters>)>,
    /// Every component of the configuration (running or not) and its health, by id.
    pub components: Vec<(String, Health)>,
    /// Components that recompute their share of the targets when the cluster changes
    /// (`clustering { enabled = true }`).
    pub cluster_observers: usize,
    pub controller: Arc<ControllerMetrics>,
    /// Each `pyroscope.scrape` component's counters, by component id.
    pub profile_scrapes: Vec<(String, Arc<crate::pyroscope::scrape::ScrapeCounters>)>,
    /// Each `pyroscope.write` endpoint's counters: component id, endpoint name, counters.
    pub profile_writes: Vec<(
        String,
        String,
        Arc<crate::pyroscope::write::EndpointCounters>,
    )>,
}

impl Pipeline {
    /// What each component is doing.
    pub fn stats(&self) -> PipelineStats {
        let st = self.state.lock().unwrap();
        let healthy = |ok: bool| {
            if ok {
                Health::Healthy
            } else {
                Health::Unhealthy
            }
        };
        let mut components: Vec<(String, Health)> = st
            .remote_writes
            .keys()
            .map(|n| format!("prometheus.remote_write.{n}"))
            .chain(
                st.metric_relabels
                    .keys()
                    .map(|n| format!("prometheus.relabel.{n}")),
            )
            .chain(
                st.discovery_relabels
                    .keys()
                    .map(|n| format!("discovery.relabel.{n}")),
            )
            .map(|id| (id, Health::Healthy))
            .chain(
                st.discoveries
                    .iter()
                    .map(|(id, d)| (id.clone(), healthy(d.handle.errors().is_empty()))),
            )
            .chain(
                st.scrapes
                    .values()
                    .map(|c| (c.config.id(), Health::Healthy)),
            )
            .chain(
                st.operators
                    .iter()
                    .map(|(id, o)| (id.clone(), healthy(o.errors().is_empty()))),
            )
            .chain(
                st.profile_writes
                    .keys()
                    .map(|n| (format!("pyroscope.write.{n}"), Health::Healthy)),
            )
            .chain(
                st.profile_scrapes
                    .keys()
                    .map(|n| (format!("pyroscope.scrape.{n}"), Health::Healthy)),
            )
            .collect();
        // A component that failed its last evaluation is unhealthy, running or not.
        for (id, _) in &st.failed {
            match components.iter_mut().find(|(c, _)| c == id) {
                Some(c) => c.1 = Health::Unhealthy,
                None => components.push((id.clone(), Health::Unhealthy)),
            }
        }
        components.sort();
        let cluster_observers = st
            .scrapes
            .values()
            .filter(|c| c.config.clustering_enabled)
            .count()
            + st.operators
                .values()
                .filter(|o| o.clustering_enabled())
                .count()
            + st.profile_scrapes
                .values()
                .filter(|c| c.clustering_enabled())
                .count();
        PipelineStats {
            kubernetes: st
                .discoveries
                .iter()
                .filter_map(|(id, d)| Some((id.clone(), d.kubernetes.clone()?)))
                .chain(
                    st.operators
                        .iter()
                        .map(|(id, o)| (id.clone(), o.counters())),
                )
                .collect(),
            scrapes: st
                .scrapes
                .values()
                .map(|c| ScrapeStats {
                    component_id: c.config.id(),
                    clustering: c.config.clustering_enabled,
                    targets: c.targets.len(),
                    owned: c.owned,
                })
                .chain(st.operators.values().map(|o| o.stats()))
                .chain(st.profile_scrapes.values().map(|c| c.stats()))
                .collect(),
            remote_writes: st
                .remote_writes
                .iter()
                .flat_map(|(name, rw)| {
                    rw.metrics()
                        .into_iter()
                        .map(move |(endpoint, m)| RemoteWriteStats {
                            component_id: format!("prometheus.remote_write.{name}"),
                            endpoint,
                            metrics: m.snapshot(),
                            sent_batch_duration: m.sent_batch_duration.0.clone(),
                        })
                })
                .collect(),
            wals: st
                .remote_writes
                .iter()
                .map(|(name, rw)| (format!("prometheus.remote_write.{name}"), rw.wal_metrics()))
                .collect(),
            metric_relabels: st
                .metric_relabels
                .iter()
                .map(|(name, (_, c))| MetricRelabelStats {
                    component_id: format!("prometheus.relabel.{name}"),
                    metrics: c.metrics(),
                })
                .collect(),
            components,
            cluster_observers,
            controller: self.controller.clone(),
            profile_scrapes: st
                .profile_scrapes
                .iter()
                .map(|(n, c)| (format!("pyroscope.scrape.{n}"), c.counters()))
                .collect(),
            profile_writes: st
                .profile_writes
                .iter()
                .flat_map(|(n, w)| {
                    w.counters()
                        .into_iter()
                        .map(move |(e, c)| (format!("pyroscope.write.{n}"), e, c))
                })
                .collect(),
        }
    }
}
