//! Who may own what: the [`Peer`] input type, the [`Op`] of a lookup, and the eligible set.
//!
//! This module owns the eligibility rule (ckit's): writes go to participants only; reads go to
//! participants and terminating nodes (which still hold data while they drain); viewers never
//! own anything. It also owns the canonical form of a peer list, sorted by name and
//! deduplicated, so every algorithm sees the same list whatever order the caller used. It knows
//! nothing about hashing.

use crate::NodeState;

/// What a lookup is for; decides which node states are eligible owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Op {
    /// Read-only lookups: participants and terminating nodes may own.
    Read,
    /// Writes (and scrape ownership): only participants may own.
    #[default]
    Write,
}

impl Op {
    /// Both ops, in a fixed order.
    pub const ALL: [Op; 2] = [Op::Read, Op::Write];

    /// Whether a node in `state` may own keys for this op.
    pub fn is_eligible(self, state: NodeState) -> bool {
        match (self, state) {
            (_, NodeState::Viewer) => false,
            (_, NodeState::Participant) => true,
            (Op::Read, NodeState::Terminating) => true,
            (Op::Write, NodeState::Terminating) => false,
        }
    }
}

/// One cluster member as the sharder sees it: a unique name and its announced state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    pub name: String,
    pub state: NodeState,
}

impl Peer {
    pub fn new(name: impl Into<String>, state: NodeState) -> Self {
        Peer {
            name: name.into(),
            state,
        }
    }

    /// A peer in the participant state, the common case in tests and the simulator.
    pub fn participant(name: impl Into<String>) -> Self {
        Peer::new(name, NodeState::Participant)
    }
}

/// The names of the peers eligible for `op`, sorted ascending and deduplicated.
///
/// If a name appears more than once, the entry with the latest state wins (states only move
/// forward: viewer -> participant -> terminating), so the result does not depend on input order.
pub(crate) fn eligible_names(peers: &[Peer], op: Op) -> Vec<String> {
    let mut sorted: Vec<&Peer> = peers.iter().collect();
    sorted.sort_unstable_by(|a, b| (&a.name, a.state).cmp(&(&b.name, b.state)));
    let mut names: Vec<String> = Vec::with_capacity(sorted.len());
    for (i, peer) in sorted.iter().enumerate() {
        let last_of_name = sorted.get(i + 1).is_none_or(|next| next.name != peer.name);
        if last_of_name && op.is_eligible(peer.state) {
            names.push(peer.name.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_nodes_own_for_read_only_and_viewers_never() {
        assert!(Op::Write.is_eligible(NodeState::Participant));
        assert!(Op::Read.is_eligible(NodeState::Participant));
        assert!(Op::Read.is_eligible(NodeState::Terminating));
        assert!(!Op::Write.is_eligible(NodeState::Terminating));
        assert!(!Op::Read.is_eligible(NodeState::Viewer));
        assert!(!Op::Write.is_eligible(NodeState::Viewer));
    }

    #[test]
    fn eligible_names_are_sorted_and_filtered_by_op() {
        let peers = [
            Peer::new("c", NodeState::Terminating),
            Peer::participant("b"),
            Peer::new("a", NodeState::Viewer),
            Peer::participant("d"),
        ];
        assert_eq!(eligible_names(&peers, Op::Write), ["b", "d"]);
        assert_eq!(eligible_names(&peers, Op::Read), ["b", "c", "d"]);
    }

    #[test]
    fn duplicate_names_keep_the_latest_state_whatever_the_order() {
        let forward = [
            Peer::participant("a"),
            Peer::new("a", NodeState::Terminating),
        ];
        let backward = [
            Peer::new("a", NodeState::Terminating),
            Peer::participant("a"),
        ];
        for peers in [&forward, &backward] {
            assert!(eligible_names(peers, Op::Write).is_empty());
            assert_eq!(eligible_names(peers, Op::Read), ["a"]);
        }
    }
}
