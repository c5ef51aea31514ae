//! Hand-built clusters for tests: a tiny "world" whose nodes always agree with the truth once
//! told to [`World::settle`], and that tests then bend to produce exactly the violation they
//! want a checker to catch.
//!
//! Owns nothing the testbed runs on; it exists so that checker tests (and engines' adapter
//! tests) read as stories: crash node-3, settle, snapshot.

use std::collections::BTreeMap;

use crate::observe::{MemberView, NodeObservation, NodeState, Observation, Reachability, Status};
use crate::scenario::node_name;

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
        self.nodes.insert(name.to_string(), n);
    }

    /// Every live node sees every node it has heard of: reachable live ones as they are
    /// (alive), the others dead at the incarnation it last held; owners recomputed per side.
    pub fn settle(&mut self) {
        let truth: Vec<NodeObservation> = self.nodes.values().cloned().collect();
        let sides: BTreeMap<String, _> = truth
            .iter()
            .map(|n| (n.name.clone(), self.reachability.side(&n.name)))
            .collect();
        for n in self.nodes.values_mut().filter(|n| n.live) {
            let old: BTreeMap<String, MemberView> =
                n.members.drain(..).map(|m| (m.name.clone(), m)).collect();
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
                n.members.extend(view);
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
            .iter_mut()
            .find(|m| m.name == member)
            .unwrap_or_else(|| panic!("{observer} does not know {member}"))
    }

    pub fn crash(&mut self, name: &str) {
        let n = self.node_mut(name);
        n.live = false;
        n.members.clear();
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
    }

    pub fn join(&mut self, name: &str, targets: u32) {
        self.add(name, targets);
    }

    /// Graceful leave: the node goes, everyone that can hear it holds it as left.
    pub fn leave(&mut self, name: &str) {
        let me = self.nodes[name].clone();
        for n in self.nodes.values_mut().filter(|n| n.live && n.name != name) {
            if let Some(m) = n.members.iter_mut().find(|m| m.name == name) {
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
