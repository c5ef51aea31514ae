//! `ConvergenceChecker`: after every change, how long until every live node agrees with the
//! network about who participates and every target has exactly one owner; and whether that
//! happened within `expect.converge_within`.
//!
//! Owns the definition of "converged" ([`assess`]) and the convergence expectations. Reads
//! observations and the event log; never changes them.

use std::collections::BTreeMap;

use super::{Violation, Violations};
use crate::observe::{fingerprint, NodeObservation, NodeState, Observation, Reachability, Side};

pub const INVARIANT: &str = "convergence";

/// The assignment of targets to participants in a converged, unpartitioned cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Sorted participant names.
    pub participants: Vec<String>,
    /// `owners[t]` = index into `participants` of the one owner of target `t`, for every target
    /// all participants list (`t < owners.len()`).
    pub owners: Vec<u32>,
}

/// Whether one observation is converged, and if so its assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub converged: bool,
    /// Why not, naming a node and what it is missing (first reason found).
    pub reason: Option<String>,
    /// The assignment, when converged and every live node is on the same side of the network.
    pub assignment: Option<Assignment>,
}

/// Converged means, for each side of the network (the whole cluster, or each partition group):
/// - every live node's participant view (members in state participant, not dead/left) equals
///   the live nodes on its side whose own state is participant; and
/// - when those participants share a config (list the same targets), every target is owned by
///   exactly one live node on that side. While configs differ (drift) only the views must
///   agree: the assignment depends on the target list, so no assignment can be right for
///   everyone, and the damage is measured by the ownership accounting (unowned and duplicate
///   target-seconds) instead. SIMULATION.md: "for nodes that share a config".
pub fn assess(obs: &Observation) -> Assessment {
    let group_of: BTreeMap<&str, usize> = match &obs.reachability {
        Reachability::Full => BTreeMap::new(),
        Reachability::Groups(groups) => groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.iter().map(move |n| (n.as_str(), i)))
            .collect(),
    };
    let side = |name: &str| match &obs.reachability {
        Reachability::Full => Side::Everyone,
        Reachability::Groups(_) => group_of
            .get(name)
            .map_or_else(|| Side::Alone(name.to_string()), |&i| Side::Group(i)),
    };
    let mut sides: BTreeMap<Side, Vec<&NodeObservation>> = BTreeMap::new();
    for n in obs.nodes.iter().filter(|n| n.live) {
        sides.entry(side(&n.name)).or_default().push(n);
    }
    let single_side = sides.len() <= 1;
    let mut assignment = None;
    for nodes in sides.values() {
        let participants: Vec<&str> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Participant)
            .map(|n| n.name.as_str())
            .collect();
        // Views are compared by fingerprint (O(1) each); names only for a view that differs.
        let expected = fingerprint(participants.iter().copied());
        for n in nodes {
            if n.participant_count() == participants.len()
                && n.members.participants_fingerprint() == expected
            {
                continue;
            }
            let view = n.participant_view();
            if view == participants {
                continue;
            }
            let missing: Vec<&str> = participants
                .iter()
                .copied()
                .filter(|p| view.binary_search(p).is_err())
                .collect();
            let extra: Vec<&str> = view
                .iter()
                .copied()
                .filter(|p| participants.binary_search(p).is_err())
                .collect();
            let mut problems = Vec::new();
            if !missing.is_empty() {
                problems.push(format!("does not see participant(s) {}", list(&missing)));
            }
            if !extra.is_empty() {
                problems.push(format!("still counts {} as participant(s)", list(&extra)));
            }
            return not_converged(format!("{} {}", n.name, problems.join(" and ")));
        }
        if participants.is_empty() {
            continue;
        }
        let mut configs = nodes
            .iter()
            .filter(|n| n.state == NodeState::Participant)
            .map(|n| n.config_targets);
        let first = configs.next();
        if configs.any(|c| Some(c) != first) {
            continue;
        }
        let shared_targets = nodes
            .iter()
            .filter(|n| n.state == NodeState::Participant)
            .map(|n| n.config_targets)
            .min()
            .unwrap_or(0) as usize;
        const UNOWNED: u32 = u32::MAX;
        let mut owners = vec![UNOWNED; shared_targets];
        for n in nodes {
            let mut owned = n
                .owned_targets
                .iter()
                .take_while(|t| (**t as usize) < shared_targets);
            let Ok(index) = participants.binary_search(&n.name.as_str()) else {
                if let Some(t) = owned.next() {
                    return not_converged(format!(
                        "{} owns target-{t} but is {}, not a participant",
                        n.name,
                        n.state.as_str()
                    ));
                }
                continue;
            };
            for &t in owned {
                let slot = &mut owners[t as usize];
                if *slot != UNOWNED {
                    return not_converged(format!(
                        "target-{t} is owned by both {} and {}",
                        participants[*slot as usize], n.name
                    ));
                }
                *slot = index as u32;
            }
        }
        if let Some(t) = owners.iter().position(|o| *o == UNOWNED) {
            return not_converged(format!(
                "target-{t} has no owner among {}",
                list(&participants)
            ));
        }
        if single_side {
            assignment = Some(Assignment {
                participants: participants.iter().map(|p| p.to_string()).collect(),
                owners,
            });
        }
    }
    Assessment {
        converged: true,
        reason: None,
        assignment,
    }
}

fn not_converged(reason: String) -> Assessment {
    Assessment {
        converged: false,
        reason: Some(reason),
        assignment: None,
    }
}

/// Names in a reason, at most `REASON_NAMES_MAX` of them: a reason is kept per observation,
/// and at 1,000 nodes a full list would be kilobytes each.
fn list(names: &[&str]) -> String {
    if names.len() <= REASON_NAMES_MAX {
        names.join(" ")
    } else {
        format!(
            "{} (and {} more)",
            names[..REASON_NAMES_MAX].join(" "),
            names.len() - REASON_NAMES_MAX
        )
    }
}

/// Most names listed in one not-converged reason.
pub const REASON_NAMES_MAX: usize = 10;

/// How long each change took to converge, and the convergence expectations:
/// - after start and after every event, converged within `converge_within` (unless the next
///   event came first: then the run cannot tell, and the final check below still applies);
/// - from the last event + `converge_within` to the end, converged at every observation.
///
/// Why it matters: a cluster that does not converge scrapes some targets twice and others not
/// at all, and the operator's only sign is a dashboard alert (node count mismatch). Parallel
/// start and heal after a partition are where ckit clusters stayed split (agent#4465,
/// alloy#3865).
#[derive(Debug, Default)]
pub struct ConvergenceChecker {
    history: Vec<(u64, Option<String>)>,
    events: Vec<u64>,
}

/// When the cluster converged after one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeConvergence {
    pub at_ms: u64,
    /// Null when not converged before the next (later) event or the end of the run.
    pub converged_after_ms: Option<u64>,
}

impl ConvergenceChecker {
    pub fn event(&mut self, at_ms: u64) {
        self.events.push(at_ms);
    }

    /// Records one observation's assessment.
    pub fn observe(&mut self, at_ms: u64, assessment: &Assessment) {
        let reason = if assessment.converged {
            None
        } else {
            Some(assessment.reason.clone().unwrap_or_default())
        };
        self.history.push((at_ms, reason));
    }

    /// Convergence after start (t=0) and after each event, in event order.
    pub fn changes(&self, duration_ms: u64) -> (Option<u64>, Vec<ChangeConvergence>) {
        let startup = self.converged_after(0, self.events.first().copied(), duration_ms);
        let changes = self
            .events
            .iter()
            .map(|&at| {
                let next = self.events.iter().copied().find(|&t| t > at);
                ChangeConvergence {
                    at_ms: at,
                    converged_after_ms: self.converged_after(at, next, duration_ms),
                }
            })
            .collect();
        (startup, changes)
    }

    /// First converged observation in `[from, until)` (`until` = next event), or
    /// `[from, duration]` for the last change.
    fn converged_after(&self, from: u64, until: Option<u64>, duration_ms: u64) -> Option<u64> {
        self.history
            .iter()
            .filter(|(t, _)| *t >= from && until.map_or(*t <= duration_ms, |u| *t < u))
            .find(|(_, reason)| reason.is_none())
            .map(|(t, _)| t - from)
    }

    /// The first reason the cluster was not converged at or after `at`, if it was not.
    fn reason_at(&self, at: u64) -> Option<(u64, &str)> {
        self.history
            .iter()
            .find(|(t, _)| *t >= at)
            .and_then(|(t, r)| r.as_deref().map(|r| (*t, r)))
    }

    /// Checks the expectations; `within_ms` is `expect.converge_within`.
    pub fn finish(
        &self,
        duration_ms: u64,
        within_ms: Option<u64>,
        descriptions: &[String],
        out: &mut Violations,
    ) {
        let Some(within) = within_ms else { return };
        let (startup, changes) = self.changes(duration_ms);
        let mut windows = vec![(
            0u64,
            "start".to_string(),
            startup,
            self.events.first().copied(),
        )];
        for (i, c) in changes.iter().enumerate() {
            let next = self.events.iter().copied().find(|&t| t > c.at_ms);
            let what = descriptions.get(i).cloned().unwrap_or_default();
            windows.push((c.at_ms, what, c.converged_after_ms, next));
        }
        for (at, what, after, next) in windows {
            let window = next.unwrap_or(duration_ms) - at;
            match after {
                Some(after) if after > within => out.push(Violation::new(
                    at + after,
                    INVARIANT,
                    format!("after {what} at {at} ms: converged only after {after} ms, expected within {within} ms"),
                )),
                None if window >= within => {
                    let why = self
                        .reason_at(at + within)
                        .map_or(String::new(), |(t, r)| format!(" (at {t} ms: {r})"));
                    out.push(Violation::new(
                        at + within,
                        INVARIANT,
                        format!("after {what} at {at} ms: not converged within {within} ms{why}"),
                    ));
                }
                _ => {}
            }
        }
        let settle = self.events.last().copied().unwrap_or(0) + within;
        let failing: Vec<&(u64, Option<String>)> = self
            .history
            .iter()
            .filter(|(t, r)| *t >= settle && r.is_some())
            .collect();
        if let Some((t, Some(reason))) = failing.first() {
            out.push(Violation::new(
                *t,
                INVARIANT,
                format!(
                    "not converged at {t} ms, after the last event + {within} ms ({} of the observations from {settle} ms on): {reason}",
                    failing.len()
                ),
            ));
        }
    }
}
