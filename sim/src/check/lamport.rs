//! `LamportMonotonicChecker`: Lamport times and incarnations never go backwards at an observer.
//!
//! Owns only this invariant; reads observations, never changes them.

use std::collections::BTreeMap;

use super::{align, Violation, Violations};
use crate::observe::{Observation, View};

pub const INVARIANT: &str = "lamport_monotonic";

/// Per observer, per member: the Lamport time and incarnation the observer holds never go
/// backwards; nor do the observer's own clock and incarnation.
///
/// Why it matters: "the highest time wins" is how ckit orders state changes and how SWIM orders
/// alive/suspect/dead. A clock that goes back lets an old message (a node's earlier
/// `participant`, or `alive` from before its death) overwrite a newer one: nodes disagree on
/// states forever, or a dead node comes back.
///
/// Fresh state is not a regression: when the observer's process restarts, its marks are
/// dropped; when a member restarted *and* the observer had forgotten it (dropped it from its
/// member list), the new process may start from zero again.
#[derive(Debug, Default)]
pub struct LamportMonotonicChecker {
    observers: BTreeMap<String, ObserverMarks>,
}

#[derive(Debug, Default)]
struct ObserverMarks {
    restarts: u32,
    incarnation: u64,
    lamport: u64,
    /// Sorted by member name (merged with each new view in one pass).
    members: Vec<(String, MemberMark)>,
    /// The view the marks were taken from: the same view again holds nothing new.
    view: View,
}

#[derive(Debug)]
struct MemberMark {
    incarnation: u64,
    lamport: u64,
    /// The member's process run when the observer first held it (kept across updates, so a
    /// restart while still held is not mistaken for a new acquaintance).
    member_restarts: u32,
    /// The observer dropped the member from its list since.
    forgotten: bool,
}

impl LamportMonotonicChecker {
    pub fn observe(&mut self, obs: &Observation, out: &mut Violations) {
        for node in obs.nodes.iter().filter(|n| n.live) {
            let marks = match self.observers.get_mut(&node.name) {
                Some(m) => m,
                None => self.observers.entry(node.name.clone()).or_default(),
            };
            if marks.restarts != node.restarts {
                *marks = ObserverMarks {
                    restarts: node.restarts,
                    ..ObserverMarks::default()
                };
            }
            if node.incarnation < marks.incarnation {
                out.push(Violation::new(
                    obs.at_ms,
                    INVARIANT,
                    format!(
                        "{}'s own incarnation went back from {} to {}",
                        node.name, marks.incarnation, node.incarnation
                    ),
                ));
            }
            if node.lamport < marks.lamport {
                out.push(Violation::new(
                    obs.at_ms,
                    INVARIANT,
                    format!(
                        "{}'s own Lamport clock went back from {} to {}",
                        node.name, marks.lamport, node.lamport
                    ),
                ));
            }
            marks.incarnation = node.incarnation;
            marks.lamport = node.lamport;
            if node.members.same(&marks.view) {
                continue;
            }
            marks.view = node.members.clone();

            let runs = align(&obs.nodes, &node.members);
            let old = std::mem::take(&mut marks.members);
            let mut merged = Vec::with_capacity(old.len().max(node.members.len()));
            let mut old = old.into_iter().peekable();
            for (m, run) in node.members.iter().zip(runs) {
                while let Some((name, mut mark)) = old.next_if(|(name, _)| *name < m.name) {
                    mark.forgotten = true;
                    merged.push((name, mark));
                }
                let member_restarts = run.map_or(0, |i| obs.nodes[i as usize].restarts);
                let mut first_run = member_restarts;
                let name = match old.next_if(|(name, _)| *name == m.name) {
                    None => m.name.clone(),
                    Some((name, mark)) => {
                        let fresh = mark.forgotten && member_restarts > mark.member_restarts;
                        if !fresh {
                            first_run = mark.member_restarts;
                            if m.incarnation < mark.incarnation {
                                out.push(Violation::new(
                                    obs.at_ms,
                                    INVARIANT,
                                    format!(
                                        "{} holds {} at incarnation {} after having held incarnation {}",
                                        node.name, m.name, m.incarnation, mark.incarnation
                                    ),
                                ));
                            }
                            if m.lamport < mark.lamport {
                                out.push(Violation::new(
                                    obs.at_ms,
                                    INVARIANT,
                                    format!(
                                        "{} holds {}'s state at Lamport time {} after having held time {}",
                                        node.name, m.name, m.lamport, mark.lamport
                                    ),
                                ));
                            }
                        }
                        name
                    }
                };
                merged.push((
                    name,
                    MemberMark {
                        incarnation: m.incarnation,
                        lamport: m.lamport,
                        member_restarts: first_run,
                        forgotten: false,
                    },
                ));
            }
            for (name, mut mark) in old {
                mark.forgotten = true;
                merged.push((name, mark));
            }
            marks.members = merged;
        }
    }
}
