//! Hand-built clusters for tests: a tiny "world" whose nodes always agree with the truth once
//! told to [`World::settle`], and that tests then bend to produce exactly the violation they
//! want a checker to catch.
//!
//! Owns nothing the testbed runs on; it exists so that checker tests (and engines' adapter
//! tests) read as stories: crash node-3, settle, snapshot.

use std::collections::BTreeMap;

use crate::engine::{Engine, EngineError, EngineKind, EngineOutcome};
use crate::observe::{
    Counters, EventRecord, MemberView, NodeObservation, NodeState, Observation, ObservationSink,
    Reachability, Recording, Status, OBSERVATION_INTERVAL_MS,
};
use crate::scenario::{node_name, Action, Scenario};

/// Picks the owner (index into sorted `participants`) of target `t`.
pub type OwnerFn = fn(&[String], u32) -> usize;

/// Highest-random-weight owner over a fixed mixer: consistent, moves ~1/(N+1) on a join.
pub fn rendezvous(participants: &[String], t: u32) -> usize {
    let mut best = (0u64, 0usize);
    for (i, p) in participants.iter().enumerate() {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in p.bytes().chain(t.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        if i == 0 || h > best.0 {
            best = (h, i);
        }
    }
    best.1
}

/// `t mod N`: what hashmod does to sequential keys; moves ~N/(N+1) on a join.
pub fn modulo(participants: &[String], t: u32) -> usize {
    t as usize % participants.len()
}

/// A cluster whose views tests set by hand or by [`World::settle`].
#[derive(Debug, Clone)]
pub struct World {
    pub at_ms: u64,
    pub nodes: BTreeMap<String, NodeObservation>,
    pub reachability: Reachability,
    pub owner_of: OwnerFn,
}

impl World {
    /// `node-1 .. node-<nodes>`, live participants listing `targets` targets, settled.
    pub fn new(nodes: u32, targets: u32) -> World {
        let mut w = World {
            at_ms: 0,
            nodes: BTreeMap::new(),
            reachability: Reachability::Full,
            owner_of: rendezvous,
        };
        for i in 1..=nodes {
            w.add(&node_name(i), targets);
        }
        w.settle();
        w
    }

    fn add(&mut self, name: &str, targets: u32) {
        let mut n = NodeObservation::down(name, 0, targets);
        n.live = true;
        n.state = NodeState::Participant;
        n.lamport = 1;
        n.members = vec![self_view(&n)].into();
        self.nodes.insert(name.to_string(), n);
    }

    /// Every live node sees every node it has heard of: reachable live ones as they are
    /// (alive), the others dead at the incarnation it last held; owners recomputed per side.
    ///
    /// A live node that a node on its side holds dead or left first refutes it, as SWIM does:
    /// its incarnation goes one above the highest held.
    pub fn settle(&mut self) {
        let sides: BTreeMap<String, _> = self
            .nodes
            .keys()
            .map(|n| (n.clone(), self.reachability.side(n)))
            .collect();
        let mut refute: BTreeMap<String, u64> = BTreeMap::new();
        for n in self.nodes.values().filter(|n| n.live) {
            for m in n.members.iter().filter(|m| m.status.is_gone()) {
                let target = &self.nodes[&m.name];
                if target.live
                    && sides[&m.name] == sides[&n.name]
                    && m.incarnation >= target.incarnation
                {
                    let inc = refute.entry(m.name.clone()).or_default();
                    *inc = (*inc).max(m.incarnation + 1);
                }
            }
        }
        for (name, inc) in refute {
            let n = self.node_mut(&name);
            n.incarnation = inc;
            n.lamport += 1;
        }
        let truth: Vec<NodeObservation> = self.nodes.values().cloned().collect();
        for n in self.nodes.values_mut().filter(|n| n.live) {
            let old: BTreeMap<String, MemberView> = n
                .members
                .to_mut()
                .drain(..)
                .map(|m| (m.name.clone(), m))
                .collect();
            for t in &truth {
                let up = t.live && sides[&t.name] == sides[&n.name];
                let view = if up {
                    Some(MemberView {
                        name: t.name.clone(),
                        addr: format!("{}:12345", t.name),
                        status: Status::Alive,
                        state: t.state,
                        incarnation: t.incarnation,
                        lamport: t.lamport,
                    })
                } else {
                    old.get(&t.name).map(|m| MemberView {
                        status: if m.status == Status::Left {
                            Status::Left
                        } else {
                            Status::Dead
                        },
                        ..m.clone()
                    })
                };
                n.members.to_mut().extend(view);
            }
        }
        let by_side: BTreeMap<_, Vec<String>> = truth
            .iter()
            .filter(|n| n.live && n.state == NodeState::Participant)
            .fold(BTreeMap::new(), |mut acc, n| {
                acc.entry(sides[&n.name].clone())
                    .or_insert_with(Vec::new)
                    .push(n.name.clone());
                acc
            });
        let owner_of = self.owner_of;
        for n in self.nodes.values_mut() {
            n.owned_targets.clear();
            if !n.live || n.state != NodeState::Participant {
                continue;
            }
            let participants = &by_side[&sides[&n.name]];
            let me = participants
                .iter()
                .position(|p| *p == n.name)
                .expect("a participant is on its side");
            n.owned_targets = (0..n.config_targets)
                .filter(|&t| owner_of(participants, t) == me)
                .collect();
        }
    }

    pub fn advance(&mut self, ms: u64) -> &mut Self {
        self.at_ms += ms;
        self
    }

    pub fn snapshot(&self) -> Observation {
        Observation {
            at_ms: self.at_ms,
            nodes: self.nodes.values().cloned().collect(),
            reachability: self.reachability.clone(),
        }
    }

    pub fn node_mut(&mut self, name: &str) -> &mut NodeObservation {
        self.nodes
            .get_mut(name)
            .unwrap_or_else(|| panic!("no node {name} in this world"))
    }

    /// What `observer` holds about `member`, to edit.
    pub fn view_mut(&mut self, observer: &str, member: &str) -> &mut MemberView {
        self.node_mut(observer)
            .members
            .to_mut()
            .iter_mut()
            .find(|m| m.name == member)
            .unwrap_or_else(|| panic!("{observer} does not know {member}"))
    }

    /// Sets the config target count of `name` (config drift); owners follow on `settle`.
    pub fn set_targets(&mut self, name: &str, count: u32) {
        let n = self.node_mut(name);
        n.config_targets = count;
        n.owned_targets.retain(|t| *t < count);
    }

    pub fn crash(&mut self, name: &str) {
        let n = self.node_mut(name);
        n.live = false;
        n.members.to_mut().clear();
        n.owned_targets.clear();
    }

    /// A fresh process that has refuted its death: incarnation and clock one above its last.
    pub fn restart(&mut self, name: &str) {
        let n = self.node_mut(name);
        n.live = true;
        n.restarts += 1;
        n.incarnation += 1;
        n.lamport += 1;
        n.state = NodeState::Participant;
        n.members = vec![self_view(n)].into();
    }

    pub fn join(&mut self, name: &str, targets: u32) {
        self.add(name, targets);
    }

    /// Graceful leave: the node goes, everyone that can hear it holds it as left.
    pub fn leave(&mut self, name: &str) {
        let me = self.nodes[name].clone();
        for n in self.nodes.values_mut().filter(|n| n.live && n.name != name) {
            if let Some(m) = n.members.to_mut().iter_mut().find(|m| m.name == name) {
                m.status = Status::Left;
                m.state = NodeState::Terminating;
                m.lamport = me.lamport + 1;
            }
        }
        self.crash(name);
    }

    pub fn partition(&mut self, groups: &[&[&str]]) {
        self.reachability = Reachability::Groups(
            groups
                .iter()
                .map(|g| g.iter().map(|s| s.to_string()).collect())
                .collect(),
        );
    }

    pub fn heal(&mut self) {
        self.reachability = Reachability::Full;
    }
}

fn self_view(n: &NodeObservation) -> MemberView {
    MemberView {
        name: n.name.clone(),
        addr: format!("{}:12345", n.name),
        status: Status::Alive,
        state: n.state,
        incarnation: n.incarnation,
        lamport: n.lamport,
    }
}

/// A test double, never registered as a real engine: a perfect cluster that applies each event
/// at once and whose nodes all learn the truth exactly `settle_ms` after the latest event
/// ([`World::settle`]). It lets tests drive the whole pipeline (scenario -> checks -> report)
/// with a known answer: every change converges after `settle_ms`, rounded up to the
/// observation interval. It claims to be `kind` so that reports name an engine.
#[derive(Debug, Clone)]
pub struct OracleEngine {
    pub kind: EngineKind,
    pub settle_ms: u64,
    pub owner_of: OwnerFn,
}

impl OracleEngine {
    pub fn new(settle_ms: u64) -> Self {
        OracleEngine {
            kind: EngineKind::Fast,
            settle_ms,
            owner_of: rendezvous,
        }
    }
}

impl Engine for OracleEngine {
    fn kind(&self) -> EngineKind {
        self.kind
    }

    fn run(
        &self,
        scenario: &Scenario,
        _seed: u64,
        sink: &mut dyn ObservationSink,
    ) -> Result<EngineOutcome, EngineError> {
        let mut world = World::new(scenario.cluster.nodes, scenario.targets.count);
        world.owner_of = self.owner_of;
        // Before the first settle nodes know only themselves and own everything, as at a real
        // start.
        for n in world.nodes.values_mut() {
            let me = n.name.clone();
            n.members.to_mut().retain(|m| m.name == me);
            n.owned_targets = (0..n.config_targets).collect();
        }
        let mut counters = Counters::default();
        let mut events = scenario.events.iter().peekable();
        let mut settle_at = Some(self.settle_ms);
        let end = scenario.duration_ms();
        let mut t = 0;
        while t <= end {
            while let Some(e) = events.next_if(|e| e.at.as_millis() as u64 <= t) {
                apply(&mut world, &e.action);
                counters.faults.count(&e.action);
                sink.event(&EventRecord::from_scenario(e));
                settle_at = Some(e.at.as_millis() as u64 + self.settle_ms);
            }
            if settle_at.is_some_and(|s| s <= t) {
                world.settle();
                settle_at = None;
            }
            world.at_ms = t;
            sink.observe(&world.snapshot());
            counters.messages_sent += world.nodes.values().filter(|n| n.live).count() as u64;
            t += OBSERVATION_INTERVAL_MS;
        }
        Ok(EngineOutcome {
            counters,
            wall: None,
        })
    }
}

fn apply(world: &mut World, action: &Action) {
    match action {
        Action::Partition(groups) => world.reachability = Reachability::Groups(groups.clone()),
        Action::Heal => world.heal(),
        Action::Crash(n) | Action::PowerOff(n) => world.crash(n),
        Action::Stall { .. } => {}
        Action::Restart(n) => world.restart(n),
        Action::Leave(n) => world.leave(n),
        Action::Join(n) => {
            let targets = world
                .nodes
                .values()
                .map(|n| n.config_targets)
                .min()
                .unwrap_or(0);
            world.join(n, targets)
        }
        Action::Targets { nodes, count } => {
            for n in nodes {
                world.set_targets(n, *count);
            }
        }
        Action::Loss(_) | Action::Latency(_) => {}
    }
}

/// A test double that replays a recording, claiming to be `kind`.
#[derive(Debug, Clone)]
pub struct ReplayEngine {
    pub kind: EngineKind,
    pub recording: Recording,
    pub counters: Counters,
}

impl Engine for ReplayEngine {
    fn kind(&self) -> EngineKind {
        self.kind
    }

    fn run(
        &self,
        _: &Scenario,
        _: u64,
        sink: &mut dyn ObservationSink,
    ) -> Result<EngineOutcome, EngineError> {
        self.recording.replay(sink);
        Ok(EngineOutcome {
            counters: self.counters,
            wall: None,
        })
    }
}
