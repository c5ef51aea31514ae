//! The per-node time series behind the plots: participants each node sees, targets it owns.
//!
//! Owns only the compact series kept from observations (a few numbers per node per
//! observation); plotting is `plot`'s job.

use std::collections::BTreeMap;

use crate::observe::Observation;

/// One node at one observation (live nodes only; a down node leaves a gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub at_ms: u64,
    /// How many participants the node sees (itself included when it participates).
    pub participants_seen: u32,
    /// How many targets it owns.
    pub owned_targets: u32,
}

/// Series per node name, and the events to mark on the time axis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub nodes: BTreeMap<String, Vec<Point>>,
    pub events: Vec<(u64, String)>,
    /// The times observed, in order.
    pub times_ms: Vec<u64>,
}

impl Timeline {
    pub fn observe(&mut self, obs: &Observation) {
        self.times_ms.push(obs.at_ms);
        for n in obs.nodes.iter().filter(|n| n.live) {
            self.nodes.entry(n.name.clone()).or_default().push(Point {
                at_ms: obs.at_ms,
                participants_seen: n.participant_count() as u32,
                owned_targets: n.owned_targets.len() as u32,
            });
        }
    }

    pub fn event(&mut self, at_ms: u64, description: &str) {
        self.events.push((at_ms, description.to_string()));
    }
}
