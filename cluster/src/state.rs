//! Node states as ckit defines them: `viewer` -> `participant` -> `terminating`.
//!
//! This module owns the state enum and its one legal transition order. It knows nothing about
//! how states are spread (that is `membership`) or what they mean for ownership (`shard`).

use std::fmt;
use std::str::FromStr;

/// The lifecycle state a node announces to the cluster.
///
/// Viewers own nothing; participants own targets; terminating nodes own nothing for writes but
/// keep read ownership while they drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeState {
    Viewer,
    Participant,
    Terminating,
}

impl NodeState {
    /// Whether `self -> next` is a legal transition. Only forward moves are allowed:
    /// viewer -> participant -> terminating, and viewer -> terminating (shutdown before the
    /// config loaded). Staying in the same state is not a transition.
    pub fn can_become(self, next: NodeState) -> bool {
        (self as u8) < (next as u8)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Viewer => "viewer",
            NodeState::Participant => "participant",
            NodeState::Terminating => "terminating",
        }
    }

    pub(crate) fn to_wire(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_wire(b: u8) -> Option<Self> {
        match b {
            0 => Some(NodeState::Viewer),
            1 => Some(NodeState::Participant),
            2 => Some(NodeState::Terminating),
            _ => None,
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(NodeState::Viewer),
            "participant" => Ok(NodeState::Participant),
            "terminating" => Ok(NodeState::Terminating),
            other => Err(format!(
                "unknown node state {other:?}: expected viewer, participant or terminating"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forward_transitions_are_legal() {
        use NodeState::*;
        assert!(Viewer.can_become(Participant));
        assert!(Participant.can_become(Terminating));
        assert!(Viewer.can_become(Terminating));
        assert!(!Participant.can_become(Viewer));
        assert!(!Terminating.can_become(Participant));
        assert!(!Participant.can_become(Participant));
    }

    #[test]
    fn wire_and_text_forms_round_trip() {
        for s in [
            NodeState::Viewer,
            NodeState::Participant,
            NodeState::Terminating,
        ] {
            assert_eq!(NodeState::from_wire(s.to_wire()), Some(s));
            assert_eq!(s.as_str().parse::<NodeState>(), Ok(s));
        }
        assert_eq!(NodeState::from_wire(3), None);
    }
}
