//! The `fast` engine: the sans-I/O core driven directly on the core's in-memory network
//! ([`cluster::testkit::SimNet`]), time jumping from one event to the next.
//!
//! It runs exactly the protocol code the agent runs, minus HTTP/2 and tokio: what it leaves
//! out is transport latency detail, which is why its convergence times are checked against the
//! turmoil engine's. It reproduces what the driver adds on top of the core: joining at start,
//! rejoining at the rejoin interval, becoming a participant once started, and a graceful leave
//! that waits (bounded) until the `left` news has been gossiped.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::testkit::SimNet;
use cluster::{Instant, Node, NodeState};

use super::common::{self, LiveNode, OwnershipCache};
use crate::engine::{Engine, EngineError, EngineKind, EngineOutcome};
use crate::observe::{
    Counters, EventRecord, NodeObservation, Observation, ObservationSink, Reachability,
    OBSERVATION_INTERVAL_MS,
};
use crate::scenario::{Action, Scenario};

/// Discrete-event engine over the core. Scales to thousands of nodes.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastEngine;

struct Proc {
    restarts: u32,
    config_targets: u32,
    /// A graceful leave in progress: stop the process once drained or at this time.
    leave_deadline: Option<Instant>,
}

struct World<'a> {
    scenario: &'a Scenario,
    seed: u64,
    net: SimNet,
    config: cluster::Config,
    procs: BTreeMap<String, Proc>,
    reachability: Reachability,
    cache: OwnershipCache,
}

impl World<'_> {
    fn start(&mut self, name: &str) -> Result<(), EngineError> {
        let now = self.net.now();
        let addr = common::addr_of(name);
        let restarts = self.procs.get(name).map_or(0, |p| p.restarts);
        let node = Node::new(
            self.config.clone(),
            name,
            &addr,
            common::node_seed(self.seed, name, restarts),
            now,
        )
        .map_err(|e| EngineError::Unsupported(e.to_string()))?;
        self.net.add(node);
        let targets = self.scenario.targets.count;
        let p = self.procs.entry(name.to_string()).or_insert(Proc {
            restarts: 0,
            config_targets: targets,
            leave_deadline: None,
        });
        p.leave_deadline = None;
        // A partition in force applies to a node that starts inside it.
        if let Reachability::Groups(groups) = &self.reachability {
            let groups = groups.clone();
            self.partition(&groups);
        }
        Ok(())
    }

    /// What the driver does once a process is up: join its peers, become a participant (the
    /// simulated config loads at once). Rejoins are the core's own schedule.
    fn boot(&mut self, name: &str) {
        let seeds: Vec<String> = self
            .scenario
            .join_peers(name)
            .iter()
            .map(|n| common::addr_of(n))
            .collect();
        self.net.with_node(&common::addr_of(name), |n, now| {
            n.join(now, &seeds);
            n.set_state(NodeState::Participant)
                .expect("viewer -> participant");
        });
    }

    fn partition(&mut self, groups: &[Vec<String>]) {
        let addrs: Vec<Vec<String>> = groups
            .iter()
            .map(|g| g.iter().map(|n| common::addr_of(n)).collect())
            .collect();
        self.net.partition(&addrs);
    }

    fn apply(&mut self, action: &Action) -> Result<(), EngineError> {
        match action {
            Action::Partition(groups) => {
                self.reachability = Reachability::Groups(groups.clone());
                self.partition(groups);
            }
            Action::Heal => {
                self.reachability = Reachability::Full;
                self.net.heal();
            }
            Action::Crash(name) => {
                self.net.crash(&common::addr_of(name));
            }
            Action::Restart(name) => {
                self.net.crash(&common::addr_of(name));
                if let Some(p) = self.procs.get_mut(name) {
                    p.restarts += 1;
                }
                self.start(name)?;
                self.boot(name);
            }
            Action::Leave(name) => {
                let deadline = self.net.now() + common::LEAVE_TIMEOUT;
                let left = self.net.with_node(&common::addr_of(name), |n, _| {
                    let _ = n.set_state(NodeState::Terminating);
                    n.leave();
                });
                if left.is_some() {
                    if let Some(p) = self.procs.get_mut(name) {
                        p.leave_deadline = Some(deadline);
                    }
                }
            }
            Action::Join(name) => {
                self.start(name)?;
                self.boot(name);
            }
            Action::Targets { nodes, count } => {
                for n in nodes {
                    if let Some(p) = self.procs.get_mut(n) {
                        p.config_targets = *count;
                    }
                }
            }
            Action::Loss(p) => self.net.set_loss(*p),
            Action::Latency(r) => self.net.set_latency(r.min, r.max),
        }
        Ok(())
    }

    /// Driver duties due at `now`: finishing graceful leaves.
    fn housekeeping(&mut self) {
        let now = self.net.now();
        let leaving: Vec<String> = self
            .procs
            .iter()
            .filter(|(_, p)| p.leave_deadline.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in leaving {
            let addr = common::addr_of(&name);
            let drained = self
                .net
                .node(&addr)
                .map_or(true, |n| n.is_leaving() && n.broadcasts_pending() == 0);
            let p = self.procs.get_mut(&name).expect("listed");
            if drained || p.leave_deadline.is_some_and(|d| now >= d) {
                p.leave_deadline = None;
                self.net.crash(&addr);
            }
        }
    }

    /// The next instant a driver duty is due.
    fn next_housekeeping(&self) -> Option<Instant> {
        self.procs.values().filter_map(|p| p.leave_deadline).min()
    }

    fn observe(&mut self, at_ms: u64) -> Observation {
        let mut nodes = Vec::with_capacity(self.procs.len());
        for (name, p) in &self.procs {
            match self.net.node(&common::addr_of(name)) {
                Some(node) => {
                    let members = node.members();
                    let live = LiveNode {
                        name,
                        restarts: p.restarts,
                        state: node.state(),
                        incarnation: node.incarnation(),
                        lamport: node.lamport_time(),
                        members: &members,
                        config_targets: p.config_targets,
                    };
                    nodes.push(live.observe(&mut self.cache));
                }
                None => nodes.push(NodeObservation::down(
                    name.clone(),
                    p.restarts,
                    p.config_targets,
                )),
            }
        }
        Observation {
            at_ms,
            nodes,
            reachability: self.reachability.clone(),
        }
    }

    /// Advance to `until`, stopping at every driver duty on the way.
    fn run_until(&mut self, until: Instant) {
        loop {
            match self.next_housekeeping() {
                Some(t) if t <= until => {
                    self.net.run_until(t);
                    self.housekeeping();
                    // Leaves finish when drained: check again soon after.
                    if self.procs.values().any(|p| p.leave_deadline.is_some()) {
                        let step = (self.net.now() + Duration::from_millis(100)).min(until);
                        if step > self.net.now() {
                            self.net.run_until(step);
                            self.housekeeping();
                        }
                    }
                    if self.net.now() >= until {
                        return;
                    }
                }
                _ => {
                    self.net.run_until(until);
                    self.housekeeping();
                    return;
                }
            }
        }
    }
}

impl Engine for FastEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Fast
    }

    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        sink: &mut dyn ObservationSink,
    ) -> Result<EngineOutcome, EngineError> {
        let mut net = SimNet::new(seed);
        net.set_latency(scenario.network.latency.min, scenario.network.latency.max);
        net.set_loss(scenario.network.loss);
        let mut world = World {
            scenario,
            seed,
            net,
            config: common::protocol_config(scenario),
            procs: BTreeMap::new(),
            reachability: Reachability::Full,
            cache: OwnershipCache::default(),
        };
        world
            .config
            .validate()
            .map_err(|e| EngineError::Unsupported(e.to_string()))?;
        // Every initial process is up before any of them joins: they start together.
        for name in scenario.initial_nodes() {
            world.start(&name)?;
        }
        for name in scenario.initial_nodes() {
            world.boot(&name);
        }
        let mut counters = Counters::default();
        let end_ms = scenario.duration_ms();
        let mut events = scenario.events.iter().peekable();
        let mut next_obs_ms = 0u64;
        loop {
            let next_event_ms = events.peek().map(|e| e.at.as_millis() as u64);
            let t_ms = match next_event_ms {
                Some(e) if e <= next_obs_ms => e,
                _ => next_obs_ms,
            };
            if t_ms > end_ms {
                break;
            }
            // Events at t go before the node timers due at t, then those timers run: the
            // order the turmoil engine has (its timers fire on the tick after their instant).
            // Periodic timers of nodes started together fall on round instants, as events do;
            // the other order would, e.g., let every reconnect attempt due at a heal's instant
            // fail, and add a whole reconnect interval to the heal.
            let at = Instant::from_millis(t_ms);
            if t_ms > 0 && next_event_ms == Some(t_ms) {
                world.run_until(Instant::from_elapsed(
                    at.elapsed_since_epoch() - Duration::from_nanos(1),
                ));
            }
            while let Some(e) = events.next_if(|e| e.at.as_millis() as u64 == t_ms) {
                world.apply(&e.action)?;
                counters.faults.count(&e.action);
                sink.event(&EventRecord::from_scenario(e));
            }
            world.run_until(at);
            if t_ms == next_obs_ms {
                let obs = world.observe(t_ms);
                sink.observe(&obs);
                next_obs_ms += OBSERVATION_INTERVAL_MS;
            }
        }
        let s = &world.net.stats;
        counters.messages_sent = s.messages_sent;
        counters.bytes_sent = s.bytes_sent;
        counters.faults.dropped_messages = s.dropped_loss + s.dropped_partition;
        Ok(EngineOutcome { counters })
    }
}
