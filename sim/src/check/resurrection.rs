//! `NoResurrectionChecker`: a member seen dead or left comes back only with a higher incarnation.
//!
//! Owns only this invariant; reads observations, never changes them.

use std::collections::BTreeMap;

use super::{align, Violation, Violations};
use crate::observe::{Observation, Status, View};

pub const INVARIANT: &str = "no_resurrection";

/// Once an observer has seen a member dead or left at incarnation `i`, it may see it alive or
/// suspect again only at an incarnation above `i`.
///
/// Why it matters: SWIM refutation is the only legitimate way back. A node that reappears at
/// the same incarnation was revived by stale gossip about a process that no longer exists;
/// the cluster then owns targets through a ghost (unscraped targets) and may flap it between
/// dead and alive for as long as the old message circulates.
///
/// A member that restarted after the observer had forgotten it (dropped it from its list) is a
/// new process the observer knows nothing against: it may start from any incarnation.
#[derive(Debug, Default)]
pub struct NoResurrectionChecker {
    /// Per observer: its run, the members it holds dead or left, and the view they were taken
    /// from (the same view again changes nothing).
    observers: BTreeMap<String, (u32, BTreeMap<String, Gone>, View)>,
}

#[derive(Debug)]
struct Gone {
    status: Status,
    incarnation: u64,
    since_ms: u64,
    member_restarts: u32,
    forgotten: bool,
}

impl NoResurrectionChecker {
    pub fn observe(&mut self, obs: &Observation, out: &mut Violations) {
        for node in obs.nodes.iter().filter(|n| n.live) {
            let (restarts, gone, seen) = match self.observers.get_mut(&node.name) {
                Some(o) => o,
                None => self.observers.entry(node.name.clone()).or_default(),
            };
            if *restarts != node.restarts {
                *restarts = node.restarts;
                gone.clear();
                *seen = View::default();
            }
            if node.members.same(seen) {
                continue;
            }
            *seen = node.members.clone();
            if gone.is_empty() && node.members.iter().all(|m| !m.status.is_gone()) {
                continue; // the common case: nothing dead, nothing to track
            }
            let runs = align(&obs.nodes, &node.members);
            for (m, run) in node.members.iter().zip(runs) {
                let member_restarts = run.map_or(0, |i| obs.nodes[i as usize].restarts);
                if m.status.is_gone() {
                    let entry = gone.entry(m.name.clone()).or_insert(Gone {
                        status: m.status,
                        incarnation: m.incarnation,
                        since_ms: obs.at_ms,
                        member_restarts,
                        forgotten: false,
                    });
                    entry.forgotten = false;
                    if m.incarnation > entry.incarnation || m.status != entry.status {
                        entry.incarnation = entry.incarnation.max(m.incarnation);
                        entry.status = m.status;
                    }
                    continue;
                }
                let Some(was) = gone.remove(&m.name) else {
                    continue;
                };
                let new_process = was.forgotten && member_restarts > was.member_restarts;
                if m.incarnation <= was.incarnation && !new_process {
                    out.push(Violation::new(
                        obs.at_ms,
                        INVARIANT,
                        format!(
                            "{} sees {} {} at incarnation {} after seeing it {} at incarnation {} (since {} ms)",
                            node.name,
                            m.name,
                            m.status.as_str(),
                            m.incarnation,
                            was.status.as_str(),
                            was.incarnation,
                            was.since_ms
                        ),
                    ));
                }
            }
            for (name, g) in gone.iter_mut() {
                if node.member(name).is_none() {
                    g.forgotten = true;
                }
            }
        }
    }
}
