//! `NoFalseDeathChecker`: a live node that its observer can reach is never declared dead.
//!
//! Owns this invariant and the false-positive counts (deaths and suspicions); reads
//! observations, never changes them.

use super::{Violation, Violations};
use crate::observe::{MemberView, NodeObservation, Observation, Reachability, Status, View};

pub const INVARIANT: &str = "no_false_death";

/// Counts declarations of death (and suspicions) of members that were live and reachable from
/// the observer throughout, and reports each false death as a violation once the count goes
/// above the scenario's tolerance (`expect.max_false_deaths`, default 0).
///
/// Why it matters: a false death removes a healthy participant; its targets move away and back
/// (gaps and duplicates, alloy#249/#784), and at scale repeated false deaths make the cluster
/// flap. Lifeguard exists to prevent exactly this; this checker proves it does.
///
/// A declaration at observation k counts when, at both k-1 and k: observer and member were
/// live in the same process run, could reach each other, the observer held the member alive
/// or suspect at k-1, and the member already knew the observer at k-1 (it had joined, so it
/// could have refuted). A member whose process restarted may legitimately be declared dead:
/// its old run is dead.
#[derive(Debug, Default)]
pub struct NoFalseDeathChecker {
    prev: Option<Prev>,
    pub false_deaths: u64,
    pub false_suspicions: u64,
    /// Every false death, in order; turned into violations past the tolerance.
    found: Vec<Violation>,
}

/// The previous observation: each node's liveness, run and (shared) view.
#[derive(Debug)]
struct Prev {
    reachability: Reachability,
    /// Node names, sorted (the previous observation's node list).
    names: Vec<String>,
    /// Parallel to `names`: live, restarts, view.
    nodes: Vec<(bool, u32, View)>,
}

impl Prev {
    fn of(obs: &Observation) -> Prev {
        Prev {
            reachability: obs.reachability.clone(),
            names: obs.nodes.iter().map(|n| n.name.clone()).collect(),
            nodes: obs
                .nodes
                .iter()
                .map(|n| (n.live, n.restarts, n.members.clone()))
                .collect(),
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// What `observer` (an index) held about `member`.
    fn status(&self, observer: usize, member: &str) -> Option<Status> {
        let view = &self.nodes[observer].2;
        view.binary_search_by(|m| m.name.as_str().cmp(member))
            .ok()
            .map(|i| view[i].status)
    }
}

/// Forward-only lookup in a slice sorted by unique name: asked for names in ascending order,
/// it finds each in amortised O(1) (a merge walk).
struct Seek<'a, T> {
    items: &'a [T],
    at: usize,
    name: fn(&T) -> &str,
}

impl<'a, T> Seek<'a, T> {
    fn new(items: &'a [T], name: fn(&T) -> &str) -> Self {
        Seek { items, at: 0, name }
    }

    fn find(&mut self, name: &str) -> Option<(usize, &'a T)> {
        while self.at < self.items.len() && (self.name)(&self.items[self.at]) < name {
            self.at += 1;
        }
        let item = self.items.get(self.at)?;
        ((self.name)(item) == name).then_some((self.at, item))
    }
}

impl NoFalseDeathChecker {
    pub fn observe(&mut self, obs: &Observation) {
        if let Some(prev) = &self.prev {
            for o in obs.nodes.iter().filter(|n| n.live) {
                let Some(oi) = prev.index(&o.name) else {
                    continue;
                };
                let (o_live, o_restarts, o_view) = &prev.nodes[oi];
                if !*o_live || *o_restarts != o.restarts {
                    continue;
                }
                if o.members.same(o_view) {
                    continue; // the same view: nobody newly suspected or declared dead
                }
                // Members come in name order, as do the previous view, the previous node list
                // and this observation's nodes: look them up by walking forward (a merge), not
                // by binary search, so a 1,000-member view costs one pass.
                let mut prev_names = Seek::new(&prev.names, |n: &String| n.as_str());
                let mut prev_view = Seek::new(o_view, |m: &MemberView| m.name.as_str());
                let mut nodes_now = Seek::new(&obs.nodes, |n: &NodeObservation| n.name.as_str());
                for m in &o.members {
                    if m.name == o.name || !matches!(m.status, Status::Dead | Status::Suspect) {
                        continue;
                    }
                    let Some((mi, _)) = prev_names.find(&m.name) else {
                        continue;
                    };
                    let Some((_, was)) = prev_view.find(&m.name) else {
                        continue;
                    };
                    let was = was.status;
                    let newly = match m.status {
                        Status::Dead => matches!(was, Status::Alive | Status::Suspect),
                        _ => was == Status::Alive,
                    };
                    if !newly {
                        continue;
                    }
                    let Some((_, member_now)) = nodes_now.find(&m.name) else {
                        continue;
                    };
                    let (m_live, m_restarts, _) = &prev.nodes[mi];
                    let same_run = *m_live && member_now.live && member_now.restarts == *m_restarts;
                    let reachable = obs.reachability.can_reach(&o.name, &m.name)
                        && prev.reachability.can_reach(&o.name, &m.name);
                    let knew_observer = prev.status(mi, &o.name).is_some_and(|s| !s.is_gone());
                    if !(same_run && reachable && knew_observer) {
                        continue;
                    }
                    if m.status == Status::Dead {
                        self.false_deaths += 1;
                        self.found.push(Violation::new(
                            obs.at_ms,
                            INVARIANT,
                            format!(
                                "{} declared {} dead (incarnation {}) while it was live and reachable",
                                o.name, m.name, m.incarnation
                            ),
                        ));
                    } else {
                        self.false_suspicions += 1;
                    }
                }
            }
        }
        self.prev = Some(Prev::of(obs));
    }

    /// Reports the false deaths beyond `tolerated` as violations.
    pub fn finish(&mut self, tolerated: u64, out: &mut Violations) {
        if self.false_deaths > tolerated {
            for v in self.found.drain(..) {
                out.push(v);
            }
        }
    }
}
