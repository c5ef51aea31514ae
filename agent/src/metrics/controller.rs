//! The component controller series (Alloy's `*_component_controller_*` and
//! `*_component_evaluation_*` under the agent's prefix) and `agent_build_info`. The public
//! dashboards build their `cluster`/`namespace`/`job`/`instance` drop-downs on
//! `agent_component_controller_running_components`, so it is exported for every health type,
//! zeros included, whenever the agent runs.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use crate::pipeline::controller::Health;
use crate::pipeline::PipelineStats;

use super::{gauge, gauge_family, Labels};

/// `agent_build_info{version}` = 1, what the public dashboards join Go series against.
pub fn build_info(e: &mut DescriptorEncoder) -> std::fmt::Result {
    gauge_family(
        e,
        "agent_build_info",
        "A metric with a constant '1' value labeled by the version the agent was built from.",
        &[(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1)],
    )
}

/// The controller series of the running pipeline.
pub fn encode(e: &mut DescriptorEncoder, stats: &PipelineStats) -> std::fmt::Result {
    let series: Vec<(Labels, i64)> = Health::ALL
        .iter()
        .map(|h| {
            let n = stats.components.iter().filter(|(_, c)| c == h).count();
            (vec![("health_type", h.as_str().to_string())], n as i64)
        })
        .collect();
    gauge_family(
        e,
        "agent_component_controller_running_components",
        "Components of the configuration, by health.",
        &series,
    )?;
    let c = &stats.controller;
    gauge(
        e,
        &[],
        "agent_component_controller_evaluating",
        "1 while the controller evaluates components (a configuration load, or components taking in a dependency's new exports).",
        i64::from(c.is_evaluating()),
    )?;
    let h = &c.evaluation_seconds;
    h.encode(e.encode_descriptor(
        "agent_component_evaluation_seconds",
        "Time spent evaluating a component (computing its arguments and applying them).",
        None,
        MetricType::Histogram,
    )?)?;
    let h = &c.dependencies_wait_seconds;
    h.encode(e.encode_descriptor(
        "agent_component_dependencies_wait_seconds",
        "Time components waited to be evaluated after a dependency published new exports.",
        None,
        MetricType::Histogram,
    )?)?;
    let ids: Vec<String> = stats.components.iter().map(|(id, _)| id.clone()).collect();
    let mut m = e.encode_descriptor(
        "agent_component_evaluation_slow_seconds",
        "Seconds spent evaluating components that took longer than 1m to evaluate.",
        None,
        MetricType::Counter,
    )?;
    for (id, secs) in c.slow_seconds(&ids) {
        ConstCounter::new(secs).encode(m.encode_family(&vec![("component_id", id)])?)?;
    }
    Ok(())
}
