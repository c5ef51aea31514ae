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
    Counters, EventRecord, NodeObservation, Observation, ObservationSink, Reachability, View,
    OBSERVATION_INTERVAL_MS,
};
use crate::scenario::{Action, Scenario};

/// Discrete-event engine over the core. Scales to thousands of nodes.
#[derive(Debug, Clone, Copy)]
pub struct FastEngine {
    /// Simulated time between observations. Default `OBSERVATION_INTERVAL_MS` (500 ms), what
    /// scenario runs and their reports use; `sim scale` observes every 50 ms to time joins.
    pub observation_interval_ms: u64,
}

impl Default for FastEngine {
    fn default() -> Self {
        FastEngine {
            observation_interval_ms: OBSERVATION_INTERVAL_MS,
        }
    }
}

struct Proc {
    restarts: u32,
    config_targets: u32,
    /// A graceful leave in progress: stop the process once drained or at this time.
    leave_deadline: Option<Instant>,
    /// The view last observed, reused while the node's view version stays the same.
    seen: Option<SeenView>,
}

/// A node's last observed view and the version of the node's member table it came from.
struct SeenView {
    restarts: u32,
    version: u64,
    view: View,
    /// When the view was last read from the node.
    read_at_ms: u64,
}

/// A view is read from the node again at least this often (simulated time) even when its
/// version has not moved. The core bumps the version on every change of status, state or
/// address, but not when it drops an expired tombstone (10 minutes after a death) or raises
/// the incarnation of a member already suspect; this bounds how late the observation can be
/// about those. Rereading costs ~0.6 us per member: every 10 s it was a third of a steady
/// 1,000-node run; every 60 s it is ~5%.
const VIEW_REREAD_MS: u64 = 60_000;

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
            seen: None,
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
            Action::PowerOff(name) => {
                self.net.power_off(&common::addr_of(name));
            }
            Action::Stall { node, duration } => {
                self.net.stall(&common::addr_of(node), *duration);
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
                .is_none_or(|n| n.is_leaving() && n.broadcasts_pending() == 0);
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
        let mut lives = Vec::with_capacity(self.procs.len());
        for (name, p) in self.procs.iter_mut() {
            match self.net.node(&common::addr_of(name)) {
                Some(node) => lives.push(Ok(LiveNode {
                    name,
                    restarts: p.restarts,
                    state: node.state(),
                    incarnation: node.incarnation(),
                    lamport: node.lamport_time(),
                    view: observed_view(&mut p.seen, p.restarts, node, at_ms),
                    config_targets: p.config_targets,
                })),
                None => {
                    p.seen = None;
                    lives.push(Err(NodeObservation::down(
                        name.clone(),
                        p.restarts,
                        p.config_targets,
                    )))
                }
            }
        }
        self.cache.prepare(lives.iter().filter_map(|l| match l {
            Ok(l) if l.state == NodeState::Participant => Some((l.name, &l.view, l.config_targets)),
            _ => None,
        }));
        let nodes = lives
            .into_iter()
            .map(|l| l.map_or_else(|down| down, |live| live.observe(&mut self.cache)))
            .collect();
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

/// The node's view: the one observed last time while the node's member table has not changed
/// (shared, so checkers skip it), else read again. Reading 1,000 views of 1,000 members at every
/// observation would cost more than running the protocol.
fn observed_view(seen: &mut Option<SeenView>, restarts: u32, node: &Node, at_ms: u64) -> View {
    let version = node.view_version();
    if let Some(s) = seen {
        if s.restarts == restarts
            && s.version == version
            && at_ms.saturating_sub(s.read_at_ms) < VIEW_REREAD_MS
        {
            return s.view.clone();
        }
    }
    let fresh = common::view_from(node.members());
    let view = match seen.take() {
        // Unchanged after all: keep sharing the old one.
        Some(s) if s.restarts == restarts && s.view == fresh => s.view,
        _ => fresh,
    };
    *seen = Some(SeenView {
        restarts,
        version,
        view: view.clone(),
        read_at_ms: at_ms,
    });
    view
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
        if self.observation_interval_ms == 0 {
            return Err(EngineError::Unsupported(
                "observation interval 0 ms: expected at least 1 ms".to_string(),
            ));
        }
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
                next_obs_ms += self.observation_interval_ms;
            }
        }
        let s = &world.net.stats;
        counters.messages_sent = s.messages_sent;
        counters.bytes_sent = s.bytes_sent;
        counters.faults.dropped_messages = s.dropped_loss + s.dropped_partition;
        Ok(EngineOutcome {
            counters,
            wall: None,
        })
    }
}
