//! The owner of every key of a target list, computed at once: what the agent scrapes and what
//! the simulator checks.
//!
//! This module owns the [`Assignment`] result type: owners by key index, per-peer counts, and
//! the diff of two assignments (how many keys changed owner). It does not compute owners itself;
//! [`Sharder::assign`](super::Sharder::assign) does.

use super::{Algorithm, Op, Peer, Sharder};

/// Marks a key with no owner (no peer was eligible).
pub(crate) const NO_OWNER: u32 = u32::MAX;

/// Owners of a list of keys under one peer set, algorithm and op.
///
/// Peers are the eligible names sorted ascending; owners and counts refer to them by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub(crate) peers: Vec<String>,
    pub(crate) owners: Vec<u32>,
    pub(crate) counts: Vec<u32>,
}

impl Assignment {
    /// One-shot: the owners of `keys` (in their order) among `peers` for `op`.
    ///
    /// Builds a [`Sharder`] and throws it away; callers that recompute on every membership
    /// change should keep a `Sharder` instead, which caches the sorted keys.
    pub fn compute(algorithm: Algorithm, peers: &[Peer], keys: &[u64], op: Op) -> Assignment {
        let mut sharder = Sharder::new(algorithm);
        sharder.set_peers(peers);
        sharder.set_keys(keys);
        sharder.assign(op)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The eligible peer names, sorted ascending. Indices below refer to this list.
    pub fn peers(&self) -> &[String] {
        &self.peers
    }

    /// The index (into [`peers`](Self::peers)) of the owner of key `i`; `None` if no peer was
    /// eligible. Panics if `i` is out of range.
    pub fn owner_index(&self, i: usize) -> Option<usize> {
        match self.owners[i] {
            NO_OWNER => None,
            o => Some(o as usize),
        }
    }

    /// The name of the owner of key `i`; `None` if no peer was eligible.
    pub fn owner_of(&self, i: usize) -> Option<&str> {
        self.owner_index(i).map(|o| self.peers[o].as_str())
    }

    /// Keys owned by each peer, parallel to [`peers`](Self::peers).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Keys owned by `name` (0 if it is not an eligible peer).
    pub fn count_of(&self, name: &str) -> u32 {
        self.peer_index(name).map_or(0, |p| self.counts[p])
    }

    /// Indices of the keys owned by `name`, ascending.
    pub fn owned_by<'a>(&'a self, name: &str) -> impl Iterator<Item = usize> + 'a {
        let target = self.peer_index(name).map_or(NO_OWNER, |p| p as u32);
        self.owners
            .iter()
            .enumerate()
            .filter(move |&(_, &o)| o == target && o != NO_OWNER)
            .map(|(i, _)| i)
    }

    /// How many keys have a different owner (by name) in `self` than in `before`; a key that
    /// gained or lost its only owner counts as moved. O(K + N).
    ///
    /// Both assignments must cover the same key list; panics if their lengths differ.
    pub fn moved_from(&self, before: &Assignment) -> usize {
        assert_eq!(
            self.len(),
            before.len(),
            "moved_from compares assignments of the same key list"
        );
        // Translate `before`'s peer indices into ours by merging the two sorted name lists; a
        // peer we do not have maps to GONE, which differs from every owner including NO_OWNER.
        const GONE: u32 = NO_OWNER - 1;
        let mut translate = vec![GONE; before.peers.len()];
        let mut j = 0;
        for (i, name) in before.peers.iter().enumerate() {
            while j < self.peers.len() && self.peers[j] < *name {
                j += 1;
            }
            if j < self.peers.len() && self.peers[j] == *name {
                translate[i] = j as u32;
            }
        }
        before
            .owners
            .iter()
            .zip(&self.owners)
            .filter(|&(&b, &a)| {
                let b = if b == NO_OWNER {
                    NO_OWNER
                } else {
                    translate[b as usize]
                };
                b != a
            })
            .count()
    }

    fn peer_index(&self, name: &str) -> Option<usize> {
        self.peers.binary_search_by(|p| p.as_str().cmp(name)).ok()
    }
}
